"""PID 1's log reaches the caller through the parent, never through the caller's descriptors.

The container's PID 1 runs next to a workload that may be granted
``CAP_SYS_PTRACE`` (or share its uid and user namespace): whatever PID 1 holds,
the workload can reopen through ``/proc/1/fd``, copy with ``pidfd_getfd`` or
use by attaching to it. So PID 1 holds nothing of the caller's once the
workload runs: its stdio becomes the container's ``/dev/null``
(runtime/hardening.py) and its log lines, and its one-line errors
(:func:`pyinit.runtime.say`), go into a unix socket pair whose other end is in
the parent, which stays in the runtime's namespaces and writes them to the
caller's stderr.

Not a pipe: ``/proc/1/fd/N`` of a pipe's write end opens for *reading*, and a
workload that did so took PID 1's lines before the parent saw them. A
socket's ``/proc/PID/fd/N`` cannot be opened at all (ENXIO), and PID 1's end
has its reading shut down before PID 1 exists, so a copy of it
(``pidfd_getfd``) reads only an end of file; nobody can write to PID 1's
side either, so the pair is one-way, like the pipe.

What a workload that takes PID 1 over can do with its end is what PID 1
itself can: write lines the parent passes on. The parent passes whole lines
only, at most :data:`MAX_LINE` bytes each, as ASCII: every control character
but a tab and a colour (SGR) sequence, and every byte outside ASCII, shown
escaped. So no terminal escape reaches the caller's terminal this way,
neither a UTF-8 one (no C1 control, no bidirectional override) nor an 8-bit
one, where the continuation bytes 0x80-0x9f of an ordinary UTF-8 character
(U+011B is c4 9b; 0x9b is CSI) are C1 controls. PID 1's JSON lines are ASCII
already; its console format shows such characters as ``\\xNN``. A forged log
line it cannot prevent (PID 1's log after the workload started is no more
trusted than the workload's own stderr).

Neither side can block the other. PID 1 writes with ``MSG_DONTWAIT`` (not
through ``O_NONBLOCK``, which a ``pidfd_getfd`` copy shares and can clear) and its
:class:`~pyinit.log.Sink` drops (and counts) a line that does not fit, so a
parent that stops reading costs lines, never a stuck PID 1. The parent reads
a bounded amount each round of its loop, and after PID 1 has exited (and
been reaped) it reads what is left without waiting: a unix stream socket
queues what PID 1 writes on the parent's end at once, and keeps it there
when PID 1's end closes, so every line PID 1 wrote, the last
``workload.exited`` and ``pyinit.exit`` included, is read. How much PID 1 may
write ahead of the parent is its end's send buffer: :data:`BUFFER_SIZE`,
asked for as ``SO_SNDBUF`` (the kernel doubles it, up to twice
``net.core.wmem_max``), and counted per write with the kernel's overhead (a
few hundred bytes a line).
"""

from __future__ import annotations

import _socket
import os

from pyinit.log import Sink
from pyinit.runtime import say_to

BUFFER_SIZE = 1 << 20  # capped by net.core.wmem_max: ~550 lines of 100 bytes at its default
MAX_LINE = 256 * 1024
ROUND_BUDGET = 1 << 20  # bytes per round of the parent's loop
DRAIN_BUDGET = 16 << 20  # after PID 1's exit: no one else writes, but never unbounded

# C0 controls, DEL, every byte outside ASCII, and an ESC that does not start a
# colour sequence (compiled by the parent for its first line: re and enum are 10 ms
# of start-up, and a quiet sandbox passes no line on).
_UNSAFE = rb"\x1b(?!\[[0-9;]*m)|[\x00-\x08\x0a-\x1a\x1c-\x1f\x7f-\xff]"


def open_channel() -> tuple[int, int]:
    """(the parent's end, to read; PID 1's end, to write); both non-blocking, close-on-exec.

    PID 1's end reads nothing, ever: shut down here, before PID 1 exists.
    """
    # _socket, not socket: its import (selectors, enum classes) costs ~3 ms on
    # the way to the workload, and nothing else here needs it.
    parent, pid1 = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)  # close-on-exec
    try:
        pid1.shutdown(_socket.SHUT_RD)  # and the parent's end can no longer write
        try:
            pid1.setsockopt(_socket.SOL_SOCKET, _socket.SO_SNDBUF, BUFFER_SIZE)
        except OSError:  # kept at net.core.wmem_default
            pass
        parent.setblocking(False)
        pid1.setblocking(False)
    except BaseException:
        parent.close()
        pid1.close()
        raise
    return parent.detach(), pid1.detach()


def write_to_parent(sink: Sink, fd: int) -> None:
    """In PID 1, first thing: its log and its ``say`` lines go to the parent through ``fd``."""
    sink.redirect(fd)
    say_to(fd)


def clean(line: bytes) -> bytes:
    """One line as the parent passes it on, in ASCII: control characters and every
    byte outside ASCII shown as ``\\xNN``, byte by byte."""
    import re  # cached by re after the first line

    return re.sub(_UNSAFE, lambda m: b"\\x%02x" % m.group()[0], line)


class Forwarder:
    """The parent's side: whole lines from PID 1's channel to the caller's stderr."""

    def __init__(self, fd: int, sink: Sink) -> None:
        self._fd = fd
        self._sink = sink
        self._partial = b""

    def fileno(self) -> int:
        """The parent's end, for poll(); -1 once closed."""
        return self._fd

    def pump(self, budget: int = ROUND_BUDGET) -> bool:
        """Pass on what is in the channel now, up to ``budget`` bytes; False at its end."""
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
        """PID 1 has exited: pass on everything it wrote, then close the parent's end."""
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
