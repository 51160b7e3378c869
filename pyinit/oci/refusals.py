"""What pyinit refuses in a config.json, because it does not enforce it (yet).

A runtime that silently drops a field restricting the container gives the
workload more than the config allows, and nobody notices. So every such field
is refused with its JSON path, and ``pyinit check`` lists them all.

Pure: the decoded JSON document in, ``(json_path, reason)`` pairs out. Type
errors of the fields config.py parses are config.py's; this module only
reports a path config.py has not already reported (``already``).

Device rules (``linux.resources.devices``) without a device cgroup: pyinit
mounts the root and every bind ``nodev`` (unless the mount asks for ``dev``)
and creates in ``/dev`` only the default devices and those in
``linux.devices``. That honours the usual rules (deny everything, allow a few
of the nodes created), and nothing else: the rest is refused here.
"""

from __future__ import annotations

import resource
from collections.abc import Iterable
from typing import Any

from pyinit.linux.capnames import CAPS

Problem = tuple[str, str]

# (uid_t)-1 means "leave unchanged" to setresuid/setresgid: -1, or 2^32-1,
# would leave the workload with pyinit's ids (root).
MAX_ID = 2**32 - 2
RLIM_MAX = 2**64 - 1  # RLIM_INFINITY in config.json (uint64)
CAP_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")

_CGROUPS = "refused: pyinit does not manage cgroups yet, so this limit would not hold"
_LSM = "refused: pyinit does not apply {} yet, so the process would run unconfined by it"

# JSON path -> why pyinit refuses it. Fields not listed are either enforced
# (docs/config.md has the table); linux.seccomp is oci/seccomp.py's.
UNENFORCED: dict[str, str] = {
    "process.apparmorProfile": _LSM.format("AppArmor profiles"),
    "process.selinuxLabel": _LSM.format("SELinux labels"),
    "process.ioPriority": "refused: pyinit does not set I/O priorities yet",
    "process.scheduler": "refused: pyinit does not set scheduling policies yet",
    "process.execCPUAffinity": "refused: pyinit does not set CPU affinities yet",
    "linux.mountLabel": "refused: pyinit does not apply SELinux labels to mounts yet",
    "linux.intelRdt": "refused: pyinit does not support Intel RDT",
    "linux.personality": "refused: pyinit does not set the execution domain (personality) yet",
    "linux.timeOffsets": "refused: pyinit does not support time namespaces yet",
    "linux.memoryPolicy": "refused: pyinit does not set NUMA memory policies yet",
    "linux.cgroupsPath": "refused: pyinit does not manage cgroups yet, so the container "
                         "would stay in pyinit's own cgroup",
    "linux.netDevices": "refused: pyinit does not move network devices into containers yet",
    "vm": "refused: pyinit does not run containers in virtual machines",
    "solaris": "refused: this section is for another platform; pyinit runs Linux containers",
    "windows": "refused: this section is for another platform; pyinit runs Linux containers",
    "zos": "refused: this section is for another platform; pyinit runs Linux containers",
}

# The character devices pyinit creates in every container's /dev
# (rootfs/plan.py DEFAULT_DEVICES), /dev/pts/ptmx, and the devpts majors.
DEFAULT_NODES = {(1, 3): "/dev/null", (1, 5): "/dev/zero", (1, 7): "/dev/full",
                 (1, 8): "/dev/random", (1, 9): "/dev/urandom", (5, 0): "/dev/tty",
                 (5, 2): "/dev/pts/ptmx"}
PTS_MAJORS = range(136, 144)  # UNIX98_PTY_MAJOR_COUNT: /dev/pts/N
# The only mounts pyinit leaves without nodev: the fresh tmpfs and devpts that
# hold the nodes pyinit creates (/dev, /dev/pts). Nodes appear on a tmpfs only
# through mknod, which needs CAP_MKNOD (refused with a deny rule).
NODE_MOUNTS = ("tmpfs", "devpts")


def problems(doc: Any, already: Iterable[Problem] = ()) -> list[Problem]:
    """Every field of ``doc`` pyinit must refuse, minus the paths in ``already``."""
    if not isinstance(doc, dict):
        return []
    found = _unenforced(doc) + _resources(doc) + _capabilities(doc) + _rlimits(doc) \
        + _user(doc)
    reported = {path for path, _ in already}
    return [(path, reason) for path, reason in found if path not in reported]


