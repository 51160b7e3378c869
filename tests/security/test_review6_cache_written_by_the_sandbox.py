"""Issue 9 review 6: a cache written by the sandboxed workload itself.

The caches (pyinit/linux/cachefile.py) trust a file because "only the caller
can have written it": owned by the caller's uid, mode 0600, in a directory of
the caller's. But the workload of the caller's own sandbox runs as that uid
too. When the cache directory is bound into a sandbox read-write (the
default ``$XDG_RUNTIME_DIR/pyinit`` is under ``$XDG_RUNTIME_DIR``, which
sandboxes commonly bind for their Wayland, PulseAudio or D-Bus sockets; here
``PYINIT_CACHE`` is bound, which is the same thing), the hostile workload
writes a well-formed file that passes every check, and the *next* start
loads it:

* a seccomp program that allows everything: the next sandbox's filter is
  not the one its profile asked for;
* a closure file listing an "extension module" of the workload's choosing:
  the next start's parent, outside any namespace, dlopen()s it
  (memimport.decode_cache) and runs its constructor, i.e. code of the
  previous sandbox's workload runs unconfined on the host.

Fixed by making the caches opt-in (``PYINIT_CACHE``, off by default; the last
test). The first two tests bind an opted-in ``PYINIT_CACHE`` into the sandbox,
which docs/security.md rule 9 says never to do: they stay strict xfails, to
show what that costs. Each test: a first sandbox fills the cache, a second one (the attacker,
under the same profile) overwrites a cache file from inside with bytes the
hostile side prepared, a third start shows what was loaded. The bytes are
prepared by the test for brevity; the workload could compute them (the
format is documented, its digest unkeyed).
"""

from __future__ import annotations

import json
import marshal
import os
import struct
import subprocess
from pathlib import Path

import pytest

from pyinit import memimport
from pyinit.linux import cachefile, seccomp_cache
from pyinit.linux.seccomp import PreparedFilter
from tests.conftest import PYINIT, event

EACCES = 13
ALLOW_ALL = struct.pack("<HBBI", 0x06, 0, 0, 0x7FFF0000)  # BPF_RET|BPF_K SECCOMP_RET_ALLOW
pytestmark = pytest.mark.root


def sandbox(tmp_path: Path, script: str) -> subprocess.CompletedProcess[str]:
    """``pyinit sandbox`` with the caller's cache bound in read-write, as a
    sandbox that binds ``$XDG_RUNTIME_DIR`` has it."""
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700, exist_ok=True)
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": EACCES}]}))
    env = dict(os.environ, PYINIT_CACHE=str(cache), LC_ALL="C")
    res = subprocess.run(
        [PYINIT, "sandbox", "--log-level", "debug", "--seccomp-profile", str(profile),
         "--ro-bind", "/", "/", "--tmpfs", "/tmp", "--bind", str(cache), str(cache),
         "--proc", "/proc", "--dev", "/dev", "--", "sh", "-c", script],
        capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
        env=env)
    assert res.returncode == 0, res.stderr
    return res


def plant(tmp_path: Path, target: Path, forged: bytes) -> None:
    """The workload of a sandbox replaces ``target`` (in the bound cache) with
    ``forged``: a new 0600 file of its own uid, renamed over the old one."""
    source = tmp_path / "cache" / "forged"  # the workload's own bytes
    source.write_bytes(forged)
    sandbox(tmp_path, f"umask 077 && cat {source} > {target.parent}/.x && "
            f"mv -f {target.parent}/.x {target}")


@pytest.mark.xfail(strict=True, reason="issue 9 review 6, a documented limit of the opt-in "
                   "cache: a PYINIT_CACHE directory bound writable into the sandbox accepts "
                   "its seccomp program, and the next sandbox runs under an allow-all filter")
def test_a_sandbox_with_the_cache_bound_in_weakens_the_next_filter(tmp_path: Path) -> None:
    first = sandbox(tmp_path, "mkdir /tmp/d; echo rc=$?")
    assert first.stdout == "rc=1\n"
    (path,) = (tmp_path / "cache" / "seccomp").iterdir()
    body = path.read_bytes()[len(seccomp_cache.MAGIC) + cachefile.DIGEST_SIZE:]
    (key_len,) = struct.unpack_from("<I", body)
    key = body[20:20 + key_len]
    plant(tmp_path, path, seccomp_cache.encode(key, PreparedFilter(ALLOW_ALL)))
    third = sandbox(tmp_path, "mkdir /tmp/d; echo rc=$?")
    assert event(third.stderr, "seccomp.prepared")["cached"] is True
    assert third.stdout == "rc=1\n"  # HEAD: rc=0, mkdir allowed


