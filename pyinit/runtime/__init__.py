"""The process model of ``pyinit run`` and ``pyinit sandbox``.

``namespaces`` creates and joins namespaces and writes the id maps,
``credentials`` turns a process into the workload (user, capabilities,
limits), ``sync`` is the protocol the parent, the middle process and the
container's PID 1 speak over their pipes. ``pyinit.container`` strings them
together.
"""

from __future__ import annotations

import os


def say(line: str) -> None:
    """One line on stderr, prefixed ``pyinit:``; never raises."""
    try:
        os.write(2, f"pyinit: {line}\n".encode(errors="replace"))
    except OSError:
        pass
