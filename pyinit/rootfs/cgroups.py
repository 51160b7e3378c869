"""The cgroup mount of a container: v1 hierarchies, hybrid, or cgroup2.

v1 (and hybrid): a tmpfs on the destination, then per host hierarchy either a
fresh cgroup mount (with a cgroup namespace its root is the namespace's
root) or, without one, a bind of this process's own cgroup directory; the
co-mount symlinks (``cpu -> cpu,cpuacct``); hybrid's ``unified`` gets
cgroup2. Read-only, when asked, is applied last, so the tmpfs can be filled.
v2 only: cgroup2, or a bind of the host's hierarchy when the kernel refuses
(EPERM, EBUSY), as runc does.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from typing import Any

from pyinit.linux import flags, mountinfo, syscalls
from pyinit.linux.paths import Root, fd_path

CGROUP_BASE = "/sys/fs/cgroup"
CGROUP2_SUPER_MAGIC = 0x63677270
_NOT_CONTROLLERS = {"rw", "ro", "relatime", "noatime", "nosuid", "nodev", "noexec",
                    "clone_children", "xattr", "nsdelegate", "memory_recursiveprot",
                    "memory_localevents", "favordynmods"}


@dataclass
class Hierarchy:
    name: str  # directory under /sys/fs/cgroup: "cpu", "cpu,cpuacct", "systemd", "unified"
    version: int
    controllers: list[str]  # mount data for v1: ["cpu", "cpuacct"] or ["name=systemd"]
    host_path: str  # where the host mounts it
    own_cgroup: str  # this process's cgroup in it ("/" under a cgroup namespace)


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
            ctrls = [o for o in entry.super_options if o not in _NOT_CONTROLLERS]
            key = ",".join(sorted(ctrls))
            found.append(Hierarchy(os.path.basename(entry.mount_point), 1, ctrls,
                                   entry.mount_point, own.get(key, "/")))
        elif entry.fstype == "cgroup2" and parent == CGROUP_BASE:
            found.append(Hierarchy(os.path.basename(entry.mount_point), 2, [],
                                   entry.mount_point, own.get("(v2)", "/")))
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


def mount_cgroups(root: Root, dest: str, mflags: int, own_ns: bool, log: Any) -> None:
    """Mount the container's cgroup filesystem(s) on ``dest`` (inside ``root``)."""
    base = mflags & (flags.MS_NOSUID | flags.MS_NODEV | flags.MS_NOEXEC | flags.MS_RELATIME)
    readonly = bool(mflags & flags.MS_RDONLY)
    if is_unified():
        _mount_v2(root, dest, base | (flags.MS_RDONLY if readonly else 0), own_ns, log)
        return
    fd = root.mkdir_all(dest)
    try:
        syscalls.mount("tmpfs", fd_path(fd), "tmpfs", base & ~flags.MS_RELATIME, "mode=755")
    finally:
        os.close(fd)
    links: list[tuple[str, str]] = []
    for h in host_hierarchies():
        sub = f"{dest.rstrip('/')}/{h.name}"
        if h.version == 2:
            _mount_v2(root, sub, base, own_ns, log)
        else:
            target = root.mkdir_all(sub)
            try:
                fresh = own_ns
                if fresh:
                    try:
                        syscalls.mount("cgroup", fd_path(target), "cgroup", base,
                                       ",".join(h.controllers))
                    except PermissionError:
                        fresh = False  # v1 in a user namespace: bind our own instead
                if not fresh:
                    source = h.host_path + (h.own_cgroup if h.own_cgroup != "/" else "")
                    syscalls.mount(source, fd_path(target), None, flags.MS_BIND | flags.MS_REC)
            finally:
                os.close(target)
            if "," in h.name:  # co-mounted: cpu -> cpu,cpuacct
                links += [(h.name, f"{dest.rstrip('/')}/{c}") for c in h.name.split(",")]
        log.debug("cgroup.hierarchy", name=h.name, version=h.version,
                  source="a fresh mount" if own_ns else h.host_path + h.own_cgroup)
    for target_name, path in links:
        if not root.exists(path):
            root.symlink(target_name, path)
    if readonly:
        root.set_attr_recursive(dest, flags.MOUNT_ATTR_LOCKED_DOWN)


def _mount_v2(root: Root, dest: str, mflags: int, own_ns: bool, log: Any) -> None:
    fd = root.mkdir_all(dest)
    try:
        try:
            syscalls.mount("cgroup2", fd_path(fd), "cgroup2", mflags & ~flags.MS_RDONLY)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EBUSY):
                raise
            log.info("cgroup.bind_fallback", destination=dest, errno=errno.errorcode[exc.errno],
                     detail="the kernel refused a cgroup2 mount; binding the host's instead")
            syscalls.mount(CGROUP_BASE if is_unified() else f"{CGROUP_BASE}/unified",
                           fd_path(fd), None, flags.MS_BIND | flags.MS_REC)
    finally:
        os.close(fd)
    if mflags & flags.MS_RDONLY:
        root.set_attr_recursive(dest, flags.MOUNT_ATTR_RDONLY)
