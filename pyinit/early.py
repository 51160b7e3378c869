"""The first ~100 ms: supervise by hand while trio and structlog load.

The workload is already running when this starts, but the trio supervisor is
an import of trio and structlog away (75-300 ms, depending on the machine).
Rather than let signals wait and a quick workload's exit go unnoticed for
that long, a thread does the imports while the main thread

* reads every signal with ``sigtimedwait`` (all are still blocked, so none
  can be lost) and hands it to the forward-and-reap core
  (:mod:`pyinit.core`), the same one the supervisor feeds from its signalfd;
  its reaper waits for the workload by its PID only (the importing thread's
  children are not ours to reap);
* and, when the workload has exited and no other child is left, logs and
  exits right away with structlog alone (:func:`pyinit.report.finish_early`),
  without waiting for trio.

Otherwise it hands what it did (:class:`pyinit.core.Startup`) to the
supervisor, which logs it first, marked ``early``.
"""

from __future__ import annotations

import _signal
import os
import time

from pyinit import core
from pyinit.core import Startup as Startup  # re-exported: pyinit.container builds one
from pyinit.spawn import Spawned

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn

    from pyinit.cli import Options
    from pyinit.log import Sink


def load_runtime() -> None:
    """Import everything the supervisor needs: trio, structlog, the supervisor."""
    import_trio()
    import pyinit.report
    import pyinit.supervisor  # noqa: F401


def import_trio() -> None:
    """``import trio``, without the child process it would start or a file it would open.

    ``import trio`` calls ``ctypes.util.find_library("pthread")`` only to name
    its worker threads, and that forks ``/sbin/ldconfig -p`` (or, in images
    without ldconfig, tries gcc and objdump): an init must not grow unexpected
    children. On "not found", trio dlopen()s ``libc.so`` instead, which the
    loader looks for in ``/etc/ld.so.cache`` and ``/lib``: after the pivot
    (PID 1 imports trio from memory there), the container's files, and a
    ``libc.so`` planted there would run in PID 1. So during the import the
    lookup answers with the C library this process has loaded, by a name the
    loader matches to it without opening anything.
    """
    import ctypes.util

    real = ctypes.util.find_library  # in PID 1's bundle a stub (pyinit/memimport.py)
    ctypes.util.find_library = loaded_libc
    try:
        import trio  # noqa: F401
    finally:
        ctypes.util.find_library = real


def loaded_libc(name: str) -> str:
    """The name by which dlopen() finds the loaded C library (which has the pthread
    functions too) without opening a file: glibc matches ``libc.so.6`` to the
    loaded object's soname, musl treats ``libc.so`` as itself."""
    return "libc.so.6" if "CS_GNU_LIBC_VERSION" in os.confstr_names else "libc.so"


def run(opts: Options, child: Spawned, startup: Startup, *,
        site_deferred: bool = False) -> NoReturn:
    """Supervise by hand while a thread imports the runtime, then hand over.

    ``site_deferred``: Python started without ``site`` (the launcher's
    ``-S``), and the thread runs it first.
    """
    import threading  # here: pyinit run's parent, which imports this module, needs none

    main_thread = threading.get_ident()
    loaded = threading.Event()
    can_report = threading.Event()
    failure: list[BaseException] = []

    def load() -> None:
        try:
            if site_deferred:  # what Python's start skipped (pyinit.__main__.load_site)
                import site

                site.main()
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
    reaper = core.Core(child.pid, kill_group=opts.kill_group, everyone=False)
    while not loaded.is_set():
        info = _signal.sigtimedwait(core.WATCHED, 0.05)
        if info is None:
            continue
        _keep(startup, reaper.handle(info.si_signo, info.si_pid))
        if startup.workload_exit is not None and core.no_child_left():
            can_report.wait()  # trio no longer matters, structlog does
            if not failure:
                from pyinit import report

                startup.runtime_ready_ns = time.monotonic_ns()
                report.finish_early(opts, child, startup)
            break
    startup.runtime_ready_ns = time.monotonic_ns()

    if failure:
        _give_up(child, failure[0])
    loaded.wait()
    from pyinit import report, supervisor

    if startup.workload_exit is not None and core.no_child_left():
        report.finish_early(opts, child, startup)
    supervisor.run(opts, child, startup)


def _keep(startup: Startup, outcomes: list[core.Forwarded | core.Dropped | core.Exited
                                         | core.Stopped]) -> None:
    """What the early phase did, for the log once there is one."""
    for outcome in outcomes:
        if isinstance(outcome, core.Exited):
            startup.workload_exit = outcome
            startup.shutdown_reason = startup.shutdown_reason or "workload exited"
        elif isinstance(outcome, core.Forwarded | core.Dropped):
            startup.forwarded.append(outcome)
            startup.shutdown_reason = (startup.shutdown_reason
                                       or core.shutdown_reason(outcome.signo))


def run_importing(opts: Options, child: Spawned, startup: Startup,
                  logging: tuple[Any, Sink], between: Callable[[Callable[[], None] | None], None],
                  ) -> NoReturn:
    """``pyinit run``'s PID 1: the early phase without a thread.

    trio is imported from memory (pyinit/memimport.py) in this thread, and
    ``between`` makes the importer call back before each module it executes:
    there every pending signal is forwarded and the workload reaped, and if
    it is gone with nothing left, pyinit reports and exits at once. No second
    thread: it would be one more task in the container's pids cgroup, and
    it would have to be locked down like PID 1.
    """
    from pyinit import report

    reaper = core.Core(child.pid, kill_group=opts.kill_group, everyone=False)

    def poll() -> None:
        while (info := _signal.sigtimedwait(core.WATCHED, 0)) is not None:
            _keep(startup, reaper.handle(info.si_signo, info.si_pid))
        if startup.workload_exit is not None and core.no_child_left():
            startup.runtime_ready_ns = time.monotonic_ns()
            report.finish_early(opts, child, startup, logging)

    poll()
    between(poll)
    try:
        load_runtime()
    except Exception as exc:
        _give_up(child, exc)
    finally:
        between(None)
    poll()
    startup.runtime_ready_ns = time.monotonic_ns()
    from pyinit import supervisor

    supervisor.run(opts, child, startup, logging=logging)


def _give_up(child: Spawned, exc: BaseException) -> NoReturn:
    """The runtime cannot be imported: say so in one line, stop the workload."""
    from pyinit.runtime import say  # PID 1 of run: on its log socket, not on /dev/null

    say(f"cannot load its runtime ({type(exc).__name__}: {exc}); stopping the workload")
    for target in (-child.pid, child.pid):
        try:
            os.kill(target, _signal.SIGKILL)
        except OSError:
            pass
    os._exit(1)
