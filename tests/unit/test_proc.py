"""Parsing /proc/PID/stat and walking the tree."""

from __future__ import annotations

import os

from pyinit import proc


def test_parse_stat_with_awkward_names() -> None:
    info = proc.parse_stat(7, "7 (a (b) c) S 3 7 7 0 -1 ...")
    assert (info.pid, info.ppid, info.state, info.comm) == (7, 3, "S", "a (b) c")


def test_descendants_walks_the_whole_tree() -> None:
    table = {p.pid: p for p in [
        proc.ProcInfo(2, 1, "S", "a"), proc.ProcInfo(3, 2, "S", "b"),
        proc.ProcInfo(4, 3, "Z", "c"), proc.ProcInfo(5, 1, "S", "d"),
        proc.ProcInfo(6, 99, "S", "e"),
    ]}
    assert [p.pid for p in proc.descendants(2, table)] == [3, 4]
    assert sorted(p.pid for p in proc.descendants(1, table)) == [2, 3, 4, 5]


def test_live_snapshot_sees_us() -> None:
    assert proc.proc_is_ours()
    table = proc.snapshot()
    assert table[os.getpid()].ppid == os.getppid()
    assert not proc.proc_is_ours("/nonexistent")
