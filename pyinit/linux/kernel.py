"""The kernel seam: every call the executor makes to change or inspect the system.

The executor (:mod:`pyinit.rootfs`) talks to the kernel only through a
:class:`Kernel`. This one is real; :class:`pyinit.linux.fake.FakeKernel`
records the same calls against an in-memory tree, so unit tests can check the
order, flags and targets of a whole setup without root.

Every method raises :class:`pyinit.errors.SetupError` with ``op``, ``path``
and ``errno`` set; the executor adds the step and the hint.

The rules the methods make easy to follow:
- files are reached relative to a directory fd (``*at`` calls), never by a
  path built from strings;
- mounts are built detached (``open_tree``, ``fsopen``/``fsmount``), changed
  on their fd (``mount_setattr``) and attached onto an fd (``move_mount``
  with ``MOVE_MOUNT_T_EMPTY_PATH``).
"""

from __future__ import annotations

import os

from pyinit.errors import SetupError
from pyinit.linux import copyup, mountinfo, syscalls

TYPE_CHECKING = False  # typing costs 6 ms at start-up; mypy reads the name
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeVar

    T = TypeVar("T")



def _call(op: str, path: str | None, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except OSError as exc:
        # step "": raw from the seam; the executor names the step and what it did.
        err = exc.errno or 0
        where = f" {path}" if path else ""
        raise SetupError("", f"{op}{where}: {os.strerror(err)}", err=err, op=op,
                         path=path) from None


class Kernel:
    """The real kernel."""

    def __init__(self) -> None:
        self._fd_dir: int | None = None

    # ----- files, relative to directory fds -------------------------------
    def openat2(self, dirfd: int, path: str, flags: int, resolve: int) -> int:
        return _call("openat2", path, lambda: syscalls.openat2(dirfd, path, flags, resolve))

    def openat(self, dirfd: int, name: str, flags: int, mode: int = 0) -> int:
        return _call("open", name, lambda: os.open(name, flags | os.O_CLOEXEC, mode,
                                                   dir_fd=dirfd))

    def mkdirat(self, dirfd: int, name: str, mode: int) -> None:
        _call("mkdir", name, lambda: os.mkdir(name, mode, dir_fd=dirfd))

    def mknodat(self, dirfd: int, name: str, mode: int, rdev: int) -> None:
        """mknod with exactly ``mode`` (the umask is cleared around it)."""
        def make() -> None:
            old = os.umask(0)
            try:
                os.mknod(name, mode, rdev, dir_fd=dirfd)
            finally:
                os.umask(old)
        _call("mknod", name, make)

    def fchown(self, fd: int, uid: int, gid: int) -> None:
        """chown the inode the (O_PATH) fd holds, never a name."""
        _call("chown", None, lambda: syscalls.fchown_path_fd(fd, uid, gid))

    def fchmod(self, fd: int, mode: int) -> None:
        """chmod the inode the (O_PATH) fd holds, never a name."""
        _call("chmod", None, lambda: syscalls.fchmod_path_fd(fd, mode))

    def symlinkat(self, target: str, dirfd: int, name: str) -> None:
        _call("symlink", name, lambda: os.symlink(target, name, dir_fd=dirfd))

    def readlinkat(self, dirfd: int, name: str = "") -> str:
        """The content of a symlink; ``name`` "" reads the O_PATH|O_NOFOLLOW fd itself."""
        return _call("readlink", name or None, lambda: os.readlink(name, dir_fd=dirfd))

    def unlinkat(self, dirfd: int, name: str) -> None:
        _call("unlink", name, lambda: os.unlink(name, dir_fd=dirfd))

    def fstat(self, fd: int) -> os.stat_result:
        return _call("fstat", None, lambda: os.fstat(fd))

    def fstatfs_type(self, fd: int) -> int:
        return _call("fstatfs", None, lambda: syscalls.fstatfs_type(fd))

    def fstatvfs_flags(self, fd: int) -> int:
        return _call("fstatvfs", None, lambda: os.fstatvfs(fd).f_flag)

    def close(self, fd: int) -> None:
        os.close(fd)

    def dup(self, fd: int) -> int:
        return _call("dup", None, lambda: os.dup(fd))

    def dup2(self, fd: int, to: int) -> None:
        _call("dup2", None, lambda: os.dup2(fd, to))

    def write(self, fd: int, data: bytes) -> None:
        """All of ``data`` (a short write is continued)."""
        def write_all() -> None:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        _call("write", None, write_all)

    def copy_tree(self, src_fd: int, dst_fd: int) -> tuple[int, list[str]]:
        return _call("copy", None, lambda: copyup.copy_tree(src_fd, dst_fd))

    def release(self) -> None:
        """Close what the seam itself holds (the host's /proc/self/fd): PID 1 keeps no fd
        of the host once the setup is done."""
        if self._fd_dir is not None:
            os.close(self._fd_dir)
            self._fd_dir = None

    def describe_fd(self, fd: int) -> str:
        """Where ``fd`` is, for the log only; nothing acts on this string.

        Read through a directory fd of the host's ``/proc/self/fd``, taken
        before any mount, so the answer never comes from the container.
        """
        if self._fd_dir is None:
            self._fd_dir = os.open("/proc/self/fd", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            return os.readlink(str(fd), dir_fd=self._fd_dir)
        except OSError:
            return "?"

    # ----- the host, read before anything changes ------------------------------
    def mountinfo(self) -> list[mountinfo.MountEntry]:
        return _call("read", "/proc/self/mountinfo", mountinfo.read)

    def host_pid(self) -> int:
        """This process's PID as the host's /proc (still ours before the pivot) says."""
        try:
            return int(os.readlink("/proc/self"))
        except (OSError, ValueError):
            return os.getpid()

    def host_rdev(self, path: str) -> int:
        return _call("stat", path, lambda: os.stat(path).st_rdev)

    # ----- mounts ---------------------------------------------------------
    def open_tree(self, dirfd: int, path: str, flags: int) -> int:
        return _call("open_tree", path or None,
                     lambda: syscalls.open_tree(dirfd, path, flags
                                                | syscalls.OPEN_TREE_CLOEXEC))

    def fsopen(self, fstype: str) -> int:
        return _call("fsopen", fstype, lambda: syscalls.fsopen(fstype))

    def fsconfig(self, fd: int, cmd: int, key: str | None = None,
                 value: str | None = None) -> None:
        try:
            syscalls.fsconfig(fd, cmd, key, value)
        except OSError as exc:
            # The filesystem explains itself in the context's message log.
            said = ""
            try:
                said = os.read(fd, 512).decode(errors="replace").strip()
            except OSError:
                pass
            what = key if cmd != syscalls.FSCONFIG_CMD_CREATE else "create"
            err = exc.errno or 0
            detail = os.strerror(err) + (f" ({said[2:] if said[1:2] == ' ' else said})"
                                         if said else "")
            raise SetupError("", f"fsconfig {what}: {detail}", err=err, op="fsconfig",
                             path=key) from None

    def fsmount(self, fd: int, attr: int) -> int:
        return _call("fsmount", None, lambda: syscalls.fsmount(fd, attr))

    def mount_setattr(self, dirfd: int, path: str, flags: int, attr_set: int,
                      attr_clr: int = 0, propagation: int = 0) -> None:
        _call("mount_setattr", path or None,
              lambda: syscalls.mount_setattr(dirfd, path, flags, attr_set, attr_clr,
                                             propagation))

    def move_mount(self, from_fd: int, from_path: str, to_fd: int, to_path: str,
                   flags: int) -> None:
        _call("move_mount", to_path or None,
              lambda: syscalls.move_mount(from_fd, from_path, to_fd, to_path, flags))

    def umount2(self, path: str, flags: int) -> None:
        _call("umount2", path, lambda: syscalls.umount2(path, flags))

    # ----- the process's root and cwd ---------------------------------------
    def fchdir(self, fd: int) -> None:
        _call("fchdir", None, lambda: os.fchdir(fd))

    def chdir(self, path: str) -> None:
        _call("chdir", path, lambda: os.chdir(path))

    def chroot(self, path: str) -> None:
        _call("chroot", path, lambda: os.chroot(path))

    def pivot_root(self, new_root: str, put_old: str) -> None:
        _call("pivot_root", new_root, lambda: syscalls.pivot_root(new_root, put_old))

    # ----- namespaces -------------------------------------------------------
    def unshare(self, flags: int) -> None:
        _call("unshare", None, lambda: syscalls.unshare(flags))

    # ----- identity -----------------------------------------------------------
    def sethostname(self, name: str) -> None:
        _call("sethostname", name, lambda: syscalls.sethostname(name))

    def setdomainname(self, name: str) -> None:
        _call("setdomainname", name, lambda: syscalls.setdomainname(name))
