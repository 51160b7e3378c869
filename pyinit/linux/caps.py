"""Linux capabilities: names, and applying an OCI ``process.capabilities``."""

from __future__ import annotations

from pyinit.linux import syscalls

_NAMES = (  # the kernel's order: the index is the number
    "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP "
    "LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER "
    "SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE "
    "SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP "
    "MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF "
    "CHECKPOINT_RESTORE"
).split()
CAPS: dict[str, int] = {f"CAP_{name}": number for number, name in enumerate(_NAMES)}


def last_cap() -> int:
    """The highest capability this kernel knows (read before any pivot_root)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as fh:
            return int(fh.read())
    except OSError:
        return len(_NAMES) - 1


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
