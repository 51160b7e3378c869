"""``linux.resources`` and ``linux.cgroupsPath``, parsed and validated.

Pure: no I/O, no kernel calls. Each problem is ``(json_path, reason)``, the
same shape ``pyinit.oci.config`` reports, so a caller can add them to its own
list. What the kernel would reject anyway but can be known here (a swap limit
below the memory limit, a cpu period outside the scheduler's range) is a
problem here, with the JSON path, instead of an errno later.

Fields runc ignores are ignored here too, with a warning line
(``memory.kernel``: kernel memory accounting cannot be limited on its own
since Linux 5.4, and runc 1.2 drops it).

Device rules: :func:`effective_device_rules` merges, as runc does, the
config's ``linux.resources.devices`` with the default allow list every
runtime uses and an ``rwm`` rule for each of the config's ``linux.devices``;
later rules win. :func:`device_policy` reduces that list to a default and the
rules that still matter, which both the cgroup v1 controller and the eBPF
program apply.
"""

from __future__ import annotations

import os

from pyinit.record import field, record

TYPE_CHECKING = False  # typing costs 6 ms at start-up; mypy reads the name
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any, TypeVar

    T = TypeVar("T")

Problem = tuple[str, str]

INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1
UINT32_MAX = 2**32 - 1
DEFAULT_PARENT = "/pyinit"  # the default cgroupsPath is /pyinit/<container id>

# Patterns, compiled by re on first use (not at import: every start imports this
# module, few configs have these fields).
_LIST = r"^\d+(-\d+)?(,\d+(-\d+)?)*$"  # cpuset lists: 0-3,5
_PAGE_SIZE = r"^[1-9]\d*(KB|MB|GB)$"
_UNIFIED_KEY = r"^[a-z][a-z0-9_]*\.[a-z0-9_.]+$"
# Keys of ``unified`` that would move or kill processes, not limit them.
_UNIFIED_REFUSED = ("cgroup.procs", "cgroup.threads", "cgroup.kill", "cgroup.subtree_control",
                    "cgroup.type", "cgroup.freeze")



# ------------------------------------------------------------------ devices
@record
class DeviceRule:
    """One rule of the device cgroup: ``allow``/deny ``access`` on type major:minor.

    ``type`` is ``a`` (any), ``b`` or ``c``; ``-1`` for major or minor is the
    wildcard (``*``); ``access`` is a non-empty subset of ``rwm``, in that order.
    """

    allow: bool
    type: str
    major: int
    minor: int
    access: str
    where: str = field(default="", compare=False)

    def v1_line(self) -> str:
        """The line for ``devices.allow``/``devices.deny``: ``c 1:3 rwm``, ``b 7:* r``."""
        if self.type == "a":
            return "a"
        major = "*" if self.major == -1 else str(self.major)
        minor = "*" if self.minor == -1 else str(self.minor)
        return f"{self.type} {major}:{minor} {self.access}"

    @property
    def matches_everything(self) -> bool:
        return self.type == "a" and self.major == -1 and self.minor == -1 \
            and self.access == "rwm"


def _rule(allow: bool, kind: str, major: int, minor: int, access: str = "rwm",
          where: str = "") -> DeviceRule:
    return DeviceRule(allow, kind, major, minor, access, where)


# The devices every container may use (runtime-spec "Default Devices", and
# runc's AllowedDevices): mknod of any node (the node is useless without an
# access rule), null, zero, full, random, urandom, tty, console, ptmx and the
# pty slaves. runc also allows /dev/net/tun (10:200); pyinit does not: a
# bundle that needs it lists it in linux.devices or resources.devices.
DEFAULT_DEVICE_RULES: tuple[DeviceRule, ...] = (
    _rule(True, "c", -1, -1, "m", "default: mknod of character devices"),
    _rule(True, "b", -1, -1, "m", "default: mknod of block devices"),
    _rule(True, "c", 1, 3, where="default: /dev/null"),
    _rule(True, "c", 1, 5, where="default: /dev/zero"),
    _rule(True, "c", 1, 7, where="default: /dev/full"),
    _rule(True, "c", 1, 8, where="default: /dev/random"),
    _rule(True, "c", 1, 9, where="default: /dev/urandom"),
    _rule(True, "c", 5, 0, where="default: /dev/tty"),
    _rule(True, "c", 5, 1, where="default: /dev/console"),
    _rule(True, "c", 5, 2, where="default: /dev/ptmx"),
    _rule(True, "c", 136, -1, where="default: /dev/pts/*"),
)


