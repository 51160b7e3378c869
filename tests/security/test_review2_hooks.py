"""issue 9 review 2: startContainer hooks run from the workload's process.

The hooks now run after PID 1's lock-down, in a *runner* forked from the
workload's process (runtime/starthooks.py). A hook's child that calls
``setsid()`` leaves the group the runner kills, and, when the runner exits,
goes to the nearest child subreaper: with a PID namespace that is the
container's PID 1, which kills it at shutdown.
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path
from typing import Any

from tests.conftest import events
from tests.integration.test_run import edit, run_bundle
from tests.security.conftest import attack_bundle

MARK = "987654"  # sleep's argument: how the escaped child is recognised on the host


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes() == f"sleep\0{MARK}\0".encode()
    except FileNotFoundError:
        return False


# ------------------------------------------------------------------------------------------
# Without a PID namespace, nobody in the container was a subreaper while the
# hooks ran (PID 1 became one only after spawn returned): the escaped child
# was reparented to the *host-side* pyinit run process. As root, the
# container's cgroup is emptied with SIGKILL when it is removed, and that
# alone ended it; rootless, without a cgroup, nothing would have. PID 1 is
# now a subreaper before the spawn (the next test says who adopts it).
# The child says its own pid (setsid may fork) before the hook exits.
_ESCAPING_HOOK = (f"setsid sh -c 'echo $$ > /dev/shm/e; exec sleep {MARK}' </dev/null"
                  " >/dev/null 2>&1 & while [ ! -s /dev/shm/e ]; do :; done;"
                  " mv /dev/shm/e /dev/shm/escaped")


def _run_escaping_hook(tmp_path: Path, script: str) -> tuple[list[str], bool]:
    """Run ``script`` as the workload after the escaping hook, without a PID
    namespace: its output's words, and whether the escaped child (whose pid
    is the first word) outlived the container. It never stays behind."""
    bundle = attack_bundle(tmp_path, script, {})

    def change(cfg: dict[str, Any]) -> None:
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"]
                                      if n["type"] != "pid"]
        cfg["hooks"] = {"startContainer": [{"path": "/bin/sh",
                                            "args": ["sh", "-c", _ESCAPING_HOOK]}]}
    edit(bundle, change)
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    words = res.stdout.split()
    pid = int(words[0])
    survived = _alive(pid)
    if survived:  # never leave it behind, whatever the verdict
        os.kill(pid, signal.SIGKILL)
    return words, survived


def test_a_hooks_escaped_child_does_not_outlive_the_container(tmp_path: Path) -> None:
    words, survived = _run_escaping_hook(tmp_path, "cat /dev/shm/escaped")
    assert len(words) == 1
    assert not survived, f"the hook's child {words[0]} outlived the container"


def test_a_hooks_escaped_child_is_adopted_inside_the_container(tmp_path: Path) -> None:
    # The same attack, and who adopts the child once the hook and its runner
    # are gone: the container's own pyinit (the workload's parent), a
    # subreaper from before the spawn, not the host-side `pyinit run`.
    words, survived = _run_escaping_hook(
        tmp_path, "e=$(cat /dev/shm/escaped); echo $e;"
        " [ $(cut -d' ' -f4 /proc/$e/stat) = $PPID ] && echo adopted-by-pid1"
        " || echo adopted-by-$(cut -d' ' -f4 /proc/$e/stat)")
    assert words[1:] == ["adopted-by-pid1"]
    assert not survived


# ------------------------------------------------------------------------------------------
# The runner is forked from the workload's process, which still holds the
# exec-status pipe to PID 1 and the log sink (the caller's stderr, which
# with process.terminal the workload does not otherwise have). A hook must
# inherit its three pipes and nothing else.
def test_a_hook_inherits_only_its_stdio(tmp_path: Path) -> None:
    # ls's own descriptors: the hook's three, and 3, ls's handle on the directory it lists
    bundle = attack_bundle(tmp_path, "true", {})

    def change(cfg: dict[str, Any]) -> None:
        cfg["process"]["terminal"] = True
        cfg["hooks"] = {"startContainer": [{"path": "/bin/ls",
                                            "args": ["ls", "-l", "/proc/self/fd/"]}]}
    edit(bundle, change)
    res = run_bundle(bundle, "--log-format", "json")
    assert res.returncode == 0, res.stderr
    listed = [ev["line"].split(None, 8)[8] for ev in events(res.stderr)
              if ev["event"] == "command.output" and ev["stream"] == "stdout"
              and ev["line"].startswith("l")]
    # (3 is gone by the time ls reads its link.)
    assert [re.sub(r"\[\d+\]", "[N]", line) for line in listed] == [
        "0 -> pipe:[N]", "1 -> pipe:[N]", "2 -> pipe:[N]", "3"]
