"""The supervisor's modules from memory, after pivot_root into a root without Python.

tests/helpers/memimport_pivot.py reads the closure (pyinit/closure.py) into
memory, pivots into an empty tmpfs in which a hostile container planted a
``trio`` package and a ``planted`` module where the host's Python would
look, and imports trio, pyinit's log and pyinit's supervisor there.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pyinit import closure, memimport
from tests.conftest import helper


def _pivot_and_import(root: Path, *extra: str) -> dict[str, Any]:
    res = subprocess.run([*helper("memimport_pivot.py"), str(root), *extra],
                         capture_output=True, text=True, timeout=60, check=False,
                         stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == 1, res.stdout
    result: dict[str, Any] = json.loads(lines[0])
    code, extensions, skipped = result.pop("code"), result.pop("extensions"), result.pop("skipped")
    # Every module of the closure was read (or was already loaded), none twice.
    assert sorted(code + extensions + skipped) == sorted(closure.MODULES)
    assert {"trio", "pyinit.log", "pyinit.supervisor"} <= set(code)
    assert sorted(extensions) == ["_contextvars", "_queue", "_typing"]  # no _ssl, _hashlib
    log = json.loads(res.stderr)  # pyinit's JSON lines, from memory, after the pivot
    del log["timestamp"]
    assert log == {"event": "from.memory", "level": "info", "code": len(code),
                   "extensions": len(extensions)}
    return result


@pytest.mark.root
def test_the_supervisor_imports_from_memory_in_a_root_without_python(tmp_path: Path) -> None:
    result = _pivot_and_import(tmp_path)
    assert result == {
        "trio_loader": "Bundle",  # from memory, not the container's planted trio
        "log_loader": "Bundle",
        "structlog_imported": False,  # JSON lines need no structlog (pyinit/log.py)
        "ssl_origin": "pyinit's PID 1 stub",  # trio's ssl: a stub (pyinit/memimport.py)
        "openssl_imported": [],  # so neither _ssl nor _hashlib (through hmac) is loaded
        "missing": [],
        "planted_imported": False,  # sealed: no file of the container is ever imported
        "code_left": [],  # every module imported, none of their bytes kept
        "fds": [0, 1, 2, 3],  # the log's sink; the bundle holds no descriptor
        "sink_fd": 3,
    }


@pytest.mark.root
def test_without_the_seal_the_containers_module_would_be_imported(tmp_path: Path) -> None:
    # The control for the test above: what the seal prevents is real.
    assert _pivot_and_import(tmp_path, "--no-seal")["planted_imported"] is True


def test_the_closure_matches_the_installed_trio() -> None:
    # pyinit/closure.py is computed at build time (python -m pyinit.memimport);
    # a trio that imports other modules needs it regenerated.
    modules = memimport.compute()
    assert modules == list(closure.MODULES)
    assert list(closure.STUBS) == sorted(memimport.STUBS)
    # What the stubs spare PID 1: OpenSSL's bindings, bz2, lzma and what imports them.
    assert sorted({"_ssl", "ssl", "_hashlib", "hashlib", "hmac", "_bz2", "bz2", "_lzma", "lzma",
                   "shutil", "tempfile", "idna", "subprocess", "locale"} & set(modules)) == []
    # ... and its key is this install's, so `pyinit run` here takes the memory path.
    assert memimport.distributions(modules) == closure.BUILT_FOR
    assert memimport.built_for_here(closure.BUILT_FOR) is True
