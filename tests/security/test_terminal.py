"""The terminal boundary: the workload must not type into the caller's shell (finding 4).

A shell on a pseudo-terminal runs ``pyinit run``, then reads the next line
typed at its terminal and echoes it. The workload, uid 65534 with no
capability, pushes a line into that terminal with TIOCSTI. If it shares the
caller's session, the shell reads the injected line instead of ours.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pexpect

from tests.conftest import PYINIT
from tests.integration.test_run import edit
from tests.security.conftest import attack_bundle


def _legacy_tiocsti() -> str:
    try:
        with open("/proc/sys/dev/tty/legacy_tiocsti") as fh:
            return fh.read().strip()
    except FileNotFoundError:  # kernels before 6.2 always allow it
        return "1"


# Run by the calling shell after pyinit: how many bytes wait in its
# terminal's input queue (FIONREAD works from any process group), and which
# process group owns the terminal's foreground.
PENDING = ("import fcntl, os, struct, termios; "
           "n = struct.unpack('i', fcntl.ioctl(0, termios.FIONREAD, bytes(4)))[0]; "
           "print('pending', n, 'foreground', os.tcgetpgrp(0) == os.getpgrp())")


def _in_a_shell_on_a_terminal(bundle: Path) -> tuple[str, str]:
    """(the helper's line, the shell's PENDING line) for ``pyinit run`` under a pty."""
    shell = (f"{shlex.quote(PYINIT)} run --bundle {shlex.quote(str(bundle))} 2>/dev/null;"
             f" {shlex.quote(sys.executable)} -c {shlex.quote(PENDING)}")
    child = pexpect.spawn("sh", ["-c", shell], timeout=60, encoding="utf-8")
    try:
        child.expect(r"(tiocsti: \w+)\r\n")
        pushed = child.match.group(1)
        child.expect(r"(pending \d+ foreground \w+)\r\n")
        after = child.match.group(1)
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    return pushed, after


def test_workload_cannot_type_into_the_callers_terminal(tmp_path: Path,
                                                        helpers: dict[str, Path]) -> None:
    # With legacy_tiocsti=0 TIOCSTI needs CAP_SYS_ADMIN anyway: the attack
    # would fail for a reason that is not pyinit's, so say so and stop.
    assert _legacy_tiocsti() == "1", "dev.tty.legacy_tiocsti=0: this host cannot show the attack"
    bundle = attack_bundle(tmp_path, "tiocsti 'echo INJECTED\n'", helpers)
    edit(bundle, lambda c: c["process"].update(user={"uid": 65534, "gid": 65534}))
    pushed, after = _in_a_shell_on_a_terminal(bundle)
    assert pushed == "tiocsti: EPERM"
    assert after.startswith("pending 0 ")  # nothing typed into the caller's shell


def test_the_caller_keeps_its_terminal(tmp_path: Path, helpers: dict[str, Path]) -> None:
    bundle = attack_bundle(tmp_path, "echo 'tiocsti: unused'", helpers)
    assert _in_a_shell_on_a_terminal(bundle) == ("tiocsti: unused", "pending 0 foreground True")
