"""``pyinit run``: the workload first, trio from memory (issue 12).

The bundles' roots are busybox-static: no Python in them. Without commands
or hooks, PID 1 reads trio into memory before the pivot, starts the workload
right after the setup, and imports trio from memory while the early phase
forwards signals and reaps; with a hook, trio is imported before the setup,
as it needs it. Either way every signal is forwarded, every zombie reaped,
and no descriptor of the host reaches the container.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pyinit.container import PROC_FD_MIN
from tests.conftest import PYINIT, events
from tests.integration.test_run import edit, fields, make_bundle, run_bundle

pytestmark = pytest.mark.root

TRAPS = ("trap 'echo usr1' USR1; trap 'echo hup' HUP; trap 'echo term; exit 7' TERM; "
         "echo ready; while :; do sleep 0.01; done")


def _with_hook(cfg: dict[str, Any]) -> None:
    cfg["hooks"] = {"createContainer": [{"path": "/bin/true"}]}


def _signals_one_by_one(bundle: Path) -> tuple[list[str], int, str]:
    proc = subprocess.Popen([PYINIT, "run", "--bundle", str(bundle), "--log-level", "debug",
                             "--log-format", "json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    lines = [proc.stdout.readline().strip()]
    for sig, answer in ((signal.SIGUSR1, "usr1"), (signal.SIGHUP, "hup")):
        proc.send_signal(sig)
        lines.append(proc.stdout.readline().strip())
        assert lines[-1] == answer, lines
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    return [*lines, *out.split()], proc.returncode, err


@pytest.mark.parametrize("hook", [False, True], ids=["from-memory", "with-a-hook"])
def test_every_signal_is_forwarded(tmp_path: Path, hook: bool) -> None:
    bundle = make_bundle(tmp_path, TRAPS)
    if hook:
        edit(bundle, _with_hook)
    lines, code, err = _signals_one_by_one(bundle)
    assert (lines, code) == (["ready", "usr1", "hup", "term"], 7), err
    logged = events(err)
    forwarded = [(e["signal"], e["delivered"]) for e in logged if e["event"] == "signal.forwarded"]
    assert forwarded == [("SIGUSR1", True), ("SIGHUP", True), ("SIGTERM", True)]
    loaded = next(e for e in logged if e["event"] == "runtime.loaded")
    assert loaded["source"] == ("files" if hook else "memory")


@pytest.mark.parametrize("hook", [False, True], ids=["from-memory", "with-a-hook"])
def test_every_zombie_is_reaped(tmp_path: Path, hook: bool) -> None:
    # Three orphans for PID 1; the workload exits without waiting for them.
    bundle = make_bundle(tmp_path, "(sleep 0 &); (sleep 0 &); (sleep 0 &); exit 4")
    if hook:
        edit(bundle, _with_hook)
    res = run_bundle(bundle, "--log-format", "json")
    assert res.returncode == 4, res.stderr
    logged = events(res.stderr)
    assert [e["orphans_reaped"] for e in logged if e["event"] == "pyinit.exit"] == [3]
    bursts = [e for e in logged if e["event"] == "orphans.reaped"]
    assert sum(e["count"] for e in bursts) == 3
    assert sum(last - first + 1 for e in bursts for first, last in e["pids"]) == 3


def test_the_workload_and_pid1_hold_no_host_descriptor(tmp_path: Path) -> None:
    # The workload's own descriptors, and PID 1's as a workload allowed to
    # ptrace it sees them (CAP_SYS_PTRACE, same uid, no user namespace).
    bundle = make_bundle(tmp_path, "ls /proc/self/fd; echo --; "
                                   "for f in /proc/1/fd/*; do echo $f $(readlink $f); done")
    edit(bundle, lambda cfg: [cfg["process"]["capabilities"][kind].append("CAP_SYS_PTRACE")
                              for kind in ("bounding", "effective", "permitted")])
    proc = subprocess.Popen([PYINIT, "run", "--bundle", str(bundle), "--log-format", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    assert proc.stdout is not None and proc.stderr is not None
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    own, pid1 = out.split("--\n")
    assert own.split() == ["0", "1", "2", "3"]  # 3: the directory ls reads
    # PID 1: the container's /dev/null as 0, 1 and 2, and its log socket to the
    # parent: none of the caller's pipes, no pipe at all. Nothing of the host, nothing else
    # (tests/security/test_review2_terminal.py checks the socket's peer is the parent's).
    # An fd PID 1 closed between the shell's glob and its readlink shows no
    # target: one trio opened and closed while starting, after the pivot, so
    # necessarily the container's own. Every fd that stays is checked below.
    listed = [line.partition(" ") for line in pid1.splitlines()]
    held = {fd: target for fd, _, target in listed if target}
    # The workload lists PID 1's descriptors at a moment nobody holds still:
    # trio may or may not have started yet, so its epoll, sockets and signalfd
    # may be there (tests/security/test_review2_terminal.py lists them all
    # after ``supervisor.ready``, exactly). What holds at every moment: 0, 1
    # and 2 are the container's /dev/null, no pipe is there (the log is a
    # socket, the highest of the descriptors PID 1 had before trio), the
    # container's own procfs (its shutdown reads who is left through it) is
    # at PROC_FD_MIN, and nothing else names a file, a host pipe or a directory.
    assert held[f"/proc/1/fd/{PROC_FD_MIN}"] == "/proc", held
    assert {fd: held[fd] for fd in ("/proc/1/fd/0", "/proc/1/fd/1", "/proc/1/fd/2")} == {
        "/proc/1/fd/0": "/dev/null", "/proc/1/fd/1": "/dev/null", "/proc/1/fd/2": "/dev/null"}
    assert [target for target in held.values() if target.startswith("pipe:[")] == [], held
    trio_kinds = ("anon_inode:[eventpoll]", "anon_inode:[signalfd]")
    rest = {fd: target for fd, target in held.items()
            if target != "/dev/null" and fd != f"/proc/1/fd/{PROC_FD_MIN}"}
    assert {fd: target for fd, target in rest.items()
            if target not in trio_kinds and not target.startswith("socket:[")} == {}, held


def test_a_quick_workloads_exit_is_reported(tmp_path: Path) -> None:
    # It may well exit before trio is loaded: reaped and reported all the same.
    bundle = make_bundle(tmp_path, "exit 5")
    res = run_bundle(bundle, "--log-level", "debug", "--log-format", "json")
    assert res.returncode == 5, res.stderr
    logged = events(res.stderr)
    exited = [fields(e) for e in logged if e["event"] == "workload.exited"]
    assert [{k: v for k, v in e.items() if k not in ("pid", "runtime_ms")} for e in exited] == [
        {"event": "workload.exited", "level": "info", "code": 5, "signal": None}]
    assert [e["source"] for e in logged if e["event"] == "runtime.loaded"] == ["memory"]
    assert json.dumps([e["code"] for e in logged if e["event"] == "pyinit.exit"]) == "[5]"
