"""The ``pyinit`` command as pip installs it: a shell script that starts Python without ``site``.

pip copies ``scripts/pyinit`` as it is and rewrites the first line of
``scripts/pyinit-py`` (``#!python``) to its interpreter; ``pyinit`` reads that
line and runs ``INTERPRETER -S pyinit-py ARGS``. In a virtualenv where pyinit
is installed, ``pyinit-py`` puts site-packages on ``sys.path`` and pyinit runs
``site`` only once the workload is spawned; anywhere else (this checkout's
editable install, for one) ``site`` runs first, as in a plain ``python``.

The ``installed`` fixture lays out a virtualenv as pip leaves it, without
running pip (which would need a package index for its build): ``pyvenv.cfg``,
``bin/python3``, the two scripts as pip writes them, and pyinit in
``lib/pythonX.Y/site-packages`` (a link to this checkout), whose ``.pth``
file adds the test virtualenv's site-packages (trio, structlog) when ``site``
runs. No timing is measured here: what is checked is what loads before the
workload starts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BIN, MODES, PYINIT, ROOT, event
from tests.helpers.running import Pyinit

VERSION = f"python{sys.version_info[0]}.{sys.version_info[1]}"

# What pyinit itself loads before the workload's fork and exec, beyond what
# the interpreter loads for ``python -S -c pass``. The subreaper (not PID 1)
# needs prctl(2), from _ctypes without ctypes.
BEFORE_SPAWN = {"pyinit", "pyinit.__main__", "__future__", "pyinit.cli", "errno",
                "pyinit.spawn"}
FOR_THE_SUBREAPER = {"pyinit.linux", "_ctypes", "pyinit.linux.prctl"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv with pyinit installed as pip installs it (see the module's docstring)."""
    venv = tmp_path_factory.mktemp("venv")
    shutil.copy(BIN.parent / "pyvenv.cfg", venv / "pyvenv.cfg")
    (venv / "bin").mkdir()
    (venv / "bin" / "python3").symlink_to(os.path.realpath(sys.executable))
    site_packages = venv / "lib" / VERSION / "site-packages"
    site_packages.mkdir(parents=True)
    (site_packages / "pyinit").symlink_to(ROOT / "pyinit")
    ours = BIN.parent / "lib" / VERSION / "site-packages"
    (site_packages / "dependencies.pth").write_text(f"{ours}\n")
    shutil.copy(ROOT / "scripts" / "pyinit", venv / "bin" / "pyinit")
    # pip's rewrite of a script's `#!python` line: its interpreter, nothing more
    rest = (ROOT / "scripts" / "pyinit-py").read_text().split("\n", 1)[1]
    (venv / "bin" / "pyinit-py").write_text(f"#!{venv}/bin/python3\n{rest}")
    for script in ("pyinit", "pyinit-py"):
        (venv / "bin" / script).chmod(0o755)
    return venv


def command(pyinit: Path | str, args: list[str], mode: str) -> list[str]:
    prefix = ["unshare", "--pid", "--fork", "--mount-proc"] if mode == "pid1" else []
    return [*prefix, str(pyinit), *args]


def imported(stderr: str) -> list[str]:
    """The modules in ``-X importtime``'s report, in the order they finished."""
    lines = [line for line in stderr.splitlines() if line.startswith("import time:")]
    assert lines and lines[0].split("|")[-1].strip() == "imported package", stderr
    return [line.split("|")[-1].strip() for line in lines[1:]]


def interpreter_start(python: Path) -> set[str]:
    """What ``python -S`` itself imports before a first line."""
    res = subprocess.run([str(python), "-S", "-X", "importtime", "-c", "pass"],
                         capture_output=True, text=True, check=True)
    return set(imported(res.stderr))


