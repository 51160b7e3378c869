"""The PID-1 supervisor: forward signals, reap zombies, shut down gracefully.

It reads like tini's main loop, in two threads:

* the signal thread (:class:`SignalThread`) blocks in ``read`` on a signalfd
  and hands each signal at once to the forward-and-reap core
  (:mod:`pyinit.core`, which the early phase feeds from ``sigtimedwait``):
  a signal is forwarded before trio hears of it, with no event loop, task
  switch or log line in between;
* the trio thread runs a nursery: :meth:`Supervisor.take_over` logs and acts
  on what the core did, in the order it did it, and :meth:`Supervisor.shutdown`
  starts when the workload exits or pyinit is asked to stop: SIGTERM to
  everyone else, SIGKILL after the grace period, and done when no child is
  left.

Waking trio for every signal cost more than the forwarding itself (about
100 us of event loop between epoll's return and the task's ``os.kill``,
against ~110 us for tini's whole path). Should the kernel refuse a thread (a
seccomp profile without clone), trio reads the signalfd itself, as before.

The core's reaper owns all waiting (``waitpid(-1)``): nothing else in this
process may wait for a child, or the two race and one of them loses an exit
status (trio's ``Process.wait`` then reports 0).
"""

from __future__ import annotations

import os
import signal
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import trio

from pyinit import core, proc, signals
from pyinit.cli import Options
from pyinit.core import Dropped, Exited, Forwarded, Startup, Stopped
from pyinit.linux import cgroupfs, syscalls
from pyinit.log import Sink, configure
from pyinit.report import (
    announce,
    exit_code,
    exit_now,
    log_exited,
    log_orphans,
    log_signal,
    log_zombie,
    ms,
)
from pyinit.spawn import Spawned

EXIT_INTERNAL = 1
# A burst of orphans is logged as one event once no orphan has been reaped for
# BURST_QUIET_S, or BURST_MAX_S after its first one (a steady trickle), or at
# exit, whichever comes first.
BURST_QUIET_S = 0.1
BURST_MAX_S = 1.0
# How long the end of supervision waits for the signal thread to finish the
# signals it has read (it is woken at once; only a stopped process waits).
STOP_THREAD_S = 5.0

Outcome = Forwarded | Dropped | Exited | Stopped
# What the core did for one signal, and whether it then knew no child was left.
Handled = tuple[Sequence[Outcome], bool]


