"""issue 9 review: ``pyinit sandbox`` as root leaves /proc/sys writable.

The sandbox has no user namespace: started by root, its program runs as
the host's uid 0. Its fresh ``--proc`` gets none of the read-only paths a
container's /proc gets (``readonlyPaths``: /proc/sys, /proc/sysrq-trigger,
...; bubblewrap covers the same ones). A sysctl's permission check is its
file mode against the euid (``test_perm``): uid 0 needs no capability at
all, so dropping capabilities and setting no_new_privs (process9) does not
help, and the seccomp profile allows ``write``. ``kernel.core_pattern`` (or
``kernel.modprobe``, where the kernel has modules) set to
``|/proc/%P/root/...`` makes the host's kernel run a program of the
sandbox's as root; without ``--unshare-net`` the
``net.*`` sysctls are the host's own.

The helper only opens each file for writing and closes it: nothing is
written, and the test checks the values are unchanged.
"""

from __future__ import annotations

from pathlib import Path

from tests.integration.test_sandbox import sandbox

SYSCTLS = ["/proc/sys/kernel/core_pattern", "/proc/sys/vm/overcommit_memory",
           "/proc/sys/net/ipv4/ip_forward"]


def test_sandbox_program_cannot_open_host_sysctls_for_writing(
        helpers: dict[str, Path]) -> None:
    before = [Path(p).read_text() for p in SYSCTLS]
    res = sandbox("--ro-bind", str(helpers["openw"].parent), "/h", "--proc", "/proc", "--",
                  "/h/openw", *SYSCTLS)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "".join(f"{p}: EROFS\n" for p in SYSCTLS)
    assert [Path(p).read_text() for p in SYSCTLS] == before
