"""The cache of the supervisor's code (pyinit/memimport.py), read by a real sandbox.

PID 1 executes what the cache holds, so a file that is not provably the
caller's own, or not whole, must be refused and the code read from its files
again; the start must go on as if there were no cache. Most tests here name
the cache directory (``PYINIT_CACHE``); the default one, in pyinit's package
directory, is attacked in tests/security/test_review6_cache_written_by_the_sandbox.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PYINIT, ROOT, events

pytestmark = pytest.mark.root


def sandbox(tmp_path: Path) -> list[dict[str, Any]]:
    env = dict(os.environ, PYINIT_CACHE=str(tmp_path / "cache"))
    res = subprocess.run([PYINIT, "sandbox", "--log-level", "debug", "--", "sh", "-c",
                          "echo ran"], capture_output=True, text=True, timeout=60,
                         check=False, stdin=subprocess.DEVNULL, env=env)
    assert (res.returncode, res.stdout) == (0, "ran\n"), res.stderr
    return events(res.stderr)


def read(evs: list[dict[str, Any]]) -> tuple[str, bool]:
    """Where the closure came from, and whether PID 1 imported trio from memory."""
    (closure,) = [e for e in evs if e["event"] == "closure.read"]
    (loaded,) = [e for e in evs if e["event"] == "runtime.loaded"]
    assert closure["missing"] == []
    return closure["source"], loaded["source"] == "memory"


def refusals(evs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["reason"], e["level"]) for e in evs if e["event"] == "closure.cache_refused"]


def fill(tmp_path: Path) -> Path:
    evs = sandbox(tmp_path)
    assert read(evs) == ("files", True)
    (path,) = (tmp_path / "cache" / "closure").iterdir()
    assert (path.stat().st_mode & 0o7777, path.stat().st_uid) == (0o600, os.geteuid())
    return path


def test_the_second_start_reads_one_file(tmp_path: Path) -> None:
    path = fill(tmp_path)
    before = path.read_bytes()
    evs = sandbox(tmp_path)
    assert (read(evs), refusals(evs)) == (("cache", True), [])
    assert path.read_bytes() == before


def test_a_file_others_could_write_is_refused_and_replaced(tmp_path: Path) -> None:
    path = fill(tmp_path)
    path.chmod(0o666)
    evs = sandbox(tmp_path)
    assert refusals(evs) == [(f"{path} has mode 0666, not 0600", "warning")]
    assert read(evs) == ("files", True)
    assert path.stat().st_mode & 0o7777 == 0o600
    assert read(sandbox(tmp_path)) == ("cache", True)


def test_a_file_of_another_owner_is_refused(tmp_path: Path) -> None:
    path = fill(tmp_path)
    os.chown(path, 65534, 65534)
    evs = sandbox(tmp_path)
    assert refusals(evs) == [(f"{path} is owned by uid 65534, not {os.geteuid()}", "warning")]
    assert read(evs) == ("files", True)


def test_altered_code_is_refused_by_its_checksum(tmp_path: Path) -> None:
    path = fill(tmp_path)
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF  # a byte of the last module's code
    path.write_bytes(bytes(data))
    evs = sandbox(tmp_path)
    assert refusals(evs) == [(f"{path}: its checksum does not match its contents", "warning")]
    assert read(evs) == ("files", True)


def test_a_symlinked_directory_is_not_followed(tmp_path: Path) -> None:
    fill(tmp_path)
    (tmp_path / "cache" / "closure").rename(tmp_path / "elsewhere")
    (tmp_path / "cache" / "closure").symlink_to(tmp_path / "elsewhere")
    evs = sandbox(tmp_path)
    assert refusals(evs) == [
        (f"{tmp_path / 'cache' / 'closure'}: Not a directory", "warning")]
    assert read(evs) == ("files", True)


def test_an_edited_module_of_an_editable_install_makes_the_default_cache_stale(
        tmp_path: Path) -> None:
    """The default cache of a source tree (an editable install: pyinit's package
    is the tree): editing a module of the closure is seen by the next start."""
    package = tmp_path / "src" / "pyinit"
    shutil.copytree(ROOT / "pyinit", package,
                    ignore=shutil.ignore_patterns("__pycache__", "_cache"))
    env = {k: v for k, v in os.environ.items() if k != "PYINIT_CACHE"}
    env["PYTHONPATH"] = str(package.parent)

    def start() -> str:
        res = subprocess.run([PYINIT, "sandbox", "--log-level", "debug", "--", "true"],
                             capture_output=True, text=True, timeout=60, check=False,
                             stdin=subprocess.DEVNULL, env=env, cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        return read(events(res.stderr))[0]

    assert [start(), start()] == ["files", "cache"]
    (closure,) = (package / "_cache" / "closure").iterdir()
    with (package / "supervisor.py").open("a") as fh:
        fh.write("# edited\n")
    assert [start(), start()] == ["files", "cache"]
    assert [p.name for p in closure.parent.iterdir()] == [closure.name]  # replaced
