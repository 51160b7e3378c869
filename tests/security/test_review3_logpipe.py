"""issue 9 review 3, leftovers: PID 1's log channel to the parent.

PID 1's log lines go to the parent through a channel whose other end is in
the parent (pyinit/runtime/logpipe.py). It was a pipe. A workload granted
``CAP_SYS_PTRACE`` (which overrides PID 1's non-dumpability) can open
``/proc/1/fd/N`` of a pipe's write end *for reading*, and so take PID 1's
lines out of the pipe before the parent reads them (the ``workload.exited``
or ``signal.forwarded`` a supervisor above relies on), or copy the write end
with ``pidfd_getfd`` and reopen that. Fixed: the channel is a unix socket
pair, whose ``/proc/PID/fd/N`` cannot be opened (ENXIO), and PID 1's end has
its reading shut down, so a copy of it reads nothing. docs/security.md rule 5.

What a workload can still do with a copy is what PID 1 can: write lines,
which the parent passes on escaped. On an 8-bit terminal the UTF-8
continuation bytes 0x80-0x9f of ordinary characters (U+011B is c4 9b; 0x9b
is CSI) are C1 controls, and U+202E reorders what a UTF-8 terminal shows:
every byte outside ASCII is passed on as ``\\xNN``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from pyinit.oci.seccomp_default import default_profile
from tests.conftest import PYINIT
from tests.integration.test_run import edit
from tests.security.conftest import attack_bundle


def _ptrace(cfg: dict[str, Any]) -> None:
    for kind in ("bounding", "effective", "permitted"):
        cfg["process"]["capabilities"][kind].append("CAP_SYS_PTRACE")
    # The profile pyinit spec writes for these capabilities: pidfd_getfd allowed.
    cfg["linux"]["seccomp"] = default_profile(cfg["process"]["capabilities"]["bounding"])


def _run(bundle: Path, *extra: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([PYINIT, "run", "--bundle", str(bundle), *extra],
                          capture_output=True, timeout=60, check=False,
                          stdin=subprocess.DEVNULL)


def _run_once_ready(bundle: Path) -> subprocess.CompletedProcess[bytes]:
    """``pyinit run`` of a workload that starts with ``read go``: "go" is typed once
    the supervisor has logged ``supervisor.ready``. By then PID 1 has closed its
    sync channel to the parent (it is there until the workload's exec), so the only
    channel left to the parent is its log."""
    argv = [PYINIT, "run", "--bundle", str(bundle), "--log-format", "json",
            "--log-level", "debug"]
    with subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as proc:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if line.startswith(b"{") and json.loads(line)["event"] == "supervisor.ready":
                break
        out, err = proc.communicate(b"go\n", timeout=60)
    return subprocess.CompletedProcess(argv, proc.returncode, out, b"".join(seen) + err)


def _events(err: bytes) -> list[str]:
    return [json.loads(line)["event"] for line in err.decode().splitlines()
            if line.startswith("{")]


def test_pid1s_log_channel_cannot_be_opened_for_reading(tmp_path: Path,
                                                        helpers: dict[str, Path]) -> None:
    bundle = attack_bundle(tmp_path / "b", "read go; openr /proc/1/fd/*", helpers)
    edit(bundle, _ptrace)
    res = _run_once_ready(bundle)
    assert res.returncode == 0, res.stderr
    # One line per pipe or socket PID 1 holds: the log and trio's four sockets.
    assert res.stdout.decode().splitlines() == ["socket: ENXIO"] * 5, res.stdout
    assert _events(res.stderr)[-2:] == ["workload.exited", "pyinit.exit"], res.stderr


# A forged line: an ordinary-looking U+011B (c4 9b) then "2J", U+202E, a lone
# 0x9b (no UTF-8), an OSC title; colours are kept.
FORGED = b"forged \xc4\x9b2J \xe2\x80\xae \x9b \x1b]0;t\x07\x1b[31mred"
SHOWN = b"forged \\xc4\\x9b2J \\xe2\\x80\\xae \\x9b \\x1b]0;t\\x07\x1b[31mred"


def test_a_copy_of_pid1s_end_reads_nothing_and_writes_ascii(tmp_path: Path,
                                                            helpers: dict[str, Path]) -> None:
    forged = "".join(f"\\{b:03o}" for b in FORGED + b"\n")
    bundle = attack_bundle(tmp_path / "b", f"read go; printf '{forged}' | getfd", helpers)
    edit(bundle, _ptrace)
    res = _run_once_ready(bundle)
    assert res.returncode == 0, res.stderr
    assert res.stdout.decode().splitlines() == [
        "kind: socket", "reopen: ENXIO", "read: eof", f"write: {len(FORGED) + 1}"]
    assert [line for line in res.stderr.splitlines() if line.startswith(b"forged")] == \
        [SHOWN], res.stderr


def test_pid1s_own_non_ascii_reaches_the_caller_as_ascii(tmp_path: Path) -> None:
    # PID 1's console format writes a destination as it is: U+011B, raw.
    bundle = attack_bundle(tmp_path / "b", "true", {})
    edit(bundle, lambda c: c["mounts"].append(
        {"destination": "/d\u011b", "type": "tmpfs", "source": "tmpfs"}))
    res = _run(bundle, "--log-format", "console", "--log-level", "debug")
    assert res.returncode == 0, res.stderr
    assert [b for b in res.stderr if b > 0x7f] == []
    assert b"/d\\xc4\\x9b" in res.stderr, res.stderr
