"""Reading the process tree from a procfs.

Used by the shutdown to find who is left. Only trusted when the procfs shows
our own PID namespace: as PID 1 of a new namespace with the host's ``/proc``
still mounted, the listing would be the host's processes, and signalling
them would be a disaster.

Where it is read (``Proc``): ``pyinit -- CMD`` reads ``/proc`` by path (the
host's, not behind a hostile boundary). The container's PID 1 never does:
after the pivot ``/proc`` is a path the container controls (the image's own
directory when the config mounts no procfs, or whatever a workload with
CAP_SYS_ADMIN mounts over it). It reads through a directory fd opened on the
procfs it mounted itself, before the workload existed, with ``openat2``
refusing symlinks and mount crossings: a FIFO or a fake listing can never
be reached through it. Without such an fd it has no listing at all (None).
"""

from __future__ import annotations

import os

from pyinit.linux import syscalls

# A path (pyinit -- CMD), a directory fd on a procfs (the container's PID 1),
# or None: the container's PID 1 without a procfs of its own.
Proc = str | int | None

_STAT_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_STAT_RESOLVE = (syscalls.RESOLVE_BENEATH | syscalls.RESOLVE_NO_XDEV
                 | syscalls.RESOLVE_NO_SYMLINKS | syscalls.RESOLVE_NO_MAGICLINKS)


class ProcInfo:
    __slots__ = ("comm", "pid", "ppid", "state", "threads")

    def __init__(self, pid: int, ppid: int, state: str, comm: str, threads: int = 1) -> None:
        self.pid = pid
        self.ppid = ppid
        self.state = state
        self.comm = comm
        self.threads = threads

    @property
    def alive(self) -> bool:
        """Not a zombie. A thread group whose leader exited (``pthread_exit`` in main)
        reads ``Z`` while its other threads run on: still alive, and still to be killed
        (issue 9 review 4). Its ``num_threads`` counts them; a real zombie's is 1."""
        return self.state != "Z" or self.threads > 1


def proc_is_ours(proc: Proc = "/proc") -> bool:
    """True when ``proc`` is a procfs of our own PID namespace.

    For a directory fd, also that it is a procfs at all (a path is checked by
    ``/proc/self`` alone: only ``pyinit -- CMD`` reads one, on the host).
    """
    if proc is None:
        return False
    try:
        if isinstance(proc, int):
            if syscalls.fstatfs_type(proc) != syscalls.PROC_SUPER_MAGIC:
                return False
            return os.readlink("self", dir_fd=proc) == str(os.getpid())
        return os.readlink(f"{proc}/self") == str(os.getpid())
    except OSError:
        return False


def parse_stat(pid: int, text: str) -> ProcInfo:
    """Parse ``/proc/PID/stat``. The command name may hold spaces and parentheses."""
    head, _, tail = text.rpartition(")")
    comm = head.partition("(")[2]
    fields = tail.split()
    threads = int(fields[17]) if len(fields) > 17 else 1  # num_threads
    return ProcInfo(pid, int(fields[1]), fields[0], comm, threads)


def _read_stat(proc: str | int, name: str) -> str:
    return _read(proc, f"{name}/stat")


def _read(proc: str | int, name: str) -> str:
    if isinstance(proc, str):
        with open(f"{proc}/{name}", encoding="utf-8", errors="replace") as fh:
            return fh.read()
    fd = syscalls.openat2(proc, name, _STAT_FLAGS, _STAT_RESOLVE)
    try:
        chunks = []
        while chunk := os.read(fd, 4096):
            chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", errors="replace")
    finally:
        os.close(fd)


def snapshot(proc: Proc = "/proc") -> dict[int, ProcInfo]:
    """Every process visible in ``proc``; processes that vanish meanwhile are skipped."""
    table: dict[int, ProcInfo] = {}
    if proc is None:
        return table
    try:
        names = os.listdir(proc)
    except OSError:
        return table
    for name in names:
        if not name.isdigit():
            continue
        try:
            text = _read_stat(proc, name)
        except OSError:
            continue
        try:
            info = parse_stat(int(name), text)
        except (IndexError, ValueError):
            continue
        table[info.pid] = info
    return table


def children(proc: Proc, pid: int) -> list[int]:
    """``pid``'s children, from each of its threads' ``children`` file.

    For the supervisor's own PID: a procfs mounted ``hidepid`` hides from it
    every process holding more than it does, but never its own directory, and
    each child is there (a subreaper's adopted orphans included) whatever its
    own directory shows (issue 9 review 5). Empty when unreadable.
    """
    if proc is None:
        return []
    found: list[int] = []
    try:
        if isinstance(proc, str):
            tasks = os.listdir(f"{proc}/{pid}/task")
        else:
            fd = syscalls.openat2(proc, f"{pid}/task", _DIR_FLAGS, _STAT_RESOLVE)
            try:
                tasks = os.listdir(fd)
            finally:
                os.close(fd)
        for tid in tasks:
            if tid.isdigit():
                found += [int(c) for c in _read(proc, f"{pid}/task/{tid}/children").split()]
    except (OSError, ValueError):
        pass
    return found


def descendants(root: int, table: dict[int, ProcInfo]) -> list[ProcInfo]:
    """All processes below ``root`` in ``table``, parents before children."""
    children: dict[int, list[ProcInfo]] = {}
    for info in table.values():
        children.setdefault(info.ppid, []).append(info)
    found: list[ProcInfo] = []
    todo = [root]
    seen = {root}
    while todo:
        pid = todo.pop()
        for child in children.get(pid, ()):
            if child.pid not in seen:
                seen.add(child.pid)
                found.append(child)
                todo.append(child.pid)
    return found
