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

import pytest

from tests.conftest import PYINIT, _processes_with, event, events
from tests.integration.test_run import _one_line, edit, fields, run_bundle
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


# ------------------------------------------------------------------------------------------
# startContainer hooks run from the workload's own process, after PID 1's
# lock-down and just before the workload's exec (runtime/starthooks.py).

def test_start_container_hook_has_the_workloads_uid_and_no_more_capabilities(
        tmp_path: Path, helpers: dict[str, Path]) -> None:
    probe = ("grep -E '^(Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|"
             "Seccomp):' /proc/self/status")
    bundle = attack_bundle(tmp_path, probe, helpers)

    def change(cfg: dict[str, Any]) -> None:
        cfg["process"]["user"] = {"uid": 1000, "gid": 1000}
        # Kept across the exec to uid 1000: CAP_KILL, as an ambient capability.
        for kind in ("inheritable", "ambient"):
            cfg["process"]["capabilities"][kind] = ["CAP_KILL"]
        cfg["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", probe]}]}
    edit(bundle, change)
    res = run_bundle(bundle, "--log-format", "json", "--log-level", "debug")
    assert res.returncode == 0, res.stderr
    workload = res.stdout.splitlines()
    assert workload == [
        "Uid:\t1000\t1000\t1000\t1000", "Gid:\t1000\t1000\t1000\t1000", "Groups:\t ",
        "CapInh:\t0000000000000020", "CapPrm:\t0000000000000020", "CapEff:\t0000000000000020",
        "CapBnd:\t0000000020000420", "CapAmb:\t0000000000000020", "NoNewPrivs:\t1",
        "Seccomp:\t2"]
    assert _hook_lines(res.stderr) == workload
    # No timeout in the config: the default one applies.
    assert [fields(ev) for ev in events(res.stderr) if ev.get("event") == "command.started"] \
        == [{"event": "command.started", "level": "debug", "argv": ["sh", "-c", probe],
             "timeout_s": 60.0, "kind": "startContainer"}]


def test_a_failing_start_container_hook_fails_the_container(tmp_path: Path,
                                                            helpers: dict[str, Path]) -> None:
    poststart = tmp_path / "poststart-ran"
    bundle = attack_bundle(tmp_path / "startfail", "echo should-not-run", helpers)
    edit(bundle, lambda c: c.update(hooks={
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 4"]}],
        "poststart": [{"path": "/bin/sh", "args": ["sh", "-c", f"echo > {poststart}"]}]}))
    res = run_bundle(bundle, "--log-format", "json")
    assert _one_line(res) == ("pyinit: hooks.startContainer[0]: hook: 'sh -c echo nope >&2; "
                              "exit 4' exited 4; last output: stderr: nope")
    assert fields(event(res.stderr, "hook.failed")) == {
        "event": "hook.failed", "level": "error", "kind": "startContainer",
        "where": "hooks.startContainer[0]",
        "reason": "'sh -c echo nope >&2; exit 4' exited 4; last output: stderr: nope"}
    assert res.stdout == ""
    assert not poststart.exists()  # the workload never started


def test_a_start_container_hooks_timeout_fails_the_container(tmp_path: Path,
                                                             helpers: dict[str, Path]) -> None:
    script = "sleep 1000 & echo started; exec sleep 999"
    bundle = attack_bundle(tmp_path, "echo should-not-run", helpers)
    edit(bundle, _hook(script, timeout=1))
    res = run_bundle(bundle)
    assert _one_line(res) == (f"pyinit: hooks.startContainer[0]: hook: 'sh -c {script}' was "
                              "killed after its timeout of 1s; last output: stdout: started")
    assert res.stdout == ""


@pytest.mark.parametrize(("hook", "reason"), [
    ({"path": "/bin/nothing-here"}, "cannot start /bin/nothing-here: No such file or directory"),
    ({"path": "/bin/sh", "cwd": "/etc/passwd"},
     "cannot enter its cwd /etc/passwd: Not a directory"),
], ids=["path", "cwd"])
def test_a_start_container_hook_that_cannot_start_fails_the_container(
        tmp_path: Path, helpers: dict[str, Path], hook: dict[str, Any], reason: str) -> None:
    bundle = attack_bundle(tmp_path, "echo should-not-run", helpers)
    (bundle / "rootfs" / "etc").mkdir(exist_ok=True)
    (bundle / "rootfs" / "etc" / "passwd").write_text("root:x:0:0::/:/bin/sh\n")
    edit(bundle, lambda c: c.update(hooks={"startContainer": [hook]}))
    res = run_bundle(bundle)
    assert _one_line(res) == f"pyinit: hooks.startContainer[0]: command: {reason}"
    assert res.stdout == ""
