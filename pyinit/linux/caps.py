"""Linux capabilities: names, and applying an OCI ``process.capabilities``."""

from __future__ import annotations

from pyinit.linux import syscalls
from pyinit.linux.capnames import CAPS as CAPS  # re-exported for its users
from pyinit.linux.capnames import NAMES

LAST_KNOWN = len(NAMES) - 1


def last_cap() -> int:
    """The highest capability this kernel knows (read before any pivot_root)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as fh:
            return int(fh.read())
    except OSError:
        return LAST_KNOWN


def effective() -> int:
    """This process's effective set (CapEff of /proc/self/status), read before any pivot."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return 0


def mask(numbers: list[int]) -> int:
    bits = 0
    for n in numbers:
        bits |= 1 << n
    return bits


def drop_bounding(keep: list[int], highest: int) -> None:
    """Remove every capability not in ``keep`` from the bounding set (before setuid)."""
    wanted = set(keep)
    for cap in range(highest + 1):
        if cap not in wanted:
            syscalls.prctl(syscalls.PR_CAPBSET_DROP, cap)


def apply_sets(caps: dict[str, list[int]]) -> None:
    """Effective, permitted and inheritable, then raise the ambient ones (after setuid)."""
    syscalls.capset(mask(caps.get("effective", [])), mask(caps.get("permitted", [])),
                    mask(caps.get("inheritable", [])))
    for cap in caps.get("ambient", []):
        syscalls.prctl(syscalls.PR_CAP_AMBIENT, syscalls.PR_CAP_AMBIENT_RAISE, cap)
