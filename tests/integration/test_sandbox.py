"""``pyinit sandbox``: the bubblewrap-style command line on the same machinery."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import PYINIT, _mountinfo, mount_diff

pytestmark = pytest.mark.root


def sandbox(*args: str, tmpdir: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``pyinit sandbox ARGS``, with TMPDIR=``tmpdir`` if given."""
    env = {**os.environ, "TMPDIR": str(tmpdir)} if tmpdir is not None else None
    return subprocess.run([PYINIT, "sandbox", *args], capture_output=True, text=True,
                          timeout=60, check=False, stdin=subprocess.DEVNULL, env=env)


def _mounts(out: str) -> dict[str, str]:
    return {line.split()[2]: line for line in out.splitlines() if " on " in line}


def test_default_sandbox(tmp_path: Path) -> None:
    # In a directory of its own: other sandboxes (parallel runs) come and go in /tmp.
    res = sandbox("--", "sh", "-c", "ps -o pid=,comm=; mount; touch /usr/x 2>/dev/null"
                  " || echo usr-ro; touch /tmp/x && echo tmp-rw; cat /proc/net/dev | wc -l",
                  tmpdir=tmp_path)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["1", "pyinit"]
    mounts = _mounts(res.stdout)
    assert mounts["/"].startswith("tmpfs on / type tmpfs")
    assert "(ro," in mounts["/usr"] and "(ro," in mounts["/etc"]
    for path in ("/proc", "/dev", "/dev/pts", "/dev/shm", "/tmp"):
        assert path in mounts, path
    assert "usr-ro" in lines and "tmp-rw" in lines
    assert list(tmp_path.iterdir()) == []  # no scratch directory in TMPDIR


def test_options_in_order() -> None:
    src = Path("/tmp") / "pyinit-sandbox-test-src"
    src.mkdir(exist_ok=True)
    (src / "f").write_text("from host\n")
    try:
        res = sandbox("--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin",
                      "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
                      "--bind", str(src), "/work", "--tmpfs", "/scratch", "--proc", "/proc",
                      "--hostname", "boxy", "--unshare-net", "--chdir", "/work",
                      "--setenv", "GREETING", "hi there", "--",
                      "sh", "-c", "cat f; pwd; echo \"$GREETING\"; hostname; echo w > new;"
                      " ls /; grep -c : /proc/net/dev")
        assert res.returncode == 0, res.stderr
        out = res.stdout.splitlines()
        assert out[:4] == ["from host", "/work", "hi there", "boxy"]
        assert (src / "new").read_text() == "w\n"  # --bind is read-write
        assert "etc" not in out  # with options given, no default mounts
        assert out[-1] == "1"  # only lo in the new network namespace
    finally:
        for p in src.iterdir():
            p.unlink()
        src.rmdir()


@pytest.mark.parametrize(("args", "message"), [
    ([], "no PROGRAM given (usage: pyinit sandbox [OPTIONS] -- PROGRAM [ARGS...])"),
    (["--tmpfs", "relative", "--", "true"],
     "--tmpfs relative: destinations must be absolute paths"),
    (["--bogus", "--", "true"], "unrecognized arguments: --bogus"),
])
def test_usage_errors(args: list[str], message: str) -> None:
    """One line, as pyinit's and pyinit run's: the error, then where the help is."""
    res = sandbox(*args)
    assert (res.returncode, res.stdout) == (2, "")
    assert res.stderr == f"pyinit sandbox: error: {message} (see 'pyinit sandbox --help')\n"


@pytest.mark.parametrize(("args", "message"), [
    (["run", "--bogus"], "pyinit run: error: unrecognized arguments: --bogus "
                         "(see 'pyinit run --help')"),
    (["check", "--grace", "1"], "pyinit check: error: unrecognized arguments: --grace 1 "
                                "(see 'pyinit check --help')"),
    (["run", "--grace", "soon"], "pyinit run: error: argument --grace: invalid float value: "
                                 "'soon' (see 'pyinit run --help')"),
])
def test_bundle_commands_usage_errors_name_the_command(args: list[str], message: str) -> None:
    res = subprocess.run([PYINIT, *args], capture_output=True, text=True, timeout=60,
                         check=False)
    assert (res.returncode, res.stdout, res.stderr) == (2, "", message + "\n")


def sigkilled_sandbox(command: list[str], tmpdir: Path) -> list[Path]:
    """Start ``command`` (a ``pyinit sandbox`` whose program says "ready" and then waits)
    with TMPDIR=``tmpdir``, SIGKILL pyinit once the program runs, and return what is
    left in ``tmpdir``. Nothing of pyinit's cleanup code runs after a SIGKILL: whatever
    the sandbox's scratch space left on the host stays there."""
    before = _mountinfo()
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "TMPDIR": str(tmpdir)})
    assert proc.stdout is not None and proc.stdin is not None
    try:
        assert proc.stdout.readline() == b"ready\n"
        proc.kill()
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.wait()
        proc.stdin.close()
        proc.stdout.read()  # PID 1 dies with the parent: the pipe closes
        proc.stdout.close()
        assert proc.stderr is not None
        proc.stderr.close()
    assert mount_diff(before, _mountinfo()) == ""
    return list(tmpdir.iterdir())


def test_sigkilled_sandbox_leaves_nothing_on_the_host(tmp_path: Path) -> None:
    """The root's scratch space lives only in the sandbox's mount namespace."""
    assert sigkilled_sandbox([PYINIT, "sandbox", "--", "sh", "-c", "echo ready; read x"],
                             tmp_path) == []


def test_ro_bind_of_the_hosts_root_alone_runs_as_under_bubblewrap() -> None:
    """``--ro-bind / /`` with stdio on /dev/null: the tree is nodev, so the sandbox's
    /dev/null cannot be opened; stdio stays the caller's (as bubblewrap leaves it)
    and the program runs, as ``bwrap --ro-bind / / ...`` does (same output)."""
    res = sandbox("--ro-bind", "/", "/", "--", "sh", "-c", "echo ok; cat /dev/null")
    assert (res.returncode, res.stdout, res.stderr) == (
        1, "ok\n", "cat: /dev/null: Permission denied\n")
