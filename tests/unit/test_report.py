"""How a burst of reaped orphans is logged: one event that names every one."""

from __future__ import annotations

from typing import Any

from pyinit.core import Exited
from pyinit.report import log_orphans, log_zombie, pid_ranges


class Recorder:
    """A logger that keeps every call as (level, event, fields)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Any:
        return lambda event, **fields: self.calls.append((level, event, fields))


def test_pid_ranges_sorted_inclusive_and_merged() -> None:
    assert pid_ranges([9, 7, 3, 4, 5, 100, 6, 8]) == [[3, 9], [100, 100]]
    assert pid_ranges([42]) == [[42, 42]]
    assert pid_ranges([10, 12, 14, 11]) == [[10, 12], [14, 14]]
    assert pid_ranges([]) == []


def test_a_burst_is_one_info_event_with_count_pids_codes_and_span() -> None:
    log = Recorder()
    killed = 9  # a wait status: killed by SIGKILL
    exited_3 = 3 << 8  # a wait status: exit(3)
    orphans = [Exited(12, 0, False, 5_000_000), Exited(10, killed, False, 1_000_000),
               Exited(11, 0, False, 2_000_000), Exited(30, exited_3, False, 3_500_000),
               Exited(31, 0, False, 4_000_000)]
    log_orphans(log, orphans)
    assert log.calls == [("info", "orphans.reaped", {
        "count": 5, "pids": [[10, 12], [30, 31]], "codes": {"0": 3, "3": 1, "137": 1},
        "span_ms": 4.0})]


def test_zombie_reaped_names_one_process() -> None:
    log = Recorder()
    log_zombie(log, Exited(77, 15, False, 0))
    assert log.calls == [("debug", "zombie.reaped", {
        "pid": 77, "workload": False, "code": 143, "signal": "SIGTERM", "core_dumped": False})]
