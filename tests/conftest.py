"""Shared harness: run the real pyinit, and check nothing is left behind.

Every test gets a unique token in the environment of the processes it starts
(``PYINIT_TEST_TOKEN``). After the test, no process on the machine may still
carry it, and the host's ``/proc/self/mountinfo`` must be what it was.

Under ``CI=true`` as root, a skipped test fails the run: every root-only test
must really run there.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
HELPERS = Path(__file__).resolve().parent / "helpers"
BIN = Path(sys.executable).parent
PYINIT = str(BIN / "pyinit")
PYTHON = sys.executable
IS_ROOT = os.geteuid() == 0
IN_CI = os.environ.get("CI", "").lower() == "true"


def pytest_configure(config: pytest.Config) -> None:
    if not Path(PYINIT).exists():
        raise pytest.UsageError(f"{PYINIT} is missing: install pyinit into this venv first")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for mark in item.iter_markers("xfail"):
            reason = str(mark.kwargs.get("reason", ""))
            if mark.kwargs.get("strict") is False or "issue " not in reason:
                raise pytest.UsageError(f"{item.nodeid}: an xfail must be strict and its reason"
                                        f" must name the open issue (got {reason!r})")
    if IS_ROOT:
        return
    skip = pytest.mark.skip(reason="needs root (namespaces, mounts, other users' processes)")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


_skipped: list[str] = []
_session_mounts: list[str] = []


def pytest_sessionstart(session: pytest.Session) -> None:
    _session_mounts[:] = _mountinfo()


_known_open: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # pytest reports an expected failure as "skipped" with ``wasxfail``. Those
    # are not skips: an ``xfail(strict=True)`` test runs in full, and the run
    # fails the moment it passes. They are only allowed as the record of a
    # known, open problem (the reason names its issue), and are listed at the
    # end of every run so nobody mistakes them for passes.
    if report.skipped and hasattr(report, "wasxfail"):
        _known_open.append(f"{report.nodeid}: {report.wasxfail}")
    elif report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Per-test checks cannot see what session fixtures (podman) leave behind.
    now = _mountinfo()
    if _session_mounts and now != _session_mounts:
        sys.stderr.write("\nthe host's mount table changed during the test session:\n"
                         + mount_diff(_session_mounts, now))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if _known_open:
        sys.stderr.write(f"\n{len(_known_open)} known open problem(s), each an xfail(strict=True)"
                         " test that ran and failed as recorded:\n"
                         + "".join(f"  {line}\n" for line in _known_open))
    if IN_CI and IS_ROOT and _skipped:
        sys.stderr.write(
            f"\nCI=true as root: {len(_skipped)} test(s) skipped, which is a failure here:\n"
            + "".join(f"  {nodeid}\n" for nodeid in _skipped)
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# ---------------------------------------------------------------- leftovers
def _processes_with(token: str) -> list[int]:
    needle = f"PYINIT_TEST_TOKEN={token}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as fh:
                if needle in fh.read():
                    found.append(int(name))
        except OSError:
            continue
    return found


# What counts as a leak: any mount in the host's table that appears or
# disappears, anywhere (/, /run, /sys, /proc, /dev, /tmp, the tests' own
# directories), *except* inside container engines' storage trees. Those are
# the only places where mounts come and go on this machine through no act of
# pyinit's: podman mounts an overlay and a shm for every container it runs
# (ours in test_image.py, and anyone else's on the host), and unmounts them
# again, so a comparison that included them would fail whenever another
# container starts or stops during a test. pyinit never mounts there: every
# mount pyinit makes is inside a namespace of its own, and a leak would show
# on its destination (a test's tmp_path, the rootfs under it) or on a host
# path (/run/netns, /proc, /sys ...), all of which stay watched. Lines are
# compared whole, so a changed flag or propagation on a watched mount counts.
_FOREIGN_MOUNT_TREES = (
    "/var/lib/containers/storage/",
    "/run/containers/storage/",
    "/run/user/",             # rootless podman's storage and runtime dirs
)


def _mountinfo() -> list[str]:
    with open("/proc/self/mountinfo") as fh:
        lines = fh.read().splitlines()
    return [line for line in lines
            if not (line.split(" ", 5)[4] + "/").startswith(_FOREIGN_MOUNT_TREES)]


def mount_diff(before: list[str], after: list[str]) -> str:
    gone, new = set(before) - set(after), set(after) - set(before)
    return ("".join(f"  - {line}\n" for line in sorted(gone))
            + "".join(f"  + {line}\n" for line in sorted(new)))


@pytest.fixture(autouse=True)
def no_leftovers(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    token = uuid.uuid4().hex
    monkeypatch.setenv("PYINIT_TEST_TOKEN", token)
    before = _mountinfo()
    yield token
    deadline = time.monotonic() + 5
    while (left := _processes_with(token)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    assert not left, f"processes left behind by the test: {left}"
    after = _mountinfo()
    assert after == before, "the host's mount table changed:\n" + mount_diff(before, after)


# ---------------------------------------------------------------- running pyinit
def pyinit_cmd(args: Sequence[str], mode: str = "subreaper") -> list[str]:
    """The command line that runs pyinit as PID 1 of a new PID namespace, or not."""
    if mode == "pid1":
        return ["unshare", "--pid", "--fork", "--mount-proc", PYINIT, *args]
    if mode == "subreaper":
        return [PYINIT, *args]
    raise ValueError(mode)


def start(args: Sequence[str], mode: str = "subreaper", **kw: Any) -> subprocess.Popen[bytes]:
    kw.setdefault("stdin", subprocess.DEVNULL)
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(pyinit_cmd(args, mode), **kw)


def run(args: Sequence[str], mode: str = "subreaper", timeout: float = 60,
        **kw: Any) -> subprocess.CompletedProcess[bytes]:
    kw.setdefault("stdin", subprocess.DEVNULL)
    kw.setdefault("capture_output", True)
    return subprocess.run(pyinit_cmd(args, mode), timeout=timeout, check=False, **kw)


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(x) for x in fh.read().split()]
    except OSError:
        return []


def wait_for(predicate: Any, timeout: float = 20, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def pyinit_pid(popen: subprocess.Popen[bytes], mode: str) -> int:
    """The host PID of pyinit itself (in pid1 mode it is unshare's child)."""
    if mode == "subreaper":
        return popen.pid
    return int(wait_for(lambda: (children(popen.pid) or [0])[0], what="pyinit under unshare"))


def status_field(pid: int, field: str) -> str:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return line.split(":", 1)[1].strip()
    raise KeyError(field)


def log_line(line: str) -> dict[str, Any] | None:
    """The pyinit log event on one line of a shared stderr, or None.

    pyinit writes each event with one write(), so it is never split; but the
    workload shares the stream, and a shell that writes its own message in
    pieces ("sh: 1: kill: " ... "No such process") can put a piece in front of
    it. So the event is the JSON object that runs to the end of the line, from
    whichever ``{"`` it starts at; skipping such a line lost a real event once.
    """
    line = line.rstrip("\n")
    start = line.find('{"')
    while start >= 0:
        try:
            ev = json.loads(line[start:])
        except ValueError:
            start = line.find('{"', start + 1)
            continue
        return ev if isinstance(ev, dict) and "event" in ev else None
    return None


def events(stderr: bytes | str) -> list[dict[str, Any]]:
    """pyinit's JSON log lines (other lines, e.g. the workload's, are skipped)."""
    text = stderr if isinstance(stderr, str) else stderr.decode(errors="replace")
    return [ev for line in text.splitlines() if (ev := log_line(line)) is not None]


def event(stderr: bytes | str, name: str) -> dict[str, Any]:
    for ev in events(stderr):
        if ev.get("event") == name:
            return ev
    text = stderr if isinstance(stderr, str) else stderr.decode(errors="replace")
    raise AssertionError(f"no {name!r} event in:\n{text}")


def helper(name: str) -> list[str]:
    return [PYTHON, "-I", str(HELPERS / name)]


MODES = [pytest.param("pid1", marks=pytest.mark.root), "subreaper"]


@pytest.fixture
def reachable() -> Iterator[Path]:
    """A bundle directory a mapped or unprivileged root can reach (tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="pyinit-reachable-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)