def _obj(doc: Any, *keys: str) -> dict[str, Any]:
    for key in keys:
        doc = doc.get(key) if isinstance(doc, dict) else None
    return doc if isinstance(doc, dict) else {}


def _given(value: Any) -> bool:
    return value not in (None, {}, [], "")


def _unenforced(doc: dict[str, Any]) -> list[Problem]:
    found = []
    for path, reason in UNENFORCED.items():
        *parents, key = path.split(".")
        if _given(_obj(doc, *parents).get(key)):
            found.append((path, reason))
    return found


# ---------------------------------------------------------------- resources
def _resources(doc: dict[str, Any]) -> list[Problem]:
    resources = _obj(doc, "linux").get("resources")
    if resources is None:
        return []
    if not isinstance(resources, dict):
        return [("linux.resources", f"must be an object, not {type(resources).__name__}")]
    found = [(f"linux.resources.{key}", _CGROUPS) for key, value in resources.items()
             if key != "devices" and _given(value)]
    return found + _device_rules(doc, resources.get("devices"))


def _describe(kind: str, major: int | None, minor: int | None) -> str:
    if kind == "a":
        return "every device"
    return f"{kind} {'*' if major is None else major}:{'*' if minor is None else minor}"


def _created(doc: dict[str, Any]) -> dict[tuple[str, int, int], str]:
    """(type, major, minor) -> path of every node pyinit creates in the container."""
    nodes = {("c", major, minor): path for (major, minor), path in DEFAULT_NODES.items()}
    for dev in _obj(doc, "linux").get("devices") or []:
        if not isinstance(dev, dict) or dev.get("type") not in ("c", "u", "b"):
            continue
        major, minor = dev.get("major"), dev.get("minor")
        if isinstance(major, int) and isinstance(minor, int):
            kind = "b" if dev["type"] == "b" else "c"
            nodes[(kind, major, minor)] = str(dev.get("path"))
    return nodes


def _device_rules(doc: dict[str, Any], rules: Any) -> list[Problem]:
    if rules is None:
        return []
    if not isinstance(rules, list):
        return [("linux.resources.devices", f"must be an array, not {type(rules).__name__}")]
    created = _created(doc)
    found: list[Problem] = []
    deny_at = None
    for i, rule in enumerate(rules):
        where = f"linux.resources.devices[{i}]"
        parsed = _parse_rule(rule, where, found)
        if parsed is None:
            continue
        allow, kind, major, minor = parsed
        what = _describe(kind, major, minor)
        matches = [path for (t, ma, mi), path in created.items()
                   if kind in ("a", t) and major in (None, ma) and minor in (None, mi)]
        if allow:
            exact = kind != "a" and major is not None and (
                (minor is not None and (kind, major, minor) in created)
                or (kind == "c" and major in PTS_MAJORS))
            if not exact:
                found.append((where, f"allows {what}, but without a device cgroup (not in "
                              "pyinit yet) only the nodes pyinit creates can be allowed: "
                              "the default devices and those in linux.devices"))
        else:
            deny_at = deny_at or where
            wildcard = kind == "a" or major is None
            if matches and not wildcard:
                found.append((where, f"denies {what}, but pyinit creates {matches[0]} in the "
                              "container and without a device cgroup (not in pyinit yet) "
                              "cannot deny it"))
    if deny_at is not None:
        found += _mknod(doc, deny_at) + _mounts_with_nodes(doc, deny_at)
    return found


def _parse_rule(rule: Any, where: str,
                found: list[Problem]) -> tuple[bool, str, int | None, int | None] | None:
    if not isinstance(rule, dict):
        found.append((where, "must be an object"))
        return None
    allow, kind = rule.get("allow"), rule.get("type") or "a"
    major, minor, access = rule.get("major"), rule.get("minor"), rule.get("access", "rwm")
    bad = len(found)
    if not isinstance(allow, bool):
        found.append((f"{where}.allow", "is required: true or false"))
    if kind not in ("a", "c", "b"):
        found.append((f"{where}.type", f"must be one of a, c, b, not {kind!r}"))
    for key, value in (("major", major), ("minor", minor)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or value < -1):
            found.append((f"{where}.{key}", f"must be a device number (or -1 or absent for "
                          f"all), not {value!r}"))
    if not isinstance(access, str) or not set(access) <= set("rwm"):
        found.append((f"{where}.access", f"must be made of r, w and m, not {access!r}"))
    if len(found) > bad:
        return None
    return (bool(allow), kind, None if major == -1 else major, None if minor == -1 else minor)


