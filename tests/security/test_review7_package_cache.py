"""Issue 12 review 7: the default cache (pyinit's package directory) against a
sandbox that tries to win back write access to the package it sees read-only.

docs/security.md rule 9: a sandbox not given pyinit's package to write cannot
write its cache either. Here the sandbox runs as root, without a user
namespace: its workload is uid 0, the *owner* of the package (as of a root
install), so the only thing between it and the cache is the read-only mount
and the capabilities it lacks. It tries to get them back in a user namespace
of its own: mapping root there needs ``CAP_SETFCAP`` (Linux 5.12), which it
does not hold, so ``unshare -r`` fails; unmapped, its ``execve`` clears every
capability, so the remount is refused; the write hits the read-only mount.
The next start loads the owner's program, not the planted one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.security.test_review6_cache_written_by_the_sandbox import (
    MKDIR,
    allow_all,
    cached,
    fill,
    install,
    start,
)

pytestmark = pytest.mark.root


def test_a_root_sandbox_cannot_regain_write_of_its_package(tmp_path: Path) -> None:
    package = install(tmp_path)
    program, _ = fill(package)
    stored = program.read_bytes()
    forged = allow_all(program)
    attack = start(package, "exec 2>&1; unshare -Urm true; echo map=$?; "
                   "unshare -Um sh -c '"
                   "grep CapEff /proc/self/status; "
                   f"mount -o remount,bind,rw {package}; echo mount=$?; "
                   f"cat {forged} > {program}; echo write=$?'")
    assert attack.stdout.splitlines() == [
        "unshare: write failed /proc/self/uid_map: Operation not permitted", "map=1",
        "CapEff:\t0000000000000000",
        f"mount: {package}: must be superuser to use mount.",
        "       dmesg(1) may have more information after failed mount system call.",
        "mount=32",
        f"sh: 1: cannot create {program}: Read-only file system", "write=2"]
    assert cached(start(package, MKDIR)) == ("rc=1\n", True, "cache")
    assert program.read_bytes() == stored
