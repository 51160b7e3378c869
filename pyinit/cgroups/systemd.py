"""``pyinit run --cgroup-manager systemd``: the container's cgroup is a transient
systemd scope, as runc's systemd driver makes it (docs/cgroups.md).

1. :func:`create`, before the fork: the config's cgroupsPath must be in systemd's
   form ``slice:prefix:name`` (or absent: ``system.slice:pyinit:<id>``, and
   ``user.slice`` for a user's manager); systemd must run here (sd_booted:
   ``/run/systemd/system``); pyinit connects to its bus (root: the system bus,
   ``$DBUS_SYSTEM_BUS_ADDRESS`` or ``/run/dbus/system_bus_socket``; a user: the
   user's bus, ``$DBUS_SESSION_BUS_ADDRESS`` or ``$XDG_RUNTIME_DIR/bus``).
   Nothing on the host has changed yet when any of this fails.
2. :meth:`Scope.add` with the middle process's pid, in the parent while the
   middle process waits: ``StartTransientUnit("<prefix>-<name>.scope", "fail")``
   with ``Slice``, ``Delegate=yes``, ``PIDs=[pid]`` and the limits systemd has
   properties for (:func:`resource_properties`); wait for the job's
   ``JobRemoved`` signal, read the scope's ``ControlGroup``, and hand that
   path to the cgroupfs manager, which creates what systemd did not (v1
   hierarchies systemd does not manage), writes every limit through the cgroup
   filesystem (also those systemd took: the same values, and the fields systemd
   has no property for), the device rules, and moves the pid into every
   hierarchy. runc's systemd driver does the same: properties first, then its
   fs manager's ``Set``.
3. :meth:`Scope.remove` after the container: ``StopUnit(scope, "replace")`` and
   its job (a scope whose processes have all exited may be gone already:
   ``NoSuchUnit`` is fine), then the cgroupfs manager removes what it created.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pyinit.cgroups import dbus, manager
from pyinit.cgroups.host import Host
from pyinit.errors import SetupError
from pyinit.oci.resources import CgroupSpec, Resources, SystemdPath
from pyinit.record import replace

RUNNING = "/run/systemd/system"  # sd_booted(3): exists only when systemd is PID 1
SYSTEM_BUS = "unix:path=/run/dbus/system_bus_socket"
SYSTEMD = "org.freedesktop.systemd1"
OBJECT = "/org/freedesktop/systemd1"
MANAGER = "org.freedesktop.systemd1.Manager"
PROPERTIES = "org.freedesktop.DBus.Properties"
INFINITY = 2**64 - 1  # systemd's "no limit" for every uint64 limit property
DEFAULT_PREFIX = "pyinit"
STEP = "cgroup"
WHERE = "linux.cgroupsPath"
JOB_TIMEOUT = 30.0  # seconds for each D-Bus answer and each job, as runc waits


def bus_address(euid: int, environ: Mapping[str, str]) -> str:
    """The bus systemd listens on for this caller: the system bus for root, the user's
    session bus (where ``systemd --user`` is) for anyone else."""
    if euid == 0:
        return environ.get("DBUS_SYSTEM_BUS_ADDRESS") or SYSTEM_BUS
    if environ.get("DBUS_SESSION_BUS_ADDRESS"):
        return environ["DBUS_SESSION_BUS_ADDRESS"]
    runtime = environ.get("XDG_RUNTIME_DIR")
    if not runtime:
        raise SetupError(STEP, f"--cgroup-manager systemd as uid {euid} talks to the user's "
                         "systemd over the user's bus, and neither DBUS_SESSION_BUS_ADDRESS "
                         "nor XDG_RUNTIME_DIR is set", op="systemd-bus")
    return f"unix:path={runtime}/bus"


def resolve(spec: CgroupSpec, container_id: str, euid: int) -> SystemdPath:
    """The scope for this config: its systemd cgroupsPath, with the slice defaulted, or
    ``<default slice>:pyinit:<id>`` without one. A cgroupfs path is refused."""
    if spec.path is not None:
        raise SetupError(STEP, f"{spec.path!r} is a cgroupfs path; --cgroup-manager systemd "
                         "needs systemd's form slice:prefix:name (e.g. "
                         f"system.slice:pyinit:{container_id})", where=WHERE)
    default_slice = "system.slice" if euid == 0 else "user.slice"
    if spec.systemd is None:
        return SystemdPath(default_slice, DEFAULT_PREFIX, container_id)
    if not spec.systemd.slice:
        return replace(spec.systemd, slice=default_slice)
    return spec.systemd


def slice_path(name: str) -> str:
    """Where systemd puts a slice: ``a-b-c.slice`` is ``/a.slice/a-b.slice/a-b-c.slice``,
    the root slice ``-.slice`` is ``/`` (runc's ExpandSlice)."""
    stem = name.removesuffix(".slice")
    if stem == "-":
        return "/"
    parts = stem.split("-")
    return "/" + "/".join("-".join(parts[:i + 1]) + ".slice" for i in range(len(parts)))


# ---------------------------------------------------------------- properties
Property = tuple[str, tuple[str, Any]]  # name, (D-Bus signature, value)


def cpu_mask(cpus: str) -> bytes:
    """A cpuset list ("0-3,8") as systemd's ``AllowedCPUs`` byte array: bit i of byte
    i // 8 is cpu (or memory node) i."""
    bits = 0
    for item in cpus.split(","):
        first, _, last = item.partition("-")
        for n in range(int(first), int(last or first) + 1):
            bits |= 1 << n
    return bits.to_bytes((bits.bit_length() + 7) // 8 or 1, "little")


def quota_per_sec(quota: int | None, period: int | None) -> int | None:
    """cpu.quota/period as ``CPUQuotaPerSecUSec``: quota per second, rounded up to whole
    10 ms (systemd's granularity, as runc rounds); a quota of -1 (or none with a
    period) is no limit. None: nothing asked."""
    if not quota and not period:
        return None
    if quota is None or quota <= 0:
        return INFINITY
    per_sec = quota * 1_000_000 // (period or 100_000)
    return -(-per_sec // 10_000) * 10_000


def _limit(value: int) -> int:
    return INFINITY if value < 0 else value


def resource_properties(res: Resources, version: int) -> list[Property]:
    """The ``linux.resources`` fields systemd has unit properties for, as runc maps them.

    ``version`` is the host's: 1 (v1 or hybrid) gives the legacy names
    (``MemoryLimit``, ``CPUShares``, ``BlockIOWeight``), 2 the unified ones
    (``MemoryMax``, ``MemoryLow``, ``MemorySwapMax``, ``CPUWeight``,
    ``AllowedCPUs``, ``AllowedMemoryNodes``). Everything else is written through the
    cgroup filesystem afterwards (as is all of this, again)."""
    props: list[Property] = []
    mem = res.memory
    if mem is not None and mem.limit is not None:
        props.append(("MemoryMax" if version == 2 else "MemoryLimit", ("t", _limit(mem.limit))))
    if version == 2 and mem is not None:
        if mem.reservation is not None:
            props.append(("MemoryLow", ("t", _limit(mem.reservation))))
        if mem.swap is not None:
            swap = INFINITY if mem.swap < 0 else mem.swap - max(mem.limit or 0, 0)
            props.append(("MemorySwapMax", ("t", swap)))
    cpu = res.cpu
    if cpu is not None:
        if cpu.shares is not None:
            if version == 2:
                props.append(("CPUWeight", ("t", 1 + (cpu.shares - 2) * 9999 // 262142)))
            else:
                props.append(("CPUShares", ("t", cpu.shares)))
        per_sec = quota_per_sec(cpu.quota, cpu.period)
        if per_sec is not None:
            props.append(("CPUQuotaPerSecUSec", ("t", per_sec)))
        if cpu.period:
            props.append(("CPUQuotaPeriodUSec", ("t", cpu.period)))
        if version == 2 and cpu.cpus:
            props.append(("AllowedCPUs", ("ay", cpu_mask(cpu.cpus))))
        if version == 2 and cpu.mems:
            props.append(("AllowedMemoryNodes", ("ay", cpu_mask(cpu.mems))))
    if res.pids_limit is not None:
        props.append(("TasksMax", ("t", INFINITY if res.pids_limit <= 0 else res.pids_limit)))
    if version == 1 and res.block_io is not None and res.block_io.weight is not None:
        props.append(("BlockIOWeight", ("t", res.block_io.weight)))
    return props


def unit_properties(scope: SystemdPath, pid: int, res: Resources, version: int,
                    description: str) -> list[Property]:
    """Every property of the StartTransientUnit call, in the order sent."""
    accounting = ("IOAccounting" if version == 2 else "BlockIOAccounting")
    return [
        ("Description", ("s", description)),
        ("Slice", ("s", scope.slice)),
        ("Delegate", ("b", True)),
        ("PIDs", ("au", [pid])),
        ("DefaultDependencies", ("b", False)),
        ("MemoryAccounting", ("b", True)),
        ("CPUAccounting", ("b", True)),
        (accounting, ("b", True)),
        ("TasksAccounting", ("b", True)),
        *resource_properties(res, version),
    ]


# ---------------------------------------------------------------------- scope
class Scope:
    """The container's transient scope, and the cgroupfs manager's view of its cgroup
    once it exists (``fs``). The parent process adds the middle process (the scope is
    made with it: systemd starts no empty scope)."""

    joined_by_parent = True

    def __init__(self, host: Host, spec: CgroupSpec, scope: SystemdPath, container_id: str,
                 bus: dbus.Connection, log: Any) -> None:
        self.host = host
        self.spec = spec
        self.scope = scope
        self.container_id = container_id
        self.bus = bus
        self.log = log
        self.started = False
        self.control_group: str | None = None
        self.fs: manager.Cgroup | None = None

    @property
    def path(self) -> str:
        return str(self.scope)

    @property
    def dirs(self) -> dict[str, str]:
        return dict(self.fs.dirs) if self.fs is not None else {}

    def add(self, pid: int) -> None:
        """Start the scope with ``pid`` in it, wait for systemd's job, then apply the
        limits and device rules through the cgroup filesystem and put ``pid`` in every
        hierarchy. On failure the caller calls :meth:`remove`."""
        try:
            self._start(pid)
        except (OSError, dbus.ProtocolError, dbus.DBusError) as exc:
            raise SetupError(STEP, f"systemd scope {self.scope.unit}: "
                             f"{type(exc).__name__}: {exc}", op="systemd-refused",
                             where=WHERE, unit=self.scope.unit) from None

    def _start(self, pid: int) -> None:
        unit = self.scope.unit
        version = 2 if self.host.mode == "v2" else 1
        props = unit_properties(self.scope, pid, self.spec.resources, version,
                                f"pyinit container {self.container_id}")
        self.bus.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                      "AddMatch", "s", [f"type='signal',sender='{SYSTEMD}',path='{OBJECT}',"
                                        f"interface='{MANAGER}',member='JobRemoved'"])
        try:
            (job,) = self.bus.call(SYSTEMD, OBJECT, MANAGER, "StartTransientUnit",
                                   "ssa(sv)a(sa(sv))", [unit, "fail", props, []])
        except dbus.DBusError as exc:
            if exc.name == "org.freedesktop.systemd1.UnitExists":
                raise SetupError(STEP, f"systemd already has a unit {unit}: another container "
                                 f"runs with cgroupsPath {self.path}", where=WHERE) from None
            raise SetupError(STEP, f"systemd refused to start the scope {unit}: {exc}",
                             op="systemd-refused", where=WHERE, unit=unit) from None
        self.started = True
        result = self._wait_job(job)
        if result != "done":
            raise SetupError(STEP, f"systemd's job to start the scope {unit} ended with "
                             f"{result!r}, not 'done'", op="systemd-refused", where=WHERE,
                             unit=unit)
        (unit_path,) = self.bus.call(SYSTEMD, OBJECT, MANAGER, "GetUnit", "s", [unit])
        (cgroup,) = self.bus.call(SYSTEMD, unit_path, PROPERTIES, "Get", "ss",
                                  ["org.freedesktop.systemd1.Scope", "ControlGroup"])
        if not isinstance(cgroup, str) or not cgroup.startswith("/"):
            raise SetupError(STEP, f"systemd gave the scope {unit} no cgroup ({cgroup!r})",
                             where=WHERE)
        self.control_group = cgroup
        self.log.info("cgroup.scope_started", unit=unit, slice=self.scope.slice, job=job,
                      control_group=cgroup, properties=[name for name, _ in props])
        fs_spec = replace(self.spec, path=cgroup, systemd=None)
        decision = manager.placement(self.host, fs_spec, self.container_id)
        if decision.warning is not None:
            self.log.warning("cgroup.no_limits", reason=decision.reason,
                             detail=decision.warning, skipped=list(decision.skipped))
        if not decision.enforce:
            return
        self.fs = manager.create(self.host, fs_spec, self.container_id, decision=decision)
        self.fs.add(pid)

    def _wait_job(self, job: str) -> str:
        try:
            signal = self.bus.wait_signal(
                lambda m: m.get(dbus.MEMBER) == "JobRemoved" and len(m.body) == 4
                and m.body[1] == job)
        except TimeoutError as exc:
            raise SetupError(STEP, f"systemd's job {job}: {exc}", op="systemd-refused",
                             where=WHERE, unit=self.scope.unit) from None
        return str(signal.body[3])

    def procs_fd(self) -> int | None:
        """None: the scope's directory is known only once systemd has put the middle
        process in it, after PID 1's fork (Cgroup.procs_fd; docs/security.md rule 4)."""
        return None

    def oom(self) -> manager.OomEvidence | None:
        """The OOM killer's counter, if the scope's cgroup is still there to read: systemd
        stops a scope (and removes its cgroup) as soon as its last process has exited,
        which may be before pyinit gets to read it (docs/cgroups.md)."""
        if self.fs is None:
            return None
        try:
            return self.fs.oom()
        except FileNotFoundError:
            self.log.info("cgroup.scope_gone", unit=self.scope.unit,
                          control_group=self.control_group,
                          detail="systemd removed the scope's cgroup when its last process "
                          "exited; its OOM counter could not be read")
            return None

    def remove(self) -> None:
        """Stop the scope (systemd kills what is left in it and removes its cgroup), then
        remove what the cgroupfs manager created; close the bus."""
        errors = []
        try:
            if self.started:
                try:
                    (job,) = self.bus.call(SYSTEMD, OBJECT, MANAGER, "StopUnit", "ss",
                                           [self.scope.unit, "replace"])
                    self._wait_job(job)
                except dbus.DBusError as exc:
                    if exc.name != "org.freedesktop.systemd1.NoSuchUnit":
                        errors.append(f"StopUnit {self.scope.unit}: {exc}")
                except (OSError, dbus.ProtocolError, SetupError) as exc:
                    errors.append(f"StopUnit {self.scope.unit}: {exc}")
                self.started = False
            if self.fs is not None:
                self.fs.remove()
                self.fs = None
        finally:
            self.bus.close()
        if errors:
            raise SetupError(STEP, "; ".join(errors))


def create(host: Host, spec: CgroupSpec, container_id: str, log: Any, *,
           euid: int | None = None, running: str = RUNNING,
           environ: Mapping[str, str] | None = None) -> Scope:
    """Check everything that can be checked before systemd is asked, and connect."""
    uid = os.geteuid() if euid is None else euid
    env = os.environ if environ is None else environ
    scope = resolve(spec, container_id, uid)
    if host.mode == "none":
        raise SetupError(STEP, "this host has no cgroup filesystem under /sys/fs/cgroup")
    manager.planned(host, spec)  # a field this host cannot apply fails here, as for cgroupfs
    if not os.path.isdir(running):
        raise SetupError(STEP, f"--cgroup-manager systemd: systemd is not running on this "
                         f"host ({running} does not exist)", op="systemd-not-running")
    address = bus_address(uid, env)
    try:
        bus = dbus.Connection(address, timeout=JOB_TIMEOUT)
    except (ValueError, dbus.ProtocolError) as exc:
        raise SetupError(STEP, f"--cgroup-manager systemd: cannot talk to D-Bus at "
                         f"{address}: {exc}", op="systemd-bus") from None
    except (OSError, dbus.DBusError) as exc:  # TimeoutError is an OSError
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SetupError(STEP, f"--cgroup-manager systemd: cannot reach systemd's D-Bus at "
                         f"{address}: {reason or type(exc).__name__}", op="systemd-bus",
                         err=exc.errno if isinstance(exc, OSError) else None) from None
    return Scope(host, spec, scope, container_id, bus, log)
