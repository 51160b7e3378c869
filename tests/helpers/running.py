"""Not a workload: the tests' handle on a running pyinit.

:class:`Pyinit` starts the real binary (as PID 1 under ``unshare``, or as a
subreaper), reads the workload's stdout and pyinit's JSON log as they come, and
can hold pyinit in its early phase: with ``hold=True`` pyinit's ``import trio``
waits (see ``hold_trio/sitecustomize.py``) until :meth:`Pyinit.release`.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import children, log_line, pyinit_cmd, pyinit_pid

HOLD_TRIO = Path(__file__).resolve().parent / "hold_trio"


def sender(mode: str) -> int:
    """The sender PID pyinit sees for the test's signals (0: from outside its namespace)."""
    return 0 if mode == "pid1" else os.getpid()


class Pyinit:
    """pyinit running a workload, its stdout and its log read as they come."""

    def __init__(self, args: list[str], mode: str, *, hold: bool,
                 env: dict[str, str] | None = None, stdin: int = subprocess.DEVNULL,
                 command: list[str] | None = None) -> None:
        """``command`` replaces the usual pyinit command line for ``mode`` (a wrapper)."""
        self.mode = mode
        full_env = {**os.environ, **(env or {})}
        self._release = -1
        held = -1
        if hold:
            held, self._release = os.pipe()
            full_env["PYTHONPATH"] = str(HOLD_TRIO)
            full_env["PYINIT_TEST_HOLD_FD"] = str(held)
        self.proc = subprocess.Popen(
            command or pyinit_cmd(args, mode), env=full_env, stdin=stdin,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(held,) if hold else (),
        )
        if hold:
            os.close(held)
        self.lines: list[str] = []  # the workload's stdout, so far
        self.events: list[dict[str, Any]] = []  # pyinit's log, so far
        self._out: queue.Queue[str | None] = queue.Queue()
        self._err: queue.Queue[dict[str, Any] | None] = queue.Queue()
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self._out, str.strip)),
            threading.Thread(target=self._read, args=(self.proc.stderr, self._err, _parse)),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: Any, into: queue.Queue[Any], parse: Callable[[str], Any]) -> None:
        for raw in stream:
            item = parse(raw.decode(errors="replace"))
            if item is not None:
                into.put(item)
        into.put(None)

    @property
    def pid(self) -> int:
        """pyinit's own PID (under unshare, unshare's child)."""
        return pyinit_pid(self.proc, self.mode)

    def line(self, text: str, timeout: float = 30) -> bool:
        """Wait until the workload has printed ``text``; False if it did not in time."""
        while text not in self.lines:
            try:
                got = self._out.get(timeout=timeout)
            except queue.Empty:
                return False
            if got is None:
                return False
            self.lines.append(got)
        return True

    def event(self, name: str, timeout: float = 30) -> dict[str, Any]:
        """Wait for pyinit to log ``name``."""
        while True:
            for ev in self.events:
                if ev["event"] == name:
                    return ev
            try:
                got = self._err.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no {name!r} event after {timeout}s: {self.events}") from None
            if got is None:
                raise AssertionError(f"pyinit ended without logging {name!r}: {self.events}")
            self.events.append(got)

    def release(self) -> None:
        """Let pyinit load trio: the early phase ends."""
        if self._release >= 0:
            os.close(self._release)
            self._release = -1

    def finish(self, timeout: float = 60) -> int:
        """Wait for pyinit to exit; its code. Every line it wrote is read by then."""
        code = self.proc.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout)
        while (line := _take(self._out)) is not None:
            self.lines.append(line)
        while (ev := _take(self._err)) is not None:
            self.events.append(ev)
        self.release()
        return code

    def kill(self) -> None:
        """Leave nothing behind, whatever state the test stopped in."""
        self.release()
        if self.proc.poll() is None:
            pyinit = children(self.proc.pid) if self.mode == "pid1" else [self.proc.pid]
            for pid in [*pyinit, *(c for p in pyinit for c in children(p))]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.proc.kill()
        self.proc.wait()
        for reader in self._readers:
            reader.join(10)


def _take(q: queue.Queue[Any]) -> Any:
    try:
        return q.get_nowait()
    except queue.Empty:
        return None


def _parse(line: str) -> dict[str, Any] | None:
    ev = log_line(line)
    if ev is not None:
        ev.pop("timestamp", None)
    return ev
