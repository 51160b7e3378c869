"""A reader that goes away (``pyinit check | head -1``) ends pyinit quietly.

Every command that prints writes into a pipe whose read end is already
closed: the deterministic form of a reader that closes early (with a real
``head``, whether the writer is still writing when it exits is a race, and
most outputs fit in the pipe's buffer anyway). pyinit must end as ``ls``
does there: killed by SIGPIPE, which a shell shows as status 141, and not a
word on stderr, let alone a traceback.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PYINIT

# Every command that prints something on stdout.
PRINTING = [
    ["--help"],
    ["--version"],
    ["check", "--bundle", "{bundle}"],
    ["check", "--bundle", "{broken}"],  # the problems, one a line
    ["spec", "--help"],
    ["run", "--help"],
    ["sandbox", "--help"],
    pytest.param(["diagnose"], marks=pytest.mark.root),
    pytest.param(["diagnose", "--json"], marks=pytest.mark.root),
    pytest.param(["diagnose", "--bundle", "{broken}"], marks=pytest.mark.root),
]
# Commands whose only output is an error on stderr, and how they end when
# nobody reads it. The init's own usage error ignores a failed write on
# purpose and keeps its documented status 2 (it has nothing else to say).
COMPLAINING = [
    (["check", "--no-such-option"], -signal.SIGPIPE),
    (["spec", "--bundle", "{bundle}"], -signal.SIGPIPE),  # config.json exists
    (["--no-such-option"], 2),
]
# The environment users run pyinit in: without PYTHONUNBUFFERED (which CI
# shells may set), a write that failed leaves its bytes in sys.stderr's buffer
# for the interpreter's exit to fail on again, and the status becomes 120.
# The drop-in binary (images/) ignores the variable anyway: it is isolated.
USER_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}


@pytest.fixture
def bundles(tmp_path: Path) -> dict[str, str]:
    good = tmp_path / "good"
    (good / "rootfs").mkdir(parents=True)
    subprocess.run([PYINIT, "spec", "--bundle", str(good)], check=True)
    broken = tmp_path / "broken"
    (broken / "rootfs").mkdir(parents=True)
    (broken / "config.json").write_text(
        (good / "config.json").read_text().replace('"/proc"', '"proc"', 1))
    return {"bundle": str(good), "broken": str(broken)}


@pytest.fixture
def closed_pipe() -> Iterator[int]:
    """The write end of a pipe whose reader has already gone."""
    read, write = os.pipe()
    os.close(read)
    yield write
    os.close(write)


def test_ls_the_model() -> None:
    """What ``ls | head`` does to ``ls`` when the reader has gone: killed by SIGPIPE."""
    read, write = os.pipe()
    os.close(read)
    try:
        res = subprocess.run(["ls", "/"], stdout=write, stderr=subprocess.PIPE, check=False)
    finally:
        os.close(write)
    assert (res.returncode, res.stderr) == (-signal.SIGPIPE, b"")


@pytest.mark.parametrize("args", PRINTING, ids=" ".join)
def test_stdout_reader_gone(args: list[str], bundles: dict[str, str], closed_pipe: int) -> None:
    argv = [PYINIT, *(a.format(**bundles) for a in args)]
    assert subprocess.run(argv, capture_output=True, check=False).stdout  # it does print
    res = subprocess.run(argv, stdout=closed_pipe, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, timeout=60, check=False, env=USER_ENV)
    assert (res.returncode, res.stderr) == (-signal.SIGPIPE, b"")


@pytest.mark.parametrize(("args", "status"), COMPLAINING, ids=[" ".join(a) for a, _ in COMPLAINING])
def test_stderr_reader_gone(args: list[str], status: int, bundles: dict[str, str],
                            closed_pipe: int) -> None:
    argv = [PYINIT, *(a.format(**bundles) for a in args)]
    assert subprocess.run(argv, capture_output=True, check=False).stderr  # it does complain
    res = subprocess.run(argv, stdout=subprocess.PIPE, stderr=closed_pipe,
                         stdin=subprocess.DEVNULL, timeout=60, check=False, env=USER_ENV)
    # The traceback would have gone into the closed pipe too: the status tells.
    assert (res.returncode, res.stdout) == (status, b"")


@pytest.mark.root
def test_as_pid1_it_exits_141(closed_pipe: int) -> None:
    """PID 1 of a PID namespace cannot be killed by its own SIGPIPE: it exits 141."""
    res = subprocess.run(["unshare", "--pid", "--fork", PYINIT, "--help"], stdout=closed_pipe,
                         stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=60,
                         check=False)
    assert (res.returncode, res.stderr) == (128 + signal.SIGPIPE, b"")


def test_a_broken_pipe_elsewhere_keeps_its_traceback() -> None:
    """Only a lost reader of stdout or stderr is quiet; any other EPIPE is a bug to see."""
    code = ("import os, sys; from pyinit import __main__ as m\n"
            "def boom(*args):\n"
            "    r, w = os.pipe(); os.close(r); os.write(w, b'x')\n"
            "m._main = boom\n"
            "sys.exit(m.main([]))\n")
    res = subprocess.run([str(Path(PYINIT).parent / "python"), "-c", code], capture_output=True,
                         text=True, timeout=60, check=False)
    assert res.returncode == 1
    assert res.stderr.splitlines()[0] == "Traceback (most recent call last):"
    assert res.stderr.splitlines()[-1] == "BrokenPipeError: [Errno 32] Broken pipe"