@record
class LinuxDevice:
    """What a device rule needs of a ``linux.devices`` entry."""

    type: str  # c, b, u, p
    major: int
    minor: int
    where: str = ""


def effective_device_rules(rules: Iterable[DeviceRule],
                           linux_devices: Iterable[LinuxDevice] = ()) -> tuple[DeviceRule, ...]:
    """runc's order: the config's rules, then the defaults, then ``linux.devices``.

    Later rules win, so a config that starts with "deny all" (as every
    generated config does) still gets the defaults and its own devices, and a
    config cannot deny a default device (as with runc). FIFOs (``p``) need no
    rule; ``u`` (unbuffered character) is a character device.
    """
    out = list(rules) + list(DEFAULT_DEVICE_RULES)
    for dev in linux_devices:
        if dev.type in ("c", "u", "b"):
            out.append(_rule(True, "b" if dev.type == "b" else "c", dev.major, dev.minor,
                             where=dev.where))
    return tuple(out)


@record
class DevicePolicy:
    """What is allowed: ``default_allow`` unless the last matching rule says otherwise."""

    default_allow: bool
    rules: tuple[DeviceRule, ...]

    def v1_writes(self) -> list[tuple[str, str]]:
        """``(file, line)`` in order: reset to the default, then each rule."""
        writes = [("devices.allow" if self.default_allow else "devices.deny", "a")]
        writes += [("devices.allow" if r.allow else "devices.deny", r.v1_line())
                   for r in self.rules]
        return writes


def device_policy(rules: Iterable[DeviceRule]) -> DevicePolicy:
    """Reduce a rule list: the last "everything" rule sets the default and
    drops every rule before it; a partial ``a`` rule becomes a ``b`` and a
    ``c`` rule (cgroup v1 reads any ``a`` line as "everything").
    Nothing given means "deny everything", as with runc."""
    default_allow = False
    kept: list[DeviceRule] = []
    for rule in rules:
        if rule.matches_everything:
            default_allow, kept = rule.allow, []
        elif rule.type == "a":
            kept += [DeviceRule(rule.allow, kind, rule.major, rule.minor, rule.access, rule.where)
                     for kind in ("b", "c")]
        else:
            kept.append(rule)
    return DevicePolicy(default_allow, tuple(kept))


# ---------------------------------------------------------------- resources
@record
class Memory:
    limit: int | None = None  # bytes; -1 = unlimited
    reservation: int | None = None
    swap: int | None = None  # memory + swap, as the spec and cgroup v1 count it
    kernel_tcp: int | None = None
    swappiness: int | None = None
    disable_oom_killer: bool | None = None
    use_hierarchy: bool | None = None


@record
class Cpu:
    shares: int | None = None
    quota: int | None = None  # microseconds per period; -1 = unlimited
    burst: int | None = None
    period: int | None = None
    realtime_runtime: int | None = None
    realtime_period: int | None = None
    cpus: str | None = None
    mems: str | None = None
    idle: int | None = None


@record
class WeightDevice:
    major: int
    minor: int
    weight: int | None
    leaf_weight: int | None
    where: str = field(default="", compare=False)


@record
class ThrottleDevice:
    major: int
    minor: int
    rate: int
    where: str = field(default="", compare=False)


@record
class BlockIO:
    weight: int | None = None
    leaf_weight: int | None = None
    weight_device: tuple[WeightDevice, ...] = ()
    # JSON key -> devices: throttleReadBpsDevice, throttleWriteBpsDevice, ...
    throttle: tuple[tuple[str, tuple[ThrottleDevice, ...]], ...] = ()


@record
class HugepageLimit:
    page_size: str  # "2MB"
    limit: int
    where: str = field(default="", compare=False)


@record
class Rdma:
    device: str
    hca_handles: int | None
    hca_objects: int | None


@record
class Network:
    class_id: int | None = None
    priorities: tuple[tuple[str, int], ...] = ()


