"""Parsing /proc/PID/stat and walking the tree."""

from __future__ import annotations

import os
from pathlib import Path

from pyinit import proc


def test_parse_stat_with_awkward_names() -> None:
    info = proc.parse_stat(7, "7 (a (b) c) S 3 7 7 0 -1 ...")
    assert (info.pid, info.ppid, info.state, info.comm) == (7, 3, "S", "a (b) c")
    assert (info.threads, info.alive) == (1, True)


# /proc/N/stat as this kernel writes it, from field 3 on: state, ppid, ..., num_threads (20).
def _stat(state: str, threads: int) -> str:
    return f"9 (x) {state} 1 9 9 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 {threads} 0 9 " + "0 " * 32


def test_a_zombie_leader_with_live_threads_is_alive() -> None:
    assert [(i.state, i.threads, i.alive) for i in (
        proc.parse_stat(9, _stat("Z", 1)), proc.parse_stat(9, _stat("Z", 2)),
        proc.parse_stat(9, _stat("S", 3)))] == [("Z", 1, False), ("Z", 2, True), ("S", 3, True)]


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


def test_snapshot_through_a_directory_fd() -> None:
    fd = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        assert proc.proc_is_ours(fd)
        table = proc.snapshot(fd)
    finally:
        os.close(fd)
    assert (table[os.getpid()].ppid, table[os.getpid()].state) == (os.getppid(), "R")


def test_a_directory_that_fakes_proc_is_not_trusted(tmp_path: Path) -> None:
    # What an image can ship: self -> our PID, and a FIFO where a stat file would be.
    (tmp_path / "self").symlink_to(str(os.getpid()))
    (tmp_path / "2").mkdir()
    os.mkfifo(tmp_path / "2" / "stat")
    (tmp_path / "3").symlink_to("/proc/self")
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        assert proc.proc_is_ours(str(tmp_path))  # a path passes: only the host's is read so
        assert not proc.proc_is_ours(fd)  # an fd must be a procfs
        # Read anyway, the FIFO does not block (O_NONBLOCK) and the symlink is not followed.
        assert proc.snapshot(fd) == {}
    finally:
        os.close(fd)


def test_no_procfs_lists_nobody() -> None:
    assert not proc.proc_is_ours(None)
    assert proc.snapshot(None) == {}


def test_children_lists_our_own_children_by_path_and_by_fd() -> None:
    import subprocess

    child = subprocess.Popen(["sleep", "60"])
    fd = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert child.pid in proc.children("/proc", os.getpid())
        assert child.pid in proc.children(fd, os.getpid())
        assert proc.children(None, os.getpid()) == []
        assert proc.children(fd, 2**22 + 7) == []  # no such process: nothing, no error
    finally:
        os.close(fd)
        child.kill()
        child.wait()
