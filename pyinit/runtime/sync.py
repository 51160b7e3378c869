"""The messages the runtime's processes exchange over their pipes and sockets.

One byte each, so a message is never split and a closed channel (b"") reads
as "the other side is gone", which every reader treats as a failure: the side
that failed has already said why on stderr.

The container's PID 1 and the parent talk over one unix socket pair
(:func:`open_channel`), not pipes: PID 1 holds its end until just after the
workload's exec, and while startContainer hooks run, next to code that may
be granted ``CAP_SYS_PTRACE``. ``/proc/1/fd/N`` of a pipe's end opens for
reading or writing whichever end it is, so such code could take "started"
before the parent read it or send the parent one of its own; a socket's
``/proc/PID/fd/N`` does not open at all (ENXIO). Each side shuts down the
direction it is done with (:func:`shut`): PID 1 its reading once it has
"go", the parent its writing once it has answered, so a copy of PID 1's end
(``pidfd_getfd``) reads nothing; what it can write is what PID 1 itself can,
and the parent acts on each message at most once.
"""

from __future__ import annotations

import _socket
import os

TYPE_CHECKING = False  # typing costs 6 ms at start-up; mypy reads the name
if TYPE_CHECKING:
    from typing import ClassVar


class Sync(bytes):
    """One message: a single byte, one of the constants below (``is`` tells them apart).

    Not an ``enum.Enum``: ``import enum`` is 4 ms on the parent's way to the container,
    and nothing else there needs it.
    """

    __slots__ = ()
    # middle process -> parent, and back
    USERNS_CREATED: ClassVar[Sync]  # write my uid_map and gid_map now
    MAPPED: ClassVar[Sync]  # done
    CGROUP_JOINED: ClassVar[Sync]  # (systemd) the scope is started with you in it: go on
    # container PID 1 -> parent, and back
    NAMESPACES_READY: ClassVar[Sync]  # run prestart and createRuntime hooks now
    GO: ClassVar[Sync]  # they succeeded: set the root filesystem up
    STARTED: ClassVar[Sync]  # the workload runs: run poststart hooks
    FAILED: ClassVar[Sync]  # the other side failed and has said why

    @property
    def value(self) -> bytes:
        return bytes(self)

    def __repr__(self) -> str:
        return f"Sync.{_NAMES[self]}"


_NAMES = {b"U": "USERNS_CREATED", b"M": "MAPPED", b"C": "CGROUP_JOINED",
          b"N": "NAMESPACES_READY", b"G": "GO", b"S": "STARTED", b"F": "FAILED"}
for _byte, _name in _NAMES.items():
    setattr(Sync, _name, Sync(_byte))
# Every message, in the order above; by its byte.
MESSAGES: tuple[Sync, ...] = tuple(getattr(Sync, name) for name in _NAMES.values())
_BY_BYTE = {bytes(m): m for m in MESSAGES}


def send(fd: int, message: Sync) -> None:
    os.write(fd, message.value)


def expect(fd: int, message: Sync) -> bool:
    """Block for one message; True only if it is ``message``."""
    try:
        return os.read(fd, 1) == message.value
    except OSError:
        return False


def decode(data: bytes) -> list[Sync]:
    """Every known message in ``data``, in order; other bytes are dropped.

    The container's side writes these, and its descriptors may end up in the
    hands of a workload for a moment: the reader never trusts them blindly
    (the parent also acts on each message at most once).
    """
    return [_BY_BYTE[data[i:i + 1]] for i in range(len(data)) if data[i:i + 1] in _BY_BYTE]


def open_channel() -> tuple[int, int]:
    """(the parent's end, PID 1's end): one unix stream socket pair, both ways,
    close-on-exec, blocking."""
    # _socket, not socket: logpipe.py has it loaded already, and socket's
    # import costs ~3 ms on the way to the workload.
    parent, pid1 = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
    return parent.detach(), pid1.detach()


def shut(fd: int, how: int) -> None:
    """shutdown(2) of one direction of a channel's end (``_socket.SHUT_RD`` or
    ``SHUT_WR``); the descriptor stays open."""
    sock = _socket.socket(fileno=fd)
    try:
        sock.shutdown(how)
    finally:
        sock.detach()
