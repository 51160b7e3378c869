"""The tests' own reading of pyinit's log from a stderr it shares with the workload."""

from __future__ import annotations

from tests.conftest import events, log_line

FORWARDED = ('{"signal":"SIGQUIT","target":2,"target_kind":"workload","delivered":true,'
             '"sender_pid":0,"early":false,"event":"signal.forwarded","level":"info"}')


def test_an_event_behind_a_shells_partial_message_is_kept() -> None:
    # Seen in CI: busybox wrote "sh: 1: kill: ", pyinit's line, then the rest.
    text = f"Terminated\nsh: 1: kill: {FORWARDED}\nNo such process\n\n"
    assert [e["event"] for e in events(text)] == ["signal.forwarded"]
    assert log_line(f"sh: 1: kill: {FORWARDED}") == log_line(FORWARDED)
    assert log_line(FORWARDED) == {
        "signal": "SIGQUIT", "target": 2, "target_kind": "workload", "delivered": True,
        "sender_pid": 0, "early": False, "event": "signal.forwarded", "level": "info"}


def test_braces_in_the_prefix_do_not_hide_the_event() -> None:
    assert log_line('{"x": {"y" ' + FORWARDED)["signal"] == "SIGQUIT"  # type: ignore[index]


def test_lines_that_are_not_events() -> None:
    assert log_line("ready") is None
    assert log_line('{"no": "event field"}') is None
    assert log_line('{"event": "cut') is None
    assert log_line("[1, 2]") is None
