"""Every job pyinit does in two ways gets a test for each way.

pyinit supervises in two phases. Until trio is loaded, the early phase
(:mod:`pyinit.early`) reads signals with ``sigtimedwait``, waits for the
workload by its PID only, and, when the workload ends then, logs and exits
with structlog alone (the minimal writer). After, the supervisor reads a
signalfd, reaps every child, and logs as it goes (the full writer). Each path
has its own test here, and a test's name says which phase it checks.

The phase is chosen, never hoped for:

* early: ``tests/helpers/hold_trio`` makes pyinit's import of trio wait on a
  pipe the test holds, so pyinit stays in its early phase until released;
* late: the test waits for the ``supervisor.ready`` log event.

The container's PID 1 of ``pyinit run`` and ``pyinit sandbox`` has both
phases too: it spawns the workload first and imports trio from memory,
forwarding and reaping between two modules (``early.run_importing``), which
the same helper holds. Its signals pass through the runtime's relay first (the
same core, fed by sigtimedwait). Each sweep sends every forwardable signal, one
at a time, each acknowledged by the workload; one pyinit per (mode, phase)
serves all the per-signal tests.

Other jobs done two ways: orphans that end during the early phase (left as
zombies, reaped by the supervisor's first reap) or under the supervisor
(reaped on their SIGCHLD); the shutdown that finds who is left in /proc, or
signals blindly without one; the log sink that reopens stderr through
/proc/self/fd, or writes through a polled duplicate without /proc.
"""
from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pyinit import signals as sigs
from tests.conftest import MODES, children, helper, status_field, wait_for
from tests.helpers.running import Pyinit, sender

PHASES = ["early", "late"]

# Every forwardable signal; the three shutdown signals last, SIGQUIT (which
# ends the recorder) at the very end.
SWEEP = [s for s in sorted(sigs.FORWARDED) if s not in sigs.SHUTDOWN] + [
    signal.SIGTERM, signal.SIGINT, signal.SIGQUIT]
# Waiting for a signal that never comes: only a failing run waits this long
# (per lost signal). A mutation run that loses one on purpose may shorten it.
LOST_AFTER_S = float(os.environ.get("PYINIT_TEST_LOST_AFTER_S", "10"))


@pytest.fixture
def pyinit() -> Iterator[Callable[..., Pyinit]]:
    started: list[Pyinit] = []

    def start(*args: Any, **kw: Any) -> Pyinit:
        started.append(Pyinit(*args, **kw))
        return started[-1]

    yield start
    for p in started:
        p.kill()


# ------------------------------------------------------------------ forwarding, per signal

class Sweep:
    """One pyinit that got every forwardable signal in one phase, and what came of it."""

    def __init__(self, mode: str, phase: str) -> None:
        self.mode = mode
        self.phase = phase
        self.sender = sender(mode)
        p = Pyinit(["--log-level", "debug", "--grace", "60", "--",
                    *helper("sigrecorder.py"), "/dev/stdout"],
                   mode, hold=phase == "early", env={"EXIT_ON": str(int(signal.SIGQUIT))})
        try:
            assert p.line("ready"), "the recorder never started"
            if phase == "late":
                p.event("supervisor.ready")
            target = p.pid
            for sig in SWEEP:
                os.kill(target, sig)
                p.line(str(int(sig)), timeout=LOST_AFTER_S)  # checked per signal below
            if str(int(signal.SIGQUIT)) not in p.lines:
                # Lost: end the run anyway, so each signal's test says what it saw.
                p.release()
                for pid in children(target):
                    os.kill(pid, signal.SIGKILL)
            self.code = p.finish()
        finally:
            p.kill()
        self.received = [int(x) for x in p.lines if x != "ready"]
        self.events = p.events
        self.workload = next(e["pid"] for e in p.events if e["event"] == "workload.spawned")

    def check(self, sig: int) -> None:
        name = sigs.name(sig)
        assert self.received.count(sig) == 1, (
            f"the workload got {name} {self.received.count(sig)} times in the {self.phase} "
            f"phase ({self.mode})")
        logged = [e for e in self.events
                  if e["event"].startswith("signal.") and e.get("signal") == name]
        assert logged == [{
            "event": "signal.forwarded", "level": "info", "signal": name,
            "target": self.workload, "target_kind": "workload", "delivered": True,
            "sender_pid": self.sender, "early": self.phase == "early",
        }], f"{name} in the {self.phase} phase ({self.mode})"


