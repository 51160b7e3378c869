"""Pseudo-terminals: allocate one from a devpts instance, make it a controlling terminal."""

from __future__ import annotations

import fcntl
import os
import stat
import struct
import termios

from pyinit.linux import syscalls

DEVPTS_SUPER_MAGIC = 0x1CD1
TIOCSPTLCK = 0x40045431  # _IOW('T', 0x31, int)
TIOCGPTPEER = 0x5441  # _IO('T', 0x41)
PTMX_RDEV = os.makedev(5, 2)


def open_ptmx(path: str) -> int:
    """The master of a new pty from the devpts instance whose ``ptmx`` is ``path``.

    No symlink is followed, and the result must be the ptmx node (5:2) of a
    devpts filesystem: a file the image put there is refused.
    """
    fd = syscalls.openat2(syscalls.AT_FDCWD, path, os.O_RDWR | os.O_NOCTTY,
                          syscalls.RESOLVE_NO_SYMLINKS | syscalls.RESOLVE_NO_MAGICLINKS)
    try:
        st = os.fstat(fd)
        if syscalls.fstatfs_type(fd) != DEVPTS_SUPER_MAGIC or not stat.S_ISCHR(st.st_mode) \
                or st.st_rdev != PTMX_RDEV:
            raise OSError(0, f"{path} is not the ptmx of a devpts filesystem")
        fcntl.ioctl(fd, TIOCSPTLCK, struct.pack("i", 0))  # unlock the new pty
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_peer(master: int) -> int:
    """The pty's other end, opened through the master: no path lookup at all."""
    flags = os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC
    peer: int = fcntl.ioctl(master, TIOCGPTPEER, flags)
    return peer


def make_controlling(fd: int) -> None:
    """Make terminal ``fd`` the controlling terminal of this session leader."""
    fcntl.ioctl(fd, termios.TIOCSCTTY, 0)


def window_size(fd: int) -> bytes:
    return fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)


def set_window_size(fd: int, size: bytes) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, size)
