"""A storm of signals: each forwarded exactly once, logged once, none lost, none doubled.

The test sends a few hundred real-time signals as fast as ``kill`` goes, with
no acknowledgement in between, while orphans of pyinit exit (their SIGCHLDs
land in the middle of the storm). Real-time signals, because the kernel
queues every one of them (a standard signal sent twice before it is taken is
delivered once, so a storm of those could not be counted); the workload takes
them with ``sigwaitinfo`` (a Python handler would merge them too) and counts.

The storm ends with END, a real-time signal numbered above the others: the
kernel hands out pending signals lowest number first, to pyinit and to the
workload alike, so END is read, forwarded and taken after every storm signal
sent before it. When the workload sees END, it prints its counts and exits;
a lost signal shows as a short count, a doubled one as a long count (and in
the log).

Modes: ``pyinit --`` as PID 1 of its own namespace and as a subreaper, and
the container's PID 1 of ``pyinit sandbox``, whose signals pass through the
runtime's relay first. Phases: ``late`` (the storm begins once the supervisor
is ready), and ``handover``, where the first half of the storm reaches the
early phase (trio held, tests/helpers/hold_trio) and the second half is sent
as trio is released, across the hand-over from the early phase's reader to the
supervisor's.
"""
from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pyinit import signals as sigs
from tests.conftest import MODES
from tests.helpers.running import Pyinit, sender

STORM = [signal.SIGRTMIN + 1, signal.SIGRTMIN + 2, signal.SIGRTMIN + 3]
END = signal.SIGRTMIN + 4
EACH = 100  # of every storm signal
ORPHANS = 5

# The workload, run as ``python -I -c COUNTER`` (inside the sandbox as well:
# it binds the host's /usr). Before it says "ready" it leaves ORPHANS
# grandchildren to pyinit, blocked on a pipe it closes at the first signal of
# the storm: they end, and pyinit reaps them, while the storm goes on.
COUNTER = f"""
import os, signal
storm = {[int(s) for s in STORM]}
watched = set(storm) | {{{int(END)}}}
signal.pthread_sigmask(signal.SIG_BLOCK, watched)
r, w = os.pipe()
for _ in range({ORPHANS}):
    middle = os.fork()
    if middle == 0:
        if os.fork() == 0:
            os.close(w)
            os.read(r, 1)
            os._exit(0)
        os._exit(0)
    os.waitpid(middle, 0)
os.close(r)
print("ready", flush=True)
counts = dict.fromkeys(storm, 0)
while True:
    sig = signal.sigwaitinfo(watched).si_signo
    if w >= 0:
        os.close(w)
        w = -1
    if sig == {int(END)}:
        break
    counts[sig] += 1
print("counts", *(f"{{s}}={{n}}" for s, n in counts.items()), flush=True)
"""
ARGV = ["/usr/bin/python3", "-I", "-c", COUNTER]


def _start(mode: str, hold: bool) -> Pyinit:
    options = ["--log-level", "debug", "--grace", "60"]
    if mode == "sandbox":
        return Pyinit(["sandbox", *options, "--", *ARGV], "subreaper", hold=hold)
    return Pyinit([*options, "--", *ARGV], mode, hold=hold)


def _storm(p: Pyinit, mode: str, phase: str) -> None:
    # The sandbox's runtime relays to its PID 1; otherwise the signals go to pyinit.
    target = p.proc.pid if mode == "sandbox" else p.pid
    sent = [sig for _ in range(EACH) for sig in STORM]
    half = len(sent) // 2 if phase == "handover" else 0
    for sig in sent[:half]:
        os.kill(target, sig)
    p.release()  # (late: released already) trio loads while the rest comes
    for sig in sent[half:]:
        os.kill(target, sig)
    os.kill(target, END)


