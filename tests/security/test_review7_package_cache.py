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

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, event
from tests.integration.test_rootless import RUNTIME, USER
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


# ----- rootless: a user's own venv, the user's own sandbox ------------------

PROFILE = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
    {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}


@pytest.fixture
def own_venv(tmp_path: Path) -> Iterator[tuple[Path, int, int]]:
    """A venv of the rootless user's own (pyinit and its runtime in it), 0755/0644,
    and the user's directory around it: (the venv's pyinit package, uid, gid)."""
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", USER], check=True)
    entry = pwd.getpwnam(USER)
    top = Path(tempfile.mkdtemp(prefix="pyinit-review7-"))
    top.chmod(0o755)
    venv = top / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    source_site = next((Path(sys.executable).parent.parent / "lib").glob(
        "python3*/site-packages"))
    for name in RUNTIME:
        src = ROOT / name if name == "pyinit" else source_site / name
        shutil.copytree(src, site / name, ignore=shutil.ignore_patterns("__pycache__", "_cache"))
    (top / "profile.json").write_text(json.dumps(PROFILE))
    subprocess.run(["chmod", "-R", "u+rwX,go+rX,go-w", str(top)], check=True)
    subprocess.run(["chown", "-R", f"{entry.pw_uid}:{entry.pw_gid}", str(top)], check=True)
    yield site / "pyinit", entry.pw_uid, entry.pw_gid
    shutil.rmtree(top)


def as_user(package: Path, uid: int, gid: int, script: str) -> subprocess.CompletedProcess[str]:
    """``pyinit sandbox`` of the user's venv, as the user: / read-only (the venv too)."""
    top = package.parents[4]
    env = {k: v for k, v in os.environ.items() if k not in ("PYINIT_CACHE", "PYTHONPATH")}
    res = subprocess.run(
        ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
         str(top / "venv" / "bin" / "python"), "-m", "pyinit", "sandbox", "--log-level",
         "debug", "--seccomp-profile", str(top / "profile.json"), "--ro-bind", "/", "/",
         "--tmpfs", "/var/tmp", "--proc", "/proc", "--dev", "/dev", "--", "sh", "-c", script],
        capture_output=True, text=True, timeout=60, check=False, cwd=top,
        stdin=subprocess.DEVNULL, env=dict(env, LC_ALL="C"))
    assert res.returncode == 0, res.stderr
    return res


def filtered(res: subprocess.CompletedProcess[str]) -> tuple[str, bool]:
    """What the workload said, and whether its filter came from the cache."""
    return res.stdout, event(res.stderr, "seccomp.prepared")["cached"]


def test_a_rootless_sandbox_cannot_unlock_its_read_only_venv(
        own_venv: tuple[Path, int, int]) -> None:
    """The user's own sandbox, the user's own venv (bound read-only with /). The
    workload is the package's owner and may make a user namespace where it is root
    with every capability; the read-only flag it inherited is locked there (the
    kernel locks what a less privileged mount namespace copies), so the remount is
    refused and the write hits the read-only mount."""
    package, uid, gid = own_venv
    assert filtered(as_user(package, uid, gid, MKDIR)) == ("rc=1\n", False)
    (program,) = (package / "_cache" / "seccomp").iterdir()
    stored = program.read_bytes()
    forged = allow_all(program)
    os.chown(forged, uid, gid)
    # The mount the package is on (the host's, bound recursively with /).
    under = subprocess.run(["findmnt", "-n", "-o", "TARGET", "-T", str(package)],
                           capture_output=True, text=True, check=True).stdout.strip()
    attack = as_user(package, uid, gid, "exec 2>&1; unshare -Urm sh -c '"
                     "id -u; grep CapEff /proc/self/status; "
                     f"mount -o remount,bind,rw {under}; echo remount=$?; "
                     f"mount --bind {package} {package} && "
                     f"mount -o remount,bind,rw {package}; echo bind=$?; "
                     f"cat {forged} > {program}; echo write=$?'")
    denied = "       dmesg(1) may have more information after failed mount system call."
    assert attack.stdout.splitlines() == [
        "0", "CapEff:\t000001ffffffffff",  # root with every capability, in its namespace
        f"mount: {under}: permission denied.", denied, "remount=32",
        f"mount: {package}: permission denied.", denied, "bind=32",  # a copy stays locked
        f"sh: 1: cannot create {program}: Read-only file system", "write=2"]
    assert filtered(as_user(package, uid, gid, MKDIR)) == ("rc=1\n", True)
    assert program.read_bytes() == stored
