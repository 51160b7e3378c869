"""issue 9 review: the default seccomp profile on every ABI a process can use.

The default profile (oci/seccomp_default.py, applied by ``pyinit spec`` and
by ``pyinit sandbox``) forbids ``socket(AF_VSOCK, ...)``, the socket that
talks to the hypervisor, with an argument rule on ``socket``. It lists
SCMP_ARCH_X86 and SCMP_ARCH_X32, so libseccomp applies that rule to i386's
direct ``socket`` too. But it also allows i386's multiplexer ``socketcall``
outright, whose arguments are in memory where no filter can read them: a
static binary that enters through ``int 0x80`` gets an AF_VSOCK socket.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.integration.test_run import run_bundle
from tests.integration.test_sandbox import sandbox
from tests.security.conftest import attack_bundle

pytestmark = pytest.mark.skipif(os.uname().machine != "x86_64",
                                reason="the helper makes i386 and x32 calls")

REFUSED = ("socket: EPERM\ni386 socket: EPERM\ni386 socketcall: EPERM\n"
           "x32 socket: EPERM\n")


def test_the_helper_gets_a_vsock_socket_without_a_filter(helpers: dict[str, Path]) -> None:
    # The host kernel has i386 emulation and AF_VSOCK (so the tests below
    # mean something), and no x32.
    out = subprocess.run([str(helpers["compat32"])], capture_output=True, text=True,
                         check=True).stdout
    assert out == ("socket: ok domain=40\ni386 socket: ok domain=40\n"
                   "i386 socketcall: ok domain=40\nx32 socket: ENOSYS\n")


def test_run_the_direct_socket_calls_are_refused(tmp_path: Path,
                                                 helpers: dict[str, Path]) -> None:
    # What holds: native and i386 socket(), and the x32 bit.
    bundle = attack_bundle(tmp_path, "compat32", helpers)
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[:2] + lines[3:] == ["socket: EPERM", "i386 socket: EPERM", "x32 socket: EPERM"]


def test_run_vsock_through_i386_socketcall_is_refused(tmp_path: Path,
                                                      helpers: dict[str, Path]) -> None:
    bundle = attack_bundle(tmp_path, "compat32", helpers)
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    assert res.stdout == REFUSED


def test_sandbox_vsock_through_i386_socketcall_is_refused(helpers: dict[str, Path]) -> None:
    res = sandbox("--ro-bind", str(helpers["compat32"].parent), "/h", "--", "/h/compat32")
    assert res.returncode == 0, res.stderr
    assert res.stdout == REFUSED
