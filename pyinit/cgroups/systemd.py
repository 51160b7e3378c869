"""``pyinit run --cgroup-manager systemd``: refused, with the reason (docs/cgroups.md).

What it would do where systemd runs, as runc's systemd driver does: ask systemd
over D-Bus (``org.freedesktop.systemd1.Manager.StartTransientUnit``) for a
transient scope ``<prefix>-<name>.scope`` in the slice of a
``slice:prefix:name`` cgroupsPath, with ``Delegate=yes``, the container's first
pid in ``PIDs`` and the limits as unit properties (``MemoryMax``, ``TasksMax``,
``CPUWeight``, ``CPUQuotaPerSecUSec``, ``AllowedCPUs``, ...), then write what
systemd has no property for through the cgroup filesystem. pyinit has no D-Bus
client, and this machine has no systemd to test one against.
"""

from __future__ import annotations

import os

RUNNING = "/run/systemd/system"  # sd_booted(3): exists only when systemd is PID 1


def refusal(running: str = RUNNING) -> str:
    """Why ``--cgroup-manager systemd`` is refused here (one line, no "pyinit:" head)."""
    if not os.path.isdir(running):
        why = f"systemd is not running on this host ({running} does not exist)"
    else:
        why = ("transient systemd scopes (over D-Bus) are not implemented in pyinit; "
               "it manages cgroups through the cgroup filesystem only")
    return f"--cgroup-manager systemd: {why}; use --cgroup-manager cgroupfs (the default)"
