"""The cache file's format and its housekeeping (the kernel side: tests/integration)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import pyinit
from pyinit.linux import cachefile, seccomp_cache
from pyinit.linux.seccomp import PreparedFilter

PROGRAM = bytes(range(16))  # two instructions: the format does not look inside
FILT = PreparedFilter(PROGRAM, 4, ("foo", "bar"), bytes(8))


def test_a_program_comes_back_whole(tmp_path: Path) -> None:
    where = str(tmp_path / "cache")
    seccomp_cache.store(where, b"key", FILT)
    assert seccomp_cache.load(where, b"key") == FILT
    assert seccomp_cache.load(where, b"other key") is None  # another name, not there


def test_the_program_of_another_key_is_refused() -> None:
    data = seccomp_cache.encode(b"key one", FILT)
    with pytest.raises(seccomp_cache.Refused) as info:
        seccomp_cache.decode(b"key two", data, "F")
    assert str(info.value) == "F holds the program of another profile or library"


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "F is not a pyinit seccomp cache 1 file"),
    (seccomp_cache.encode(b"k", FILT)[:-1], "F: its checksum does not match its contents"),
    (seccomp_cache.encode(b"k", PreparedFilter(PROGRAM[:12])), "F: not a BPF program (12 bytes)"),
    (seccomp_cache.encode(b"k", PreparedFilter(b"")), "F: not a BPF program (0 bytes)"),
])
def test_what_is_not_a_whole_program_is_refused(data: bytes, reason: str) -> None:
    with pytest.raises(seccomp_cache.Refused) as info:
        seccomp_cache.decode(b"k", data, "F")
    assert str(info.value) == reason


def test_the_oldest_programs_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cachefile, "KEEP", 3)
    where = tmp_path / "cache"
    for i in range(5):
        seccomp_cache.store(str(where), f"key {i}".encode(), FILT)
        name = cachefile.file_name(f"key {i}".encode())
        os.utime(where / name, ns=(i * 10**9, i * 10**9))
    assert sorted(os.listdir(where)) == sorted(
        cachefile.file_name(f"key {i}".encode()) for i in (2, 3, 4))


def test_the_directory_follows_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    assert seccomp_cache.directory({"PYINIT_CACHE": "off"}) is None
    assert seccomp_cache.directory({"PYINIT_CACHE": "/x/y"}) == "/x/y/seccomp"
    # By default pyinit's own package directory (issue 12), for root as for anyone:
    # not $XDG_RUNTIME_DIR, nor root's /run, which a sandbox or container may be
    # given to write (issue 9 review 6).
    package = cachefile.Package(os.path.dirname(pyinit.__file__), "seccomp")
    assert str(package) == os.path.join(os.path.dirname(pyinit.__file__), "_cache", "seccomp")
    for uid in (1000, 0):
        monkeypatch.setattr(os, "geteuid", lambda uid=uid: uid)
        assert seccomp_cache.directory({"XDG_RUNTIME_DIR": "/run/user/1000"}) == package
        assert seccomp_cache.directory({}) == package
        assert seccomp_cache.directory({"PYINIT_CACHE": ""}) == package
    # A frozen build (the drop-in): its code is in the executable, not that directory.
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert seccomp_cache.directory({}) is None


def test_a_cache_directory_out_of_reach_is_no_cache(tmp_path: Path) -> None:
    # $XDG_RUNTIME_DIR of another user, or one that is gone: no cache, no warning.
    assert seccomp_cache.load(str(tmp_path / "gone" / "pyinit" / "seccomp"), b"key") is None
    with pytest.raises(cachefile.Unavailable):
        seccomp_cache.store(str(tmp_path / "gone" / "pyinit" / "seccomp"), b"key", FILT)


def package(tmp_path: Path) -> cachefile.Package:
    """A package directory of the caller's, as pip installs one."""
    root = tmp_path / "pyinit"
    root.mkdir(mode=0o755)
    (root / "__init__.py").write_text("")
    (root / "__init__.py").chmod(0o644)
    return cachefile.Package(str(root), "seccomp")


def test_the_package_cache_is_kept_beside_the_code(tmp_path: Path) -> None:
    where = package(tmp_path)
    old = os.umask(0o077)  # whatever the umask: every user of the install reads
    try:
        seccomp_cache.store(where, b"key", FILT)
    finally:
        os.umask(old)
    assert seccomp_cache.load(where, b"key") == FILT
    name = cachefile.file_name(b"key")
    modes = {str(p.relative_to(tmp_path)): p.stat().st_mode & 0o7777 for p in (
        tmp_path / "pyinit" / "_cache", tmp_path / "pyinit" / "_cache" / "seccomp",
        tmp_path / "pyinit" / "_cache" / "seccomp" / name)}
    assert modes == {"pyinit/_cache": 0o755, "pyinit/_cache/seccomp": 0o755,
                     f"pyinit/_cache/seccomp/{name}": 0o600}


@pytest.mark.parametrize("loose", ["", "__init__.py"])
def test_a_package_others_can_write_has_no_cache(tmp_path: Path, loose: str) -> None:
    where = package(tmp_path)
    seccomp_cache.store(where, b"key", FILT)
    target = Path(where.package) / loose
    target.chmod(target.stat().st_mode | 0o002)
    assert seccomp_cache.load(where, b"key") is None  # nothing to warn about: no cache
    with pytest.raises(cachefile.Unavailable) as info:
        seccomp_cache.store(where, b"key", FILT)
    mode = target.stat().st_mode & 0o7777
    assert str(info.value) == f"{target} is writable by group or others (mode {mode:04o}): no cache"


def test_a_package_of_another_uid_is_read_but_not_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    where = package(tmp_path)
    seccomp_cache.store(where, b"key", FILT)
    uid = os.geteuid()
    monkeypatch.setattr(os, "geteuid", lambda: uid + 1)
    assert seccomp_cache.load(where, b"key") == FILT
    with pytest.raises(cachefile.Unavailable) as info:
        seccomp_cache.store(where, b"other", FILT)
    assert str(info.value) == (f"{where.package} is uid {uid}'s: only its owner writes its "
                               f"cache, not uid {uid + 1}")


def test_concurrent_writers_leave_one_whole_file(tmp_path: Path) -> None:
    """Six starts keep the same program at once (each its own O_EXCL file,
    renamed over the others'): one whole file, no temporary one left."""
    where = package(tmp_path)
    script = ("import sys; from pyinit.linux import cachefile, seccomp_cache; "
              "from pyinit.linux.seccomp import PreparedFilter; "
              "where = cachefile.Package(sys.argv[1], 'seccomp'); "
              f"filt = PreparedFilter({PROGRAM!r}, 4, ('foo', 'bar'), bytes(8)); "
              "[seccomp_cache.store(where, b'key', filt) for _ in range(5)]")
    procs = [subprocess.Popen([sys.executable, "-c", script, where.package]) for _ in range(6)]
    assert [p.wait() for p in procs] == [0] * 6
    assert os.listdir(str(where)) == [cachefile.file_name(b"key")]
    assert seccomp_cache.load(where, b"key") == FILT
