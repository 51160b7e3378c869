"""pyinit as a container init: the real binary, real processes, real namespaces.

Each behaviour runs twice where it matters: as PID 1 of a new PID namespace
(``unshare --pid --fork --mount-proc``, needs root) and as a plain child
subreaper.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from pyinit import signals as sigs
from tests.conftest import (
    MODES,
    PYINIT,
    PYTHON,
    children,
    event,
    events,
    helper,
    pyinit_pid,
    run,
    start,
    status_field,
    wait_for,
)
from tests.helpers.running import Pyinit, sender

# ------------------------------------------------------------------ exit status

SAMPLE_CODES = [0, 1, 2, 3, 42, 100, 125, 126, 127, 128, 129, 130, 143, 200, 254, 255]


@pytest.mark.parametrize("mode", MODES)
def test_exit_codes_pass_through(mode: str) -> None:
    # The mapping itself is unit-tested for all of 0..255; here the real path.
    for code in SAMPLE_CODES:
        res = run(["--", "sh", "-c", f"exit {code}"], mode)
        assert res.returncode == code, res.stderr.decode()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("sig", ["TERM", "KILL", "HUP", "SEGV"])
def test_death_by_signal_is_128_plus_n(mode: str, sig: str) -> None:
    res = run(["--", "sh", "-c", f"kill -{sig} $$"], mode)
    num = getattr(signal, f"SIG{sig}")
    assert res.returncode == 128 + num
    assert event(res.stderr, "workload.exited")["signal"] == f"SIG{sig}"


def test_program_not_found_is_127_with_one_line() -> None:
    res = run(["--", "/no/such/program"])
    assert res.returncode == 127
    assert res.stderr.decode() == (
        "pyinit: cannot run '/no/such/program': No such file or directory\n"
    )
    res = run(["--", "no-such-program-in-path"])
    assert res.returncode == 127
    assert res.stderr.decode() == ("pyinit: cannot run 'no-such-program-in-path': "
                                   "No such file or directory (not found in PATH)\n")


def test_unsearchable_directory_in_path_is_not_found_not_126(tmp_path: Path) -> None:
    # As in a shell: a PATH entry we may not search does not turn "not found"
    # into "not executable".
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o000)
    env = {**os.environ, "PATH": f"{locked}:/usr/bin:/bin"}
    script = f"exec {PYINIT} -- no-such-program-in-path"
    cmd = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
           "sh", "-c", script] if os.geteuid() == 0 else ["sh", "-c", script]
    res = subprocess.run(cmd, env=env, capture_output=True, timeout=30, check=False)
    assert res.returncode == 127, res.stderr.decode()
    # A file that exists but is not executable, found through PATH, is 126.
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "tool").write_text("#!/bin/sh\n")
    res = run(["--", "tool"], env={**os.environ, "PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"})
    assert res.returncode == 126


def test_program_not_executable_is_126(tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o644)
    res = run(["--", str(script)])
    assert res.returncode == 126
    assert res.stderr.decode() == f"pyinit: cannot execute '{script}': Permission denied\n"
    res = run(["--", str(tmp_path)])  # a directory
    assert res.returncode == 126


def test_remap_exit() -> None:
    res = run(["-e", "143:0", "--", "sh", "-c", "kill -TERM $$"])
    assert res.returncode == 0
    res = run(["--remap-exit", "3:0", "-e", "4:9", "--", "sh", "-c", "exit 4"])
    assert res.returncode == 9
    res = run(["-e", "3:0", "--", "sh", "-c", "exit 5"])
    assert res.returncode == 5


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--bogus", "--", "true"], {}, "unknown option '--bogus'"),
        (["-z", "--", "true"], {}, "unknown option '-z'"),
        ([], {}, "no PROGRAM given (usage: pyinit [OPTIONS] -- PROGRAM [ARGS...])"),
        (["--grace"], {}, "--grace needs a value"),
        (["--grace", "soon", "--", "true"], {}, "--grace: 'soon' is not a number of seconds"),
        (["--grace", "-1", "--", "true"], {},
         "--grace: '-1' must be between 0 and 86400 seconds"),
        (["-e", "143", "--", "true"], {},
         "--remap-exit: '143' is not FROM:TO (two exit codes 0..255)"),
        (["-e", "300:0", "--", "true"], {}, "--remap-exit: '300:0': exit codes are 0..255"),
        (["--pdeathsig", "SIGNOPE", "--", "true"], {}, "--pdeathsig: unknown signal 'SIGNOPE'"),
        (["--log-format", "xml", "--", "true"], {},
         "--log-format: 'xml' is not one of auto, json, console"),
        (["--", "true"], {"PYINIT_GRACE": "x"}, "PYINIT_GRACE: 'x' is not a number of seconds"),
        (["--", "true"], {"PYINIT_KILL_GROUP": "maybe"},
         "PYINIT_KILL_GROUP='maybe': expected 1/0, true/false, yes/no or on/off"),
        (["--exec=1", "--", "true"], {}, "--exec takes no value"),
    ],
)
def test_usage_errors_exit_2_with_one_line(args: list[str], env: dict[str, str],
                                            message: str) -> None:
    res = run(args, env={**os.environ, **env})
    assert res.returncode == 2
    assert res.stderr.decode() == f"pyinit: error: {message} (see 'pyinit --help')\n"
    assert res.stdout == b""


def test_help_and_version() -> None:
    from pyinit import __version__, cli

    res = run(["--help"])
    assert res.returncode == 0
    assert res.stdout.decode() == cli.HELP
    assert cli.HELP.startswith("usage: pyinit [OPTIONS] [--] PROGRAM [ARGS...]\n")
    res = run(["-V"])
    assert res.returncode == 0
    assert res.stdout.decode() == f"pyinit {__version__}\n"
    assert run(["--version"]).stdout == res.stdout


def test_program_without_double_dash() -> None:
    res = run(["sh", "-c", "exit 6"])
    assert res.returncode == 6
    res = run(["-g", "sh", "-c", "exit 7"])  # options stop at the first program word
    assert res.returncode == 7


# ------------------------------------------------------------------ signals

def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text().split()
    except FileNotFoundError:
        return []


# Every forwardable signal, in each phase of supervision, is tested in
# test_phases.py.


def _cmd(mode: str, args: list[str]) -> list[str]:
    from tests.conftest import pyinit_cmd

    return pyinit_cmd(args, mode)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_shutdown_signals_are_forwarded(mode: str, sig: int, tmp_path: Path) -> None:
    out = tmp_path / "signals"
    proc = start(["--", *helper("sigrecorder.py"), str(out)], mode,
                 env={**os.environ, "EXIT_ON": str(int(sig))})
    target = pyinit_pid(proc, mode)
    wait_for(lambda: "ready" in _read_lines(out), what="recorder ready")
    os.kill(target, sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert _read_lines(out) == ["ready", str(int(sig))]
    workload = event(err, "workload.spawned")["pid"]
    forwarded = [e for e in events(err) if e["event"] == "signal.forwarded"]
    assert [{k: v for k, v in e.items() if k not in ("timestamp", "early")}
            for e in forwarded] == [{
        "event": "signal.forwarded", "level": "info", "signal": sigs.name(sig),
        "target": workload, "target_kind": "workload", "delivered": True,
        "sender_pid": sender(mode)}]


PIPELINE = "trap '' TERM; yes | tail -n1 >/dev/null & yes | tail -n1 >/dev/null; wait"


def _pipeline_members(pyinit: int) -> list[int]:
    kids = children(pyinit)
    if not kids:
        return []
    found, todo = [], list(kids)
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children(pid))
    return found


@pytest.mark.parametrize("mode", MODES)
def test_kill_group_reaches_a_whole_pipeline(mode: str) -> None:
    # Every member ignores SIGTERM, so only the forwarded SIGHUP can end them
    # before the (long) grace period runs out.
    proc = start(["-g", "--grace", "60", "--", "sh", "-c", PIPELINE], mode)
    target = pyinit_pid(proc, mode)
    members = wait_for(lambda: len(m := _pipeline_members(target)) >= 5 and m,
                       what="the pipeline to start")
    os.kill(target, signal.SIGHUP)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGHUP
    workload = event(err, "workload.spawned")["pid"]
    forwarded = [e for e in events(err) if e["event"] == "signal.forwarded"]
    assert [{k: v for k, v in e.items() if k not in ("timestamp", "early")}
            for e in forwarded] == [{
        "event": "signal.forwarded", "level": "info", "signal": "SIGHUP",
        "target": -workload, "target_kind": "process group", "delivered": True,
        "sender_pid": sender(mode)}]
    assert not any(e["event"] == "shutdown.killed" for e in events(err))
    assert all(not Path(f"/proc/{pid}").exists() for pid in members)


def test_without_kill_group_only_the_workload_gets_the_signal() -> None:
    proc = start(["--grace", "0.5", "--", "sh", "-c", PIPELINE])
    wait_for(lambda: len(_pipeline_members(proc.pid)) >= 5, what="the pipeline to start")
    os.kill(proc.pid, signal.SIGHUP)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGHUP
    # The four pipeline processes ignored SIGTERM and needed SIGKILL.
    killed = event(err, "shutdown.killed")
    assert sorted(killed["commands"]) == ["tail", "tail", "yes", "yes"]


STARTUP_MOMENTS = ["first-line", "workload-started", "supervisor-ready"]


@pytest.mark.parametrize("moment", STARTUP_MOMENTS)
@pytest.mark.parametrize("mode", MODES)
def test_sigterm_at_each_moment_of_start_up_is_forwarded_40_of_40(mode: str,
                                                                  moment: str) -> None:
    """SIGTERM as soon as pyinit could take it, and at each later stage of start-up.

    * first-line: pyinit's first line has blocked every signal (read from
      ``/proc``); the workload may not even be spawned yet;
    * workload-started: the workload printed a line, trio is held (early phase);
    * supervisor-ready: the supervisor logged ``supervisor.ready`` (late phase).

    Before pyinit's first line a SIGTERM kills pyinit outside a namespace (the
    default action) or is dropped by the kernel as PID 1: README's "Things to
    know" says so, and no test can make that window go away.
    """
    for attempt in range(40):
        p = Pyinit(["--log-level", "debug", "--", "sh", "-c", "echo started; exec sleep 60"],
                   mode, hold=moment != "supervisor-ready")
        try:
            target = p.pid
            if moment == "first-line":
                wait_for(lambda t=target: _all_blocked(t), timeout=20, what="the first line")
            elif moment == "workload-started":
                assert p.line("started")
            else:
                p.event("supervisor.ready")
            os.kill(target, signal.SIGTERM)
            code = p.finish()
        finally:
            p.kill()
        assert code == 128 + signal.SIGTERM, (attempt, p.events)
        forwarded = [e for e in p.events if e["event"] == "signal.forwarded"]
        assert [(e["signal"], e["delivered"], e["early"]) for e in forwarded] == [
            ("SIGTERM", True, moment != "supervisor-ready")], (attempt, p.events)


def _all_blocked(pid: int) -> bool:
    """pyinit's first line has run: pyinit is running, and every signal is blocked.

    ``/proc`` shows one of two masks then: everything, or, while pyinit's
    early phase sits in ``sigtimedwait``, everything but the signals it waits
    for (the kernel unblocks those for the duration of the wait, and that is
    the mask ``/proc`` shows). A process that is not yet pyinit may have
    signals blocked too, and a SIGTERM then is lost when it unblocks them:
    ``unshare --fork``'s child blocks SIGINT and SIGTERM between its fork and
    its exec of pyinit.
    """
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = fh.read().split(b"\0")
        blocked = int(status_field(pid, "SigBlk"), 16)
    except (OSError, KeyError):
        return False
    everything = _mask(*(s for s in signal.valid_signals()
                         if s not in (signal.SIGKILL, signal.SIGSTOP)))
    waiting = everything & ~_mask(*sigs.FORWARDED, signal.SIGCHLD)
    return argv[:3] == _LAUNCHED and blocked in (everything, waiting)


def _launched() -> list[bytes]:
    """How pyinit's command line starts once its launcher has run Python.

    ``pyinit`` is a shell script (scripts/pyinit) that runs the interpreter
    named on the first line of ``pyinit-py`` next to it with ``-S``.
    """
    launcher = Path(PYINIT).with_name("pyinit-py")
    interpreter = launcher.read_bytes().split(b"\n", 1)[0].removeprefix(b"#!")
    return [interpreter, b"-S", str(launcher).encode()]


_LAUNCHED = _launched()


# ------------------------------------------------------------------ reaping

@pytest.mark.parametrize("mode", MODES)
def test_2000_orphans_exiting_at_once_are_all_reaped(mode: str) -> None:
    res = run(["--", *helper("orphans.py"), "2000"], mode, timeout=120)
    assert res.returncode == 0, res.stderr.decode()[-2000:]
    fields = dict(kv.split("=", 1) for kv in res.stdout.decode().split())
    assert fields["count"] == "2000"
    # They were orphans of pyinit: re-parented to it (PID 1, or the subreaper).
    assert fields["parents"] == f"[{fields['init']}]"
    assert fields["left"] == "0" and fields["zombies"] == "0"
    assert event(res.stderr, "pyinit.exit")["orphans_reaped"] == 2000
    # Logged a burst at a time: together the events name every orphan exactly once.
    bursts = [ev for ev in events(res.stderr) if ev["event"] == "orphans.reaped"]
    named = [pid for ev in bursts for first, last in ev["pids"] for pid in range(first, last + 1)]
    assert sorted(named) == sorted(int(p) for p in fields["pids"].split(","))
    assert [ev["count"] for ev in bursts] == [
        sum(last - first + 1 for first, last in ev["pids"]) for ev in bursts]
    assert [ev["codes"] for ev in bursts] == [{"0": ev["count"]} for ev in bursts]
    # At info, no line per orphan.
    assert [ev for ev in events(res.stderr) if ev["event"] == "zombie.reaped"] == []


@pytest.mark.parametrize("mode", MODES)
def test_orphans_at_debug_get_a_line_each_and_the_burst_event(mode: str) -> None:
    res = run(["--log-level", "debug", "--", *helper("orphans.py"), "20"], mode, timeout=60)
    assert res.returncode == 0, res.stderr.decode()[-2000:]
    fields = dict(kv.split("=", 1) for kv in res.stdout.decode().split())
    pids = sorted(int(p) for p in fields["pids"].split(","))
    logged = events(res.stderr)
    each = [ev for ev in logged if ev["event"] == "zombie.reaped" and not ev["workload"]]
    assert sorted(ev["pid"] for ev in each) == pids
    assert [{k: v for k, v in ev.items() if k not in ("pid", "timestamp")} for ev in each] == [
        {"event": "zombie.reaped", "level": "debug", "workload": False, "code": 0,
         "signal": None}] * 20
    bursts = [ev for ev in logged if ev["event"] == "orphans.reaped"]
    named = [pid for ev in bursts for first, last in ev["pids"] for pid in range(first, last + 1)]
    assert sorted(named) == pids
    assert sum(ev["count"] for ev in bursts) == 20


def test_no_subreaper_warns_and_orphans_go_elsewhere() -> None:
    res = run(["--no-subreaper", "--", *helper("orphans.py"), "3"])
    assert res.returncode == 0
    fields = dict(kv.split("=", 1) for kv in res.stdout.decode().split())
    assert fields["parents"] != f"[{fields['init']}]"
    warning = event(res.stderr, "subreaper.disabled")
    del warning["timestamp"]
    assert warning == {
        "event": "subreaper.disabled", "level": "warning",
        "detail": "pyinit is not PID 1 and --no-subreaper was given: orphaned descendants "
                  "go to the real init and pyinit will not reap them"}


# ------------------------------------------------------------------ what the workload inherits

def _mask(*sigs_: int) -> int:
    bits = 0
    for s in sigs_:
        bits |= 1 << (s - 1)
    return bits


def _set_signal_state(ignore: list[int], block: list[int]):  # type: ignore[no-untyped-def]
    def preexec() -> None:
        for s in ignore:
            signal.signal(s, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_SETMASK, block)
    return preexec


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("ignore", "block", "warned"),
    [
        ([], [], []),
        ([signal.SIGHUP, signal.SIGRTMIN + 2], [signal.SIGUSR2, signal.SIGRTMIN + 3], []),
        ([signal.SIGINT, signal.SIGQUIT, signal.SIGTTOU], [signal.SIGTERM, signal.SIGTTIN],
         [["SIGINT", "SIGQUIT"]]),
    ],
    ids=["clean", "hup-rt", "background-shell"],
)
def test_workload_gets_the_inherited_signal_state(mode: str, ignore: list[int],
                                                  block: list[int],
                                                  warned: list[list[str]]) -> None:
    res = run(["--", "cat", "/proc/self/status"], mode,
              preexec_fn=_set_signal_state([*ignore, signal.SIGPIPE], block))
    assert res.returncode == 0, res.stderr.decode()
    status = dict(
        line.split(":\t", 1) for line in res.stdout.decode().splitlines() if ":\t" in line
    )
    # SIGPIPE was ignored by the parent too, but is restored to default like
    # tini does; so are SIGXFSZ and glibc's 32 and 33, which posix_spawn leaks.
    assert int(status["SigIgn"], 16) == _mask(*ignore)
    assert int(status["SigBlk"], 16) == _mask(*block)
    # Only SIGINT and SIGQUIT, which a shell ignores for background jobs, are worth a warning.
    assert [e["signals"] for e in events(res.stderr)
            if e["event"] == "signal.inherited_ignored"] == warned


@pytest.mark.parametrize("mode", MODES)
def test_workload_runs_in_its_own_process_group(mode: str) -> None:
    res = run(["--", "cat", "/proc/self/stat"], mode)
    fields = res.stdout.decode().rpartition(")")[2].split()
    pid = int(res.stdout.split()[0])
    assert int(fields[2]) == pid  # pgrp == pid


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("preserve", [0, 2])
def test_no_file_descriptor_leaks_into_the_workload(mode: str, preserve: int) -> None:
    # fds 3, 4 and 5 are open and inheritable in pyinit; only --preserve-fds passes any.
    inner = " ".join(
        ["exec", *_cmd(mode, ["--preserve-fds", str(preserve), "--", "sleep", "30"])]
    )
    proc = subprocess.Popen(
        ["sh", "-c", f"exec 3</dev/null 4</dev/null 5</dev/null; {inner}"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        target = pyinit_pid(proc, mode)
        workload = wait_for(lambda: (children(target) or [0])[0], what="workload")
        expected = list(range(3 + preserve))

        def fds() -> list[int]:
            return sorted(int(fd) for fd in os.listdir(f"/proc/{workload}/fd"))

        # Right after exec the dynamic loader briefly holds a descriptor of
        # its own, so wait for `sleep` to settle; a leaked one never goes away.
        try:
            wait_for(lambda: fds() == expected, timeout=5, what="the expected descriptors")
        except AssertionError:
            pass
        assert fds() == expected
    finally:
        os.kill(pyinit_pid(proc, mode), signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 143


# ------------------------------------------------------------------ graceful shutdown

def _ignoring_grandchild(tmp_path: Path) -> str:
    """A workload that leaves a grandchild ignoring SIGTERM, and exits once it does.

    The grandchild says it has set its trap by writing to a FIFO; the
    workload waits for that line, so the shutdown never catches it early.
    """
    fifo = tmp_path / "trapped"
    os.mkfifo(fifo)
    return f"(trap '' TERM; echo > {fifo}; exec sleep 60) & read line < {fifo}; exit 0"


@pytest.mark.parametrize("mode", MODES)
def test_grace_then_sigkill_for_a_grandchild_that_ignores_sigterm(mode: str,
                                                                 tmp_path: Path) -> None:
    script = _ignoring_grandchild(tmp_path)
    t0 = time.monotonic()
    res = run(["--grace", "1", "--", "sh", "-c", script], mode)
    elapsed = time.monotonic() - t0
    assert res.returncode == 0
    started = event(res.stderr, "shutdown.grace_started")
    killed = event(res.stderr, "shutdown.killed")
    assert started["reason"] == "workload exited" and started["grace_s"] == 1.0
    assert killed["commands"] == ["sleep"] and killed["pids"] == started["pids"]
    # Correctness, not speed: the kill must not come before the grace period.
    assert elapsed >= 1.0
    assert elapsed < 30


@pytest.mark.parametrize("mode", MODES)
def test_grace_zero_kills_at_once(mode: str, tmp_path: Path) -> None:
    res = run(["--grace", "0", "--", "sh", "-c", _ignoring_grandchild(tmp_path)], mode)
    assert res.returncode == 0
    assert event(res.stderr, "shutdown.killed")["commands"] == ["sleep"]
    assert event(res.stderr, "pyinit.exit")["shutdown_ms"] < 10_000


def test_grace_from_environment(tmp_path: Path) -> None:
    res = run(["--", "sh", "-c", _ignoring_grandchild(tmp_path)],
              env={**os.environ, "PYINIT_GRACE": "0.2"})
    assert event(res.stderr, "shutdown.grace_started")["grace_s"] == 0.2


@pytest.mark.parametrize("mode", MODES)
def test_sigterm_to_pyinit_ends_a_workload_that_ignores_it(mode: str) -> None:
    proc = start(["--grace", "0.5", "--", "sh", "-c", "trap '' TERM; sleep 60 & wait"], mode)
    target = pyinit_pid(proc, mode)
    wait_for(lambda: len(_pipeline_members(target)) >= 2, what="workload and its child")
    os.kill(target, signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGKILL
    assert event(err, "shutdown.grace_started")["reason"] == "received SIGTERM"
    assert sorted(event(err, "shutdown.killed")["commands"]) == ["sh", "sleep"]


def test_workload_exit_with_nothing_left_needs_no_grace() -> None:
    res = run(["--grace", "30", "--", "sh", "-c", "exit 0"])
    assert res.returncode == 0
    assert not any(e["event"].startswith("shutdown.") for e in events(res.stderr))


# ------------------------------------------------------------------ parent death

@pytest.mark.parametrize("mode", MODES)
def test_pdeathsig_is_forwarded_when_the_parent_dies(mode: str, tmp_path: Path) -> None:
    out = tmp_path / "signals"
    args = ["--pdeathsig", "SIGUSR1", "--", *helper("sigrecorder.py"), str(out)]
    env = {**os.environ, "EXIT_ON": str(int(signal.SIGUSR1))}
    if mode == "pid1":
        parent = start(args, mode, env=env)  # unshare is pyinit's parent
    else:
        line = " ".join(f"'{a}'" for a in [PYINIT, *args])
        parent = subprocess.Popen(["sh", "-c", f"{line} & wait"], env=env,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
    target = wait_for(lambda: (children(parent.pid) or [0])[0], what="pyinit")
    wait_for(lambda: "ready" in _read_lines(out), what="recorder ready")
    parent.kill()
    parent.wait()
    wait_for(lambda: str(int(signal.SIGUSR1)) in _read_lines(out), what="SIGUSR1 forwarded")
    wait_for(lambda: not Path(f"/proc/{target}").exists() or _is_zombie(target),
             what="pyinit to exit after its workload")


def _is_zombie(pid: int) -> bool:
    try:
        return status_field(pid, "State").startswith("Z")
    except (OSError, KeyError):
        return True


# ------------------------------------------------------------------ --exec

def test_exec_replaces_pyinit() -> None:
    proc = start(["--exec", "--", "sh", "-c", "echo $$; exit 7"])
    out, _ = proc.communicate(timeout=30)
    assert int(out) == proc.pid
    assert proc.returncode == 7


def test_exec_hands_over_clean_signal_state_and_fds() -> None:
    proc = subprocess.run(
        ["sh", "-c", f"exec 3</dev/null; exec {PYINIT} --exec -- sh -c "
         "'grep -E \"^Sig(Blk|Ign)\" /proc/self/status; ls /proc/self/fd'"],
        capture_output=True, timeout=30, check=False, preexec_fn=_set_signal_state([], []),
    )
    # 3 is ls's own directory fd.
    assert proc.stdout.decode().split() == ["SigBlk:", "0000000000000000",
                                            "SigIgn:", "0000000000000000", "0", "1", "2", "3"]


def test_exec_failure_is_127() -> None:
    res = run(["--exec", "--", "/no/such/thing"])
    assert res.returncode == 127
    assert res.stderr.count(b"\n") == 1


# ------------------------------------------------------------------ logs never block

def test_closed_stderr_does_not_stop_supervision() -> None:
    res = subprocess.run(
        ["sh", "-c", f"exec 2>&-; exec {PYINIT} -- sh -c 'sleep 0.1 & exit 4'"],
        capture_output=True, timeout=30, check=False,
    )
    assert res.returncode == 4


def test_full_stderr_pipe_nobody_reads_does_not_hang() -> None:
    # Debug logs for 3000 reaped orphans are far more than a 64 KiB pipe holds.
    proc = start(["--log-level", "debug", "--", *helper("orphans.py"), "3000"])
    try:
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            proc.wait()
    assert proc.stdout is not None
    fields = dict(kv.split("=", 1) for kv in proc.stdout.read().decode().split())
    assert (fields["count"], fields["left"], fields["zombies"]) == ("3000", "0", "0")
    assert proc.stderr is not None
    tail = events(proc.stderr.read())
    assert len(tail) < 3000  # lines were dropped rather than waited for


def test_stderr_reader_going_away_is_survived_and_sigpipe_not_forwarded(tmp_path: Path) -> None:
    out = tmp_path / "signals"
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(
        [PYINIT, "--log-level", "debug", "--", *helper("sigrecorder.py"), str(out)],
        env={**os.environ, "EXIT_ON": str(int(signal.SIGUSR2))},
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=write_end,
    )
    os.close(write_end)
    os.read(read_end, 1)  # pyinit has logged something
    os.close(read_end)  # now every further log write gets EPIPE
    wait_for(lambda: "ready" in _read_lines(out), what="recorder ready")
    os.kill(proc.pid, signal.SIGHUP)  # logged -> EPIPE in pyinit
    wait_for(lambda: str(int(signal.SIGHUP)) in _read_lines(out), what="SIGHUP")
    os.kill(proc.pid, signal.SIGUSR2)
    assert proc.wait(timeout=30) == 0
    assert str(int(signal.SIGPIPE)) not in _read_lines(out)


def test_console_format_and_level() -> None:
    res = run(["--log-format", "console", "--", "sh", "-c", "exit 0"])
    # "2026-12-01T15:00:00.123456Z [info     ] workload.spawned   argv=[...] ..."
    lines = [re.match(r"\d{4}-\d\d-\d\dT[\d:.]+Z \[(\w+) *\] (\S+) ", line)
             for line in res.stderr.decode().splitlines()]
    assert [m.groups() if m else None for m in lines] == [
        ("info", "workload.spawned"), ("info", "workload.exited"), ("info", "pyinit.exit")]
    res = run(["--log-level", "warning", "--", "sh", "-c", "exit 0"])
    assert res.stderr == b""
    res = run(["--", "sh", "-c", "exit 0"], env={**os.environ, "PYINIT_LOG_LEVEL": "error"})
    assert res.stderr == b""


# Which events each phase logs, with which fields, is in test_phases.py.


# ------------------------------------------------------------------ the early phase

def test_quick_workload_exits_before_trio_is_needed() -> None:
    res = run(["-e", "3:0", "--", "sh", "-c", "exit 3"])
    assert res.returncode == 0
    ev = event(res.stderr, "pyinit.exit")
    assert ev["early"] is True and ev["code"] == 0


def test_shutdown_asked_for_during_start_up_is_carried_out() -> None:
    # SIGTERM arrives while trio is held: forwarded at once (the workload
    # prints that it got it), and once trio is loaded the graceful shutdown
    # still follows. The workload and its child both ignore SIGTERM (the
    # child inherits the shell's SIG_IGN), so both need the SIGKILL.
    script = ("trap '' TERM; sleep 60 & trap 'echo got-term' TERM; kill -TERM $PPID; "
              "while :; do wait; done")
    p = Pyinit(["--grace", "0.5", "--", "sh", "-c", script], "subreaper", hold=True)
    try:
        assert p.line("got-term")
        p.release()
        code = p.finish()
    finally:
        p.kill()
    assert code == 128 + signal.SIGKILL
    forwarded = [e for e in p.events if e["event"] == "signal.forwarded"]
    assert [(e["signal"], e["early"]) for e in forwarded] == [("SIGTERM", True)]
    assert event_of(p.events, "shutdown.grace_started")["reason"] == "received SIGTERM"
    assert sorted(event_of(p.events, "shutdown.killed")["commands"]) == ["sh", "sleep"]


def event_of(evs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    found = [e for e in evs if e["event"] == name]
    assert len(found) == 1, (name, evs)
    return found[0]


@pytest.mark.root
def test_loading_trio_starts_no_ldconfig_child(tmp_path: Path) -> None:
    """``import trio`` would run ``/sbin/ldconfig -p``; pyinit must not grow that child."""
    marker = tmp_path / "ldconfig-ran"
    fake = tmp_path / "ldconfig"
    fake.write_text(f"#!/bin/sh\necho \"$@\" >> {marker}\n")
    fake.chmod(0o755)

    def with_fake_ldconfig(command: str) -> list[str]:
        script = f"mount --make-rprivate / && mount --bind {fake} /sbin/ldconfig && {command}"
        return ["unshare", "--mount", "sh", "-c", script]

    # The workload waits for a line the test sends once the supervisor runs,
    # so trio is surely loaded.
    p = Pyinit([], "subreaper", hold=False, stdin=subprocess.PIPE, command=with_fake_ldconfig(
        f"exec {PYINIT} --log-level debug -- sh -c 'read line; exit 0'"))
    try:
        p.event("supervisor.ready")
        assert p.proc.stdin is not None
        p.proc.stdin.close()
        assert p.finish() == 0
    finally:
        p.kill()
    assert not marker.exists()
    # Control: in that namespace, a plain `import trio` does reach the fake.
    res = subprocess.run(with_fake_ldconfig(f"{PYTHON} -c 'import trio'"),
                         capture_output=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr.decode()
    assert marker.read_text().split() == ["-p"]
