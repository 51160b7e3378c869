"""Reading the process tree from /proc.

Used by the shutdown to find who is left. Only trusted when ``/proc`` shows
our own PID namespace: as PID 1 of a new namespace with the host's ``/proc``
still mounted, the listing would be the host's processes, and signalling
them would be a disaster.
"""

from __future__ import annotations

import os


class ProcInfo:
    __slots__ = ("comm", "pid", "ppid", "state")

    def __init__(self, pid: int, ppid: int, state: str, comm: str) -> None:
        self.pid = pid
        self.ppid = ppid
        self.state = state
        self.comm = comm


def proc_is_ours(proc: str = "/proc") -> bool:
    """True when ``proc`` is a procfs of our own PID namespace."""
    try:
        return os.readlink(f"{proc}/self") == str(os.getpid())
    except OSError:
        return False


def parse_stat(pid: int, text: str) -> ProcInfo:
    """Parse ``/proc/PID/stat``. The command name may hold spaces and parentheses."""
    head, _, tail = text.rpartition(")")
    comm = head.partition("(")[2]
    fields = tail.split()
    return ProcInfo(pid, int(fields[1]), fields[0], comm)


def snapshot(proc: str = "/proc") -> dict[int, ProcInfo]:
    """Every process visible in ``proc``; processes that vanish meanwhile are skipped."""
    table: dict[int, ProcInfo] = {}
    try:
        names = os.listdir(proc)
    except OSError:
        return table
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"{proc}/{name}/stat", encoding="utf-8", errors="replace") as fh:
                text = fh.read()
        except OSError:
            continue
        try:
            info = parse_stat(int(name), text)
        except (IndexError, ValueError):
            continue
        table[info.pid] = info
    return table


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
