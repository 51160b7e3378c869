"""startContainer hooks run the image's binaries: they are the container's side (finding 8).

A hook runs like the workload (its credentials, capabilities, no_new_privs),
sees only the ``env`` the config gives it, and nothing it starts outlives it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from pathlib import Path
from typing import Any

from tests.conftest import PYINIT, _processes_with, events
from tests.integration.test_run import edit, run_bundle
from tests.security.conftest import attack_bundle


def _hook(script: str, **extra: Any) -> Any:
    return lambda c: c.update(hooks={"startContainer": [
        {"path": "/bin/sh", "args": ["sh", "-c", script], **extra}]})


def _hook_lines(stderr: str) -> list[str]:
    return [ev["line"] for ev in events(stderr)
            if ev.get("event") == "command.output" and ev.get("kind") == "startContainer"]


def test_hook_does_not_see_the_callers_environment(tmp_path: Path,
                                                   helpers: dict[str, Path]) -> None:
    secret = uuid.uuid4().hex
    bundle = attack_bundle(tmp_path, "true", helpers)
    # The environment the hook was exec'd with (busybox's sh supplies a PATH
    # of its own when none is given, so $PATH would not say).
    edit(bundle, _hook("echo secret=$HOST_SECRET; echo env=$(tr '\\0' ' ' < /proc/$$/environ)"))
    res = subprocess.run([PYINIT, "run", "--bundle", str(bundle), "--log-format", "json"],
                         capture_output=True, text=True, timeout=60, check=False,
                         stdin=subprocess.DEVNULL, env={**os.environ, "HOST_SECRET": secret})
    assert res.returncode == 0, res.stderr
    assert secret not in res.stdout + res.stderr
    assert _hook_lines(res.stderr) == ["secret=", "env="]


def test_hook_gets_the_env_of_its_config(tmp_path: Path, helpers: dict[str, Path]) -> None:
    bundle = attack_bundle(tmp_path, "true", helpers)
    edit(bundle, _hook("echo secret=$HOST_SECRET; echo mine=$MINE", env=["MINE=given"]))
    res = subprocess.run([PYINIT, "run", "--bundle", str(bundle), "--log-format", "json"],
                         capture_output=True, text=True, timeout=60, check=False,
                         stdin=subprocess.DEVNULL, env={**os.environ, "HOST_SECRET": "x"})
    assert res.returncode == 0, res.stderr
    assert _hook_lines(res.stderr) == ["secret=", "mine=given"]


def test_hook_runs_with_the_workloads_privileges(tmp_path: Path,
                                                 helpers: dict[str, Path]) -> None:
    probe = "grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status"
    bundle = attack_bundle(tmp_path, probe, helpers)
    edit(bundle, _hook(probe))
    res = run_bundle(bundle, "--log-format", "json")
    assert res.returncode == 0, res.stderr
    workload = res.stdout.splitlines()
    assert workload == ["CapEff:\t0000000020000420", "CapBnd:\t0000000020000420",
                        "NoNewPrivs:\t1"]  # AUDIT_WRITE, KILL, NET_BIND_SERVICE
    assert _hook_lines(res.stderr) == workload


def test_hook_background_child_neither_hangs_nor_survives(
        tmp_path: Path, helpers: dict[str, Path], no_leftovers: str) -> None:
    bundle = attack_bundle(tmp_path, "echo workload-ran", helpers)
    edit(bundle, _hook("sleep 1000 & echo started"))
    proc = subprocess.Popen([PYINIT, "run", "--bundle", str(bundle)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=20)  # a guard against the hang, not a measure
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        for pid in _processes_with(no_leftovers):  # the sleep, if it outlived its PID 1
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.communicate()
        raise AssertionError("the setup hung on the hook's background child") from None
    assert proc.returncode == 0, err
    assert out == "workload-ran\n"
