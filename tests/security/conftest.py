"""The attack suite's harness: static C helpers, and bundles that carry them.

The helpers are compiled once per session with gcc (``-static``: they run in
a busybox root with no libc). Every test here runs the real pyinit with
namespaces and mounts, so every one is marked ``root`` (tests/conftest.py
skips those when not root, and fails a skip under CI=true).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.test_run import make_bundle

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "helpers"


@pytest.hookimpl(tryfirst=True)  # before tests/conftest.py turns `root` into a skip
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.root)


@pytest.fixture(scope="session")
def helpers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """name -> static binary, for every tests/security/helpers/NAME.c."""
    if shutil.which("gcc") is None:
        pytest.fail("gcc is needed for the attack helpers (apt-get install gcc libc6-dev)")
    out = tmp_path_factory.mktemp("attack-helpers")
    built = {}
    for source in sorted(SOURCES.glob("*.c")):
        binary = out / source.stem
        subprocess.run(["gcc", "-static", "-O1", "-Wall", "-Wextra", "-Werror", "-o",
                        str(binary), str(source)], check=True, capture_output=True)
        built[source.stem] = binary
    return built


def attack_bundle(path: Path, script: str, helpers: dict[str, Path]) -> Path:
    """A busybox bundle (tests/integration/test_run.py) with the helpers in /bin."""
    bundle = make_bundle(path, script)
    for name, binary in helpers.items():
        shutil.copy(binary, bundle / "rootfs" / "bin" / name)
    return bundle
