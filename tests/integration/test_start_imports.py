"""The parent imports only what it uses (issue 12): no argparse, re, enum, secrets, ...

``pyinit sandbox -- /bin/true`` and ``pyinit run`` on a busybox bundle (``runc spec``'s
config, as bench/bench_run.py runs it), each run for real with an audit hook that
records every module the parent process itself loads (not the middle process nor
PID 1, forks that inherit the hook). The interpreter starts with ``-S``: site (and an
editable install's finder, which imports re and pathlib) would load modules before
pyinit does and hide its own imports; pyinit and its dependencies are found where
they are installed. No timing is asserted: which modules, exactly.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import PYTHON
from tests.integration.test_run import BUSYBOX

pytestmark = pytest.mark.root

BOOT = """\
import os, sys
out, src, site = sys.argv[1:4]
sys.path[:0] = [src, site]
parent = os.getpid()
fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
def hook(event, args):
    if event == "import" and os.getpid() == parent:
        os.write(fd, args[0].encode() + b"\\n")
sys.addaudithook(hook)
sys.argv = ["pyinit", *sys.argv[4:]]
from pyinit.__main__ import main
sys.exit(main())
"""

# Never needed by a plain parent (an error path, --help, a hook may import them).
NEVER = {
    "argparse", "gettext", "locale",  # the command line: a table-driven parser
    "secrets", "hmac", "hashlib", "_hashlib", "random", "base64",  # a container id
    "json", "re", "enum",  # config.json is read with json's C scanner (oci/jsonio.py)
    "traceback", "linecache", "tokenize", "textwrap",  # PID 1 does without them too
    "threading", "collections", "functools",  # PID 1 imports them with trio, from memory
    "signal", "contextlib", "typing", "dataclasses", "inspect", "subprocess", "socket",
    "selectors", "shutil", "trio", "structlog",
}
SANDBOX_NEVER = NEVER | {"pyinit.cgroups"}  # no --memory, --pids or --cpus


def _parent_imports(tmp_path: Path, *argv: str,
                    ) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    spec = importlib.util.find_spec("pyinit")
    assert spec is not None and spec.submodule_search_locations
    src = str(Path(spec.submodule_search_locations[0]).parent)
    out = tmp_path / "imports.txt"
    res = subprocess.run([PYTHON, "-S", "-c", BOOT, str(out), src,
                          sysconfig.get_paths()["purelib"], *argv],
                         capture_output=True, text=True, timeout=60, check=False,
                         stdin=subprocess.DEVNULL)
    return set(out.read_text().split()), res


def _runc_bundle(path: Path) -> Path:
    """bench/bench_run.py's bundle: ``runc spec`` on a busybox-static root."""
    rootfs = path / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy(BUSYBOX, rootfs / "bin" / "busybox")
    (rootfs / "bin" / "true").symlink_to("busybox")
    runc = shutil.which("runc")
    assert runc is not None, "tools/install.sh installs runc"
    subprocess.run([runc, "spec"], cwd=path, check=True)
    cfg = json.loads((path / "config.json").read_text())
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["/bin/true"]
    (path / "config.json").write_text(json.dumps(cfg))
    return path


def test_sandbox_parent_imports_nothing_it_does_not_use(tmp_path: Path) -> None:
    imported, res = _parent_imports(tmp_path, "sandbox", "--", "/bin/true")
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")
    # the hook saw the parent's imports (and the sandbox went the whole way)
    assert {"pyinit.sandbox", "pyinit.container", "pyinit.rootfs.plan", "ctypes"} <= imported
    assert sorted(imported & SANDBOX_NEVER) == []


def test_run_parent_imports_nothing_it_does_not_use(tmp_path: Path) -> None:
    bundle = _runc_bundle(tmp_path / "bundle")
    imported, res = _parent_imports(tmp_path, "run", "--bundle", str(bundle),
                                    "--log-level", "error")
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")
    assert {"pyinit.oci.config", "pyinit.container", "pyinit.cgroups", "_json"} <= imported
    assert sorted(imported & NEVER) == []


def test_the_hook_sees_an_import_of_the_parents(tmp_path: Path) -> None:
    # What the two tests above rely on: a module the parent loads is recorded
    # (--help goes to argparse, which imports re, gettext, ...).
    imported, res = _parent_imports(tmp_path, "sandbox", "--help")
    assert res.returncode == 0
    assert sorted(imported & SANDBOX_NEVER) == [
        "argparse", "collections", "enum", "functools", "gettext", "locale", "re", "shutil",
        "textwrap"]