@record
class Resources:
    memory: Memory | None = None
    cpu: Cpu | None = None
    pids_limit: int | None = None  # -1 = unlimited
    block_io: BlockIO | None = None
    hugepage_limits: tuple[HugepageLimit, ...] = ()
    network: Network | None = None
    rdma: tuple[Rdma, ...] = ()
    unified: tuple[tuple[str, str], ...] = ()
    devices: tuple[DeviceRule, ...] = ()  # the config's own rules, unmerged

    @property
    def limits_anything(self) -> bool:
        """Whether anything besides device rules is asked for."""
        return any((self.memory, self.cpu, self.pids_limit is not None, self.block_io,
                    self.hugepage_limits, self.network, self.rdma, self.unified))


@record
class CgroupSpec:
    """The cgroup part of a config: where (``path``, None = the default) and what."""

    path: str | None
    resources: Resources
    linux_devices: tuple[LinuxDevice, ...] = ()
    warnings: tuple[str, ...] = ()
    # cgroupsPath in systemd's form (slice:prefix:name), for --cgroup-manager systemd;
    # then ``path`` is None.
    systemd: SystemdPath | None = None

    def device_rules(self) -> tuple[DeviceRule, ...]:
        return effective_device_rules(self.resources.devices, self.linux_devices)


@record
class SystemdPath:
    """runc's systemd form of cgroupsPath, ``slice:prefix:name``: the container's cgroup
    is the transient scope ``<prefix>-<name>.scope`` in ``slice`` ("" = the default
    slice, system.slice for root and user.slice for a user's manager)."""

    slice: str
    prefix: str
    name: str

    @property
    def unit(self) -> str:
        return f"{self.prefix}-{self.name}.scope"

    def __str__(self) -> str:
        return f"{self.slice}:{self.prefix}:{self.name}"


# systemd's unit name characters (unit_name_is_valid) are ASCII letters, digits and
# ':', '-', '_', '.', and backslash; ':' separates the three parts here, and a backslash
# starts systemd's escapes, which pyinit does not write: neither is allowed in a part.
_UNIT_CHARS = r"[A-Za-z0-9_.-]+"
_UNIT_NAME_MAX = 255


def _match(pattern: str, text: str, full: bool = False) -> bool:
    """re.match (or re.fullmatch), importing re only for a field that needs it: the
    parent starts without re and enum (7 ms) when the config has none."""
    import re

    return (re.fullmatch if full else re.match)(pattern, text) is not None


def parse_systemd_path(value: str, where: str = "linux.cgroupsPath"
                       ) -> tuple[SystemdPath | None, list[Problem]]:
    """``slice:prefix:name`` checked as systemd would check the unit names it makes:
    the slice "" or ``NAME.slice`` whose dash-separated parts are not empty (systemd
    nests ``a-b.slice`` in ``a.slice``), prefix and name made of unit name characters,
    the scope's name at most 255 characters."""
    parts = value.split(":")
    if len(parts) != 3:
        return None, [(where, f"{value!r} has {len(parts)} ':'-separated parts; the systemd "
                              "form is slice:prefix:name (e.g. system.slice:pyinit:web)")]
    slice_, prefix, name = parts
    if slice_:
        stem = slice_.removesuffix(".slice")
        if stem == slice_ or not _match(_UNIT_CHARS, slice_, full=True):
            return None, [(where, f"{value!r}: the slice {slice_!r} is not a slice unit name "
                                  "(NAME.slice, or empty for the default)")]
        if stem != "-" and any(not p for p in stem.split("-")):
            return None, [(where, f"{value!r}: the slice {slice_!r} has an empty "
                                  "dash-separated part")]
    for label, part in (("prefix", prefix), ("name", name)):
        if not part:
            return None, [(where, f"{value!r}: the {label} is empty")]
        if not _match(_UNIT_CHARS, part, full=True):
            return None, [(where, f"{value!r}: the {label} {part!r} holds a character a "
                                  "systemd unit name cannot (allowed: ASCII letters, "
                                  "digits, '_', '.', '-')")]
    if name.endswith(".slice"):
        return None, [(where, f"{value!r}: the name {name!r} is a slice; pyinit asks systemd "
                              "for a scope, give the slice first (slice:prefix:name)")]
    spec = SystemdPath(slice_, prefix, name)
    if len(spec.unit) > _UNIT_NAME_MAX:
        return None, [(where, f"{value!r}: the scope's name {spec.unit!r} is longer than "
                              f"{_UNIT_NAME_MAX} characters")]
    return spec, []


