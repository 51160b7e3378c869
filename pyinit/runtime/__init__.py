"""The process model of ``pyinit run`` and ``pyinit sandbox``.

``namespaces`` creates and joins namespaces and writes the id maps,
``credentials`` turns a process into the workload (user, capabilities,
limits), ``sync`` is the protocol the parent, the middle process and the
container's PID 1 speak over their pipes. ``pyinit.container`` strings them
together.
"""

from __future__ import annotations

import os
import stat

from pyinit.log import send_nowait

_SAY_FD = [2, 0]  # the descriptor; 1 when it is PID 1's log socket


def say(line: str) -> None:
    """One line on stderr, prefixed ``pyinit:``; never raises. In the container's
    PID 1, on the log socket to the parent instead (:func:`say_to`)."""
    data = f"pyinit: {line}\n".encode(errors="replace")
    try:
        if _SAY_FD[1]:
            send_nowait(_SAY_FD[0], data)  # never blocks (pyinit/log.py)
        else:
            os.write(_SAY_FD[0], data)
    except OSError:
        pass


def say_to(fd: int) -> None:
    """Where :func:`say` writes from now on (PID 1: its log socket, runtime/logpipe.py)."""
    _SAY_FD[:] = [fd, int(stat.S_ISSOCK(os.fstat(fd).st_mode))]
