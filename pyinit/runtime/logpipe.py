"""PID 1's log reaches the caller through the parent, never through the caller's descriptors.

The container's PID 1 runs next to a workload that may be granted
``CAP_SYS_PTRACE`` (or share its uid and user namespace): whatever PID 1 holds,
the workload can reopen through ``/proc/1/fd`` or use by attaching to it. So
PID 1 holds nothing of the caller's once the workload runs: its stdio becomes
the container's ``/dev/null`` (runtime/hardening.py) and its log lines, and
its one-line errors (:func:`pyinit.runtime.say`), go into a pipe whose other
end is in the parent, which stays in the runtime's namespaces and writes them
to the caller's stderr.

What a workload that takes PID 1 over can do with the pipe is what PID 1
itself can: write lines the parent passes on. The parent passes whole lines
only, at most :data:`MAX_LINE` bytes each, with every control character but
a tab and a colour (SGR) sequence shown escaped, so no terminal escape
reaches the caller's terminal this way; a forged log line it cannot prevent
(PID 1's log after the workload started is no more trusted than the
workload's own stderr).

Neither side can block the other. PID 1's end is non-blocking and its
:class:`~pyinit.log.Sink` drops (and counts) a line that does not fit, so a
parent that stops reading costs lines, never a stuck PID 1. The parent reads
a bounded amount each round of its loop, and after PID 1 has exited (and
been reaped) it reads what is left without waiting: every line PID 1 wrote,
the last ``workload.exited`` and ``pyinit.exit`` included, is in the pipe.
"""

from __future__ import annotations

import fcntl
import os
import re

from pyinit.log import Sink
from pyinit.runtime import say_to

PIPE_SIZE = 1 << 20  # the unprivileged maximum by default (fs.pipe-max-size)
MAX_LINE = 256 * 1024
ROUND_BUDGET = 1 << 20  # bytes per round of the parent's loop
DRAIN_BUDGET = 16 << 20  # after PID 1's exit: no one else writes, but never unbounded

# C0 and C1 controls, DEL, and an ESC that does not start a colour sequence.
_UNSAFE = re.compile("\x1b(?!\\[[0-9;]*m)|[\x00-\x08\x0a-\x1a\x1c-\x1f\x7f-\x9f]")


def open_pipe() -> tuple[int, int]:
    """(read end for the parent, write end for PID 1); both non-blocking, close-on-exec."""
    read_end, write_end = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:  # fs.pipe-max-size, or this user's pipe quota: the default 64 KiB
        pass
    return read_end, write_end


def write_to_parent(sink: Sink, fd: int) -> None:
    """In PID 1, first thing: its log and its ``say`` lines go to the parent through ``fd``."""
    sink.redirect(fd)
    say_to(fd)


def clean(line: bytes) -> bytes:
    """One line as the parent passes it on: control characters shown as ``\\xNN``."""
    text = line.decode("utf-8", "replace")
    return _UNSAFE.sub(lambda m: f"\\x{ord(m.group()[0]):02x}", text).encode()


class Forwarder:
    """The parent's side: whole lines from PID 1's pipe to the caller's stderr."""

    def __init__(self, fd: int, sink: Sink) -> None:
        self._fd = fd
        self._sink = sink
        self._partial = b""

    def fileno(self) -> int:
        """The pipe's read end, for poll(); -1 once closed."""
        return self._fd

    def pump(self, budget: int = ROUND_BUDGET) -> bool:
        """Pass on what is in the pipe now, up to ``budget`` bytes; False at its end."""
        if self._fd < 0:
            return False
        while budget > 0:
            try:
                chunk = os.read(self._fd, min(budget, 65536))
            except BlockingIOError:
                return True
            except OSError:
                chunk = b""
            if not chunk:
                self.close()
                return False
            budget -= len(chunk)
            self._take(chunk)
        return True

    def drain(self) -> None:
        """PID 1 has exited: pass on everything it wrote, then close the pipe."""
        self.pump(DRAIN_BUDGET)
        self.close()

    def close(self) -> None:
        if self._partial:  # PID 1 died in the middle of a line
            self._pass(self._partial)
            self._partial = b""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _take(self, chunk: bytes) -> None:
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        for line in lines:
            self._pass(line)
        if len(self._partial) > MAX_LINE:
            self._pass(self._partial[:MAX_LINE])
            self._partial = b""

    def _pass(self, line: bytes) -> None:
        if line:
            self._sink.write(clean(line[:MAX_LINE]) + b"\n")