def _mknod(doc: dict[str, Any], deny_at: str) -> list[Problem]:
    found = []
    caps = _obj(doc, "process", "capabilities")
    for kind in CAP_SETS:
        names = caps.get(kind)
        upper = [n.upper() if isinstance(n, str) else n for n in
                 (names if isinstance(names, list) else [])]
        if "CAP_MKNOD" in upper:
            found.append((f"process.capabilities.{kind}[{upper.index('CAP_MKNOD')}]",
                          f"CAP_MKNOD with the device deny rule {deny_at}: without a device "
                          "cgroup (not in pyinit yet) a node the workload makes would be "
                          "usable"))
    return found


def mounted_nodev(m: Any) -> bool:
    """Whether pyinit makes ``m`` (a config.Mount) nodev, unless it asks for ``dev``.

    The root and every bind are nodev, and every other filesystem but a
    tmpfs or devpts (an ext4 from a disk, NFS, ...): that is how a device
    deny rule holds without a device cgroup.
    """
    return bool(m.parsed.is_bind) or m.type not in NODE_MOUNTS


def _mounts_with_nodes(doc: dict[str, Any], deny_at: str) -> list[Problem]:
    """Mounts that ask for ``dev``, and so would show device nodes despite the deny rule."""
    found = []
    mounts = doc.get("mounts")
    for i, m in enumerate(mounts if isinstance(mounts, list) else []):
        if not isinstance(m, dict):
            continue
        options = [o if isinstance(o, str) else "" for o in m.get("options") or []]
        is_bind = "bind" in options or "rbind" in options or m.get("type") == "bind"
        dev = [j for j, o in enumerate(options) if o in ("dev", "nodev", "rdev", "rnodev")]
        if dev and options[dev[-1]] in ("dev", "rdev") and (
                is_bind or m.get("type") not in NODE_MOUNTS):
            found.append((f"mounts[{i}].options[{dev[-1]}]",
                          f"{options[dev[-1]]} shows the device nodes of the mount, which the "
                          f"device deny rule {deny_at} forbids (no device cgroup in pyinit "
                          "yet); drop it"))
    return found


# ---------------------------------------------------------------- process
def _capabilities(doc: dict[str, Any]) -> list[Problem]:
    found = []
    caps = _obj(doc, "process", "capabilities")
    for kind in CAP_SETS:
        names = caps.get(kind)
        for i, name in enumerate(names if isinstance(names, list) else []):
            if not (isinstance(name, str) and name.upper() in CAPS):  # as config.py
                found.append((f"process.capabilities.{kind}[{i}]",
                              f"unknown capability {name!r}"))
    return found


def _rlimits(doc: dict[str, Any]) -> list[Problem]:
    found = []
    seen: set[str] = set()
    limits = _obj(doc, "process").get("rlimits")
    for i, limit in enumerate(limits if isinstance(limits, list) else []):
        where = f"process.rlimits[{i}]"
        if not isinstance(limit, dict):
            continue
        name = limit.get("type")
        if not (isinstance(name, str) and name.startswith("RLIMIT_")
                and hasattr(resource, name)):
            found.append((f"{where}.type", f"unknown resource limit {name!r}"))
        elif name in seen:
            found.append((f"{where}.type", f"{name} is given twice"))
        seen.add(str(name))
        values = {}
        for key in ("soft", "hard"):
            value = limit.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or \
                    not 0 <= value <= RLIM_MAX:
                found.append((f"{where}.{key}", f"must be an integer from 0 to {RLIM_MAX} "
                              f"(unlimited), not {value!r}"))
            else:
                values[key] = value
        if len(values) == 2 and values["soft"] > values["hard"]:
            found.append((f"{where}.soft",
                          f"{values['soft']} is above the hard limit {values['hard']}"))
    return found


def _user(doc: dict[str, Any]) -> list[Problem]:
    found = []
    user = _obj(doc, "process", "user")
    ids = [(f"process.user.{key}", user[key]) for key in ("uid", "gid") if key in user]
    gids = user.get("additionalGids")
    ids += [(f"process.user.additionalGids[{i}]", gid)
            for i, gid in enumerate(gids if isinstance(gids, list) else [])]
    for where, value in ids:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_ID:
            found.append((where, f"must be an id from 0 to {MAX_ID}, not {value!r}"))
    return found