@pytest.mark.parametrize("phase", ["late", "handover"])
@pytest.mark.parametrize("mode", [*MODES, pytest.param("sandbox", marks=pytest.mark.root)])
def test_signal_storm_is_forwarded_and_logged_exactly_once(mode: str, phase: str) -> None:
    p = _start(mode, hold=phase == "handover")
    try:
        assert p.line("ready"), "the counter never started"
        if phase == "late":
            p.event("supervisor.ready")
        _storm(p, mode, phase)
        code = p.finish()
    finally:
        p.kill()
    assert code == 0
    # The workload got every signal once: nothing lost, nothing doubled.
    assert p.lines == ["ready", "counts " + " ".join(f"{int(s)}={EACH}" for s in STORM)]

    workload = next(e["pid"] for e in p.events if e["event"] == "workload.spawned")
    names = [sigs.name(s) for s in STORM]
    logged = [e for e in p.events if e["event"].startswith("signal.")]
    # pyinit logged each one once, with every field, END last.
    assert Counter(e["signal"] for e in logged) == {**dict.fromkeys(names, EACH),
                                                    sigs.name(END): 1}
    assert logged[-1]["signal"] == sigs.name(END)
    early = [e.pop("early") for e in logged]
    assert {_key(e) for e in logged} == {_key({
        "event": "signal.forwarded", "level": "info", "target": workload,
        "target_kind": "workload", "delivered": True,
        "sender_pid": 0 if mode == "sandbox" else sender(mode), "signal": name})
        for name in [*names, sigs.name(END)]}
    # The early phase's signals are logged first (as the supervisor starts),
    # then the supervisor's own; without a hold there is no early phase.
    assert early == sorted(early, reverse=True)
    if phase == "late":
        assert set(early) == {False}

    # The orphans that ended during the storm were reaped, each once.
    burst = [e for e in p.events if e["event"] == "orphans.reaped"]
    assert sum(e["count"] for e in burst) == ORPHANS
    assert [e["orphans_reaped"] for e in p.events if e["event"] == "pyinit.exit"] == [ORPHANS]
    assert [e["event"] for e in p.events].count("workload.exited") == 1


def _key(event: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(event.items()))


# ------------------------------------------------------------------ no signal thread

# The workload's seccomp profile applies to the container's PID 1 as well
# (runtime/hardening.py), and the supervisor starts its signal thread under
# it. A profile that refuses clone3 with EPERM (glibc falls back to clone only
# on ENOSYS) leaves PID 1 without a thread: trio reads the signals itself.
NO_THREAD_SH = ("exec 2>/dev/null; trap 'echo usr1' USR1; "
                "trap 'echo quit; kill $pid; wait $pid; exit 0' QUIT; "
                "sleep 1000 & pid=$!; echo ready; while :; do wait $pid; done")


@pytest.mark.root
def test_without_a_signal_thread_trio_forwards_and_says_so(tmp_path: Path) -> None:
    from errno import EPERM

    from tests.integration.test_run import edit, make_bundle
    from tests.integration.test_seccomp import _with_rule

    bundle = make_bundle(tmp_path, NO_THREAD_SH)
    edit(bundle, _with_rule({"names": ["clone3"], "action": "SCMP_ACT_ERRNO",
                             "errnoRet": EPERM}))
    p = Pyinit(["run", "--bundle", str(bundle), "--log-level", "debug"], "subreaper",
               hold=False)
    try:
        assert p.line("ready")
        p.event("supervisor.ready")
        os.kill(p.proc.pid, signal.SIGUSR1)
        assert p.line("usr1")
        os.kill(p.proc.pid, signal.SIGQUIT)
        code = p.finish()
    finally:
        p.kill()
    assert code == 0
    assert p.lines == ["ready", "usr1", "quit"]
    refused = [e for e in p.events if e["event"] == "supervisor.no_signal_thread"]
    assert refused == [{"event": "supervisor.no_signal_thread", "level": "warning",
                        "error": "can't start new thread",
                        "detail": "trio reads the signals instead: each is forwarded about "
                                  "100 us later"}]
    workload = next(e["pid"] for e in p.events if e["event"] == "workload.spawned")
    assert [e for e in p.events if e["event"].startswith("signal.")] == [
        {"event": "signal.forwarded", "level": "info", "signal": name, "target": workload,
         "target_kind": "workload", "delivered": True, "sender_pid": 0, "early": False}
        for name in ("SIGUSR1", "SIGQUIT")]
