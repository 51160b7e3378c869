"""Signal names, numbers and the forwarded set."""

from __future__ import annotations

import signal

import pytest

from pyinit import signals


@pytest.mark.parametrize(
    ("text", "num"),
    [("TERM", signal.SIGTERM), ("sigterm", signal.SIGTERM), ("15", 15), ("SIGIOT", 6),
     ("RTMIN", signal.SIGRTMIN), ("SIGRTMIN+3", signal.SIGRTMIN + 3),
     ("rtmax-1", signal.SIGRTMAX - 1), ("CLD", signal.SIGCHLD)],
)
def test_parse(text: str, num: int) -> None:
    assert signals.parse(text) == num


@pytest.mark.parametrize("text", ["", "FOO", "0", "65", "RTMIN+99", "SIGKILL+1", "RTMAX+1"])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        signals.parse(text)


def test_names_round_trip() -> None:
    for num in signal.valid_signals():
        assert signals.parse(signals.name(num)) == num
    assert signals.name(signal.SIGABRT) == "SIGABRT"
    assert signals.name(signal.SIGCHLD) == "SIGCHLD"
    assert signals.name(signal.SIGRTMIN + 2) == "SIGRTMIN+2"


def test_forwarded_set() -> None:
    fwd = signals.FORWARDED
    assert signal.SIGCHLD not in fwd and signal.SIGKILL not in fwd
    assert not fwd & signals.SYNCHRONOUS
    assert {signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGWINCH, signal.SIGTSTP,
            signal.SIGCONT, signal.SIGPIPE, signal.SIGRTMIN, signal.SIGRTMAX} <= fwd
    assert len(fwd) == 31 - 7 + (signal.SIGRTMAX - signal.SIGRTMIN + 1)
