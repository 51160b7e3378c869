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

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pyinit.container import PROC_FD_MIN
from tests.conftest import PYINIT
from tests.integration.test_run import edit
from tests.security.conftest import attack_bundle

MARK = "written-by-42"  # the script says $((6*7)): the log of its argv holds no MARK


def _ptrace_and_terminal(cfg: dict[str, Any]) -> None:
    for kind in ("bounding", "effective", "permitted"):
        cfg["process"]["capabilities"][kind].append("CAP_SYS_PTRACE")
    cfg["process"]["terminal"] = True


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


# ------------------------------------------------------------------------------------------
# What PID 1 holds once the supervisor runs, listed by a workload that can read
# /proc/1/fd (CAP_SYS_PTRACE): nothing of the caller's. 0, 1 and 2 are the
# container's /dev/null (or, in a sandbox without one, the log socket), the log
# is a unix socket whose peer is the parent's (made in the parent's network
# namespace, so not in the container's /proc/net/unix), and the rest is trio's and the
# supervisor's own, made inside the container: an epoll, two socket pairs in
# the container's network namespace, a signalfd. The workload lists them once
# the supervisor has logged ``supervisor.ready`` (the test then types "go").

LIST_FDS = ('read go; for f in /proc/1/fd/*; do echo "fd ${f##*/} $(readlink $f)"; done;'
            ' cat /proc/net/unix')
FD_LINE = re.compile(r"fd (\d+) (\S+)")


def _unix_peers() -> dict[str, str]:
    """socket:[inode] -> its peer's socket:[inode], for every connected unix socket of
    this network namespace (ss, from iproute2: tools/install.sh)."""
    out = subprocess.run(["ss", "-x", "-a", "-n", "-H"], capture_output=True, text=True,
                         check=True).stdout
    return {f"socket:[{f[5]}]": f"socket:[{f[7]}]"
            for f in (line.split() for line in out.splitlines()) if len(f) >= 8}


def _pid1_fds(argv: list[str]) -> tuple[dict[int, str], set[str], str]:
    """PID 1's fd -> target as the workload saw it, the sockets of the host's network
    namespace whose peer the parent holds, and the caller's stderr."""
    with subprocess.Popen([*argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stderr is not None and proc.stdin is not None
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if line.startswith("{") and json.loads(line)["event"] == "supervisor.ready":
                break
        held = {os.readlink(f"/proc/{proc.pid}/fd/{fd}")
                for fd in os.listdir(f"/proc/{proc.pid}/fd")}
        parent = {sock for sock, peer in _unix_peers().items() if peer in held}
        out, err = proc.communicate("go\n", timeout=60)
    assert proc.returncode == 0, "".join(seen) + err
    out = out.replace("\r\n", "\n")
    fds = {int(m.group(1)): m.group(2) for m in map(FD_LINE.fullmatch, out.splitlines()) if m}
    # /proc/net/unix of the container's network namespace: Num RefCount Protocol
    # Flags Type St Inode [Path]
    unix = {f"socket:[{line.split()[6]}]" for line in out.splitlines()[1:]
            if len(line.split()) >= 7 and line.split()[6].isdigit()}
    return ({fd: "socket in the container" if target in unix else target
             for fd, target in fds.items()}, parent, "".join(seen) + err)


def _expected(fds: dict[int, str], parent: set[str], devnull: bool = True) -> dict[int, str]:
    """What PID 1 must hold, given what it does hold (the log socket's number and
    inode vary): stdio on /dev/null (or on the log socket), the log socket, the rest."""
    logs = {target for fd, target in fds.items() if target.startswith("socket:")}
    assert len(logs) == 1, fds
    (log,) = logs
    # The log socket is one whose peer the parent holds.
    assert log in parent, (fds, parent)
    log_fd = max(fd for fd, target in fds.items() if target == log)
    stdio = "/dev/null" if devnull else log
    # The supervisor's own, in the order it opens them, at the lowest numbers
    # the log socket leaves free.
    rest = ["anon_inode:[eventpoll]", *["socket in the container"] * 4,
            "anon_inode:[signalfd]"]
    free = [fd for fd in range(3, 4 + len(rest)) if fd != log_fd][:len(rest)]
    return {0: stdio, 1: stdio, 2: stdio, **dict(zip(free, rest, strict=True)), log_fd: log,
            # The container's own procfs, opened on the mount PID 1 made: its
            # shutdown lists who is left through it (pyinit/proc.py).
            PROC_FD_MIN: "/proc"}


@pytest.mark.parametrize("terminal", [False, True], ids=["stdio", "terminal"])
def test_pid1_holds_nothing_of_the_callers_in_run(tmp_path: Path, terminal: bool) -> None:
    bundle = attack_bundle(tmp_path / "b", LIST_FDS, {})

    def change(cfg: dict[str, Any]) -> None:
        _ptrace_and_terminal(cfg)
        cfg["process"]["terminal"] = terminal

    edit(bundle, change)
    fds, parent, err = _pid1_fds([PYINIT, "run", "--bundle", str(bundle), "--log-level",
                                  "debug", "--log-format", "json"])
    assert fds == _expected(fds, parent), err


@pytest.mark.parametrize("dev", [True, False], ids=["dev", "no-dev"])
def test_pid1_holds_nothing_of_the_callers_in_sandbox(dev: bool) -> None:
    # Without --dev the sandbox has no /dev/null: PID 1's stdio is its log socket.
    layout = (["--ro-bind", "/", "/", "--dev", "/dev"] if dev else
              ["--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin",
               "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64"])
    fds, parent, err = _pid1_fds([PYINIT, "sandbox", "--log-level", "debug", "--log-format",
                                  "json", *layout, "--unshare-pid", "--unshare-net", "--proc",
                                  "/proc", "--cap-add", "CAP_SYS_PTRACE",
                                  "--", "sh", "-c", LIST_FDS])
    assert fds == _expected(fds, parent, devnull=dev), err


# What a workload with CAP_SYS_PTRACE can write into PID 1's log (forged lines, shown
# escaped): tests/security/test_review3_logpipe.py, through pidfd_getfd, since the
# channel's /proc/1/fd/N no longer opens.
