"""Paths inside the container's root, resolved once, with file descriptors.

Every lookup goes through ``openat2(root_fd, path, RESOLVE_IN_ROOT |
RESOLVE_NO_MAGICLINKS)``: an absolute symlink or ``..`` in the image resolves
inside the root, never on the host, and ``/proc/self/...`` magic links are
refused. What is found is then used by its fd only (mounts are attached with
``move_mount`` onto it, files created relative to a parent fd), so no string
path is ever built from the rootfs path and resolved twice (the root of a
dozen runc CVEs).
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat

from pyinit.errors import SetupError
from pyinit.linux import syscalls
from pyinit.linux.kernel import Kernel

RESOLVE = syscalls.RESOLVE_IN_ROOT | syscalls.RESOLVE_NO_MAGICLINKS
O_PATH = os.O_PATH | os.O_CLOEXEC


def components(path: str) -> list[str]:
    return [part for part in path.split("/") if part and part != "."]


def is_errno(exc: SetupError, *errs: int) -> bool:
    return exc.errno in errs


class Root:
    """The container's root filesystem, held open as an O_PATH directory fd."""

    def __init__(self, kernel: Kernel, fd: int) -> None:
        self.k = kernel
        self.fd = fd

    def open(self, path: str, flags: int = O_PATH, *, nofollow: bool = False) -> int:
        """Open ``path`` inside the root (an O_PATH fd unless ``flags`` says otherwise)."""
        if nofollow:
            flags |= os.O_NOFOLLOW
        return self.k.openat2(self.fd, path.lstrip("/") or ".", flags, RESOLVE)

    def open_if_exists(self, path: str, flags: int = O_PATH, *,
                       nofollow: bool = False) -> int | None:
        """As :meth:`open`, or None when ``path`` does not exist in the root."""
        try:
            return self.open(path, flags, nofollow=nofollow)
        except SetupError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise

    def lstat(self, path: str) -> os.stat_result | None:
        """The in-root ``path`` itself (a symlink is not followed); None if missing."""
        fd = self.open_if_exists(path, nofollow=True)
        if fd is None:
            return None
        try:
            return self.k.fstat(fd)
        finally:
            self.k.close(fd)

    def mkdir_all(self, path: str, mode: int = 0o755, _links: int = 0) -> int:
        """Create ``path`` and its parents inside the root; an O_PATH fd of it.

        Each component is resolved from the root fd, so a symlink in the
        image is followed inside the root; one whose target does not exist
        yet (``/var/run -> /run``) gets its target created, inside the root.
        A component that exists and is not a directory gives ENOTDIR.
        """
        if _links > 40:
            raise SetupError("", f"too many levels of symbolic links in {path}",
                             err=errno.ELOOP, op="mkdir", path=path)
        parts = components(path)
        fd = self.k.dup(self.fd)
        for depth in range(len(parts)):
            prefix = "/".join(parts[: depth + 1])
            try:
                try:
                    new = self.open(prefix, O_PATH | os.O_DIRECTORY)
                except SetupError as exc:
                    if exc.errno != errno.ENOENT:
                        raise
                    self._make(fd, parts, depth, mode, _links)
                    new = self.open(prefix, O_PATH | os.O_DIRECTORY)
            except BaseException:
                self.k.close(fd)
                raise
            self.k.close(fd)
            fd = new
        return fd

    def _make(self, parent: int, parts: list[str], depth: int, mode: int, links: int) -> None:
        try:
            self.k.mkdirat(parent, parts[depth], mode)
        except SetupError as exc:
            if exc.errno != errno.EEXIST:
                raise
            # Created meanwhile, or a symlink whose target is missing.
            try:
                link = self.k.readlinkat(parent, parts[depth])
            except SetupError:
                return
            base = "/" + "/".join(parts[:depth])
            target = posixpath.normpath(posixpath.join(base, link))
            self.k.close(self.mkdir_all(target, mode, links + 1))

    def create_file(self, path: str, mode: int = 0o644) -> int:
        """Create an empty file (parents included) unless something is there; an O_PATH fd."""
        parts = components(path)
        if not parts:
            raise SetupError("", "the root itself is a directory", err=errno.EISDIR,
                             op="create", path=path)
        parent = self.mkdir_all("/".join(parts[:-1]))
        try:
            try:
                self.k.close(self.k.openat(parent, parts[-1], os.O_CREAT | os.O_EXCL
                                           | os.O_NOFOLLOW | os.O_WRONLY, mode))
            except SetupError as exc:
                if exc.errno != errno.EEXIST:
                    raise
                # Something is there (a symlink is followed, inside the root).
                return self.open(path)
            # Opened from the parent fd: the file just made, not a second lookup.
            return self.k.openat(parent, parts[-1], O_PATH | os.O_NOFOLLOW)
        finally:
            self.k.close(parent)

    def parent(self, path: str) -> tuple[int, str]:
        """An O_PATH fd of ``path``'s (in-root, created) parent directory, and the last name."""
        parts = components(path)
        if not parts:
            raise SetupError("", "the root has no parent", err=errno.EINVAL, op="open",
                             path=path)
        return self.mkdir_all("/".join(parts[:-1])), parts[-1]

    def symlink(self, target: str, path: str) -> None:
        """Create the symlink ``path`` -> ``target`` in its (in-root) parent directory."""
        parent, name = self.parent(path)
        try:
            self.k.symlinkat(target, parent, name)
        finally:
            self.k.close(parent)

    def unlink(self, path: str) -> None:
        parts = components(path)
        parent = self.open("/".join(parts[:-1]) or ".", O_PATH | os.O_DIRECTORY)
        try:
            self.k.unlinkat(parent, parts[-1])
        finally:
            self.k.close(parent)


def is_char_device(st: os.stat_result, major: int, minor: int) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(major, minor)
