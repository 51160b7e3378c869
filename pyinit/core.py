"""The one forward-and-reap core, whatever reads the signals.

pyinit supervises in two phases, and each has its own source of signals:

* before trio is loaded, :mod:`pyinit.early` reads them with ``sigtimedwait``;
* after, :mod:`pyinit.supervisor` reads them from a signalfd, in a thread
  of its own that acts at once and hands the outcome to trio for the log.

Both hand every signal to :meth:`Core.handle`, which decides and acts in one
place: SIGCHLD reaps, pyinit's own SIGPIPE is dropped, every other signal goes
to the workload (or its process group). It returns what happened as small
records, and the caller logs them (the supervisor) or keeps them for later
(the early phase, which has no logger yet). The decisions themselves
(:func:`route`, :func:`target`, :func:`shutdown_reason`) are pure functions.

Light on purpose: only ``_signal``, ``os`` and ``time``, because the early phase imports
this while the workload is already running and every millisecond before its
loop starts is a millisecond in which a quick workload's exit goes unnoticed.
"""

from __future__ import annotations

import _signal
import _thread
import os
import time

from pyinit import signals

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Literal

    Route = Literal["reap", "own", "forward"]

# What every signal source must deliver: the signals to forward, and SIGCHLD.
WATCHED: frozenset[int] = signals.FORWARDED | {_signal.SIGCHLD}


# ----- pure decisions -------------------------------------------------------
def route(signo: int, sender: int, me: int) -> Route:
    """What a signal is for: reaping, nothing (our own), or the workload.

    A SIGPIPE whose sender is pyinit itself comes from a log write to a pipe
    whose reader went away (every signal is blocked, so it cannot kill us);
    it is not meant for the workload. A SIGPIPE from anyone else is.
    """
    if signo == _signal.SIGCHLD:
        return "reap"
    if signo == _signal.SIGPIPE and sender == me:
        return "own"
    return "forward"


def target(workload: int, kill_group: bool) -> int:
    """Whom a forwarded signal goes to: the workload, or (``-g``) its process group."""
    return -workload if kill_group else workload


def shutdown_reason(signo: int) -> str | None:
    """The reason to start the graceful shutdown that ``signo`` gives, if any."""
    return f"received {signals.name(signo)}" if signo in signals.SHUTDOWN else None


# ----- what happened --------------------------------------------------------
class Forwarded:
    """A signal sent on; ``delivered`` is False when the target was already gone."""

    __slots__ = ("delivered", "sender", "signo", "target")

    def __init__(self, signo: int, sender: int, target: int, delivered: bool) -> None:
        self.signo = signo
        self.sender = sender
        self.target = target
        self.delivered = delivered


class Dropped:
    """A signal not sent on: the workload has exited (and there is no ``-g``)."""

    __slots__ = ("sender", "signo")

    def __init__(self, signo: int, sender: int) -> None:
        self.signo = signo
        self.sender = sender


class Exited:
    """A child reaped: the workload (``workload``) or an orphan."""

    __slots__ = ("at_ns", "pid", "status", "workload")

    def __init__(self, pid: int, status: int, workload: bool, at_ns: int) -> None:
        self.pid = pid
        self.status = status
        self.workload = workload
        self.at_ns = at_ns


class Stopped:
    """The workload was stopped (job control; only seen when asked for)."""

    __slots__ = ("pid", "signo")

    def __init__(self, pid: int, signo: int) -> None:
        self.pid = pid
        self.signo = signo


