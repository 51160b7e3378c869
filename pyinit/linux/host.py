"""What the plan needs to know about the host, read once, before anything changes.

Read-only: ``pyinit check`` gathers the same facts as ``pyinit run``, so both
make the same plan. Everything here is read from the host's /proc and /sys,
before the container's mount namespace has a single mount of its own, so
nothing comes from the container.
"""

from __future__ import annotations

import os

from pyinit.linux import caps, mountinfo, syscalls
from pyinit.record import record

CGROUP_BASE = "/sys/fs/cgroup"
CGROUP2_SUPER_MAGIC = 0x63677270
_NOT_CONTROLLERS = {"rw", "ro", "relatime", "noatime", "nosuid", "nodev", "noexec",
                    "clone_children", "xattr", "nsdelegate", "memory_recursiveprot",
                    "memory_localevents", "favordynmods"}


@record
class Hierarchy:
    name: str  # directory under /sys/fs/cgroup: "cpu", "cpu,cpuacct", "systemd", "unified"
    version: int
    controllers: tuple[str, ...]  # mount data for v1: ("cpu", "cpuacct") or ("name=systemd",)
    host_path: str  # where the host mounts it
    own_cgroup: str  # this process's cgroup in it ("/" under a cgroup namespace)


@record
class HostFacts:
    has_kcore: bool = False
    cap_last_cap: int = caps.LAST_KNOWN
    cgroup_unified: bool = True
    cgroup_hierarchies: tuple[Hierarchy, ...] = ()


def host_hierarchies() -> list[Hierarchy]:
    own: dict[str, str] = {}
    with open("/proc/self/cgroup") as fh:
        for line in fh:
            _id, names, path = line.rstrip("\n").split(":", 2)
            own[",".join(sorted(names.split(","))) if names else "(v2)"] = path
    found = []
    for entry in mountinfo.read():
        parent = os.path.dirname(entry.mount_point)
        if entry.fstype == "cgroup" and parent == CGROUP_BASE:
            ctrls = tuple(o for o in entry.super_options if o not in _NOT_CONTROLLERS)
            key = ",".join(sorted(ctrls))
            found.append(Hierarchy(os.path.basename(entry.mount_point), 1, ctrls,
                                   entry.mount_point, own.get(key, "/")))
        elif entry.fstype == "cgroup2" and parent == CGROUP_BASE:
            found.append(Hierarchy(os.path.basename(entry.mount_point), 2, (),
                                   entry.mount_point, own.get("(v2)", "/")))
        elif entry.fstype == "cgroup2" and entry.mount_point == CGROUP_BASE:
            # A cgroup2 host: the hierarchy is /sys/fs/cgroup itself (name "").
            found.append(Hierarchy("", 2, (), CGROUP_BASE, own.get("(v2)", "/")))
    return found


def is_unified() -> bool:
    try:
        fd = os.open(CGROUP_BASE, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return syscalls.fstatfs_type(fd) == CGROUP2_SUPER_MAGIC
    finally:
        os.close(fd)


def probe() -> HostFacts:
    try:
        hierarchies = tuple(host_hierarchies())
    except OSError:
        hierarchies = ()
    return HostFacts(has_kcore=os.path.exists("/proc/kcore"), cap_last_cap=caps.last_cap(),
                     cgroup_unified=is_unified(), cgroup_hierarchies=hierarchies)
