"""The first ~100 ms: supervise by hand while trio and structlog load.

The workload is already running when this starts, but the trio supervisor is
an import of trio and structlog away (75-300 ms, depending on the machine).
Rather than let signals wait and a quick workload's exit go unnoticed for
that long, a thread does the imports while the main thread

* forwards every signal at once (it reads them with ``sigtimedwait``; all
  are still blocked, so none can be lost),
* waits for the workload (by its PID only: nothing else may be reaped here),
* and, when the workload has exited and no other child is left, logs and
  exits right away, without waiting for trio.

Otherwise it hands everything it saw to the supervisor, which replays it.
"""

from __future__ import annotations

import _signal
import os
import threading
import time

from pyinit import signals
from pyinit.spawn import Spawned

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

    from pyinit.cli import Options


class Startup:
    """Facts gathered before the supervisor exists."""

    __slots__ = ("forwarded", "inherited_ignored", "inherited_mask", "is_pid1",
                 "runtime_ready_ns", "shutdown_reason", "start_ns", "subreaper_error",
                 "workload_exited_ns", "workload_status")

    def __init__(self, *, start_ns: int, inherited_mask: frozenset[int], is_pid1: bool,
                 subreaper_error: OSError | None, inherited_ignored: frozenset[int]) -> None:
        self.start_ns = start_ns
        self.inherited_mask = inherited_mask
        self.is_pid1 = is_pid1
        self.subreaper_error = subreaper_error
        self.inherited_ignored = inherited_ignored
        # What the early phase saw, for the supervisor to log and act on.
        self.forwarded: list[tuple[int, int, bool]] = []  # (signal, sender, delivered)
        self.shutdown_reason: str | None = None
        self.workload_status: int | None = None
        self.workload_exited_ns = 0
        self.runtime_ready_ns = 0


def load_runtime() -> None:
    """Import everything the supervisor needs (also before any pivot_root).

    ``import trio`` calls ``ctypes.util.find_library("pthread")`` only to name
    its worker threads, and that forks ``/sbin/ldconfig -p`` (or, in images
    without ldconfig, tries gcc and objdump). An init must not grow
    unexpected children, so the lookup answers "not found" during the import
    and trio simply leaves its threads unnamed.
    """
    import ctypes.util

    real = ctypes.util.find_library
    ctypes.util.find_library = lambda name: None
    try:
        import trio  # noqa: F401
    finally:
        ctypes.util.find_library = real
    import pyinit.report
    import pyinit.supervisor  # noqa: F401


def _no_child_left() -> bool:
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return False


def run(opts: Options, child: Spawned, startup: Startup) -> NoReturn:
    main_thread = threading.get_ident()
    loaded = threading.Event()
    can_report = threading.Event()
    failure: list[BaseException] = []

    def load() -> None:
        try:
            import pyinit.report  # noqa: F401  (structlog: enough to report and exit)

            can_report.set()
            load_runtime()
        except BaseException as exc:  # reported by the main thread
            failure.append(exc)
        finally:
            can_report.set()
            loaded.set()
            # Wake the main thread from sigtimedwait; a spurious SIGCHLD only
            # makes it look at the workload once more.
            _signal.pthread_kill(main_thread, _signal.SIGCHLD)

    threading.Thread(target=load, name="pyinit-import", daemon=True).start()
    watched = set(signals.FORWARDED) | {_signal.SIGCHLD}
    target = -child.pid if opts.kill_group else child.pid
    me = os.getpid()
    while not loaded.is_set():
        info = _signal.sigtimedwait(watched, 0.05)
        if info is None:
            continue
        signo = info.si_signo
        if signo == _signal.SIGCHLD:
            if startup.workload_status is None:
                pid, status = os.waitpid(child.pid, os.WNOHANG)
                if pid:
                    startup.workload_status = status
                    startup.workload_exited_ns = time.monotonic_ns()
                    startup.shutdown_reason = startup.shutdown_reason or "workload exited"
            if startup.workload_status is not None and _no_child_left():
                can_report.wait()  # trio no longer matters, structlog does
                if not failure:
                    from pyinit import report

                    startup.runtime_ready_ns = time.monotonic_ns()
                    report.finish_early(opts, child, startup)
                break
        elif signo == _signal.SIGPIPE and info.si_pid == me:
            continue
        else:
            delivered = False
            if startup.workload_status is None or opts.kill_group:
                try:
                    os.kill(target, signo)
                    delivered = True
                except OSError:
                    pass
            startup.forwarded.append((signo, info.si_pid, delivered))
            if signo in signals.SHUTDOWN and startup.shutdown_reason is None:
                startup.shutdown_reason = f"received {signals.name(signo)}"
    startup.runtime_ready_ns = time.monotonic_ns()

    if failure:
        _give_up(child, failure[0])
    loaded.wait()
    from pyinit import report, supervisor

    if startup.workload_status is not None and _no_child_left():
        report.finish_early(opts, child, startup)
    supervisor.run(opts, child, startup)


def _give_up(child: Spawned, exc: BaseException) -> NoReturn:
    """The runtime cannot be imported: say so in one line, stop the workload."""
    line = f"pyinit: cannot load its runtime ({type(exc).__name__}: {exc}); stopping the workload\n"
    try:
        os.write(2, line.encode(errors="replace"))
    except OSError:
        pass
    for target in (-child.pid, child.pid):
        try:
            os.kill(target, _signal.SIGKILL)
        except OSError:
            pass
    os._exit(1)
