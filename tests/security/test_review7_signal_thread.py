"""Issue 12 review 7: the supervisor's signal thread (PID 1 forwards from a thread).

Capabilities, no_new_privs, the seccomp filter and the bounding set are per
*thread*: a thread that PID 1 started before its lock-down would keep what
the main thread gave up, and a workload granted ``CAP_SYS_PTRACE`` attaches
to a thread as well as to a process. And the thread is a task of the
container's pids cgroup: when the workload has taken every task the limit
allows, the kernel refuses PID 1 its thread, and PID 1 must forward anyway.

Each test: the real ``pyinit run`` on a busybox root, the workload doing the
attack, the outcome asserted whole.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyinit import cgroups
from tests.helpers.running import Pyinit
from tests.integration.test_run import edit, make_bundle

pytestmark = pytest.mark.root

STATUS = "^(Name|Uid|Gid|Groups|NoNewPrivs|Seccomp|Seccomp_filters|Cap[A-Za-z]+):"
# The workload waits for SIGUSR1, which the test sends once the supervisor runs:
# forwarded by the signal thread, so the thread exists when the workload looks.
LOOK = ("exec 2>/dev/null; "
        f"trap 'ls /proc/1/task | wc -l; grep -hE \"{STATUS}\" /proc/1/task/*/status; "
        "kill $pid; exit 0' USR1; "
        "sleep 1000 & pid=$!; echo ready; while :; do wait $pid; done")


def test_every_task_of_pid1_is_locked_down(tmp_path: Path) -> None:
    """PID 1 and its signal thread: the workload's ids, CAP_KILL alone (effective,
    permitted, bounding), nothing inheritable or ambient, no_new_privs and the
    workload's filter, each of the two tasks the same."""
    bundle = make_bundle(tmp_path, LOOK)

    def user(cfg: dict[str, object]) -> None:
        cfg["process"]["user"] = {"uid": 1000, "gid": 1000}  # type: ignore[index]
    edit(bundle, user)
    p = Pyinit(["run", "--bundle", str(bundle), "--log-level", "debug"], "subreaper",
               hold=False)
    try:
        assert p.line("ready")
        p.event("supervisor.ready")
        os.kill(p.proc.pid, signal.SIGUSR1)
        code = p.finish()
    finally:
        p.kill()
    assert code == 0
    task = ["Name:\tpyinit", "Uid:\t1000\t1000\t1000\t1000", "Gid:\t1000\t1000\t1000\t1000",
            "Groups:", "CapInh:\t0000000000000000", "CapPrm:\t0000000000000020",
            "CapEff:\t0000000000000020", "CapBnd:\t0000000000000020",
            "CapAmb:\t0000000000000000", "NoNewPrivs:\t1", "Seccomp:\t2",
            "Seccomp_filters:\t2"]
    assert p.lines == ["ready", "2", *task, *task]
    assert "supervisor.no_signal_thread" not in [e["event"] for e in p.events]


@pytest.fixture
def top() -> Iterator[str]:
    """A unique top-level cgroup; no directory of it may be left in any hierarchy."""
    name = f"/pyinit-review7-{uuid.uuid4().hex[:12]}"
    yield name
    host = cgroups.detect()
    left = [h.directory(name) for h in host.hierarchies if os.path.exists(h.directory(name))]
    for directory in sorted(left, reverse=True):
        for sub, _dirs, _files in sorted(os.walk(directory), reverse=True):
            os.rmdir(sub)
    assert left == [], f"cgroup directories left behind: {left}"


def test_a_full_pids_cgroup_leaves_pid1_forwarding(tmp_path: Path, top: str) -> None:
    """``pids.limit`` 2: PID 1 and the workload take both tasks, so the kernel refuses
    PID 1's signal thread (EAGAIN). PID 1 says so and trio forwards: the caller's
    SIGUSR1 still reaches the workload (which dies of it: 128 + 10)."""
    bundle = make_bundle(tmp_path, "echo ready; exec sleep 1000")

    def limit(cfg: dict[str, object]) -> None:
        cfg["linux"]["cgroupsPath"] = f"{top}/c"  # type: ignore[index]
        cfg["linux"]["resources"] = {"pids": {"limit": 2}}  # type: ignore[index]
    edit(bundle, limit)
    p = Pyinit(["run", "--bundle", str(bundle), "--log-level", "debug"], "subreaper",
               hold=False)
    try:
        assert p.line("ready")
        refused = p.event("supervisor.no_signal_thread")
        os.kill(p.proc.pid, signal.SIGUSR1)
        code = p.finish()
    finally:
        p.kill()
    assert code == 128 + signal.SIGUSR1
    assert refused == {"event": "supervisor.no_signal_thread", "level": "warning",
                       "error": "can't start new thread",
                       "detail": "trio reads the signals instead: each is forwarded about "
                                 "100 us later"}
    workload = next(e["pid"] for e in p.events if e["event"] == "workload.spawned")
    assert [e for e in p.events if e["event"].startswith("signal.")] == [
        {"event": "signal.forwarded", "level": "info", "signal": "SIGUSR1",
         "target": workload, "target_kind": "workload", "delivered": True,
         "sender_pid": 0, "early": False}]


TGKILL_SH = ("exec 2>/dev/null; trap 'echo usr1' USR1; "
             "trap 'echo usr2; kill $pid; wait $pid; exit 0' USR2; "
             "sleep 1000 & pid=$!; echo ready; while :; do wait $pid; done")


@pytest.mark.xfail(strict=True, reason="issue 12 review 7: a signal directed at PID 1's main "
                   "thread (tgkill) stays pending there for ever: only the signal thread reads "
                   "the signalfd, and a signalfd reads the reader's own and the process's "
                   "signals, never another thread's; main forwarded it")
def test_a_signal_sent_to_pid1s_main_thread_is_forwarded() -> None:
    """``tgkill(pyinit, pyinit, SIGUSR1)``, then ``kill(pyinit, SIGUSR2)``: both are
    pyinit's to forward. The kernel hands a thread its own pending signals before
    the process's, and the workload takes its pending ones lowest number first, so
    whoever reads both forwards USR1 first and the workload says usr1, then usr2."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    p = Pyinit(["--log-level", "debug", "--", "sh", "-c", TGKILL_SH], "subreaper", hold=False)
    try:
        assert p.line("ready")
        p.event("supervisor.ready")
        assert libc.tgkill(p.pid, p.pid, signal.SIGUSR1) == 0, ctypes.get_errno()
        os.kill(p.pid, signal.SIGUSR2)
        code = p.finish()
    finally:
        p.kill()
    assert code == 0
    assert p.lines == ["ready", "usr1", "usr2"]  # HEAD: ["ready", "usr2"]
    assert [e["signal"] for e in p.events if e["event"] == "signal.forwarded"] == [
        "SIGUSR1", "SIGUSR2"]
