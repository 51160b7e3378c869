"""Paths inside the container's root, resolved with file descriptors.

Every lookup goes through ``openat2(root_fd, path, RESOLVE_IN_ROOT |
RESOLVE_NO_MAGICLINKS)``: an absolute symlink or ``..`` in the image resolves
inside the root, never on the host, and ``/proc/self/...`` magic links are
refused. Mounts then target ``/proc/thread-self/fd/N`` of the resolved fd, so
no string path is ever built from the rootfs path and used twice (the root of
a dozen runc CVEs).
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat

from pyinit.linux import syscalls

RESOLVE = syscalls.RESOLVE_IN_ROOT | syscalls.RESOLVE_NO_MAGICLINKS
O_PATH = os.O_PATH | os.O_CLOEXEC


def fd_path(fd: int) -> str:
    """A path the kernel resolves to exactly the object behind ``fd``."""
    return f"/proc/thread-self/fd/{fd}"


def _components(path: str) -> list[str]:
    return [part for part in path.split("/") if part and part != "."]


class Root:
    """The container's root filesystem, held open as an O_PATH directory fd."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = os.open(path, O_PATH | os.O_DIRECTORY)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def open(self, path: str, flags: int = O_PATH, *, nofollow: bool = False) -> int:
        """Open ``path`` inside the root (an O_PATH fd unless ``flags`` says otherwise)."""
        if nofollow:
            flags |= os.O_NOFOLLOW
        return syscalls.openat2(self.fd, path.lstrip("/") or ".", flags, RESOLVE)

    def exists(self, path: str) -> bool:
        try:
            os.close(self.open(path, nofollow=True))
        except FileNotFoundError:
            return False
        return True

    def lstat(self, path: str) -> os.stat_result:
        fd = self.open(path, nofollow=True)
        try:
            return os.fstat(fd)
        finally:
            os.close(fd)

    def mkdir_all(self, path: str, mode: int = 0o755, _links: int = 0) -> int:
        """Create ``path`` and its parents inside the root; an O_PATH fd of it.

        Each component is resolved from the root fd, so a symlink in the
        image is followed inside the root; one whose target does not exist
        yet (``/var/run -> /run``) gets its target created, inside the root.
        A component that exists and is not a directory gives ENOTDIR.
        """
        if _links > 40:
            raise OSError(errno.ELOOP, f"too many levels of symbolic links in {path}")
        parts = _components(path)
        fd = os.dup(self.fd)
        for depth in range(len(parts)):
            prefix = "/".join(parts[: depth + 1])
            try:
                new = self.open(prefix, O_PATH | os.O_DIRECTORY)
            except FileNotFoundError:
                try:
                    os.mkdir(parts[depth], mode, dir_fd=fd)
                except FileExistsError:
                    # Created meanwhile, or a symlink whose target is missing.
                    try:
                        link = os.readlink(parts[depth], dir_fd=fd)
                    except OSError:
                        link = None
                    if link is not None:
                        base = "/" + "/".join(parts[:depth])
                        target = posixpath.normpath(posixpath.join(base, link))
                        os.close(self.mkdir_all(target, mode, _links + 1))
                new = self.open(prefix, O_PATH | os.O_DIRECTORY)
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)
            fd = new
        return fd

    def create_file(self, path: str, mode: int = 0o644) -> int:
        """Create an empty file (parents included) unless something is there; an O_PATH fd."""
        parts = _components(path)
        if not parts:
            raise IsADirectoryError(errno.EISDIR, "the root itself is a directory")
        parent = self.mkdir_all("/".join(parts[:-1]))
        try:
            try:
                fd = os.open(parts[-1], os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_WRONLY
                             | os.O_CLOEXEC, mode, dir_fd=parent)
                os.close(fd)
            except FileExistsError:
                pass
        finally:
            os.close(parent)
        return self.open(path)

    def set_attr_recursive(self, path: str, attr_set: int, attr_clr: int = 0) -> None:
        """mount_setattr(AT_RECURSIVE) on the mount at ``path`` and everything below it."""
        fd = self.open(path)
        try:
            syscalls.mount_setattr(fd, "", syscalls.AT_EMPTY_PATH | syscalls.AT_RECURSIVE,
                                   attr_set, attr_clr)
        finally:
            os.close(fd)

    def symlink(self, target: str, path: str) -> None:
        """Create the symlink ``path`` -> ``target`` in its (in-root) parent directory."""
        parts = _components(path)
        parent = self.mkdir_all("/".join(parts[:-1]))
        try:
            os.symlink(target, parts[-1], dir_fd=parent)
        finally:
            os.close(parent)

    def unlink(self, path: str) -> None:
        parts = _components(path)
        parent = self.open("/".join(parts[:-1]) or ".", O_PATH | os.O_DIRECTORY)
        try:
            os.unlink(parts[-1], dir_fd=parent)
        finally:
            os.close(parent)


def readlink(fd: int) -> str:
    """The content of the symlink behind an O_PATH|O_NOFOLLOW fd.

    Not ``readlink(fd_path(fd))``: that reads the magic link and gives the
    symlink's own path.
    """
    return os.readlink("", dir_fd=fd)


def is_char_device(fd: int, major: int, minor: int) -> bool:
    st = os.fstat(fd)
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(major, minor)


def is_dir(fd: int) -> bool:
    return stat.S_ISDIR(os.fstat(fd).st_mode)
