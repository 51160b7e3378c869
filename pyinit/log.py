"""Structured logs that can never block or kill the supervisor.

pyinit shares its stderr with the workload, so it cannot simply make fd 2
non-blocking: O_NONBLOCK lives on the open file description, and the
workload would start getting EAGAIN on its own writes. Instead :class:`Sink`
gets a description of its own:

* a pipe, FIFO or terminal is reopened through ``/proc/self/fd/2`` (a new
  open file description) and made non-blocking; a line that does not fit is
  dropped and counted;
* a socket (journald, a log collector) is written with ``MSG_DONTWAIT``;
* a regular file is written through a duplicate of fd 2 (it never blocks
  for long, and reopening would lose O_APPEND);
* a closed stderr, or a pipe whose reader went away (EPIPE), turns the sink
  off for good.

A write to a pipe with no reader raises SIGPIPE in pyinit. pyinit keeps
every signal blocked and reads them from a signalfd, so that cannot kill it;
the supervisor recognises its own SIGPIPE by the sender PID and does not
forward it to the workload.
"""

from __future__ import annotations

import _json
import errno
import os
import select
import stat
import time

TYPE_CHECKING = False  # typing costs 6 ms at start-up; mypy reads the name
if TYPE_CHECKING:
    from typing import Any


def send_nowait(fd: int, data: bytes) -> int:
    """``send(fd, data, MSG_DONTWAIT | MSG_NOSIGNAL)`` on a socket this process keeps
    open: BlockingIOError when it is full, whatever the O_NONBLOCK flag says."""
    import _socket  # PID 1's was loaded before the pivot (runtime/logpipe.py)

    sock = _socket.socket(fileno=fd)
    try:
        return sock.send(data, _socket.MSG_DONTWAIT | _socket.MSG_NOSIGNAL)
    finally:
        sock.detach()  # the descriptor stays open: it is not this wrapper's


class Sink:
    """Whole lines to stderr, best effort, never blocking."""

    def __init__(self, fd: int = 2) -> None:
        self.dropped = 0
        self.alive = True
        self.isatty = False
        self._fd = -1
        self._sock_fd = False  # _fd is a socket: written with send_nowait()
        self._cut = False  # the last line sent there was cut short: end it first
        self._poll = False
        try:
            st = os.fstat(fd)
        except OSError:
            self.alive = False
            return
        self.isatty = os.isatty(fd)
        if stat.S_ISREG(st.st_mode):
            self._fd = os.dup(fd)  # same description, so O_APPEND is kept
        elif stat.S_ISSOCK(st.st_mode):  # journald, a log collector
            self._fd = os.dup(fd)
            self._sock_fd = True
        else:
            try:
                self._fd = os.open(
                    f"/proc/self/fd/{fd}",
                    os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY,
                )
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # a FIFO or pipe with no reader
                    self.alive = False
                    return
                # No /proc: fall back to a private duplicate checked with poll().
                self._fd = os.dup(fd)
                self._poll = True

    def redirect(self, fd: int) -> None:
        """Write to ``fd`` from now on (the container's PID 1: a socket to the parent,
        pyinit/runtime/logpipe.py), no longer to what stderr was.

        A socket is written with ``MSG_DONTWAIT``, never through its O_NONBLOCK:
        that flag is on the open file description, which a ``pidfd_getfd`` copy
        shares, and whoever holds the copy can clear it (issue 9 review 5)."""
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = fd
        self._sock_fd = stat.S_ISSOCK(os.fstat(fd).st_mode)
        self._poll = False
        self.alive = True

    def fileno(self) -> int:
        """The descriptor the sink writes to; -1 when it has none."""
        return self._fd

    def write(self, data: bytes) -> None:
        if not self.alive:
            self.dropped += 1
            return
        try:
            self._write(data)
        except BlockingIOError:
            self.dropped += 1
        except OSError as exc:
            self.dropped += 1
            if exc.errno in (errno.EPIPE, errno.EBADF, errno.ECONNRESET, errno.ENOTCONN):
                self.alive = False

    def _write(self, data: bytes) -> None:
        if self._sock_fd:
            # A stream socket may take part of a long line. What follows must start a
            # line of its own, so a cut line is ended before the next one is sent.
            if self._cut:
                send_nowait(self._fd, b"\n")
                self._cut = False
            sent = send_nowait(self._fd, data)
            while sent < len(data):
                try:
                    sent += send_nowait(self._fd, data[sent:])
                except BlockingIOError:
                    self._cut = True
                    raise
            return
        if self._poll:
            poller = select.poll()
            poller.register(self._fd, select.POLLOUT)
            if not poller.poll(0):
                raise BlockingIOError(errno.EAGAIN, "stderr is full")
        written = os.write(self._fd, data)
        if written < len(data):
            # A line longer than PIPE_BUF was split; finish it if there is
            # room, or end it so the next line starts clean.
            try:
                os.write(self._fd, data[written:])
            except BlockingIOError:
                os.write(self._fd, b"\n")
                raise