def default_path(container_id: str) -> str:
    return f"{DEFAULT_PARENT}/{container_id}"


def unique_id(name: str) -> str:
    """``name``-PID-RANDOM: a default container id no other run gets. The pid alone is
    not enough: two pyinits, each in a PID namespace of its own, can have the same one
    (and share the host's cgroup filesystem and lock directory)."""
    return f"{name}-{os.getpid()}-{os.urandom(4).hex()}"  # secrets' token_hex, without
    # importing secrets (hmac, hashlib, OpenSSL's bindings, random: 7 ms of start-up)


# ------------------------------------------------------------------ reading
class _Reader:
    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.warnings: list[str] = []

    def problem(self, where: str, reason: str) -> None:
        self.problems.append((where, reason))

    def obj(self, doc: dict[str, Any], key: str, where: str) -> dict[str, Any] | None:
        value = doc.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.problem(f"{where}.{key}", f"must be an object, not {_name(value)}")
            return None
        return value

    def array(self, doc: dict[str, Any], key: str, where: str) -> list[Any]:
        value = doc.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.problem(f"{where}.{key}", f"must be an array, not {_name(value)}")
            return []
        return value

    def integer(self, doc: dict[str, Any], key: str, where: str, low: int, high: int,
                required: bool = False, text: str | None = None) -> int | None:
        """``doc[key]`` if it is an integer in [low, high]; ``text`` describes the range."""
        at = f"{where}.{key}"
        value = doc.get(key)
        if value is None:
            if required:
                self.problem(at, "is required")
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(at, f"must be an integer, not {_name(value)}")
            return None
        if not low <= value <= high:
            self.problem(at, f"{value} is out of range ({text or f'{low} to {high}'})")
            return None
        return value

    def boolean(self, doc: dict[str, Any], key: str, where: str) -> bool | None:
        return self._typed(doc, key, where, bool, "true or false")

    def string(self, doc: dict[str, Any], key: str, where: str) -> str | None:
        return self._typed(doc, key, where, str, "a string")

    def _typed(self, doc: dict[str, Any], key: str, where: str, kind: type[T],
               what: str) -> T | None:
        value = doc.get(key)
        if value is not None and not isinstance(value, kind):
            self.problem(f"{where}.{key}", f"must be {what}, not {_name(value)}")
            return None
        return value

    def known(self, doc: dict[str, Any], where: str, keys: Iterable[str]) -> None:
        """Unknown keys under resources are refused: a typo must not drop a limit."""
        allowed = set(keys)
        for key in doc:
            if key not in allowed:
                known = ", ".join(sorted(allowed))
                self.problem(f"{where}.{key}", f"unknown field (known: {known})")


def _name(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "true or false",
            int: "an integer", float: "a number"}.get(type(value), "null")


def _limit(r: _Reader, doc: dict[str, Any], key: str, where: str) -> int | None:
    """A byte limit: -1 (unlimited) or a positive number; 0 means "not set", as with runc."""
    value = r.integer(doc, key, where, -1, INT64_MAX, text="-1 for no limit, or bytes")
    return None if value == 0 else value


