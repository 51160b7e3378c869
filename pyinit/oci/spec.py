"""``pyinit spec``: a default config.json, shaped like the one ``runc spec`` writes.

Differences from runc's: ``terminal`` is false (pyinit passes its stdio
through), ``args`` is ``["sh"]`` for a busybox root, and ``linux.seccomp``
holds the usual container default (:mod:`pyinit.oci.seccomp_default`, for
the capabilities this config keeps), as docker and podman write it.
"""

from __future__ import annotations

import os

from pyinit.oci.seccomp_default import default_profile

TYPE_CHECKING = False  # typing costs 6 ms at start-up; mypy reads the name
if TYPE_CHECKING:
    from typing import Any

_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
# runc's maskedPaths. /sys/devices/virtual/powercap holds the RAPL energy
# counters, a power side channel on the host's CPUs (CVE-2020-8694).
MASKED_PATHS = (
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
    "/proc/scsi", "/sys/devices/virtual/powercap",
)


def default_config() -> dict[str, Any]:
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm",
            ],
            "cwd": "/",
            # No inheritable set (CVE-2022-29162), and so no ambient one: an
            # ambient capability must also be inheritable, and every run would
            # warn that these were skipped. Root keeps its capabilities across exec
            # without either.
            "capabilities": {
                "bounding": list(_CAPS),
                "effective": list(_CAPS),
                "permitted": list(_CAPS),
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "pyinit",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                         "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount",
                                                 "cgroup")],
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
            ],
            "seccomp": default_profile(_CAPS),
        },
    }


def rootless(cfg: dict[str, Any], uid: int | None = None, gid: int | None = None) -> dict[str, Any]:
    """What ``runc spec --rootless`` changes: the caller's IDs mapped to root.

    A user namespace mapping the caller's uid and gid to 0; /sys bound
    read-only (sysfs cannot be mounted without owning the network namespace
    the host keeps); no gid= on devpts (gid 5 is not mapped); no cgroup mount
    and no device resource rules (an unprivileged user manages neither).
    """
    linux = cfg["linux"]
    linux["namespaces"] = [n for n in linux["namespaces"] if n["type"] not in ("network",
                                                                                 "cgroup")]
    linux["namespaces"].append({"type": "user"})
    linux["uidMappings"] = [{"containerID": 0, "hostID": os.getuid() if uid is None else uid,
                             "size": 1}]
    linux["gidMappings"] = [{"containerID": 0, "hostID": os.getgid() if gid is None else gid,
                             "size": 1}]
    linux.pop("resources", None)
    mounts = []
    for m in cfg["mounts"]:
        if m["destination"] == "/sys/fs/cgroup":
            continue
        if m["destination"] == "/sys":
            m = {"destination": "/sys", "type": "none", "source": "/sys",
                 "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}
        m["options"] = [o for o in m.get("options", []) if not o.startswith(("gid=", "uid="))]
        mounts.append(m)
    cfg["mounts"] = mounts
    return cfg