EVIL_C = r"""
#include <stdio.h>
#include <unistd.h>
__attribute__((constructor)) static void evil(void) {
    char ns[64] = {0};
    FILE *f = fopen(MARKER, "w");
    if (readlink("/proc/self/ns/mnt", ns, sizeof ns - 1) < 0) ns[0] = '?';
    if (f) { fprintf(f, "%s", ns); fclose(f); }
}
"""


@pytest.mark.xfail(strict=True, reason="issue 9 review 6, a documented limit of the opt-in "
                   "cache: a PYINIT_CACHE closure bound writable into the sandbox can list a "
                   "library, which the next start's parent dlopen()s outside every namespace")
def test_a_sandbox_with_the_cache_bound_in_runs_code_in_the_next_parent(
        tmp_path: Path) -> None:
    # The workload's library: anywhere it can write (here: beside the cache).
    marker = tmp_path / "marker"
    library = tmp_path / "cache" / "evil.so"
    source = tmp_path / "evil.c"
    source.write_text(EVIL_C)
    sandbox(tmp_path, "true")  # fills both caches
    subprocess.run(["gcc", "-shared", "-fPIC", f'-DMARKER="{marker}"', "-o", str(library),
                    str(source)], check=True, timeout=60)
    (path,) = (tmp_path / "cache" / "closure").iterdir()
    body = cachefile.unframe(memimport.CACHE_MAGIC, path.read_bytes(), str(path))
    (size,) = struct.unpack_from("<I", body)
    key, code, extensions, dirs = marshal.loads(body[4:4 + size])
    st = library.stat()
    extensions = [*extensions, ("evil", str(library), (st.st_ino, st.st_size, st.st_mtime_ns))]
    index = marshal.dumps((key, code, extensions, dirs))
    forged = cachefile.frame(memimport.CACHE_MAGIC,
                             struct.pack("<I", len(index)) + index + body[4 + size:])
    plant(tmp_path, path, forged)
    assert not marker.exists()
    third = sandbox(tmp_path, "true")
    assert event(third.stderr, "closure.read")["source"] == "cache"
    # HEAD: the constructor ran in the parent, in the host's mount namespace.
    assert not marker.exists(), (marker.read_text(), os.readlink("/proc/self/ns/mnt"))


def test_a_malformed_closure_file_is_refused_not_a_crash(tmp_path: Path) -> None:
    sandbox(tmp_path, "true")
    (path,) = (tmp_path / "cache" / "closure").iterdir()
    plant(tmp_path, path, cachefile.frame(memimport.CACHE_MAGIC, b"\x01"))
    third = sandbox(tmp_path, "echo ran")  # before the fix: exit 125, nothing said
    assert third.stdout == "ran\n"
    # Refused with its reason, and read from the files instead.
    assert event(third.stderr, "closure.cache_refused")["reason"] == (
        f"{tmp_path / 'cache' / 'closure'}: unreadable (error: unpack_from requires a buffer "
        "of at least 4 bytes for unpacking 4 bytes at offset 0 (actual buffer size is 1))")
    assert event(third.stderr, "closure.read")["source"] == "files"


def test_no_cache_unless_asked_for(tmp_path: Path) -> None:
    """The fix: no cache by default, so a sandbox given ``$XDG_RUNTIME_DIR`` to write (or
    root's ``/run``) has nothing to plant in. Two starts in a row: neither reads a cache,
    and none is written there."""
    xdg = tmp_path / "xdg"
    xdg.mkdir(mode=0o700)
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": EACCES}]}))
    env = {k: v for k, v in os.environ.items() if k != "PYINIT_CACHE"}
    env.update(XDG_RUNTIME_DIR=str(xdg), LC_ALL="C")
    for _ in range(2):
        res = subprocess.run(
            [PYINIT, "sandbox", "--log-level", "debug", "--seccomp-profile", str(profile),
             "--ro-bind", "/", "/", "--tmpfs", "/tmp", "--bind", str(xdg), str(xdg),
             "--proc", "/proc", "--dev", "/dev", "--", "sh", "-c", "mkdir /tmp/d; echo rc=$?"],
            capture_output=True, text=True, timeout=60, check=False,
            stdin=subprocess.DEVNULL, env=env)
        assert (res.returncode, res.stdout) == (0, "rc=1\n"), res.stderr
        assert event(res.stderr, "seccomp.prepared")["cached"] is False
        assert event(res.stderr, "closure.read")["source"] == "files"
    assert list(xdg.iterdir()) == []
