"""issue 9 review 2: what PID 1 still holds when the workload's stdio is a pty.

docs (runtime/hardening.py): PID 1 keeps 0, 1, 2 and the log sink, "the
caller's stdio, which the workload shares by design". With
``process.terminal`` the workload does not share them: its stdio is the
container's pty, and the caller's stdout and stderr (a host file here, a
log file or journald's socket in real life) are reachable only through
PID 1. A workload granted ``CAP_SYS_PTRACE`` (which overrides PID 1's
non-dumpability) reopens them through ``/proc/1/fd``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PYINIT
from tests.integration.test_run import edit
from tests.security.conftest import attack_bundle

MARK = "written-by-42"  # the script says $((6*7)): the log of its argv holds no MARK


def _ptrace_and_terminal(cfg: dict[str, Any]) -> None:
    for kind in ("bounding", "effective", "permitted"):
        cfg["process"]["capabilities"][kind].append("CAP_SYS_PTRACE")
    cfg["process"]["terminal"] = True


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="issue 9 review2: with process.terminal PID 1 keeps "
                   "the caller's stdout/stderr (fds 1, 2 and the log sink), which the workload "
                   "does not share; CAP_SYS_PTRACE reopens them through /proc/1/fd")
def test_terminal_workload_cannot_reach_the_callers_stderr(tmp_path: Path) -> None:
    bundle = attack_bundle(tmp_path / "b", "tty; echo written-by-$((6*7)) >> /proc/1/fd/2;"
                           " echo written-by-$((6*7)) >> /proc/1/fd/1; echo done", {})
    edit(bundle, _ptrace_and_terminal)
    err = tmp_path / "caller-stderr"
    with err.open("a") as stderr:  # O_APPEND: the log cannot overwrite a stolen write
        res = subprocess.run([PYINIT, "run", "--bundle", str(bundle)], stdout=subprocess.PIPE,
                             stderr=stderr, text=True, timeout=60, check=False,
                             stdin=subprocess.DEVNULL)
    caller_err = err.read_text()
    # The workload ran on its pty (the relay copies it to the caller's stdout).
    assert res.returncode == 0, caller_err
    assert MARK not in caller_err
    assert res.stdout.replace("\r\n", "\n") == "/dev/pts/0\ndone\n"