@pytest.fixture(scope="module")
def sweeps() -> Callable[[str, str], Sweep]:
    """Each (mode, phase) sweep runs once; the per-signal tests read its result."""
    done: dict[tuple[str, str], Sweep | BaseException] = {}

    def get(mode: str, phase: str) -> Sweep:
        if (mode, phase) not in done:
            try:
                done[mode, phase] = Sweep(mode, phase)
            except BaseException as exc:
                done[mode, phase] = exc
        result = done[mode, phase]
        if isinstance(result, BaseException):
            raise result
        return result

    return get


@pytest.mark.parametrize("sig", SWEEP, ids=sigs.name)
@pytest.mark.parametrize("mode", MODES)
def test_early_phase_forwards(sweeps: Callable[[str, str], Sweep], mode: str,
                              sig: int) -> None:
    """Read by sigtimedwait while trio loads: forwarded once, logged ``early: true``."""
    sweeps(mode, "early").check(sig)


@pytest.mark.parametrize("sig", SWEEP, ids=sigs.name)
@pytest.mark.parametrize("mode", MODES)
def test_late_phase_forwards(sweeps: Callable[[str, str], Sweep], mode: str, sig: int) -> None:
    """Read from the supervisor's signalfd: forwarded once, logged ``early: false``."""
    sweeps(mode, "late").check(sig)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("phase", PHASES)
def test_sweep_is_complete_and_in_order(sweeps: Callable[[str, str], Sweep], mode: str,
                                        phase: str) -> None:
    """Nothing extra either: exactly the signals sent, in order, and the recorder's exit."""
    sweep = sweeps(mode, phase)
    assert sweep.received == SWEEP
    assert sweep.code == 0
    forwarded = [e["signal"] for e in sweep.events if e["event"] == "signal.forwarded"]
    assert forwarded == [sigs.name(s) for s in SWEEP]
    # The early phase ended it all: the workload's exit was seen before trio was needed.
    assert [e.get("early", "absent") for e in sweep.events if e["event"] == "pyinit.exit"] == (
        [True] if phase == "early" else ["absent"])
    assert [e["event"] for e in sweep.events].count("supervisor.ready") == (
        0 if phase == "early" else 1)


# ------------------------------------------------------------------ the two reapers

# (id, shell commands, pyinit's exit code, workload.exited's own fields)
ENDINGS = [
    ("exit-0", "exit 0", 0, {"code": 0, "signal": None}),
    ("exit-3", "exit 3", 3, {"code": 3, "signal": None}),
    ("exit-255", "exit 255", 255, {"code": 255, "signal": None}),
    ("SIGTERM", "kill -TERM $$", 143, {"code": 143, "signal": "SIGTERM", "core_dumped": False}),
    ("SIGKILL", "kill -KILL $$", 137, {"code": 137, "signal": "SIGKILL", "core_dumped": False}),
]


def _timed(ev: dict[str, Any]) -> dict[str, Any]:
    """``ev`` with each duration checked to be a number >= 0, then replaced by "ms"."""
    out = dict(ev)
    for key, value in ev.items():
        if key.endswith("_ms"):
            assert isinstance(value, int | float) and value >= 0, (key, value)
            out[key] = "ms"
    return out


def _only(events: list[dict[str, Any]], name: str) -> dict[str, Any]:
    found = [_timed(e) for e in events if e["event"] == name]
    assert len(found) == 1, (name, found)
    return found[0]


def _assert_ended(p: Pyinit, code: int, fields: dict[str, Any],
                  phase: dict[str, Any]) -> None:
    """pyinit exits with ``code``, and logs the workload's end (``fields``) and its own
    exit once each; ``phase`` holds the exit's fields of the phase that reaped it."""
    assert p.finish() == code
    workload = _only(p.events, "workload.spawned")["pid"]
    assert _only(p.events, "workload.exited") == {
        "event": "workload.exited", "level": "info", "pid": workload, "runtime_ms": "ms",
        **fields}
    assert _only(p.events, "pyinit.exit") == {
        "event": "pyinit.exit", "level": "info", "code": code, "orphans_reaped": 0,
        **phase, "uptime_ms": "ms"}