class _SinkLogger:
    """The structlog logger: every level writes one line to the sink."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink

    def msg(self, message: str) -> None:
        self._sink.write(message.encode("utf-8", "replace") + b"\n")

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


def _json_default(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return repr(value)


# json.dumps(obj, default=_json_default, separators=(",", ":")) without
# ``import json`` (which imports ``re``: milliseconds on the way to the
# workload): the same C encoder json.dumps uses, set up the same way.
_encode = _json.make_encoder(
    {}, _json_default, _json.encode_basestring_ascii, None, ":", ",", False, False, True)


def _dumps(obj: Any, **kw: Any) -> str:
    return "".join(_encode(obj, 0))


def _utc_iso(ns: int) -> str:
    """``datetime.now(timezone.utc).isoformat()`` with ``Z`` for ``+00:00``, as
    structlog's ``TimeStamper(fmt="iso", utc=True)`` writes it (no fraction when
    the microseconds are 0), without importing datetime."""
    seconds, micro = divmod(ns // 1000, 1_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{text}.{micro:06d}Z" if micro else f"{text}Z"


class JsonLogger:
    """The JSON format's logger, without structlog (issue 12).

    structlog and what it imports (asyncio among others) cost tens of
    milliseconds, on the way to the workload in ``pyinit run`` and before an
    early exit in init mode. This writes the very lines structlog's chain
    wrote (the event's fields in call order, then ``event``, ``level`` and
    ``timestamp``, rendered by :func:`_dumps`), with the same level filter
    and the same ``event % args`` for positional arguments.
    """

    __slots__ = ("_min", "_sink")

    def __init__(self, sink: Sink, level: str) -> None:
        self._sink = sink
        self._min = _LEVELS[level]

    def _emit(self, level: str, event: str, args: tuple[Any, ...], kw: dict[str, Any]) -> None:
        if args:
            event = event % args
        kw["event"] = event
        kw["level"] = level
        kw["timestamp"] = _utc_iso(time.time_ns())
        self._sink.write(_dumps(kw).encode("utf-8", "replace") + b"\n")

    def debug(self, event: str, *args: Any, **kw: Any) -> None:
        if self._min <= 10:
            self._emit("debug", event, args, kw)

    def info(self, event: str, *args: Any, **kw: Any) -> None:
        if self._min <= 20:
            self._emit("info", event, args, kw)

    def warning(self, event: str, *args: Any, **kw: Any) -> None:
        if self._min <= 30:
            self._emit("warning", event, args, kw)

    def error(self, event: str, *args: Any, **kw: Any) -> None:
        if self._min <= 40:
            self._emit("error", event, args, kw)

    def critical(self, event: str, *args: Any, **kw: Any) -> None:
        self._emit("critical", event, args, kw)


def configure(fmt: str, level: str, sink: Sink | None = None) -> tuple[Any, Sink]:
    """The logger for this format and level, and its sink.

    JSON lines come from :class:`JsonLogger`; the console format is
    structlog's (imported only then). Times are UTC ISO 8601, so nothing
    reads ``/etc/localtime`` (which may not exist after pivot_root).
    """
    sink = sink or Sink(2)
    if fmt == "auto":
        fmt = "console" if sink.isatty else "json"
    if fmt != "console":
        return JsonLogger(sink, level), sink
    return _structlog_console(level, sink), sink


def _structlog_console(level: str, sink: Sink) -> Any:
    import structlog

    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.dev.ConsoleRenderer(colors=sink.isatty),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=lambda *args: _SinkLogger(sink),
        cache_logger_on_first_use=True,
    )
    return structlog.get_logger()