def _memory(r: _Reader, doc: dict[str, Any], where: str) -> Memory:
    r.known(doc, where, ("limit", "reservation", "swap", "kernel", "kernelTCP", "swappiness",
                         "disableOOMKiller", "useHierarchy", "checkBeforeUpdate"))
    if doc.get("kernel") is not None:
        r.warnings.append(f"{where}.kernel: ignored, as runc does (the kernel no longer limits "
                          "kernel memory on its own)")
    if doc.get("checkBeforeUpdate") is not None:
        r.warnings.append(f"{where}.checkBeforeUpdate: ignored (it applies to updates, and "
                          "pyinit does not update a running container)")
    mem = Memory(
        limit=_limit(r, doc, "limit", where),
        reservation=_limit(r, doc, "reservation", where),
        swap=_limit(r, doc, "swap", where),
        kernel_tcp=_limit(r, doc, "kernelTCP", where),
        swappiness=r.integer(doc, "swappiness", where, 0, 100),
        disable_oom_killer=r.boolean(doc, "disableOOMKiller", where),
        use_hierarchy=r.boolean(doc, "useHierarchy", where),
    )
    if mem.swap not in (None, -1):
        if mem.limit is None or mem.limit == -1:
            r.problem(f"{where}.swap", "a swap limit needs a memory limit (memory.limit)")
        elif mem.swap < mem.limit:
            r.problem(f"{where}.swap", f"{mem.swap} is below memory.limit {mem.limit}: the "
                      "swap limit counts memory plus swap")
    return mem


def _cpu(r: _Reader, doc: dict[str, Any], where: str) -> Cpu:
    r.known(doc, where, ("shares", "quota", "burst", "period", "realtimeRuntime",
                         "realtimePeriod", "cpus", "mems", "idle"))
    shares = r.integer(doc, "shares", where, 0, 262144, text="2 to 262144")
    if shares == 1:
        r.problem(f"{where}.shares", "1 is out of range (2 to 262144)")
    quota = r.integer(doc, "quota", where, -1, INT64_MAX, text="-1 for no limit, or "
                      "microseconds")
    if quota is not None and 0 < quota < 1000:
        r.problem(f"{where}.quota", f"{quota} is below the kernel's minimum of 1000 µs")
    period = r.integer(doc, "period", where, 0, 1_000_000, text="1000 to 1000000 µs")
    if period is not None and 0 < period < 1000:
        r.problem(f"{where}.period", f"{period} is out of range (1000 to 1000000 µs)")
    cpu = Cpu(
        shares=shares or None,
        quota=quota or None,
        burst=r.integer(doc, "burst", where, 0, UINT64_MAX),
        period=period or None,
        realtime_runtime=r.integer(doc, "realtimeRuntime", where, -1, INT64_MAX),
        realtime_period=r.integer(doc, "realtimePeriod", where, 0, UINT64_MAX),
        cpus=r.string(doc, "cpus", where),
        mems=r.string(doc, "mems", where),
        idle=r.integer(doc, "idle", where, 0, 1, text="0 or 1"),
    )
    for key, value in (("cpus", cpu.cpus), ("mems", cpu.mems)):
        if value and not _match(_LIST, value):
            r.problem(f"{where}.{key}", f"{value!r} is not a list like 0-3,5")
    return cpu


def _block_io(r: _Reader, doc: dict[str, Any], where: str) -> BlockIO:
    throttle_keys = ("throttleReadBpsDevice", "throttleWriteBpsDevice",
                     "throttleReadIOPSDevice", "throttleWriteIOPSDevice")
    r.known(doc, where, ("weight", "leafWeight", "weightDevice", *throttle_keys))
    weight_devices = []
    for i, item in enumerate(r.array(doc, "weightDevice", where)):
        at = f"{where}.weightDevice[{i}]"
        if not isinstance(item, dict):
            r.problem(at, "must be an object")
            continue
        major = r.integer(item, "major", at, 0, UINT32_MAX, required=True)
        minor = r.integer(item, "minor", at, 0, UINT32_MAX, required=True)
        weight = r.integer(item, "weight", at, 10, 1000)
        leaf = r.integer(item, "leafWeight", at, 10, 1000)
        if weight is None and leaf is None and "weight" not in item and "leafWeight" not in item:
            r.problem(at, "needs weight or leafWeight")
        if major is not None and minor is not None:
            weight_devices.append(WeightDevice(major, minor, weight, leaf, at))
    throttle = []
    for key in throttle_keys:
        found = []
        for i, item in enumerate(r.array(doc, key, where)):
            at = f"{where}.{key}[{i}]"
            if not isinstance(item, dict):
                r.problem(at, "must be an object")
                continue
            major = r.integer(item, "major", at, 0, UINT32_MAX, required=True)
            minor = r.integer(item, "minor", at, 0, UINT32_MAX, required=True)
            rate = r.integer(item, "rate", at, 0, UINT64_MAX, required=True)
            if major is not None and minor is not None and rate is not None:
                found.append(ThrottleDevice(major, minor, rate, at))
        if found:
            throttle.append((key, tuple(found)))
    return BlockIO(
        weight=r.integer(doc, "weight", where, 10, 1000),
        leaf_weight=r.integer(doc, "leafWeight", where, 10, 1000),
        weight_device=tuple(weight_devices),
        throttle=tuple(throttle),
    )