@pytest.mark.parametrize(("script", "code", "fields"), [e[1:] for e in ENDINGS],
                         ids=[e[0] for e in ENDINGS])
@pytest.mark.parametrize("mode", MODES)
def test_early_reaper_reports_how_the_workload_ended(pyinit: Callable[..., Pyinit], mode: str,
                                                    script: str, code: int,
                                                    fields: dict[str, Any]) -> None:
    """The workload ends while trio is held: the early reaper sees it, pyinit exits early."""
    p = pyinit(["--", "sh", "-c", script], mode, hold=True)
    _assert_ended(p, code, fields, {"early": True})


@pytest.mark.parametrize(("script", "code", "fields"), [e[1:] for e in ENDINGS],
                         ids=[e[0] for e in ENDINGS])
@pytest.mark.parametrize("mode", MODES)
def test_late_reaper_reports_how_the_workload_ended(pyinit: Callable[..., Pyinit], mode: str,
                                                   script: str, code: int,
                                                   fields: dict[str, Any]) -> None:
    """The workload ends once the supervisor runs (it waits for a line the test sends then)."""
    p = pyinit(["--log-level", "debug", "--", "sh", "-c", f"read line; {script}"], mode,
               hold=False, stdin=subprocess.PIPE)
    p.event("supervisor.ready")
    assert p.proc.stdin is not None
    p.proc.stdin.close()  # `read` returns: the workload goes on to end
    _assert_ended(p, code, fields, {"shutdown_ms": "ms"})


# ------------------------------------------------------------------ orphans in each phase

# tests/helpers/orphans.py --on-cue: three orphans of pyinit, ended by a line on stdin.
ORPHANS = [*helper("orphans.py"), "--on-cue"]


def _orphans(p: Pyinit) -> list[int]:
    return sorted(int(line.split()[1]) for line in p.lines if line.startswith("orphan "))


def _zombies(pid: int) -> int:
    """How many of ``pid``'s children are zombies."""
    states = []
    for child in children(pid):
        try:
            states.append(status_field(child, "State")[0])
        except (OSError, KeyError):
            pass
    return states.count("Z")


def _assert_burst(p: Pyinit, orphans: list[int]) -> None:
    """One ``orphans.reaped`` for exactly these orphans, logged while the workload runs."""
    burst = _timed(p.event("orphans.reaped"))
    named = [pid for first, last in burst.pop("pids") for pid in range(first, last + 1)]
    assert named == orphans
    assert burst == {"event": "orphans.reaped", "level": "info", "count": 3,
                     "codes": {"0": 3}, "span_ms": "ms"}
    assert [e["event"] for e in p.events].count("workload.exited") == 0


def _cue(p: Pyinit, line: bytes = b"end\n") -> None:
    assert p.proc.stdin is not None
    p.proc.stdin.write(line)
    p.proc.stdin.flush()


@pytest.mark.parametrize("mode", MODES)
def test_early_phase_leaves_orphans_to_the_supervisors_first_reap(
        pyinit: Callable[..., Pyinit], mode: str) -> None:
    """Orphans that end while trio loads stay zombies (the early reaper waits for the
    workload only); the supervisor reaps them as it starts, not at the workload's exit."""
    p = pyinit(["--", *ORPHANS], mode, hold=True, stdin=subprocess.PIPE)
    assert p.line("spawned")
    pyinit_pid = p.pid
    _cue(p)
    wait_for(lambda: _zombies(pyinit_pid) == 3, what="three zombies of pyinit")
    p.release()
    _assert_burst(p, _orphans(p))
    _cue(p)  # only now may the workload end
    assert p.finish() == 0
    assert _only(p.events, "pyinit.exit")["orphans_reaped"] == 3


@pytest.mark.parametrize("mode", MODES)
def test_late_reaper_reaps_orphans_as_they_end(pyinit: Callable[..., Pyinit],
                                               mode: str) -> None:
    """Orphans that end under the supervisor: reaped on their SIGCHLD, one burst logged."""
    p = pyinit(["--log-level", "debug", "--", *ORPHANS], mode, hold=False,
               stdin=subprocess.PIPE)
    p.event("supervisor.ready")
    assert p.line("spawned")
    _cue(p)
    _assert_burst(p, _orphans(p))
    _cue(p)
    assert p.finish() == 0
    assert _only(p.events, "pyinit.exit")["orphans_reaped"] == 3


