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

import errno
import json
import os
import select
import socket
import stat
from typing import Any

import structlog


class Sink:
    """Whole lines to stderr, best effort, never blocking."""

    def __init__(self, fd: int = 2) -> None:
        self.dropped = 0
        self.alive = True
        self.isatty = False
        self._fd = -1
        self._sock: socket.socket | None = None
        self._poll = False
        try:
            st = os.fstat(fd)
        except OSError:
            self.alive = False
            return
        self.isatty = os.isatty(fd)
        if stat.S_ISREG(st.st_mode):
            self._fd = os.dup(fd)  # same description, so O_APPEND is kept
        elif stat.S_ISSOCK(st.st_mode):
            self._sock = socket.socket(fileno=os.dup(fd))
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
        """Write to ``fd`` from now on (the container's PID 1: a non-blocking pipe to the
        parent, pyinit/runtime/logpipe.py), no longer to what stderr was."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        elif self._fd >= 0:
            os.close(self._fd)
        self._fd = fd
        self._poll = False
        self.alive = True

    def fileno(self) -> int:
        """The descriptor the sink writes to; -1 when it has none."""
        if self._sock is not None:
            return self._sock.fileno()
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
        if self._sock is not None:
            self._sock.send(data, socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL)
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


def _dumps(obj: Any, **kw: Any) -> str:
    return json.dumps(obj, default=_json_default, separators=(",", ":"))


def configure(fmt: str, level: str, sink: Sink | None = None) -> tuple[Any, Sink]:
    """Set structlog up once; returns the bound logger and its sink.

    Times are UTC ISO 8601, so nothing reads ``/etc/localtime`` (which may
    not exist after pivot_root).
    """
    sink = sink or Sink(2)
    if fmt == "auto":
        fmt = "console" if sink.isatty else "json"
    renderer: Any
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=sink.isatty)
    else:
        renderer = structlog.processors.JSONRenderer(serializer=_dumps)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=lambda *args: _SinkLogger(sink),
        cache_logger_on_first_use=True,
    )
    return structlog.get_logger(), sink