def _devices(r: _Reader, resources: dict[str, Any], where: str) -> tuple[DeviceRule, ...]:
    rules = []
    for i, item in enumerate(r.array(resources, "devices", where)):
        at = f"{where}.devices[{i}]"
        if not isinstance(item, dict):
            r.problem(at, "must be an object")
            continue
        r.known(item, at, ("allow", "type", "major", "minor", "access"))
        allow = r.boolean(item, "allow", at)
        if "allow" not in item:
            r.problem(f"{at}.allow", "is required")
        kind = r.string(item, "type", at)
        if kind is None or kind == "":
            kind = "a"
        elif kind not in ("a", "b", "c"):
            r.problem(f"{at}.type", f"must be a, b or c, not {kind!r}")
            continue
        major = r.integer(item, "major", at, -1, UINT32_MAX, text="-1 for any, or a number")
        minor = r.integer(item, "minor", at, -1, UINT32_MAX, text="-1 for any, or a number")
        access = r.string(item, "access", at)
        if access is None:
            access = "rwm"
        elif not access or set(access) - set("rwm"):
            r.problem(f"{at}.access", f"must be letters from rwm, not {access!r}")
            continue
        if allow is None:
            continue
        rules.append(DeviceRule(allow, kind, -1 if major is None else major,
                                -1 if minor is None else minor,
                                "".join(c for c in "rwm" if c in access), at))
    return tuple(rules)


def _resources(r: _Reader, doc: dict[str, Any], where: str) -> Resources:
    r.known(doc, where, ("devices", "memory", "cpu", "pids", "blockIO", "hugepageLimits",
                         "network", "rdma", "unified"))
    memory_doc = r.obj(doc, "memory", where)
    cpu_doc = r.obj(doc, "cpu", where)
    pids_doc = r.obj(doc, "pids", where)
    blkio_doc = r.obj(doc, "blockIO", where)
    pids_limit = None
    if pids_doc is not None:
        r.known(pids_doc, f"{where}.pids", ("limit",))
        pids_limit = r.integer(pids_doc, "limit", f"{where}.pids", -1, INT64_MAX, required=True,
                               text="-1 or 0 for no limit, or a number of tasks")
        if pids_limit == 0:
            pids_limit = -1  # runc: "a pids limit of 0 means no limit"
    hugepages = []
    seen_sizes: set[str] = set()
    for i, item in enumerate(r.array(doc, "hugepageLimits", where)):
        at = f"{where}.hugepageLimits[{i}]"
        if not isinstance(item, dict):
            r.problem(at, "must be an object")
            continue
        size = r.string(item, "pageSize", at)
        limit = r.integer(item, "limit", at, 0, UINT64_MAX, required=True)
        if size is None or not _match(_PAGE_SIZE, size):
            r.problem(f"{at}.pageSize", f"must be a size like 2MB or 1GB, not {size!r}")
        elif size in seen_sizes:
            r.problem(f"{at}.pageSize", f"{size} is given twice")
        elif limit is not None:
            seen_sizes.add(size)
            hugepages.append(HugepageLimit(size, limit, at))
    network = None
    net_doc = r.obj(doc, "network", where)
    if net_doc is not None:
        at = f"{where}.network"
        r.known(net_doc, at, ("classID", "priorities"))
        prios = []
        for i, item in enumerate(r.array(net_doc, "priorities", at)):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                r.problem(f"{at}.priorities[{i}]", "must be an object with a name")
                continue
            prio = r.integer(item, "priority", f"{at}.priorities[{i}]", 0, UINT32_MAX,
                             required=True)
            if prio is not None:
                prios.append((item["name"], prio))
        network = Network(r.integer(net_doc, "classID", at, 0, UINT32_MAX), tuple(prios))
    rdma = []
    rdma_doc = r.obj(doc, "rdma", where)
    for name, item in sorted((rdma_doc or {}).items()):
        at = f"{where}.rdma.{name}"
        if not isinstance(item, dict):
            r.problem(at, "must be an object")
            continue
        if not name or any(c.isspace() or c == "/" for c in name):
            r.problem(at, "is not an RDMA device name")
            continue
        r.known(item, at, ("hcaHandles", "hcaObjects"))
        handles = r.integer(item, "hcaHandles", at, 0, UINT32_MAX)
        objects = r.integer(item, "hcaObjects", at, 0, UINT32_MAX)
        if handles is None and objects is None:
            r.problem(at, "needs hcaHandles or hcaObjects")
        else:
            rdma.append(Rdma(name, handles, objects))
    unified = []
    unified_doc = r.obj(doc, "unified", where)
    for key, value in sorted((unified_doc or {}).items()):
        at = f"{where}.unified.{key}"
        if not isinstance(value, str):
            r.problem(at, f"must be a string, not {_name(value)}")
        elif not _match(_UNIFIED_KEY, key):
            r.problem(at, "is not a cgroup v2 interface file name (like memory.high)")
        elif key in _UNIFIED_REFUSED:
            r.problem(at, "moves or kills processes; it is not a resource limit")
        elif "\n" in value:
            r.problem(at, "must be one line")
        else:
            unified.append((key, value))
    return Resources(
        memory=None if memory_doc is None else _memory(r, memory_doc, f"{where}.memory"),
        cpu=None if cpu_doc is None else _cpu(r, cpu_doc, f"{where}.cpu"),
        pids_limit=pids_limit,
        block_io=None if blkio_doc is None else _block_io(r, blkio_doc, f"{where}.blockIO"),
        hugepage_limits=tuple(hugepages),
        network=network,
        rdma=tuple(rdma),
        unified=tuple(unified),
        devices=_devices(r, doc, where),
    )


