"""The calling process's own attributes: oom_score_adj, resource limits,
dumpability, no_new_privs, and its descriptor table.

Every function here acts on the caller only. Those that go through ``/proc``
must run while ``/proc`` is still the host's (before any mount namespace or
pivot): after the pivot the container controls what ``/proc`` means.
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource

from pyinit.linux import syscalls

PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3


OOM_SCORE_ADJ = "/proc/thread-self/oom_score_adj"


class NotProcfs(OSError):
    """A file pyinit means to write on procfs is on another filesystem."""


def write_oom_score_adj(value: int) -> None:
    """Set the caller's oom_score_adj (inherited by every child it forks).

    O_NOFOLLOW on the last component, and ``thread-self`` rather than
    ``self``: the caller is single-threaded here, and the file it means is
    its own. The file is written only if its fd is on a procfs (fstatfs): a
    regular file, or anything mounted over it, is refused unwritten.
    """
    fd = os.open(OOM_SCORE_ADJ, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        if syscalls.fstatfs_type(fd) != syscalls.PROC_SUPER_MAGIC:
            raise NotProcfs(errno.EXDEV, f"{OOM_SCORE_ADJ} is not on a procfs")
        os.write(fd, str(value).encode())
    finally:
        os.close(fd)


def get_rlimit(res: int) -> tuple[int, int]:
    return resource.getrlimit(res)


def set_rlimit(res: int, soft: int, hard: int) -> None:
    resource.setrlimit(res, (soft, hard))


def set_dumpable(on: bool) -> None:
    syscalls.prctl(PR_SET_DUMPABLE, int(on))


def is_dumpable() -> bool:
    return bool(syscalls.prctl(PR_GET_DUMPABLE))


def set_no_new_privs() -> None:
    syscalls.prctl(syscalls.PR_SET_NO_NEW_PRIVS, 1)


def environ_block() -> tuple[int, int]:
    """Where the caller's original environment strings are: ``env_start`` and
    ``env_end`` (fields 50 and 51 of ``/proc/self/stat``), what the kernel shows
    as ``/proc/<pid>/environ``. Python's ``os.environ`` is a copy made at start.
    """
    with open("/proc/thread-self/stat", "rb") as fh:
        text = fh.read()
    fields = text[text.rindex(b")") + 2:].split()  # fields[0] is field 3, the state
    return int(fields[47]), int(fields[48])


def wipe_environ(block: tuple[int, int]) -> None:
    """Zero the caller's original environment block in place, so that
    ``/proc/<pid>/environ`` reads as NULs. ``os.environ`` (a copy) is untouched;
    glibc's ``environ`` then points at empty strings, so a C ``getenv`` finds nothing.
    """
    start, end = block
    if end > start:
        ctypes.memset(start, 0, end - start)


def close_from(first: int, keep: frozenset[int] = frozenset()) -> None:
    """Close every descriptor >= ``first`` except those in ``keep``.

    ``os.closerange`` uses close_range(2) where the kernel has it.
    """
    start = first
    for fd in sorted(k for k in keep if k >= first):
        if fd > start:
            os.closerange(start, fd)
        start = fd + 1
    os.closerange(start, 2**31 - 1)
