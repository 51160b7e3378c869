"""issue 9 review: PID 1 runs without the workload's seccomp filter.

The filter is loaded in the workload's process just before its exec; the
container's PID 1 (pyinit, which stays to reap and forward signals) never
loads it. A workload granted ``CAP_SYS_PTRACE`` (and the default profile
allows ``ptrace`` itself, as moby's does) attaches to PID 1 and has it make
the calls its own filter refuses: ``socket(AF_VSOCK)`` and ``keyctl`` here;
``bpf``, ``io_uring_setup``, ``userfaultfd`` or ``perf_event_open`` the same
way. Under runc or crun there is no such process: the runtime's init
*becomes* the workload, and an init inside the container (tini, catatonit)
is exec'd under the filter. The process9 hardening (PID 1 takes the
workload's uid, keeps CAP_KILL, not dumpable) does not change this: without
a user namespace, CAP_SYS_PTRACE in it is enough to attach.

The expectation below is the fix "PID 1 loads the workload's filter too,
once its own set-up is done"; a fix that makes PID 1 unreachable instead
changes the expected output to ``attach: EPERM``.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_run import PYINIT, edit, run_bundle
from tests.security.conftest import attack_bundle

pytestmark = pytest.mark.skipif(os.uname().machine != "x86_64",
                                reason="the helper injects calls with x86_64 registers")


def _grant_ptrace(cfg: dict[str, Any]) -> None:
    for kind in ("bounding", "effective", "permitted"):
        cfg["process"]["capabilities"][kind].append("CAP_SYS_PTRACE")


def test_pid1_is_no_way_around_the_seccomp_filter(tmp_path: Path,
                                                  helpers: dict[str, Path]) -> None:
    bundle = attack_bundle(tmp_path, "inject", helpers)
    edit(bundle, _grant_ptrace)
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    assert res.stdout == ("self socket(AF_VSOCK): EPERM\nself keyctl: EPERM\n"
                          "pid1 socket(AF_VSOCK): EPERM\npid1 keyctl: EPERM\n")


# ------------------------------------------------------------------------------------------
# A startContainer hook is the image's code. It runs as the workload, with
# the workload's capabilities, and its process group is killed when it
# exits; but a child that calls setsid() leaves the group (hooks.py says
# so), and the hook itself decides how long it runs. PID 1 used to run the
# hooks during its set-up, with everything it started with (every
# capability, the host's uid 0): a child with CAP_SYS_PTRACE attached to
# PID 1 and made it run a call the workload could never make. Now the
# workload's own process runs them after PID 1's lock-down
# (runtime/starthooks.py). setpriority(-20) stands for any such call (it
# needs CAP_SYS_NICE); the workload then reads PID 1's nice value.
_HOOK = ("mkfifo /dev/shm/done; setsid sh -c '/bin/inject nice > /dev/shm/inj; "
         "echo > /dev/shm/done' </dev/null >/dev/null 2>&1 & read x < /dev/shm/done;"
         " cat /dev/shm/inj")


def test_a_hooks_escaped_child_cannot_use_pid1(tmp_path: Path,
                                               helpers: dict[str, Path]) -> None:
    bundle = attack_bundle(tmp_path, "echo pid1-nice=$(cut -d' ' -f19 /proc/1/stat)", helpers)

    def change(cfg: dict[str, Any]) -> None:
        _grant_ptrace(cfg)
        cfg["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", _HOOK]}]}
    edit(bundle, change)
    # Before the fix this was a race with PID 1's set-up that the attack won
    # about 4 runs in 5: five rounds, and none may win, so one lucky round
    # cannot pass a pyinit that has regressed.
    for _ in range(5):
        res = run_bundle(bundle, "--log-format", "json")
        assert res.returncode == 0, res.stderr
        assert res.stdout == "pid1-nice=0\n", res.stderr[-3000:]


# ------------------------------------------------------------------------------------------
# PID 1 is pyinit, so its environment is the caller's: the workload gets only
# process.env, and hooks only their env (finding 8), but /proc/1/environ
# still holds every secret of the shell that ran `pyinit run`. Not dumpable
# keeps a workload without CAP_SYS_PTRACE out; one granted it reads them.
def test_pid1_environ_holds_no_caller_secret(tmp_path: Path, helpers: dict[str, Path]) -> None:
    secret = uuid.uuid4().hex
    # The secret is not there, the block is still readable (so the count is no
    # mere failure to read), and it holds nothing but NULs.
    bundle = attack_bundle(tmp_path, "tr '\\0' '\\n' < /proc/1/environ | grep -c "
                           f"{secret}; head -c 1 /proc/1/environ | tr '\\0' Z; echo; "
                           "tr -d '\\0' < /proc/1/environ | wc -c", helpers)
    edit(bundle, _grant_ptrace)
    res = subprocess.run([PYINIT, "run", "--bundle", str(bundle)], capture_output=True,
                         text=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
                         env={**os.environ, "HOST_SECRET": secret})
    assert res.stdout == "0\nZ\n0\n", res.stderr