# ----- the core -------------------------------------------------------------
class Core:
    """Forward and reap for one workload.

    ``everyone`` chooses the reaper. False: only the workload is waited for,
    by its PID; the early phase must not reap anyone else, because the
    thread importing trio may have a child of its own to wait for. True:
    every child is reaped, in a loop until none is ready, because SIGCHLDs
    coalesce while pending. ``untraced`` also reports the workload's stops
    (job control at a terminal).

    ``lock`` is held while the reaper reaps. The supervisor's signal thread
    reaps while its trio thread may signal PIDs it listed or the workload's:
    holding the lock across the listing and the kill, no PID is freed (and
    possibly reused by a stranger) in between, as in one thread.
    """

    __slots__ = ("everyone", "kill_group", "lock", "me", "no_child_left", "untraced",
                 "workload", "workload_status")

    def __init__(self, workload: int, *, kill_group: bool, everyone: bool,
                 untraced: bool = False, workload_status: int | None = None) -> None:
        self.workload = workload
        self.kill_group = kill_group
        self.everyone = everyone
        self.untraced = untraced
        self.me = os.getpid()
        self.workload_status = workload_status
        # Set by the reaper that finds no child at all (only when reaping everyone).
        self.no_child_left = False
        self.lock = _thread.allocate_lock()

    def handle(self, signo: int, sender: int) -> list[Forwarded | Dropped | Exited | Stopped]:
        """Act on one signal from any source; what happened, in order."""
        match route(signo, sender, self.me):
            case "reap":
                return [*self.reap()]
            case "own":
                return []
            case _:
                return [self.forward(signo, sender)]

    def forward(self, signo: int, sender: int) -> Forwarded | Dropped:
        to = target(self.workload, self.kill_group)
        if self.workload_status is not None and not self.kill_group:
            return Dropped(signo, sender)
        try:
            os.kill(to, signo)
            delivered = True
        except (ProcessLookupError, PermissionError):
            delivered = False
        return Forwarded(signo, sender, to, delivered)

    def reap(self) -> list[Exited | Stopped]:
        with self.lock:
            return self._reap()

    def _reap(self) -> list[Exited | Stopped]:
        found: list[Exited | Stopped] = []
        if not self.everyone:
            if self.workload_status is None:
                pid, status = os.waitpid(self.workload, os.WNOHANG)
                if pid:
                    found.append(self._exited(pid, status))
            return found
        flags = os.WNOHANG | (os.WUNTRACED if self.untraced else 0)
        self.no_child_left = False
        while True:
            try:
                pid, status = os.waitpid(-1, flags)
            except ChildProcessError:
                self.no_child_left = True
                return found
            if pid == 0:
                return found
            if os.WIFSTOPPED(status):
                if pid == self.workload:
                    found.append(Stopped(pid, os.WSTOPSIG(status)))
                continue
            found.append(self._exited(pid, status))

    def _exited(self, pid: int, status: int) -> Exited:
        workload = pid == self.workload
        if workload:
            self.workload_status = status
        return Exited(pid, status, workload, time.monotonic_ns())


def no_child_left() -> bool:
    """True when pyinit has no child at all, not even a zombie (nothing is reaped)."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return False


class Startup:
    """What happened before the supervisor existed, handed to it (or to the early exit)."""

    __slots__ = ("cgroup_procs", "forwarded", "inherited_ignored", "inherited_mask", "is_pid1",
                 "proc", "runtime_ready_ns", "runtime_source", "shutdown_reason", "start_ns",
                 "subreaper_error", "workload_exit")

    def __init__(self, *, start_ns: int, inherited_mask: frozenset[int], is_pid1: bool,
                 subreaper_error: OSError | None, inherited_ignored: frozenset[int]) -> None:
        self.start_ns = start_ns
        self.inherited_mask = inherited_mask
        self.is_pid1 = is_pid1
        self.subreaper_error = subreaper_error
        self.inherited_ignored = inherited_ignored
        # What the early phase did, for the log once there is one.
        self.forwarded: list[Forwarded | Dropped] = []
        self.workload_exit: Exited | None = None
        self.shutdown_reason: str | None = None
        self.runtime_ready_ns = 0
        # Where trio came from: "files", or "memory" (pyinit run's PID 1, pyinit/memimport.py).
        self.runtime_source = "files"
        # Where the shutdown reads who is left (pyinit/proc.py): the host's /proc
        # by path for ``pyinit -- CMD``; the container's PID 1 sets an fd or None.
        self.proc: str | int | None = "/proc"
        # With no procfs to read it from, and no PID namespace: a descriptor on the
        # cgroup.procs of the container's own cgroup (pyinit/container.py).
        self.cgroup_procs: int | None = None