# ------------------------------------------------------------------ the two log writers

def _spawned(mode: str, argv: list[str]) -> dict[str, Any]:
    return {"event": "workload.spawned", "level": "info", "pid": 2 if mode == "pid1" else "any",
            "argv": argv, "spawn_ms": "ms", "pid1": mode == "pid1", "foreground": False}


def _forwarded(sig: int, mode: str, workload: int, early: bool) -> dict[str, Any]:
    return {"event": "signal.forwarded", "level": "info", "signal": sigs.name(sig),
            "target": workload, "target_kind": "workload", "delivered": True,
            "sender_pid": sender(mode), "early": early}


def _log(p: Pyinit) -> tuple[int, list[dict[str, Any]]]:
    """The workload's PID and the whole log, durations checked and replaced."""
    log = [_timed(e) for e in p.events]
    workload: int = log[0]["pid"]
    if log[0]["event"] == "workload.spawned" and log[0]["pid1"] is False:
        log[0]["pid"] = "any"  # a host PID: nothing to compare it with
    return workload, log


@pytest.mark.parametrize("mode", MODES)
def test_minimal_writer_logs_everything_the_early_phase_did(pyinit: Callable[..., Pyinit],
                                                            mode: str) -> None:
    """The workload ends while trio is held: structlog alone writes the whole story."""
    argv = [*helper("sigrecorder.py"), "/dev/stdout"]
    p = pyinit(["--log-level", "debug", "--", *argv], mode, hold=True,
               env={"EXIT_ON": str(int(signal.SIGHUP))})
    assert p.line("ready")
    os.kill(p.pid, signal.SIGUSR1)
    assert p.line(str(int(signal.SIGUSR1)))
    os.kill(p.pid, signal.SIGHUP)
    assert p.finish() == 0
    workload, log = _log(p)
    assert log == [
        _spawned(mode, argv),
        _forwarded(signal.SIGUSR1, mode, workload, early=True),
        _forwarded(signal.SIGHUP, mode, workload, early=True),
        {"event": "zombie.reaped", "level": "debug", "pid": workload, "workload": True,
         "code": 0, "signal": None},
        {"event": "workload.exited", "level": "info", "pid": workload, "code": 0,
         "signal": None, "runtime_ms": "ms"},
        {"event": "runtime.loaded", "level": "debug", "import_ms": "ms",
         "source": "files"},
        {"event": "pyinit.exit", "level": "info", "code": 0, "orphans_reaped": 0,
         "early": True, "uptime_ms": "ms"},
    ]


@pytest.mark.parametrize("mode", MODES)
def test_full_writer_logs_both_phases_once(pyinit: Callable[..., Pyinit], mode: str) -> None:
    """A signal of the early phase, then one of the supervisor's: each logged once, in order."""
    argv = [*helper("sigrecorder.py"), "/dev/stdout"]
    p = pyinit(["--log-level", "debug", "--", *argv], mode, hold=True,
               env={"EXIT_ON": str(int(signal.SIGHUP))})
    assert p.line("ready")
    os.kill(p.pid, signal.SIGUSR1)
    assert p.line(str(int(signal.SIGUSR1)))
    p.release()
    p.event("supervisor.ready")
    os.kill(p.pid, signal.SIGHUP)
    assert p.finish() == 0
    workload, log = _log(p)
    from pyinit.core import WATCHED

    assert log == [
        _spawned(mode, argv),
        _forwarded(signal.SIGUSR1, mode, workload, early=True),
        {"event": "runtime.loaded", "level": "debug", "import_ms": "ms",
         "source": "files"},
        {"event": "supervisor.ready", "level": "debug", "signals": len(WATCHED)},
        _forwarded(signal.SIGHUP, mode, workload, early=False),
        {"event": "zombie.reaped", "level": "debug", "pid": workload, "workload": True,
         "code": 0, "signal": None},
        {"event": "workload.exited", "level": "info", "pid": workload, "code": 0,
         "signal": None, "runtime_ms": "ms"},
        {"event": "pyinit.exit", "level": "info", "code": 0, "orphans_reaped": 0,
         "shutdown_ms": "ms", "uptime_ms": "ms"},
    ]


# ------------------------------------------------------------------ a signal after the workload

