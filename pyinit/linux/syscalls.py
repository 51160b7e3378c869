"""ctypes wrappers for the system calls Python 3.11 lacks.

Every raw call to the kernel that ``os`` cannot make goes through this module,
so a fake can stand in for it in unit tests and there is one place to read
when a call misbehaves. Each wrapper raises ``OSError`` with the errno and the
call's name, exactly as ``os`` functions do.

ctypes passes plain Python ints as C ``int``; every argument here is wrapped
in ``c_ulong`` or ``c_int`` explicitly so that 64-bit values survive.
"""

from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Iterable

_libc = ctypes.CDLL(None, use_errno=True)

PR_SET_PDEATHSIG = 1
PR_GET_PDEATHSIG = 2
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37


def _check(result: int, what: str) -> int:
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def _prctl(option: int, arg2: int | ctypes._CArgObject = 0) -> int:
    arg = arg2 if not isinstance(arg2, int) else ctypes.c_ulong(arg2)
    zero = ctypes.c_ulong(0)
    result: int = _libc.prctl(ctypes.c_int(option), arg, zero, zero, zero)
    return result


def set_child_subreaper(enable: bool = True) -> None:
    """Become (or stop being) the reaper of orphaned descendants."""
    _check(_prctl(PR_SET_CHILD_SUBREAPER, int(enable)), "prctl(PR_SET_CHILD_SUBREAPER)")


def is_child_subreaper() -> bool:
    value = ctypes.c_int(0)
    _check(_prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(value)), "prctl(PR_GET_CHILD_SUBREAPER)")
    return bool(value.value)


def set_pdeathsig(signum: int) -> None:
    """Ask for ``signum`` when the thread that forked us exits."""
    _check(_prctl(PR_SET_PDEATHSIG, signum), "prctl(PR_SET_PDEATHSIG)")


def get_pdeathsig() -> int:
    value = ctypes.c_int(0)
    _check(_prctl(PR_GET_PDEATHSIG, ctypes.byref(value)), "prctl(PR_GET_PDEATHSIG)")
    return value.value


# ----- signalfd -----------------------------------------------------------
SFD_NONBLOCK = os.O_NONBLOCK
SFD_CLOEXEC = os.O_CLOEXEC
SIGINFO_SIZE = 128  # sizeof(struct signalfd_siginfo)
_SIGINFO = struct.Struct("<IiiII")  # ssi_signo, ssi_errno, ssi_code, ssi_pid, ssi_uid
SI_USER = 0


class SigInfo:
    """One signal read from a signalfd: who sent what."""

    __slots__ = ("code", "pid", "signo", "uid")

    def __init__(self, signo: int, code: int, pid: int, uid: int) -> None:
        self.signo = signo
        self.code = code
        self.pid = pid
        self.uid = uid


def signalfd(signals: Iterable[int]) -> int:
    """A non-blocking, close-on-exec signalfd for ``signals`` (which must be blocked)."""
    mask = (ctypes.c_ulong * 16)()  # glibc's sigset_t: 1024 bits
    for sig in signals:
        mask[(sig - 1) // 64] |= 1 << ((sig - 1) % 64)
    fd: int = _libc.signalfd(ctypes.c_int(-1), ctypes.byref(mask),
                             ctypes.c_int(SFD_NONBLOCK | SFD_CLOEXEC))
    return _check(fd, "signalfd")


def read_signals(fd: int) -> list[SigInfo]:
    """Every signal pending on the signalfd; empty when none is."""
    try:
        data = os.read(fd, SIGINFO_SIZE * 64)
    except BlockingIOError:
        return []
    found = []
    for offset in range(0, len(data) - SIGINFO_SIZE + 1, SIGINFO_SIZE):
        signo, _errno, code, pid, uid = _SIGINFO.unpack_from(data, offset)
        found.append(SigInfo(signo, code, pid, uid))
    return found
