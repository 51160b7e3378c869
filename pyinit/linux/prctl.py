"""prctl(2) for the init mode's start, without ``import ctypes``.

``pyinit -- CMD`` becomes the child subreaper before it forks the workload,
so that no instruction of the workload runs before pyinit adopts its
orphans; the call sits on the path to the workload's first instruction.
``import ctypes`` costs about 3 ms there (``ctypes``'s own module builds its
whole type zoo, and pulls in ``struct`` and ``types``); its C half,
``_ctypes``, costs about 0.6 ms and is all a call to ``prctl`` needs: two
simple C types and one foreign function. This is what
``ctypes.CDLL(None, use_errno=True).prctl`` builds, spelled out.

:mod:`pyinit.linux.syscalls` keeps its own ctypes wrappers of the same calls
for the code that has ctypes loaded anyway (``pyinit run``'s processes), and
this module stays out of their import graph: PID 1's code is read into
memory before ``pivot_root`` (pyinit/closure.py), and nothing may be
imported from files after it. tests/unit/test_prctl.py checks that the two
agree.
"""

from __future__ import annotations

import _ctypes
import posix  # os costs 1.5 ms at this point: pyinit/spawn.py

PR_SET_PDEATHSIG = 1
PR_GET_PDEATHSIG = 2
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37


class _Int(_ctypes._SimpleCData):  # type: ignore[type-arg]  # ctypes.c_int
    _type_ = "i"


class _ULong(_ctypes._SimpleCData):  # type: ignore[type-arg]  # ctypes.c_ulong
    _type_ = "L"


class _PrctlFunc(_ctypes.CFuncPtr):
    """int prctl(int option, unsigned long, unsigned long, unsigned long, unsigned long)."""

    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
    _restype_ = _Int
    _argtypes_ = (_Int, _ULong, _ULong, _ULong, _ULong)


# dlopen(NULL): the program and the libraries it links, glibc among them.
_LIBC = _ctypes.dlopen(None)  # type: ignore[arg-type]  # typeshed omits None
_prctl_func = _PrctlFunc(_ctypes.dlsym(_LIBC, "prctl"))


def _check(result: int, what: str) -> None:
    """Raise OSError with the errno and the call's name, as ``os`` functions do."""
    if result == -1:
        err = _ctypes.get_errno()
        raise OSError(err, f"{what}: {posix.strerror(err)}")


def _prctl_get(option: int, what: str) -> int:
    """A prctl that stores an int at the address in arg2."""
    value = _Int(0)
    _check(_prctl_func(option, _ctypes.addressof(value), 0, 0, 0), what)
    got: int = value.value
    return got


def set_child_subreaper(enable: bool = True) -> None:
    """Become (or stop being) the reaper of orphaned descendants."""
    _check(_prctl_func(PR_SET_CHILD_SUBREAPER, int(enable), 0, 0, 0),
           "prctl(PR_SET_CHILD_SUBREAPER)")


def is_child_subreaper() -> bool:
    return bool(_prctl_get(PR_GET_CHILD_SUBREAPER, "prctl(PR_GET_CHILD_SUBREAPER)"))


def set_pdeathsig(signum: int) -> None:
    """Ask for ``signum`` when the thread that forked us exits."""
    _check(_prctl_func(PR_SET_PDEATHSIG, signum, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")


def get_pdeathsig() -> int:
    return _prctl_get(PR_GET_PDEATHSIG, "prctl(PR_GET_PDEATHSIG)")
