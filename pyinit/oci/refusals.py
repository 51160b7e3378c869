"""What pyinit refuses in a config.json, because it does not enforce it (yet).

A runtime that silently drops a field restricting the container gives the
workload more than the config allows, and nobody notices. So every such field
is refused with its JSON path, and ``pyinit check`` lists them all.

Pure: the decoded JSON document in, ``(json_path, reason)`` pairs out. Type
errors of the fields config.py parses are config.py's; this module only
reports a path config.py has not already reported (``already``).

``linux.resources`` (device rules included) and ``linux.cgroupsPath`` are
enforced through the container's cgroup (oci/resources.py validates them,
docs/cgroups.md); none of them is refused here any more. The root and every
bind stay ``nodev`` (``mounted_nodev``) as a second line behind the device
cgroup, and the only one where pyinit runs without a cgroup (rootless, not
delegated; it warns).
"""

from __future__ import annotations

import resource

from pyinit.linux.capnames import CAPS

TYPE_CHECKING = False  # typing costs 6 ms at start-up; mypy reads the name
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

Problem = tuple[str, str]

# (uid_t)-1 means "leave unchanged" to setresuid/setresgid: -1, or 2^32-1,
# would leave the workload with pyinit's ids (root).
MAX_ID = 2**32 - 2
RLIM_MAX = 2**64 - 1  # RLIM_INFINITY in config.json (uint64)
CAP_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")

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
    "linux.netDevices": "refused: pyinit does not move network devices into containers yet",
    "vm": "refused: pyinit does not run containers in virtual machines",
    "solaris": "refused: this section is for another platform; pyinit runs Linux containers",
    "windows": "refused: this section is for another platform; pyinit runs Linux containers",
    "zos": "refused: this section is for another platform; pyinit runs Linux containers",
}

# The only mounts pyinit leaves without nodev: the fresh tmpfs and devpts that
# hold the nodes pyinit creates (/dev, /dev/pts). Nodes appear on a tmpfs only
# through mknod, which needs CAP_MKNOD, and the device cgroup denies opening
# what it does not allow.
NODE_MOUNTS = ("tmpfs", "devpts")


def problems(doc: Any, already: Iterable[Problem] = ()) -> list[Problem]:
    """Every field of ``doc`` pyinit must refuse, minus the paths in ``already``."""
    if not isinstance(doc, dict):
        return []
    found = _unenforced(doc) + _capabilities(doc) + _rlimits(doc) + _user(doc)
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


def mounted_nodev(m: Any) -> bool:
    """Whether pyinit makes ``m`` (a config.Mount) nodev, unless it asks for ``dev``.

    The root and every bind are nodev, and every other filesystem but a
    tmpfs or devpts (an ext4 from a disk, NFS, ...): device nodes shipped in
    an image or bound from the host stay unusable even where no device cgroup
    applies (rootless).
    """
    return bool(m.parsed.is_bind) or m.type not in NODE_MOUNTS


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
