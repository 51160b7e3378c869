"""Which cgroup hierarchies this host has, and where this process sits in them.

Three shapes (``mode``):

- ``v1``: one hierarchy per controller (or co-mounted group) under /sys/fs/cgroup;
- ``v2``: the unified hierarchy mounted on /sys/fs/cgroup itself;
- ``hybrid``: v1 controllers, plus cgroup2 at /sys/fs/cgroup/unified with no
  controllers bound, for process tracking (this project's machine, and
  systemd's old default).

Parsing is pure (:func:`parse`); :func:`detect` reads the two files.
"""

from __future__ import annotations

import os

from pyinit.linux import mountinfo
from pyinit.record import record

BASE = "/sys/fs/cgroup"
# Mount options of a v1 cgroup mount that are not controllers.
_OPTIONS = {"rw", "ro", "relatime", "noatime", "strictatime", "nosuid", "nodev", "noexec",
            "clone_children", "xattr", "noprefix", "cpuset_v2_mode", "favordynmods"}


@record
class Hierarchy:
    name: str  # v1: the controllers joined ("cpu,cpuacct", "name=systemd"); v2: "unified"
    version: int
    controllers: frozenset[str]  # v1 only; for v2 the files tell (cgroup.controllers)
    mount_point: str
    root: str  # the part of the hierarchy mounted there (mountinfo's root; "/" usually)
    own: str  # this process's cgroup in the hierarchy (/proc/self/cgroup)

    def directory(self, cgroup: str) -> str:
        """The directory of ``cgroup`` (a path from the hierarchy's root)."""
        rel = os.path.relpath(cgroup, self.root)
        if rel == ".." or rel.startswith("../"):
            raise ValueError(f"{cgroup} is outside the part of the {self.name} hierarchy "
                             f"mounted on {self.mount_point} ({self.root})")
        return os.path.normpath(os.path.join(self.mount_point, rel))

    def resolve(self, path: str) -> str:
        """A cgroupsPath as a path from the hierarchy's root: absolute paths are already,
        relative ones are under this process's own cgroup."""
        return path if path.startswith("/") else os.path.normpath(os.path.join(self.own, path))


@record
class Host:
    mode: str  # "v1", "v2", "hybrid" or "none"
    hierarchies: tuple[Hierarchy, ...]

    def v1(self, controller: str) -> Hierarchy | None:
        return next((h for h in self.hierarchies
                     if h.version == 1 and controller in h.controllers), None)

    @property
    def unified(self) -> Hierarchy | None:
        return next((h for h in self.hierarchies if h.version == 2), None)

    @property
    def v1_controllers(self) -> list[str]:
        return sorted(c for h in self.hierarchies if h.version == 1 for c in h.controllers
                      if not c.startswith("name="))


def parse(entries: list[mountinfo.MountEntry], proc_self_cgroup: str) -> Host:
    own: dict[str, str] = {}
    for line in proc_self_cgroup.splitlines():
        _id, names, path = line.split(":", 2)
        own[",".join(sorted(names.split(","))) if names else ""] = path
    found: list[Hierarchy] = []
    seen: set[str] = set()
    for entry in entries:
        if entry.fstype == "cgroup" and os.path.dirname(entry.mount_point) == BASE:
            ctrls = sorted(o for o in entry.super_options if o not in _OPTIONS)
            key = ",".join(ctrls)
            if key and key not in seen:
                seen.add(key)
                found.append(Hierarchy(key, 1, frozenset(ctrls), entry.mount_point,
                                       entry.root, own.get(key, "/")))
        elif entry.fstype == "cgroup2" and entry.mount_point in (BASE, f"{BASE}/unified") \
                and "" not in seen:
            seen.add("")
            found.append(Hierarchy("unified", 2, frozenset(), entry.mount_point, entry.root,
                                   own.get("", "/")))
    v1 = any(h.version == 1 for h in found)
    v2 = any(h.version == 2 for h in found)
    mode = "hybrid" if v1 and v2 else "v1" if v1 else "v2" if v2 else "none"
    return Host(mode, tuple(found))


def detect() -> Host:
    with open("/proc/self/cgroup", encoding="utf-8") as fh:
        text = fh.read()
    return parse(mountinfo.read(), text)