def _kill(pid: int, sig: int) -> bool:
    """Send ``sig``; False when the target is already gone."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


class SignalThread:
    """Read the signalfd in a thread of its own; forward and reap at once.

    Every signal is blocked in every thread (a new thread inherits the mask),
    and only this thread reads the signalfd, so each signal is handled exactly
    once and in the order the kernel gives them. What the core did goes, in
    that order, into ``handed`` for the trio thread to log; ``wake`` tells it
    so. The core's state (the workload's status, who is left) is written here
    only; the trio thread reads ``no_child_left`` from what was handed over.

    A thread reads from a signalfd the signals sent to the process (``kill``,
    the kernel's SIGCHLD) and its own; one the kernel directs at another
    thread stays pending there, blocked. That is the trio thread's SIGPIPE
    when it logs into a pipe nobody reads any more: pyinit's own, never the
    workload's (a SIGPIPE someone sends to pyinit is the process's, and
    forwarded).

    :meth:`stop` ends the loop: it sets ``stopping`` and sends pyinit a
    SIGCHLD, which wakes the read and at worst reaps nobody.
    """

    def __init__(self, sfd: int, core_: core.Core, wake: Callable[[], None],
                 before_forward: Callable[[int], None] | None = None) -> None:
        self.sfd = sfd
        self.core = core_
        self.wake = wake
        self.before_forward = before_forward
        self.handed: deque[Handled | BaseException] = deque()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name="pyinit-signals", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        handle, handed, before = self.core.handle, self.handed, self.before_forward
        try:
            while not self.stopping:
                for info in syscalls.read_signals(self.sfd):  # blocks
                    if before is not None:
                        before(info.signo)
                    handed.append((handle(info.signo, info.pid), self.core.no_child_left))
                self.wake()
        except BaseException as exc:  # re-raised by the trio thread: pyinit.crashed
            handed.append(exc)
            self.wake()

    def stop(self) -> None:
        """Return once nothing more is read; what was read is in ``handed``."""
        self.stopping = True
        os.kill(os.getpid(), signal.SIGCHLD)
        self.thread.join(STOP_THREAD_S)


class Supervisor:
    def __init__(self, opts: Options, child: Spawned, startup: Startup, log: Any) -> None:
        self.opts = opts
        self.child = child
        self.startup = startup
        self.log = log
        self.all_gone = trio.Event()
        self.shutdown_started_ns: int | None = None
        self.orphans_reaped = 0
        self.burst: list[Exited] = []  # reaped orphans not logged at info yet
        self.each_zombie = opts.log_level == "debug"  # zombie.reaped for every orphan
        self.nursery: trio.Nursery | None = None
        # Job control: notice when the workload is stopped by the terminal,
        # so pyinit can stop too and its own parent (a shell) sees the job stop.
        self.job_control = child.foreground and not startup.is_pid1
        self.core = core.Core(
            child.pid, kill_group=opts.kill_group, everyone=True, untraced=self.job_control,
            workload_status=None if startup.workload_exit is None
            else startup.workload_exit.status)
        self.proc_ok = proc.proc_is_ours(startup.proc)
        self.reader: SignalThread | None = None
        self.handed_over = trio.Event()  # the signal thread handed something over

    @property
    def workload_status(self) -> int | None:
        return self.core.workload_status

    # ----- the main loop ------------------------------------------------
    async def main(self) -> int:
        # Every signal has been blocked since pyinit's first line and stays
        # blocked: they are read from a signalfd. Nothing is ever lost, no
        # Python handler runs at an awkward moment, RT signals keep their
        # queueing, and each one says who sent it.
        sfd = syscalls.signalfd(core.WATCHED)
        try:
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                if startup_reason := self.startup.shutdown_reason:
                    self.start_shutdown(startup_reason)  # asked for while trio loaded
                self.log.debug("supervisor.ready", signals=len(core.WATCHED))
                # whatever died while trio was being imported
                self.act(self.core.reap(), self.core.no_child_left)
                self.start_reading(sfd)
                await self.all_gone.wait()
                self.stop_reading()
                nursery.cancel_scope.cancel()
        finally:
            if self.reader is not None:
                self.reader.stop()  # pyinit failed: stop forwarding before the emergency kill
            os.close(sfd)
        assert self.workload_status is not None
        code = exit_code(self.workload_status)
        return self.opts.remap.get(code, code)

    def start_reading(self, sfd: int) -> None:
        """The signal thread reads ``sfd``; or, if no thread can start, a trio task."""
        assert self.nursery is not None
        token = trio.lowlevel.current_trio_token()

        def wake() -> None:  # in the signal thread; the trio thread sets the Event
            try:
                token.run_sync_soon(self._handed_over, idempotent=True)
            except trio.RunFinishedError:  # only after a crash that outlived stop()
                pass

        reader = SignalThread(sfd, self.core, wake,
                              self.before_forward if self.job_control else None)
        os.set_blocking(sfd, True)
        try:
            reader.start()
        except RuntimeError as exc:  # "can't start new thread": clone refused (seccomp)
            self.log.warning("supervisor.no_signal_thread", error=str(exc),
                             detail="trio reads the signals instead: each is forwarded "
                                    "about 100 us later")
            os.set_blocking(sfd, False)
            self.nursery.start_soon(self.handle_signals, sfd)
            return
        self.reader = reader
        self.nursery.start_soon(self.take_over)

    def stop_reading(self) -> None:
        """No signal is read any more; log the last ones read."""
        if self.reader is not None:
            self.reader.stop()
            self.act_on_handed()
            self.reader = None

    def _handed_over(self) -> None:
        # Run by trio, so it sets the Event that take_over waits for now.
        self.handed_over.set()

    async def take_over(self) -> None:
        """Log and act on what the signal thread did, in its order."""
        while True:
            await self.handed_over.wait()
            # Set again by the next wake(), which follows every hand-over.
            self.handed_over = trio.Event()
            self.act_on_handed()

    def act_on_handed(self) -> None:
        if self.reader is None:
            return  # no signal thread: trio reads the signals itself
        handed = self.reader.handed
        while handed:
            item = handed.popleft()
            if isinstance(item, BaseException):
                raise item
            self.act(*item)

    async def handle_signals(self, sfd: int) -> None:
        """Without a signal thread: the same work, woken by trio."""
        while True:
            await trio.lowlevel.wait_readable(sfd)
            for info in syscalls.read_signals(sfd):
                self.before_forward(info.signo)
                self.act(self.core.handle(info.signo, info.pid), self.core.no_child_left)

    def before_forward(self, signo: int) -> None:
        """Give the terminal back before a SIGCONT reaches the workload (job control)."""
        if signo == signal.SIGCONT and self.job_control:
            self.give_terminal_to_workload()

    def act(self, outcomes: Sequence[Outcome], no_child_left: bool) -> None:
        """Log what the core did, and do what follows from it.

        ``no_child_left``: what the core knew right after these outcomes (the
        signal thread may have reaped more since).
        """
        orphans = 0
        for outcome in outcomes:
            match outcome:
                case Forwarded() | Dropped():
                    log_signal(self.log, outcome, early=False)
                    if reason := core.shutdown_reason(outcome.signo):
                        self.start_shutdown(reason)
                case Exited() if outcome.workload:
                    log_exited(self.log, self.child, outcome)
                    self.start_shutdown("workload exited")
                case Exited():
                    if self.each_zombie:
                        log_zombie(self.log, outcome)
                    self.burst.append(outcome)
                    orphans += 1
                case Stopped():
                    self.workload_stopped(outcome.signo)
        if orphans:
            self.orphans_reaped += orphans
            if len(self.burst) == orphans:  # a new burst
                assert self.nursery is not None
                self.nursery.start_soon(self.end_burst)
        if no_child_left and self.workload_status is not None:
            self.all_gone.set()

    async def end_burst(self) -> None:
        """Log the burst of orphans once it is over (or has lasted BURST_MAX_S)."""
        began = trio.current_time()
        while True:
            seen = len(self.burst)
            await trio.sleep(BURST_QUIET_S)
            if len(self.burst) == seen or trio.current_time() - began >= BURST_MAX_S:
                break
        self.log_burst()

    def log_burst(self) -> None:
        if self.burst:
            log_orphans(self.log, self.burst)
            self.burst = []

    # ----- terminal job control -----------------------------------------
    def _set_foreground(self, pgid: int) -> None:
        # SIGTTOU is blocked (like everything), so the kernel lets pyinit do
        # this even from the background.
        try:
            os.tcsetpgrp(0, pgid)
        except OSError:
            pass

    def workload_stopped(self, stopsig: int) -> None:
        """The workload was stopped (Ctrl-Z): stop pyinit too, as its shell expects."""
        self.log.info("workload.stopped", signal=signals.name(stopsig))
        self._set_foreground(os.getpgrp())
        os.kill(os.getpid(), signal.SIGSTOP)
        # Continued (``fg``): hand the terminal back and wake the workload.
        self.log.info("workload.continued")
        self.give_terminal_to_workload()
        _kill(-self.child.pid, signal.SIGCONT)

    def give_terminal_to_workload(self) -> None:
        if self.workload_status is None:
            self._set_foreground(self.child.pid)

    # ----- shutdown -----------------------------------------------------
    def start_shutdown(self, reason: str) -> None:
        if self.shutdown_started_ns is not None:
            return
        self.shutdown_started_ns = time.monotonic_ns()
        assert self.nursery is not None
        self.nursery.start_soon(self.shutdown, reason)

    def remaining(self, include_workload: bool) -> list[proc.ProcInfo] | None:
        """Our live descendants, or None when /proc cannot be trusted.

        Without a procfs but with the container's own cgroup (no PID namespace:
        pyinit/container.py), everyone in that cgroup but us, descendant or not,
        as runc kills a container's cgroup; their names are unknown ("?").
        """
        if not self.proc_ok and self.startup.cgroup_procs is not None:
            try:
                pids = cgroupfs.pids_of(self.startup.cgroup_procs)
            except OSError:
                return None
            us = os.getpid()
            return [proc.ProcInfo(pid, 0, "?", "?") for pid in pids
                    if pid not in (0, us) and (include_workload or pid != self.child.pid)]
        if not self.proc_ok:
            return None
        found = proc.descendants(os.getpid(), proc.snapshot(self.startup.proc))
        # A hidepid procfs hides who holds more than we do, but not our own children:
        # the orphans we adopted, named "?" (issue 9 review 5).
        listed = {p.pid for p in found}
        found += [proc.ProcInfo(pid, os.getpid(), "?", "?")
                  for pid in proc.children(self.startup.proc, os.getpid()) if pid not in listed]
        return [
            p for p in found
            if p.alive and (include_workload or p.pid != self.child.pid)
        ]

    def signal_all(self, sig: int, victims: list[proc.ProcInfo] | None) -> None:
        if victims is not None:
            for p in victims:
                _kill(p.pid, sig)
        elif self.startup.is_pid1:
            _kill(-1, sig)  # everyone in the namespace but us
        else:
            _kill(-self.child.pid, sig)  # best effort without /proc: the workload's group

    async def shutdown(self, reason: str) -> None:
        grace = self.opts.grace
        # The signal thread reaps meanwhile: the core's lock keeps every PID listed here
        # (and the workload's) from being freed before it is signalled (pyinit/core.py).
        with self.core.lock:
            # What the core did before this moment is logged before what follows, and
            # the workload's state below is the one the log has told.
            self.act_on_handed()
            if self.all_gone.is_set():
                return  # the reap that started us found nobody left: no /proc scan needed
            others = self.begin_shutdown()
            workload_running = self.workload_status is None
        if others is None:
            self.log.warning(
                "proc.unavailable",
                detail=("/proc is missing or belongs to another PID namespace"
                        if isinstance(self.startup.proc, str) else
                        "the container has no procfs that pyinit mounted")
                + "; signalling without knowing who is left",
            )
        if others or others is None or workload_running or self.startup.is_pid1:
            self.log.info(
                "shutdown.grace_started",
                reason=reason,
                grace_s=grace,
                pids=[p.pid for p in others] if others else [],
                workload_running=workload_running,
            )
        with trio.move_on_after(grace):
            await self.all_gone.wait()
        killed: set[int] = set()
        first = True
        while not self.all_gone.is_set():
            with self.core.lock:
                victims = self.remaining(include_workload=True)
                fresh = [p for p in victims or () if p.pid not in killed]
                if fresh or first:  # someone is left, listed or not: say so once at least
                    self.log.warning(
                        "shutdown.killed",
                        reason=f"still running {grace:g}s after the shutdown began",
                        pids=[p.pid for p in fresh],
                        commands=[p.comm for p in fresh],
                    )
                first = False
                killed.update(p.pid for p in fresh)
                # The listing names them in the log; PID 1 of its namespace kills by
                # kill(-1), so nobody the container's procfs hides outlives the grace period.
                self.signal_all(signal.SIGKILL, None if self.startup.is_pid1 else victims)
                if self.workload_status is None:
                    _kill(self.child.pid, signal.SIGKILL)
            with trio.move_on_after(0.05):
                await self.all_gone.wait()

    def begin_shutdown(self) -> list[proc.ProcInfo] | None:
        """SIGTERM to whoever the workload's exit or the signal left; who they are."""
        others = self.remaining(include_workload=False)
        # PID 1 of its own namespace signals everyone left with kill(-1): exactly those it
        # must wait for, whatever the container's procfs lists (a mount on /proc/N or
        # hidepid hides a process from it; issue 9 review 4). While the workload runs it
        # got the signal that began this, so only the listed others get SIGTERM now.
        if self.startup.is_pid1 and self.workload_status is not None:
            self.signal_all(signal.SIGTERM, None)
            self.signal_all(signal.SIGCONT, None)  # a stopped process cannot act on TERM
        elif others:
            self.signal_all(signal.SIGTERM, others)
            self.signal_all(signal.SIGCONT, others)
        return others

    def emergency_kill(self) -> None:
        """pyinit itself failed: leave nothing running behind us."""
        try:
            # The signal thread was stopped, unless it hung: then wait for its reaper.
            with self.core.lock:
                self.signal_all(signal.SIGKILL, None if self.startup.is_pid1
                                else self.remaining(include_workload=True))
                _kill(-self.child.pid, signal.SIGKILL)
                _kill(self.child.pid, signal.SIGKILL)
        except Exception:  # pragma: no cover - best effort on the way out
            pass


def run(opts: Options, child: Spawned, startup: Startup,
        logging: tuple[Any, Sink] | None = None) -> NoReturn:
    """Supervise ``child`` until every process is gone, then exit with its status."""
    log, sink = logging or configure(opts.log_format, opts.log_level)
    announce(log, opts, child, startup)
    sup = Supervisor(opts, child, startup, log)
    code = EXIT_INTERNAL
    try:
        code = trio.run(sup.main)
    except BaseException as exc:
        log.error(
            "pyinit.crashed",
            error=f"{type(exc).__name__}: {exc}",
            traceback="".join(traceback.format_exception(exc)),
            detail="killing every remaining process so nothing is left behind",
        )
        sup.emergency_kill()
        code = EXIT_INTERNAL
    sup.log_burst()  # what the nursery's end cut short
    fields: dict[str, Any] = {"orphans_reaped": sup.orphans_reaped}
    if sup.shutdown_started_ns is not None:
        fields["shutdown_ms"] = ms(sup.shutdown_started_ns, time.monotonic_ns())
    exit_now(log, sink, code, startup, **fields)
