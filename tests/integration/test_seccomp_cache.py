"""The compiled-filter cache (pyinit/linux/seccomp_cache.py), with the real kernel.

A cache file is trusted only because nobody but the caller can have written
it. Each test here runs ``pyinit sandbox`` with a profile that denies
``mkdir`` with EACCES, lets it fill a private cache, then replaces the cached
program with one that allows everything and checks whether the workload's
``mkdir`` still fails: it must, unless the replacement is provably the
caller's own file.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pyinit.linux import cachefile, seccomp_cache
from pyinit.linux.seccomp import PreparedFilter
from tests.conftest import PYINIT, event, events

EACCES = 13
ALLOW_ALL = struct.pack("<HBBI", 0x06, 0, 0, 0x7FFF0000)  # BPF_RET|BPF_K SECCOMP_RET_ALLOW
MKDIR = "mkdir /tmp/d; echo rc=$?"
pytestmark = pytest.mark.root


def sandbox(tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": EACCES}]}))
    env = dict(os.environ, PYINIT_CACHE=str(tmp_path / "cache"), LC_ALL="C")
    res = subprocess.run([PYINIT, "sandbox", "--log-level", "info", "--seccomp-profile",
                          str(profile), "--", "sh", "-c", MKDIR], capture_output=True,
                         text=True, timeout=60, check=False, stdin=subprocess.DEVNULL, env=env)
    assert res.returncode == 0, res.stderr
    return res, events(res.stderr)


def cache_file(tmp_path: Path) -> Path:
    (only,) = (tmp_path / "cache" / "seccomp").iterdir()
    return only


def stored_key(path: Path) -> bytes:
    body = path.read_bytes()[len(seccomp_cache.MAGIC) + cachefile.DIGEST_SIZE:]
    (key_len,) = struct.unpack_from("<I", body)
    return body[20:20 + key_len]


def fill(tmp_path: Path) -> Path:
    """A first run: compiled, enforced and stored (mode 0600, the caller's)."""
    res, _ = sandbox(tmp_path)
    assert res.stdout.splitlines() == ["rc=1"]
    prepared = event(res.stderr, "seccomp.prepared")
    assert (prepared["cached"], prepared["instructions"]) == (False, 10)
    path = cache_file(tmp_path)
    assert (path.stat().st_mode & 0o7777, path.stat().st_uid) == (0o600, os.geteuid())
    assert oct((tmp_path / "cache" / "seccomp").stat().st_mode & 0o7777) == "0o700"
    return path


def replace_with_allow_all(path: Path) -> None:
    """What an attacker able to write the file would put there: well formed."""
    data = seccomp_cache.encode(stored_key(path), PreparedFilter(ALLOW_ALL))
    path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, data)
    os.close(fd)


def test_a_second_start_loads_the_stored_program(tmp_path: Path) -> None:
    path = fill(tmp_path)
    stored = path.read_bytes()
    res, _ = sandbox(tmp_path)
    assert res.stdout.splitlines() == ["rc=1"]
    assert "mkdir: cannot create directory '/tmp/d': Permission denied" in \
        res.stderr.splitlines()
    prepared = event(res.stderr, "seccomp.prepared")
    assert (prepared["cached"], prepared["instructions"]) == (True, 10)
    assert path.read_bytes() == stored


def test_the_callers_own_file_is_what_is_loaded(tmp_path: Path) -> None:
    # The control for the refusals below: a well-formed file the caller owns,
    # mode 0600, is loaded as it is. The cache's safety is that nobody else
    # can write it.
    path = fill(tmp_path)
    replace_with_allow_all(path)
    res, _ = sandbox(tmp_path)
    assert res.stdout.splitlines() == ["rc=0"]
    assert event(res.stderr, "seccomp.prepared")["cached"] is True


def _refused(tmp_path: Path, reason: str) -> None:
    res, evs = sandbox(tmp_path)
    assert res.stdout.splitlines() == ["rc=1"], res.stderr  # the real filter, enforced
    refused = [e for e in evs if e["event"] == "seccomp.cache_refused"]
    assert [(e["reason"], e["level"]) for e in refused] == [(reason, "warning")]
    prepared = event(res.stderr, "seccomp.prepared")
    assert (prepared["cached"], prepared["instructions"]) == (False, 10)


def test_a_file_others_could_read_or_write_is_refused(tmp_path: Path) -> None:
    path = fill(tmp_path)
    replace_with_allow_all(path)
    path.chmod(0o644)
    _refused(tmp_path, f"{path} has mode 0644, not 0600")
    # ... and replaced by the program just compiled, the caller's again.
    assert (path.stat().st_mode & 0o7777, len(path.read_bytes()) > 10 * 8) == (0o600, True)
    res, _ = sandbox(tmp_path)
    assert (res.stdout, event(res.stderr, "seccomp.prepared")["cached"]) == ("rc=1\n", True)


def test_a_file_of_another_owner_is_refused(tmp_path: Path) -> None:
    path = fill(tmp_path)
    replace_with_allow_all(path)
    os.chown(path, 65534, 65534)
    _refused(tmp_path, f"{path} is owned by uid 65534, not {os.geteuid()}")


def test_an_altered_program_is_refused_by_its_checksum(tmp_path: Path) -> None:
    path = fill(tmp_path)
    data = bytearray(path.read_bytes())
    assert data[-8:] != ALLOW_ALL
    data[-8:] = ALLOW_ALL  # the last instruction (the default action) now allows
    path.write_bytes(bytes(data))
    _refused(tmp_path, f"{path}: its checksum does not match its contents")


def test_a_symlink_is_not_followed(tmp_path: Path) -> None:
    path = fill(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    path.rename(elsewhere)
    path.symlink_to(elsewhere)
    _refused(tmp_path, f"{path}: Too many levels of symbolic links")


def test_a_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    fill(tmp_path)
    (tmp_path / "cache" / "seccomp").chmod(0o777)
    _refused(tmp_path, f"{tmp_path / 'cache' / 'seccomp'} is writable by group or others "
             "(mode 0777)")