def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def _assert_dropped_once(p: Pyinit, mode: str, early: bool) -> None:
    """SIGUSR1 was the one signal, and it was dropped, not forwarded."""
    signals = [e for e in p.events if e["event"].startswith("signal.")]
    assert signals == [{"event": "signal.dropped", "level": "info", "signal": "SIGUSR1",
                        "sender_pid": sender(mode), "reason": "the workload has exited",
                        "early": early}]


@pytest.mark.parametrize("mode", MODES)
def test_early_phase_drops_a_signal_once_the_workload_is_reaped(
        pyinit: Callable[..., Pyinit], mode: str) -> None:
    # An orphan keeps pyinit from exiting early; the workload itself is gone.
    p = pyinit(["--log-level", "debug", "--", "sh", "-c", "sleep 1000 & echo started; exit 0"],
               mode, hold=True)
    assert p.line("started")
    pyinit_pid = p.pid
    # The shell stays pyinit's child (a zombie) until a reaper takes it.
    wait_for(lambda: [_comm(c) for c in children(pyinit_pid)] == ["sleep"],
             what="the early reaper to reap the workload")
    os.kill(pyinit_pid, signal.SIGUSR1)
    p.release()  # the supervisor shuts the orphan down
    assert p.finish() == 0
    _assert_dropped_once(p, mode, early=True)
    assert _only(p.events, "pyinit.exit")["orphans_reaped"] == 1


@pytest.mark.parametrize("mode", MODES)
def test_late_phase_drops_a_signal_once_the_workload_is_reaped(
        pyinit: Callable[..., Pyinit], mode: str) -> None:
    # The orphan ignores the shutdown's SIGTERM (and says so once it does),
    # so pyinit is still supervising it when the signal comes.
    orphan = "trap '' TERM; echo trapped; exec sleep 1000"
    p = pyinit(["--log-level", "debug", "--grace", "60", "--", "sh", "-c",
                f"sh -c \"{orphan}\" & exit 0"], mode, hold=False)
    p.event("supervisor.ready")
    assert p.line("trapped")
    p.event("workload.exited")
    os.kill(p.pid, signal.SIGUSR1)
    p.event("signal.dropped")
    for pid in children(p.pid):
        os.kill(pid, signal.SIGKILL)  # the orphan: the grace period need not run out
    assert p.finish() == 0
    _assert_dropped_once(p, mode, early=False)


# ------------------------------------------------------------------ pyinit run and sandbox

# The container's PID 1 spawns the workload first and imports trio from memory
# while it forwards and reaps between two modules (early.run_importing); the
# hold (tests/helpers/hold_trio) keeps it there. The signals reach it through
# the runtime's parent, which relays them with the same core. A busybox shell
# records them: it reaps its own sleep before it exits, so no orphan keeps the
# early phase from ending with the workload. It says nothing on stderr, which
# it shares with pyinit's log: the shutdown's SIGTERM kills its sleep first,
# and its own "kill: No such process" once landed in the middle of a log line.
TRAP_ALL = "".join(f"trap 'echo {int(s)}' {int(s)}; " for s in SWEEP if s != signal.SIGQUIT)
RECORDER_SH = ("exec 2>/dev/null; " + TRAP_ALL
               + f"trap 'echo {int(signal.SIGQUIT)}; kill $pid; wait $pid; exit 0' "
               f"{int(signal.SIGQUIT)}; sleep 1000 & pid=$!; echo ready; "
               "while :; do wait $pid; done")
CONTAINERS = ["run", "sandbox"]
# A bundle with a hook: its PID 1 imports trio from files before the setup, so
# the supervisor runs from the start and there is no early phase.
RUN_FILES = "run-files"


def _container_args(command: str, tmp: Path, script: str, *options: str) -> list[str]:
    from tests.integration.test_run import edit, make_bundle

    if command == "sandbox":
        return ["sandbox", *options, "--", "sh", "-c", script]
    bundle = make_bundle(tmp, script)
    if command == RUN_FILES:
        edit(bundle, lambda cfg: cfg.update(
            hooks={"createContainer": [{"path": "/bin/true"}]}))
    return ["run", "--bundle", str(bundle), *options]