def loaded_before_the_spawn(pyinit: Path | str, mode: str) -> tuple[list[str], str]:
    """Every module pyinit imports when its workload cannot even be executed.

    A workload that is not found makes pyinit go exactly the way it goes to
    any spawn, then wait for the child that failed to exec, and exit 127
    without importing anything else: the whole trace is the start path.
    """
    res = subprocess.run(command(pyinit, ["--", "/no/such/program"], mode), capture_output=True,
                         text=True, timeout=60, stdin=subprocess.DEVNULL,
                         env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"})
    assert res.returncode == 127, res.stderr
    lines = [line for line in res.stderr.splitlines() if not line.startswith("import time:")]
    return imported(res.stderr), "\n".join(lines)


@pytest.mark.parametrize("mode", MODES)
def test_before_the_spawn_pyinit_loads_its_start_path_and_nothing_else(installed: Path,
                                                                       mode: str) -> None:
    """No site, os, ctypes or threading before the workload is spawned."""
    modules, rest = loaded_before_the_spawn(installed / "bin" / "pyinit", mode)
    assert rest == "pyinit: cannot run '/no/such/program': No such file or directory"
    extra = set(modules) - interpreter_start(installed / "bin" / "python3")
    assert extra == BEFORE_SPAWN | (FOR_THE_SUBREAPER if mode == "subreaper" else set())
    assert len(modules) == len(set(modules))  # each module once: no second import


def test_a_link_to_the_launcher_finds_its_python_launcher(installed: Path,
                                                          tmp_path: Path) -> None:
    link = tmp_path / "pyinit"
    link.symlink_to(installed / "bin" / "pyinit")
    modules, _ = loaded_before_the_spawn(link, "subreaper")
    assert "site" not in modules and "pyinit.spawn" in modules


def test_without_pyinit_in_its_site_packages_site_runs_first() -> None:
    """This checkout's editable install: pyinit is found through ``site`` (its .pth finder)."""
    modules, rest = loaded_before_the_spawn(PYINIT, "subreaper")
    assert rest == "pyinit: cannot run '/no/such/program': No such file or directory"
    assert modules.index("site") < modules.index("pyinit.__main__")


# Run by ``site`` (deferred: after the spawn). It logs one line in pyinit's
# JSON format: how Python was started, where site put sys.prefix, and which
# children pyinit has at that moment (read from /proc, as PID 1 or not).
PROBE = """\
import json, os, sys
me = os.getpid()
children = []
for pid in os.listdir("/proc"):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        if ppid == me:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                children.append(fh.read().decode().split("\\0")[:-1])
    except (OSError, ValueError):
        pass
os.write(2, json.dumps({"event": "test.site", "no_site": sys.flags.no_site,
                        "prefix": sys.prefix, "children": children}).encode() + b"\\n")
"""


@pytest.mark.parametrize("mode", MODES)
def test_site_runs_after_the_workload_started_and_before_trio(installed: Path, mode: str,
                                                              tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text(PROBE)
    script = "echo started; read line; exit 3"
    p = Pyinit([], mode, hold=False, env={"PYTHONPATH": str(tmp_path)}, stdin=subprocess.PIPE,
               command=command(installed / "bin" / "pyinit", ["--", "sh", "-c", script], mode))
    try:
        probe = p.event("test.site")
        assert p.proc.stdin is not None
        p.proc.stdin.close()
        code = p.finish()
    finally:
        p.kill()
    assert probe == {"event": "test.site", "no_site": 1, "prefix": str(installed),
                     "children": [["sh", "-c", script]]}
    assert code == 3, p.events
    assert [e["event"] for e in p.events][-1] == "pyinit.exit"


@pytest.mark.parametrize("mode", MODES)
def test_the_installed_pyinit_supervises_under_its_own_name(installed: Path, mode: str) -> None:
    """The whole run through the launcher: an orphan reaped, the status passed on.

    And the process is named ``pyinit`` (``ps``, ``pgrep``), as it was when the
    kernel ran the launcher through its ``#!`` line, not after the interpreter.
    """
    script = "cat /proc/$PPID/comm; sleep 0.2 & exit 4"
    res = subprocess.run(command(installed / "bin" / "pyinit", ["--", "sh", "-c", script], mode),
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert res.returncode == 4, res.stderr
    assert res.stdout == "pyinit\n"
    assert event(res.stderr, "pyinit.exit")["orphans_reaped"] == 1


def test_python_dash_m_pyinit_still_works() -> None:
    res = subprocess.run([sys.executable, "-m", "pyinit", "--", "sh", "-c", "exit 5"],
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert res.returncode == 5, res.stderr
    assert event(res.stderr, "workload.exited")["code"] == 5


def test_a_launcher_without_its_python_half_says_so_in_one_line(tmp_path: Path) -> None:
    lone = tmp_path / "pyinit"
    shutil.copy(ROOT / "scripts" / "pyinit", lone)
    lone.chmod(0o755)
    res = subprocess.run([str(lone), "--", "true"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 127
    assert res.stderr == f"pyinit: cannot read {tmp_path}/pyinit-py, its Python launcher\n"


def test_the_subcommands_run_site_before_they_start(installed: Path) -> None:
    res = subprocess.run([str(installed / "bin" / "pyinit"), "spec", "--help"],
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                         env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"})
    assert res.returncode == 0, res.stderr
    modules = imported(res.stderr)
    assert modules.index("site") < modules.index("pyinit.commands")

