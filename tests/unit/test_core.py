"""The forward-and-reap core's decisions, and the module graph it untangled."""

from __future__ import annotations

import ast
import os
import signal

import pytest

from pyinit import core, signals
from tests.conftest import ROOT

ME = 4242
OTHER = 77


@pytest.mark.parametrize("sig", sorted(signals.FORWARDED), ids=signals.name)
def test_every_forwarded_signal_goes_to_the_workload_whoever_sent_it(sig: int) -> None:
    for sender in (0, OTHER):
        assert core.route(sig, sender, ME) == "forward"
    expected = "own" if sig == signal.SIGPIPE else "forward"
    assert core.route(sig, ME, ME) == expected


def test_sigchld_reaps_whoever_sent_it() -> None:
    for sender in (0, OTHER, ME):
        assert core.route(signal.SIGCHLD, sender, ME) == "reap"


def test_every_source_watches_exactly_the_forwarded_signals_and_sigchld() -> None:
    assert signals.FORWARDED | {signal.SIGCHLD} == core.WATCHED


def test_target_is_the_workload_or_its_group() -> None:
    assert core.target(1234, kill_group=False) == 1234
    assert core.target(1234, kill_group=True) == -1234


@pytest.mark.parametrize("sig", sorted(signals.FORWARDED), ids=signals.name)
def test_only_term_int_and_quit_start_the_shutdown(sig: int) -> None:
    expected = {signal.SIGTERM: "received SIGTERM", signal.SIGINT: "received SIGINT",
                signal.SIGQUIT: "received SIGQUIT"}.get(sig)
    assert core.shutdown_reason(sig) == expected


def test_a_signal_after_the_workload_exited_is_dropped_without_kill_group() -> None:
    # Nothing is sent: the workload's PID may already belong to someone else.
    c = core.Core(os.getpid(), kill_group=False, everyone=True, workload_status=0)
    dropped = c.handle(signal.SIGUSR1, OTHER)
    assert [type(o) for o in dropped] == [core.Dropped]
    assert (dropped[0].signo, dropped[0].sender) == (signal.SIGUSR1, OTHER)


def test_own_sigpipe_is_neither_forwarded_nor_dropped() -> None:
    c = core.Core(os.getpid(), kill_group=False, everyone=True)
    assert c.handle(signal.SIGPIPE, os.getpid()) == []


def test_the_core_and_the_early_phase_stay_light() -> None:
    # They run while the workload does; trio and structlog load in a thread.
    for name in ("core", "early", "signals", "spawn"):
        tree = ast.parse((ROOT / "pyinit" / f"{name}.py").read_text())
        top = [a.name for n in tree.body if isinstance(n, ast.Import) for a in n.names]
        top += [n.module or "" for n in tree.body if isinstance(n, ast.ImportFrom)]
        assert not [m for m in top if m.split(".")[0] in ("trio", "structlog", "typing",
                                                          "enum", "dataclasses")], (name, top)