class RunSweep(Sweep):
    """Every forwardable signal to ``pyinit run`` or ``pyinit sandbox``, in one phase of
    the container's PID 1."""

    def __init__(self, command: str, phase: str, tmp: Path) -> None:
        self.mode, self.phase = command, phase
        self.sender = 0  # the runtime's parent: outside the container's PID namespace
        args = _container_args(command, tmp, RECORDER_SH, "--log-level", "debug",
                               "--grace", "60")
        p = Pyinit(args, "subreaper", hold=phase == "early")
        try:
            assert p.line("ready"), "the recorder never started"
            if phase == "late":
                p.event("supervisor.ready")
            for sig in SWEEP:
                os.kill(p.proc.pid, sig)
                p.line(str(int(sig)), timeout=LOST_AFTER_S)
            if str(int(signal.SIGQUIT)) not in p.lines:
                p.kill()
            self.code = p.finish()
        finally:
            p.kill()
        self.received = [int(x) for x in p.lines if x != "ready"]
        self.events = p.events
        self.workload = next(e["pid"] for e in p.events if e["event"] == "workload.spawned")


@pytest.fixture(scope="module")
def run_sweep(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], RunSweep]:
    done: dict[tuple[str, str], RunSweep | BaseException] = {}

    def get(command: str, phase: str) -> RunSweep:
        if (command, phase) not in done:
            try:
                done[command, phase] = RunSweep(command, phase,
                                                tmp_path_factory.mktemp("bundle"))
            except BaseException as exc:
                done[command, phase] = exc
        result = done[command, phase]
        if isinstance(result, BaseException):
            raise result
        return result

    return get


@pytest.mark.root
@pytest.mark.parametrize("sig", SWEEP, ids=sigs.name)
@pytest.mark.parametrize("command", CONTAINERS)
def test_container_early_phase_forwards(run_sweep: Callable[[str, str], RunSweep],
                                        command: str, sig: int) -> None:
    """PID 1 imports trio from memory and forwards between two modules: once, ``early``."""
    run_sweep(command, "early").check(sig)


@pytest.mark.root
@pytest.mark.parametrize("sig", SWEEP, ids=sigs.name)
@pytest.mark.parametrize("command", [*CONTAINERS, RUN_FILES])
def test_container_late_phase_forwards(run_sweep: Callable[[str, str], RunSweep],
                                       command: str, sig: int) -> None:
    """Through the runtime's relay to the container's supervisor: forwarded once."""
    run_sweep(command, "late").check(sig)


@pytest.mark.root
@pytest.mark.parametrize(("phase", "command"), [
    *((phase, command) for phase in PHASES for command in CONTAINERS), ("late", RUN_FILES)])
def test_container_sweep_is_complete_and_in_order(run_sweep: Callable[[str, str], RunSweep],
                                                  phase: str, command: str) -> None:
    sweep = run_sweep(command, phase)
    assert sweep.received == SWEEP
    assert sweep.code == 0
    forwarded = [e["signal"] for e in sweep.events if e["event"] == "signal.forwarded"]
    assert forwarded == [sigs.name(s) for s in SWEEP]
    # Trio came from memory (from files with a hook), and in the early phase PID 1
    # exited without it.
    assert [e["source"] for e in sweep.events if e["event"] == "runtime.loaded"] == (
        ["files"] if command == RUN_FILES else ["memory"])
    assert [e.get("early", "absent") for e in sweep.events if e["event"] == "pyinit.exit"] == (
        [True] if phase == "early" else ["absent"])
    assert [e["event"] for e in sweep.events].count("supervisor.ready") == (
        0 if phase == "early" else 1)


# The container's PID 1 reaps with the same two reapers, and its early exit
# writes with the logger it set up before the pivot (the minimal writer, given
# a sink). Late, the workload ends on a SIGUSR1 sent once the supervisor runs;
# it reaps its own sleep first, so no orphan is left.
CONTAINER_ENDINGS = [e for e in ENDINGS if e[0] in ("exit-3", "SIGKILL")]


def _on_usr1(script: str) -> str:
    return (f"sleep 1000 & pid=$!; trap 'kill $pid; wait $pid; {script}' USR1; echo ready; "
            "while :; do wait $pid; done")


@pytest.mark.root
@pytest.mark.parametrize(("script", "code", "fields"), [e[1:] for e in CONTAINER_ENDINGS],
                         ids=[e[0] for e in CONTAINER_ENDINGS])
