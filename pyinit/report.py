"""Exit statuses and the log events that tell what happened before trio ran.

Kept free of trio, so the early phase (:mod:`pyinit.early`) can report and
exit as soon as structlog is loaded.
"""

from __future__ import annotations

import errno
import os
import sys
import time

from pyinit import signals
from pyinit.cli import Options
from pyinit.core import Dropped, Exited, Forwarded, Startup
from pyinit.log import Sink, configure
from pyinit.spawn import Spawned

TYPE_CHECKING = False  # typing costs 6 ms at start-up; mypy reads the name
if TYPE_CHECKING:
    from typing import Any, NoReturn


def exit_code(status: int) -> int:
    """A wait status as a shell would report it: the code, or 128+N for signal N."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def status_fields(status: int) -> dict[str, Any]:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return {"code": 128 + sig, "signal": signals.name(sig),
                "core_dumped": os.WCOREDUMP(status)}
    return {"code": os.WEXITSTATUS(status), "signal": None}


def ms(start_ns: int, end_ns: int) -> float:
    return round((end_ns - start_ns) / 1e6, 3)


def announce(log: Any, opts: Options, child: Spawned, startup: Startup) -> None:
    """What happened before the logger existed, in the order it happened."""
    log.info(
        "workload.spawned",
        pid=child.pid,
        argv=child.argv,
        spawn_ms=ms(startup.start_ns, child.spawned_ns),
        pid1=startup.is_pid1,
        foreground=child.foreground,
    )
    if startup.subreaper_error is not None:
        log.warning("subreaper.failed", errno=errno.errorcode.get(
            startup.subreaper_error.errno or 0, "?"),
            detail="orphaned descendants will not be reaped by pyinit")
    elif not startup.is_pid1 and not opts.subreaper:
        log.warning("subreaper.disabled",
                    detail="pyinit is not PID 1 and --no-subreaper was given: orphaned "
                    "descendants go to the real init and pyinit will not reap them")
    if startup.inherited_ignored:
        log.warning(
            "signal.inherited_ignored",
            signals=[signals.name(s) for s in sorted(startup.inherited_ignored)],
            detail="pyinit's parent ignores these (a shell does this for background jobs); "
            "the workload inherits that, so forwarding them has no effect",
        )
    for outcome in startup.forwarded:
        log_signal(log, outcome, early=True)
    if startup.workload_exit is not None:
        log_exited(log, child, startup.workload_exit)
    log.debug("runtime.loaded", import_ms=ms(child.spawned_ns, startup.runtime_ready_ns),
              source=startup.runtime_source)


def log_signal(log: Any, outcome: Forwarded | Dropped, *, early: bool) -> None:
    """One line per signal, from either phase; ``early``: read before trio was loaded."""
    name = signals.name(outcome.signo)
    if isinstance(outcome, Dropped):
        log.info("signal.dropped", signal=name, sender_pid=outcome.sender,
                 reason="the workload has exited", early=early)
        return
    log.info("signal.forwarded", signal=name, target=outcome.target,
             target_kind="process group" if outcome.target < 0 else "workload",
             delivered=outcome.delivered, sender_pid=outcome.sender, early=early)


def log_exited(log: Any, child: Spawned, outcome: Exited) -> None:
    """The reaped workload: ``zombie.reaped`` at debug, ``workload.exited`` at info.

    Orphans go through :func:`log_zombie` and, a burst at a time, :func:`log_orphans`.
    """
    log_zombie(log, outcome)
    log.info("workload.exited", pid=outcome.pid, runtime_ms=ms(child.spawned_ns, outcome.at_ns),
             **status_fields(outcome.status))


def pid_ranges(pids: list[int]) -> list[list[int]]:
    """``[7, 3, 4, 5, 9]`` -> ``[[3, 5], [7, 7], [9, 9]]``: sorted, inclusive, no overlap.

    A burst's orphans were usually forked one after the other, so their PIDs
    are mostly consecutive and a few ranges name thousands of them.
    """
    ranges: list[list[int]] = []
    for pid in sorted(pids):
        if ranges and pid <= ranges[-1][1] + 1:
            ranges[-1][1] = max(ranges[-1][1], pid)
        else:
            ranges.append([pid, pid])
    return ranges


def log_zombie(log: Any, outcome: Exited) -> None:
    """``zombie.reaped`` (debug): one reaped process, the workload or an orphan."""
    log.debug("zombie.reaped", pid=outcome.pid, workload=outcome.workload,
              **status_fields(outcome.status))


def log_orphans(log: Any, orphans: list[Exited]) -> None:
    """A burst of reaped orphans: one ``orphans.reaped`` (info) for all of them.

    Per orphan, a log line cost more than the reaping itself (a burst of 2000
    was 2000 lines), so the info event names them all at once: how many,
    their PIDs as ranges, how many ended with each exit code (128+N for
    signal N), and the time from the first reap to the last. Each one is
    still logged on its own as ``zombie.reaped`` at debug.
    """
    codes: dict[str, int] = {}
    for orphan in orphans:
        code = str(exit_code(orphan.status))
        codes[code] = codes.get(code, 0) + 1
    log.info("orphans.reaped", count=len(orphans), pids=pid_ranges([o.pid for o in orphans]),
             codes=dict(sorted(codes.items(), key=lambda kv: int(kv[0]))),
             span_ms=ms(min(o.at_ns for o in orphans), max(o.at_ns for o in orphans)))


def exit_now(log: Any, sink: Sink, code: int, startup: Startup, **fields: Any) -> NoReturn:
    fields["uptime_ms"] = ms(startup.start_ns, time.monotonic_ns())
    if sink.dropped:
        fields["log_lines_dropped"] = sink.dropped
    log.info("pyinit.exit", code=code, **fields)
    try:
        sys.stdout.flush()
    except Exception:
        pass
    # os._exit: skip interpreter teardown (tens of ms) now that nothing is left.
    os._exit(code)


def finish_early(opts: Options, child: Spawned, startup: Startup,
                 logging: tuple[Any, Sink] | None = None) -> NoReturn:
    """The workload exited while trio loaded and nothing else is left: just exit."""
    assert startup.workload_exit is not None
    log, sink = logging or configure(opts.log_format, opts.log_level)
    announce(log, opts, child, startup)
    code = exit_code(startup.workload_exit.status)
    exit_now(log, sink, opts.remap.get(code, code), startup, orphans_reaped=0, early=True)


