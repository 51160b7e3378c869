"""Tracebacks that never open a file: for the container's PID 1, which pivots.

A traceback shows each frame's source line, and to find it Python opens the
frame's file by the path it was imported from: :mod:`linecache` does (for
:mod:`traceback`, and so for ``pyinit.crashed``'s traceback field and
structlog's renderers), and the interpreter's own printer does too, in C,
for an uncaught exception (``sys.excepthook``), one in a thread
(``threading.excepthook``) and an unraisable one (``sys.unraisablehook``).
After pivot_root that path (the host's ``/usr/lib/python3/...``) names a file
of the container's choosing: a FIFO that blocks PID 1 for ever, a device, or
lines of its making in pyinit's log. So in PID 1, from its first line, no
traceback looks a source line up: :mod:`linecache` finds none and stats
nothing, and the three hooks format with :mod:`traceback`, which asks it.
The frames' files, line numbers and functions are all still there.
"""

from __future__ import annotations

import sys

from pyinit.runtime import say

TYPE_CHECKING = False  # typing costs 6 ms at start-up; mypy reads the name
if TYPE_CHECKING:
    import threading
    from types import TracebackType
    from typing import Any


def _no_lines(*args: Any, **kwargs: Any) -> list[str]:
    return []


def _nothing(*args: Any, **kwargs: Any) -> None:
    return None


def _no_lazy(*args: Any, **kwargs: Any) -> bool:
    return False


def _no_line(*args: Any, **kwargs: Any) -> str:
    return ""


def _show(exc_type: type[BaseException], exc: BaseException | None,
          tb: TracebackType | None, what: str) -> None:
    try:
        # Loaded by now, or served from memory after the pivot: pyinit.supervisor
        # imports it, so the closure PID 1 reads into memory has it (pyinit/closure.py),
        # and a PID 1 without that bundle imports the supervisor before the pivot.
        import traceback
    except ImportError:  # never the interpreter's printer, which opens the source
        text = f"{exc_type.__name__}: {exc}"
    else:
        text = "".join(traceback.format_exception(exc_type, exc, tb))
    for line in f"{what}:\n{text}".rstrip("\n").split("\n"):
        say(line)


def _excepthook(exc_type: type[BaseException], exc: BaseException,
                tb: TracebackType | None) -> None:
    _show(exc_type, exc, tb, "uncaught exception")


def _thread_excepthook(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is not SystemExit:
        _show(args.exc_type, args.exc_value, args.exc_traceback,
              f"uncaught exception in thread {args.thread.name if args.thread else '?'}")


def _unraisablehook(unraisable: Any) -> None:
    _show(unraisable.exc_type, unraisable.exc_value, unraisable.exc_traceback,
          unraisable.err_msg or "exception ignored")


def without_source() -> None:
    """From now on in this process, no traceback opens (or stats) a source file.

    linecache's lookups are replaced by ones that find nothing. When linecache
    is not loaded yet (PID 1's case: the parent imports no traceback machinery),
    a module of that name with those lookups takes its place in ``sys.modules``,
    so that every later ``import linecache`` (traceback's, from memory after the
    pivot) gets it; PID 1 then starts without linecache's own imports (tokenize,
    re and enum: 7 ms on its way to the workload). The same for threading's
    hook: set where threading will take it from, if it is not loaded yet.
    """
    linecache = sys.modules.get("linecache")
    if linecache is None:
        linecache = type(sys)("linecache")
        cache: dict[str, Any] = {}
        vars(linecache).update(cache=cache, clearcache=cache.clear, getline=_no_line,
                               __all__=["getline", "clearcache", "checkcache", "lazycache"])
        sys.modules["linecache"] = linecache
    else:
        linecache.clearcache()
    vars(linecache).update(getlines=_no_lines, updatecache=_no_lines, checkcache=_nothing,
                           lazycache=_no_lazy)
    sys.excepthook = _excepthook
    if "threading" in sys.modules:
        import threading

        threading.excepthook = _thread_excepthook
    else:  # not loaded yet (PID 1's case, as linecache): threading takes its excepthook
        import _thread  # from _thread when it is imported (from memory, with trio)

        vars(_thread)["_excepthook"] = _thread_excepthook
    sys.unraisablehook = _unraisablehook