def parse_cgroups_path(value: Any, where: str = "linux.cgroupsPath"
                       ) -> tuple[str | None, list[Problem]]:
    """A cgroupsPath: absolute (from each hierarchy's root) or relative (under
    pyinit's own cgroup). The systemd form ``slice:prefix:name`` is
    :func:`parse_systemd_path`'s."""
    if value is None or value == "":
        return None, []
    if not isinstance(value, str):
        return None, [(where, f"must be a string, not {_name(value)}")]
    if ":" in value:
        return None, [(where, f"{value!r} is systemd's form (slice:prefix:name), not a "
                              "cgroup path")]
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None, [(where, f"{value!r} must not contain '..'")]
    if not parts:
        return None, [(where, f"{value!r} names the root cgroup; give a cgroup of its own")]
    if any("\n" in p for p in parts):
        return None, [(where, "must not contain a newline")]
    return ("/" if value.startswith("/") else "") + "/".join(parts), []


def parse(linux: Any, where: str = "linux") -> tuple[CgroupSpec, list[Problem]]:
    """The cgroup part of ``linux`` (the decoded JSON object) and its problems."""
    r = _Reader()
    if not isinstance(linux, dict):
        linux = {}
    raw_path = linux.get("cgroupsPath")
    systemd = None
    if isinstance(raw_path, str) and ":" in raw_path:
        path = None
        systemd, problems = parse_systemd_path(raw_path, f"{where}.cgroupsPath")
    else:
        path, problems = parse_cgroups_path(raw_path, f"{where}.cgroupsPath")
    r.problems += problems
    res_doc = r.obj(linux, "resources", where)
    resources = Resources() if res_doc is None else _resources(r, res_doc,
                                                               f"{where}.resources")
    devices = []
    raw = linux.get("devices")
    for i, item in enumerate(raw if isinstance(raw, list) else []):
        # config.py reports malformed entries; only well-formed ones make rules here.
        if isinstance(item, dict) and item.get("type") in ("c", "b", "u") \
                and isinstance(item.get("major"), int) and isinstance(item.get("minor"), int):
            devices.append(LinuxDevice(item["type"], item["major"], item["minor"],
                                       f"{where}.devices[{i}]"))
    return CgroupSpec(path, resources, tuple(devices), tuple(r.warnings), systemd), r.problems
