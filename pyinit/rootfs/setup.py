"""Carry out the setup plan: the only code that mounts, in a private mount namespace.

Every destination is resolved inside the root with openat2 and mounted
through ``/proc/thread-self/fd/N``; the fd is opened again after a mount to
act on the new mount rather than on what it covers. Each step logs
``<kind>.started`` and ``<kind>.done`` (debug) or ``<kind>.failed`` (error,
with the full context) and raises :class:`SetupError` on failure.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from typing import Any

import trio

from pyinit import diagnose, hooks
from pyinit.errors import SetupError
from pyinit.hooks import Command
from pyinit.linux import flags, mountinfo, syscalls
from pyinit.linux.paths import O_PATH, Root, fd_path, is_char_device, is_dir, readlink
from pyinit.oci.config import Device, Mount
from pyinit.oci.refusals import mounted_nodev
from pyinit.rootfs import cgroups, copyup
from pyinit.rootfs.plan import Step

# runc's allowlist for binds under /proc (what lxcfs provides).
PROC_ALLOWLIST = {
    "/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps",
    "/proc/uptime", "/proc/loadavg", "/proc/slabinfo", "/proc/sys/kernel/ns_last_pid",
    "/proc/sys/fs/binfmt_misc", "/proc/sys/crypto/fips_enabled",
}
EBUSY_TRIES = 5
EBUSY_DELAY = 0.1


def _normal(path: str) -> str:
    return "/" + "/".join(p for p in path.split("/") if p and p != ".")


class Executor:
    def __init__(self, root_path: str, log: Any, container_id: str = "pyinit",
                 bundle: str = "", cgroup_ns: bool = False, user_ns: bool = False,
                 sysfs_fallback: bool = False) -> None:
        self.root_path = root_path
        self.sysfs_fallback = sysfs_fallback
        self.cgroup_ns = cgroup_ns
        self.user_ns = user_ns
        self.root: Root | None = None
        self.log = log
        self.container_id = container_id
        self.bundle = bundle
        # Hooks get the container's PID as the runtime sees it: before the
        # pivot, /proc is still the host's, so /proc/self says exactly that.
        try:
            self.host_pid = int(os.readlink("/proc/self"))
        except (OSError, ValueError):
            self.host_pid = os.getpid()
        self.host_devnull = os.stat("/dev/null").st_rdev
        self.has_kcore = os.path.exists("/proc/kcore")

    @property
    def r(self) -> Root:
        assert self.root is not None
        return self.root

    async def run(self, steps: list[Step]) -> None:
        started = time.monotonic_ns()
        try:
            for step in steps:
                await self.run_step(step)
        finally:
            if self.root is not None:
                self.r.close()
        self.log.info("rootfs.ready", steps=len(steps),
                      duration_ms=round((time.monotonic_ns() - started) / 1e6, 3))

    async def run_step(self, step: Step) -> None:
        fields = self._fields(step)
        self.log.debug(f"{step.kind}.started", step=step.summary, **fields)
        t0 = time.monotonic_ns()
        try:
            extra = await getattr(self, f"do_{step.kind}")(**step.params)
        except SetupError as exc:
            if exc.hint is None and exc.errno:
                exc.hint = diagnose.explain(step.kind, exc.errno, self._context(fields))
            self.log.error(f"{step.kind}.failed", step=step.summary,
                           **{**fields, **exc.log_fields()})
            raise
        except OSError as exc:
            hint = diagnose.explain(step.kind, exc.errno or 0, self._context(fields))
            error = SetupError.from_os(step.kind, step.summary, exc, hint=hint, **fields)
            self.log.error(f"{step.kind}.failed", step=step.summary, **error.log_fields())
            raise error from None
        self.log.debug(f"{step.kind}.done", step=step.summary,
                       duration_ms=round((time.monotonic_ns() - t0) / 1e6, 3),
                       **{**fields, **(extra or {})})

    def _context(self, fields: dict[str, Any]) -> dict[str, Any]:
        # Before the pivot, destinations are under the rootfs on the host.
        return {**fields, "root_path": self.root_path if self.root_path != "/" else ""}

    @staticmethod
    def _fields(step: Step) -> dict[str, Any]:
        m = step.params.get("mount")
        if isinstance(m, Mount):
            return {"where": m.where, "destination": m.destination, "source": m.source,
                    "fstype": m.type, "flags": flags.names(m.parsed.flags),
                    "data": ",".join(m.parsed.data)}
        if "path" in step.params:
            return {"destination": step.params["path"]}
        return {}

    # ----- commands and hooks ----------------------------------------------
    async def do_command(self, command: Command, mount: Mount, phase: str) -> None:
        await hooks.run_checked(command, self.log, "command", destination=mount.destination,
                                phase=phase)

    async def do_hook(self, hook: Command, kind: str) -> None:
        state = hooks.state_json(self.container_id, "created", self.host_pid, self.bundle)
        await hooks.run_checked(hook, self.log, "hook", stdin=state, kind=kind)

    # ----- before the mounts ----------------------------------------------
    async def do_propagation(self, flags: int) -> None:
        syscalls.mount(None, "/", None, flags)

    async def do_rootfs(self, path: str, tmpfs: bool = False) -> None:
        # The bind (or the tmpfs) makes the root a mount point, as pivot_root
        # needs, in this namespace only; the fd is taken after it.
        try:
            if tmpfs:
                syscalls.mount("tmpfs", path, "tmpfs", flags.MS_NOSUID | flags.MS_NODEV,
                               "mode=0755")
            else:
                syscalls.mount(path, path, None, flags.MS_BIND | flags.MS_REC)
            self.root = Root(path)
            if not tmpfs:  # no device node of the image is usable (refusals.py)
                self.r.set_attr_recursive("/", flags.MOUNT_ATTR_NODEV)
        except PermissionError as exc:
            hint = diagnose.explain("rootfs", exc.errno or 0, {"source": path})
            if hint is None and self.user_ns:
                hint = ("in a user namespace the container's root is a host user: it must be "
                        "able to reach the rootfs (check the parent directories' permissions)")
            raise SetupError.from_os("rootfs", f"mount the rootfs at {path}", exc,
                                     hint=hint, destination=path) from None

    # ----- mounts ---------------------------------------------------------
    def _destination(self, m: Mount) -> int:
        dest = _normal(m.destination)
        kind = m.type
        if dest == "/proc" and (m.parsed.is_bind or kind != "proc"):
            raise SetupError("mount", "only a fresh proc may be mounted on /proc",
                             where=m.where, destination=m.destination,
                             hint="use type proc, or drop this mount")
        if dest.startswith("/proc/") and dest not in PROC_ALLOWLIST:
            raise SetupError("mount", "mounts under /proc are refused (only runc's lxcfs "
                             "allowlist is accepted)", where=m.where, destination=m.destination)
        if kind in ("proc", "sysfs") and not m.parsed.is_bind:
            try:
                st = self.r.lstat(dest)
            except FileNotFoundError:
                return self.r.mkdir_all(dest)
            if not stat.S_ISDIR(st.st_mode):
                what = "file"
                if stat.S_ISLNK(st.st_mode):
                    link = self.r.open(dest, nofollow=True)
                    try:
                        what = f"symlink that points to {readlink(link)}"
                    finally:
                        os.close(link)
                raise SetupError(
                    "mount", f"{kind} must be mounted on an ordinary directory, and {dest} "
                    f"is a {what} in the image",
                    where=m.where, destination=m.destination,
                    hint="a symlinked /proc or /sys could send the mount outside the "
                    "container (CVE-2019-19921); fix the image")
            return self.r.open(dest, O_PATH | os.O_DIRECTORY)
        if m.parsed.is_bind and not os.path.isdir(m.source):
            return self.r.create_file(dest)
        return self.r.mkdir_all(dest)

    async def do_mount(self, mount: Mount) -> dict[str, Any]:
        m = mount
        opts = m.parsed
        if m.parsed.is_bind and not os.path.exists(m.source):
            raise SetupError("mount", f"the bind source {m.source} does not exist",
                             err=errno.ENOENT, where=m.where, destination=m.destination)
        existed = self.r.exists(m.destination)
        fd = self._destination(m)
        # Where the destination really is, on the host: inside the root.
        resolved = os.readlink(fd_path(fd))
        try:
            data = list(opts.data)
            if m.type == "tmpfs" and existed and not any(d.startswith("mode=") for d in data):
                # Keep the mode of the directory the tmpfs covers.
                data.insert(0, f"mode={stat.S_IMODE(os.fstat(fd).st_mode):o}")
            if m.type == "cgroup":
                self._mount_cgroup(m, fd)
                return {"resolved": resolved}
            base = opts.flags & ~(flags.MS_REMOUNT | flags.MS_PROPAGATION)
            if opts.is_bind:
                syscalls.mount(m.source, fd_path(fd), None,
                               base & (flags.MS_BIND | flags.MS_REC))
                extra = base & ~(flags.MS_BIND | flags.MS_REC)
                if extra or opts.cleared:
                    await self._remount(m.destination, extra, m.where, cleared=opts.cleared)
            elif opts.tmpcopyup:
                await self._tmpcopyup(m, fd, base, ",".join(data) or None)
            else:
                try:
                    syscalls.mount(m.source or m.type, fd_path(fd), m.type, base,
                                   ",".join(data) or None)
                except PermissionError:
                    if not (m.type == "sysfs" and self.sysfs_fallback and self.user_ns):
                        raise
                    self._sysfs_fallback(m, fd, base)
        finally:
            os.close(fd)
        if mounted_nodev(m) and not opts.cleared & flags.MS_NODEV:  # see oci/refusals.py
            self.r.set_attr_recursive(m.destination, flags.MOUNT_ATTR_NODEV)
        self._after_mount(m)
        return {"resolved": resolved}

    def _sysfs_fallback(self, m: Mount, fd: int, mflags: int) -> None:
        """sysfs refused in a user namespace without its own network one: bind /sys ro."""
        syscalls.mount("/sys", fd_path(fd), None, flags.MS_BIND | flags.MS_REC)
        self.r.set_attr_recursive(m.destination, flags.MOUNT_ATTR_LOCKED_DOWN)
        self.log.warning("mount.sysfs_fallback", where=m.where, destination=m.destination,
                         detail="sysfs is refused in this user namespace (it does not own the "
                         "network namespace); the host's /sys is bound read-only instead")

    async def _tmpcopyup(self, m: Mount, fd: int, mflags: int, data: str | None) -> None:
        # Opened before the mount, this fd keeps showing what the tmpfs covers.
        below = os.open(fd_path(fd), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            syscalls.mount("tmpfs", fd_path(fd), "tmpfs", mflags & ~flags.MS_RDONLY, data)
            above = self.r.open(m.destination, os.O_RDONLY | os.O_DIRECTORY)
            try:
                copied = copyup.copy_tree(below, above)
            finally:
                os.close(above)
        finally:
            os.close(below)
        self.log.debug("mount.tmpcopyup", where=m.where, destination=m.destination,
                       entries=copied)
        if mflags & flags.MS_RDONLY:
            await self._remount(m.destination, mflags & ~flags.MS_BIND, m.where)

    def _after_mount(self, m: Mount) -> None:
        if not m.parsed.propagation and not (m.parsed.rec_set or m.parsed.rec_clr):
            return
        fd = self.r.open(m.destination)  # the new mount, not what it covers
        try:
            for prop in m.parsed.propagation:
                syscalls.mount(None, fd_path(fd), None, prop)
            if m.parsed.rec_set or m.parsed.rec_clr:
                syscalls.mount_setattr(fd, "", syscalls.AT_EMPTY_PATH | syscalls.AT_RECURSIVE,
                                       m.parsed.rec_set, m.parsed.rec_clr)
        finally:
            os.close(fd)

    def _mount_cgroup(self, m: Mount, fd: int) -> None:
        cgroups.mount_cgroups(self.r, m.destination, m.parsed.flags, self.cgroup_ns, self.log)

    async def _remount(self, path: str, wanted: int, where: str | None = None,
                       cleared: int = 0) -> None:
        """Bind-remount with ``wanted`` flags, keeping the locked ones; retry on EBUSY.

        ``cleared`` are the flags the config explicitly turns off (rw, suid,
        dev, exec): if the kernel refuses because one of them is locked, say
        so rather than quietly keeping it.
        """
        for attempt in range(1, EBUSY_TRIES + 1):
            fd = self.r.open(path)
            try:
                locked = flags.locked_flags(os.statvfs(fd_path(fd)).f_flag) & ~flags.MS_RDONLY
                try:
                    syscalls.mount(None, fd_path(fd), None,
                                   flags.MS_REMOUNT | flags.MS_BIND | wanted)
                    return
                except PermissionError:
                    conflict = locked & cleared
                    if conflict and self.user_ns:
                        raise SetupError(
                            "remount", f"remount {path}: {os.strerror(errno.EPERM)}",
                            err=errno.EPERM, where=where, destination=path,
                            locked=flags.names(conflict),
                            hint=f"the source is mounted {flags.names(conflict)} outside this "
                            "user namespace, and such flags are locked here: the config's "
                            f"options clear {flags.names(conflict)}, which the kernel refuses; "
                            "drop those options (suid, dev, exec, ...) or remount the source "
                            "on the host") from None
                    # Locked flags (a mount inherited into a user namespace):
                    # keep nosuid, nodev, noexec and atime as they are.
                    syscalls.mount(None, fd_path(fd), None,
                                   flags.MS_REMOUNT | flags.MS_BIND | wanted | locked)
                    return
            except OSError as exc:
                if exc.errno != errno.EBUSY or attempt == EBUSY_TRIES:
                    raise SetupError.from_os(
                        "remount", f"remount {path} {flags.names(wanted)}", exc,
                        hint="something holds the mount busy (an open file or a process "
                        "with its cwd there)" if exc.errno == errno.EBUSY else None,
                        where=where, destination=path, attempts=attempt) from None
                self.log.warning("remount.busy", destination=path, attempt=attempt,
                                 retry_in_ms=int(EBUSY_DELAY * 1000))
            finally:
                os.close(fd)
            await trio.sleep(EBUSY_DELAY)

    # ----- /dev -----------------------------------------------------------
    async def do_device(self, device: Device) -> None:
        kinds = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}
        kind = kinds[device.type]
        rdev = os.makedev(device.major, device.minor) if device.type != "p" else 0
        parts = device.path.rstrip("/").rsplit("/", 1)
        parent = self.r.mkdir_all(parts[0] or "/")
        bound = False
        try:
            try:
                os.mknod(parts[1], kind | (device.file_mode & 0o7777), rdev, dir_fd=parent)
            except FileExistsError:
                pass  # checked below: the same device is fine, anything else is not
            except PermissionError:
                # A user namespace may not mknod: bind the host's node instead.
                bound = True
                self._bind_host_device(device, kind, rdev)
        finally:
            os.close(parent)
        fd = self.r.open(device.path, nofollow=True)
        try:
            st = os.fstat(fd)
            if stat.S_IFMT(st.st_mode) != kind or (kind != stat.S_IFIFO and st.st_rdev != rdev):
                raise SetupError("device", f"{device.path} exists and is not the device "
                                 f"{device.type} {device.major}:{device.minor}",
                                 destination=device.path)
            if not bound:  # a bound host node keeps its owner and mode
                os.chmod(fd_path(fd), device.file_mode & 0o7777)
                os.chown(fd_path(fd), device.uid, device.gid)
            if not bound and kind != stat.S_IFIFO and os.fstatvfs(fd).f_flag & os.ST_NODEV:
                # /dev of the image, on the nodev root: this node alone is usable.
                syscalls.mount(fd_path(fd), fd_path(fd), None, flags.MS_BIND)
                self.r.set_attr_recursive(device.path, 0, flags.MOUNT_ATTR_NODEV)
        finally:
            os.close(fd)

    def _bind_host_device(self, device: Device, kind: int, rdev: int) -> None:
        try:
            st = os.stat(device.path)
        except FileNotFoundError:
            raise SetupError("device", f"mknod is not allowed here and the host has no "
                             f"{device.path} to bind", destination=device.path) from None
        if stat.S_IFMT(st.st_mode) != kind or st.st_rdev != rdev:
            raise SetupError("device", f"mknod is not allowed here and the host's "
                             f"{device.path} is another device", destination=device.path)
        target = self.r.create_file(device.path, 0)
        try:
            syscalls.mount(device.path, fd_path(target), None, flags.MS_BIND)
        finally:
            os.close(target)
        self.log.debug("device.bound", destination=device.path,
                       detail="mknod is not allowed in a user namespace; the host's node "
                       "is bound instead")

    async def do_ptmx(self) -> None:
        try:
            self.r.unlink("/dev/ptmx")
        except FileNotFoundError:
            pass
        self.r.symlink("pts/ptmx", "/dev/ptmx")

    async def do_symlink(self, path: str, target: str, if_exists: bool = False) -> None:
        if if_exists and not self.has_kcore:
            return
        try:
            self.r.symlink(target, path)
        except FileExistsError:
            fd = self.r.open(path, nofollow=True)
            try:
                ok = stat.S_ISLNK(os.fstat(fd).st_mode) and readlink(fd) == target
            finally:
                os.close(fd)
            if not ok:
                raise SetupError("symlink", f"{path} exists and is not a link to {target}",
                                 destination=path) from None

    # ----- namespaced identity ---------------------------------------------
    async def do_hostname(self, name: str) -> None:
        syscalls.sethostname(name)

    async def do_domainname(self, name: str) -> None:
        syscalls.setdomainname(name)

    async def do_cwd(self, path: str) -> None:
        try:
            os.close(self.r.mkdir_all(path))
        except OSError as exc:
            raise SetupError.from_os("cwd", f"process.cwd {path} cannot be a directory inside "
                                     "the root", exc, where="process.cwd", destination=path,
                                     hint="it must be a real directory path; magic links "
                                     "such as /proc/self/fd/N are refused") from None

    # ----- switching root ---------------------------------------------------
    async def do_pivot(self) -> None:
        os.fchdir(self.r.fd)
        try:
            syscalls.pivot_root(".", ".")
        except OSError as exc:
            hint = diagnose.pivot_einval(self.root_path) if exc.errno == errno.EINVAL else None
            raise SetupError.from_os("pivot", f"pivot_root into {self.root_path}", exc,
                                     hint=hint, destination=self.root_path) from None
        # The old root is now stacked on top: make it a slave (not private:
        # host unmounts must still reach it) and detach it.
        syscalls.mount(None, ".", None, flags.MS_SLAVE | flags.MS_REC)
        syscalls.umount2(".", syscalls.MNT_DETACH)
        os.chdir("/")
        self.r.close()
        self.root = Root("/")

    async def do_nopivot(self, path: str) -> None:
        """MS_MOVE + chroot, for roots pivot_root cannot handle (e.g. an initramfs).

        The host's procfs and sysfs stay in this mount namespace, just out of
        sight: a process with CAP_SYS_ADMIN in a nested user namespace could
        then mount a fresh procfs, because the kernel finds a fully visible
        one. So every host proc and sysfs mount outside the new root is
        detached first, or covered by an empty read-only tmpfs (runc
        f5c345c30).
        """
        hidden = []
        inside = path.rstrip("/") + "/"
        for entry in sorted(mountinfo.read(), key=lambda e: -len(e.mount_point)):
            if entry.fstype not in ("proc", "sysfs"):
                continue
            if entry.mount_point == path or entry.mount_point.startswith(inside):
                continue
            try:
                syscalls.umount2(entry.mount_point, syscalls.MNT_DETACH)
            except OSError:
                syscalls.mount("tmpfs", entry.mount_point, "tmpfs", flags.MS_RDONLY,
                               "size=0,nr_inodes=1")
            hidden.append(entry.mount_point)
        self.log.debug("nopivot.hidden", mounts=hidden)
        os.fchdir(self.r.fd)
        syscalls.mount(".", "/", None, flags.MS_MOVE)
        os.chroot(".")
        os.chdir("/")
        self.r.close()
        self.root = Root("/")

    async def do_devnull(self) -> None:
        targets = [fd for fd in (0, 1, 2)
                   if stat.S_ISCHR(os.fstat(fd).st_mode)
                   and os.fstat(fd).st_rdev == self.host_devnull]
        if not targets:
            return
        try:
            null = self.r.open("/dev/null", os.O_RDWR, nofollow=True)
        except FileNotFoundError:
            # No /dev in there (pyinit sandbox without --dev): the open fds
            # stay as they are; they expose no path.
            self.log.debug("devnull.skipped", reason="the container has no /dev/null")
            return
        try:
            if not is_char_device(null, 1, 3):
                raise SetupError("devnull", "the container's /dev/null is not the char "
                                 "device 1:3", destination="/dev/null")
            for fd in targets:
                os.dup2(null, fd)
        finally:
            os.close(null)

    async def do_sysctl(self, key: str, value: str) -> None:
        path = "/proc/sys/" + key.replace(".", "/")
        fd = self.r.open(path, os.O_WRONLY | os.O_NOCTTY, nofollow=True)
        try:
            if syscalls.fstatfs_type(fd) != syscalls.PROC_SUPER_MAGIC:
                raise SetupError("sysctl", f"{path} is not on a procfs", destination=path,
                                 hint="something is mounted over /proc/sys; refusing to "
                                 "write there (CVE-2025-52881)")
            os.write(fd, value.encode())
        finally:
            os.close(fd)

    # ----- finishing --------------------------------------------------------
    async def do_readonly(self, path: str) -> None:
        if path == "/":
            await self._remount("/", flags.MS_RDONLY | flags.MS_NODEV, "root.readonly")
            return
        try:
            fd = self.r.open(path)
        except FileNotFoundError:
            return  # nothing to protect
        try:
            syscalls.mount(fd_path(fd), fd_path(fd), None, flags.MS_BIND | flags.MS_REC)
        finally:
            os.close(fd)
        await self._remount(path, flags.MS_RDONLY | flags.MS_NOSUID | flags.MS_NODEV
                            | flags.MS_NOEXEC)

    async def do_mask(self, path: str) -> None:
        try:
            fd = self.r.open(path)
        except FileNotFoundError:
            return
        try:
            if is_dir(fd):
                syscalls.mount("tmpfs", fd_path(fd), "tmpfs", flags.MS_RDONLY,
                               "size=0,nr_inodes=1")
                return
            null = self.r.open("/dev/null", nofollow=True)
            try:
                if not is_char_device(null, 1, 3):
                    raise SetupError("mask", "/dev/null is not the char device 1:3, so it "
                                     "cannot mask files", destination=path,
                                     hint="a /dev/null replaced by a symlink would expose "
                                     "what it points to (CVE-2025-31133)")
                syscalls.mount(fd_path(null), fd_path(fd), None, flags.MS_BIND)
            finally:
                os.close(null)
        finally:
            os.close(fd)

