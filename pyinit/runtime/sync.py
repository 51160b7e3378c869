"""The messages the runtime's processes exchange over their pipes.

One byte each, so a message is never split and a closed pipe (b"") reads as
"the other side is gone", which every reader treats as a failure: the side
that failed has already said why on stderr.
"""

from __future__ import annotations

import enum
import os


class Sync(bytes, enum.Enum):
    # middle process -> parent, and back
    USERNS_CREATED = b"U"  # write my uid_map and gid_map now
    MAPPED = b"M"  # done
    CGROUP_JOINED = b"C"  # (systemd) the scope is started with you in it: go on
    # container PID 1 -> parent, and back
    NAMESPACES_READY = b"N"  # run prestart and createRuntime hooks now
    GO = b"G"  # they succeeded: set the root filesystem up
    STARTED = b"S"  # the workload runs: run poststart hooks
    FAILED = b"F"  # the other side failed and has said why


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
    known = {m.value for m in Sync}
    return [Sync(data[i:i + 1]) for i in range(len(data)) if data[i:i + 1] in known]