@pytest.mark.parametrize("command", CONTAINERS)
def test_container_early_reaper_reports_how_the_workload_ended(
        pyinit: Callable[..., Pyinit], tmp_path: Path, command: str, script: str, code: int,
        fields: dict[str, Any]) -> None:
    """The workload ends while PID 1 imports trio (held): reaped between two modules,
    reported without trio."""
    p = pyinit(_container_args(command, tmp_path, script, "--log-level", "debug"), "subreaper",
               hold=True)
    _assert_ended(p, code, fields, {"early": True})


@pytest.mark.root
@pytest.mark.parametrize(("script", "code", "fields"), [e[1:] for e in CONTAINER_ENDINGS],
                         ids=[e[0] for e in CONTAINER_ENDINGS])
@pytest.mark.parametrize("command", CONTAINERS)
def test_container_late_reaper_reports_how_the_workload_ended(
        pyinit: Callable[..., Pyinit], tmp_path: Path, command: str, script: str, code: int,
        fields: dict[str, Any]) -> None:
    p = pyinit(_container_args(command, tmp_path, _on_usr1(script), "--log-level", "debug"),
               "subreaper", hold=False)
    assert p.line("ready")
    p.event("supervisor.ready")
    os.kill(p.proc.pid, signal.SIGUSR1)
    _assert_ended(p, code, fields, {"shutdown_ms": "ms"})


# ------------------------------------------------------------------ shutdown without /proc

# At shutdown the supervisor finds who is left in /proc. Without a /proc of its
# own PID namespace it signals blindly: everyone in the namespace as PID 1
# (kill -1), the workload's process group otherwise; and with no /proc at all
# its log sink cannot reopen stderr through /proc/self/fd and writes through a
# duplicate checked with poll() instead. The orphan ignores SIGTERM, so only
# the blind SIGKILL ends it.
ORPHAN_IGNORING_TERM = "trap '' TERM; sleep 1000 & echo started; exit 0"


def _without_proc(mode: str, args: list[str]) -> list[str]:
    from tests.conftest import PYINIT

    if mode == "pid1":  # the host's /proc: not of pyinit's namespace
        return ["unshare", "--pid", "--fork", PYINIT, *args]
    # no /proc at all, in a mount namespace of its own
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            'umount -l /proc && exec "$@"', "sh", PYINIT, *args]


@pytest.mark.root
@pytest.mark.parametrize("mode", ["pid1", "subreaper"])
def test_shutdown_without_proc_signals_blindly(pyinit: Callable[..., Pyinit],
                                               mode: str) -> None:
    p = pyinit([], mode, hold=False, command=_without_proc(
        mode, ["--grace", "0.5", "--", "sh", "-c", ORPHAN_IGNORING_TERM]))
    assert p.line("started")
    assert p.finish() == 0
    assert _only(p.events, "proc.unavailable") == {
        "event": "proc.unavailable", "level": "warning",
        "detail": "/proc is missing or belongs to another PID namespace; "
                  "signalling without knowing who is left"}
    assert _only(p.events, "shutdown.grace_started") == {
        "event": "shutdown.grace_started", "level": "info", "reason": "workload exited",
        "grace_s": 0.5, "pids": [], "workload_running": False}
    # Logged on each blind attempt until the orphan is reaped (usually one).
    killed = [e for e in p.events if e["event"] == "shutdown.killed"]
    assert killed[:1] == [{"event": "shutdown.killed", "level": "warning",
                           "reason": "still running 0.5s after the shutdown began",
                           "pids": [], "commands": []}]
    assert killed == killed[:1] * len(killed)
    assert _only(p.events, "pyinit.exit")["orphans_reaped"] == 1


@pytest.mark.root
def test_log_without_proc_writes_through_a_polled_duplicate(
        pyinit: Callable[..., Pyinit]) -> None:
    """The sink's other writer: stderr cannot be reopened through /proc/self/fd."""
    p = pyinit([], "subreaper", hold=False, command=_without_proc(
        "subreaper", ["--log-level", "debug", "--", "sh", "-c", "exit 3"]))
    assert p.finish() == 3
    assert [e["event"] for e in p.events] == [
        "workload.spawned", "zombie.reaped", "workload.exited", "runtime.loaded",
        "pyinit.exit"]
