"""A container's cgroup: create it in every hierarchy, apply the limits and the device
rules, put processes in, tell whether the OOM killer fired, remove it.

The process model calls, in this order (see docs/cgroups.md):

1. ``host = detect()`` and ``decision = placement(host, spec, container_id)``: rootless
   without a writable (delegated) cgroup means no limits and one warning;
2. ``cg = create(host, spec, container_id)`` before the workload exists (creates, locks,
   applies; on any failure removes what it made and raises SetupError naming the field);
3. ``cg.add(pid)`` for the container's first process, before it unshares its cgroup
   namespace and before it execs anything;
4. after the container's init has exited: ``cg.oom()`` for the evidence, then
   ``cg.remove()``.

``sweep()`` removes the cgroups of pyinit parents that died (SIGKILL) before step 4.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time

from pyinit.cgroups import devicefilter, mapping
from pyinit.cgroups.host import Hierarchy, Host
from pyinit.errors import SetupError
from pyinit.linux import bpf, cgroupfs
from pyinit.oci import jsonio
from pyinit.oci.resources import CgroupSpec, DevicePolicy, default_path, device_policy
from pyinit.record import field, record

TYPE_CHECKING = False  # typing costs 6 ms at start-up; mypy reads the name
if TYPE_CHECKING:
    from typing import ClassVar

# What urllib.parse.quote(text, safe="") leaves as it is (its import, with
# ipaddress, was a few ms on the way to the workload).
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")


def quote(text: str) -> str:
    """``urllib.parse.quote(text, safe="")``: every byte but the unreserved ones as %XX."""
    return "".join(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in text.encode("utf-8"))

LOCK_WAIT_S = 1.0  # how long a held lock may be a sweep's, not an owner's
STATE_DIR = "/run/pyinit/cgroups"  # one lock file per live container cgroup (root)
STATE_ENV = "PYINIT_CGROUP_STATE_DIR"  # instead of the defaults below (docs/cgroups.md)


def state_dir_for(euid: int) -> str:
    """Root's lock directory, or (a delegated, unprivileged user) one of the user's own;
    $PYINIT_CGROUP_STATE_DIR for either (a private sweep domain)."""
    chosen = os.environ.get(STATE_ENV)
    if chosen:
        return chosen
    if euid == 0:
        return STATE_DIR
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "pyinit", "cgroups")
    # Not /tmp: another user could create the directory first.
    return os.path.expanduser("~/.local/state/pyinit/cgroups")


STEP = "cgroup"


@record(frozen=False)
class Cgroup:
    path: str  # as resolved from the config ("/pyinit/web", or relative)
    dirs: dict[str, str]  # hierarchy name -> the container's directory in it
    host: Host
    created: list[str] = field(default_factory=list)  # the leaves pyinit made, per hierarchy
    lock_path: str | None = None
    lock_fd: int | None = None
    state_dir: str = ""
    # The middle process joins it itself (cgroup.add(os.getpid())); a systemd Scope is
    # started by the parent with the middle process's pid.
    joined_by_parent: ClassVar[bool] = False

    def directory(self, controller: str) -> str:
        """The directory holding ``controller``'s files ("unified" for the v2 hierarchy)."""
        hier = self.host.unified if controller == "unified" else self.host.v1(controller)
        if hier is None:
            raise KeyError(controller)
        return self.dirs[hier.name]

    def add(self, pid: int) -> None:
        """Move ``pid`` into the container's cgroup in every hierarchy."""
        for name, directory in self.dirs.items():
            try:
                cgroupfs.write(directory, "cgroup.procs", str(pid))
            except OSError as exc:
                raise SetupError.from_os(STEP, f"add pid {pid} to {directory}/cgroup.procs",
                                         exc, hierarchy=name) from None

    def procs_fd(self) -> int | None:
        """A descriptor on the cgroup.procs of a leaf pyinit made for this container (the
        unified hierarchy's if it made one there), or None when it made none: a cgroup
        that was there before may hold others' processes, never to be killed as ours.
        None too when it cannot be opened (the shutdown then signals the workload's
        process group only, as without a cgroup)."""
        if not self.created:
            return None
        unified = self.dirs.get(self.host.unified.name) if self.host.unified else None
        try:
            return cgroupfs.open_procs(unified if unified in self.created else self.created[0])
        except OSError:
            return None

    def read(self, controller: str, name: str) -> str:
        return cgroupfs.read(self.directory(controller), name).strip()

    def oom(self) -> OomEvidence | None:
        return oom_evidence(self)

    def remove(self) -> None:
        """rmdir the leaves pyinit created, SIGKILLing and waiting out whatever is still
        inside, then the parents any pyinit created that are empty now; drop the lock."""
        errors = []
        for directory in self.created:
            try:
                cgroupfs.remove(directory, kill=True)
            except OSError as exc:
                errors.append(f"{directory}: {exc.strerror}")
        if self.state_dir:
            _remove_parents(self.state_dir, list(self.dirs.values()))
        self.created = []
        if self.lock_fd is not None:
            if not errors and self.lock_path:
                try:
                    os.unlink(self.lock_path)
                except FileNotFoundError:
                    pass
            os.close(self.lock_fd)
            self.lock_fd = None
        if errors:
            raise SetupError(STEP, "cannot remove " + "; ".join(errors))


# ------------------------------------------------------------------ placement
@record
class Placement:
    """Where the container's cgroup goes, what of ``linux.resources`` is not applied, and
    why (``pyinit diagnose`` prints ``reason``).

    ``enforce``: a cgroup of its own is created, in the ``hierarchies`` named (all of
    them as root; the writable ones for an unprivileged caller, ``delegated``).
    ``skipped``: the JSON paths asked for that are not applied, with the one
    ``warning`` line that names them and why."""

    enforce: bool
    reason: str
    warning: str | None = None
    path: str = ""
    hierarchies: tuple[str, ...] = ()
    delegated: bool = False
    skipped: tuple[str, ...] = ()


def cgroup_path(spec: CgroupSpec, container_id: str, euid: int = 0) -> str:
    """The config's path; else ``/pyinit/<id>`` for root, and ``pyinit/<id>`` (under the
    caller's own cgroup, where a delegated subtree is) for anyone else."""
    if spec.path:
        return spec.path
    return default_path(container_id) if euid == 0 else default_path(container_id).lstrip("/")


def _first_existing(directory: str) -> str:
    while not os.path.isdir(directory):
        directory = os.path.dirname(directory)
    return directory


def _writable(path: str) -> bool:
    return os.access(path, os.W_OK, effective_ids=True)


def no_access(hier: Hierarchy, path: str, uid: int) -> str | None:
    """Why this (unprivileged) process cannot create cgroup ``path`` in ``hier`` and move
    itself into it; None when it can.

    It needs to create the missing directories (write access to the deepest existing
    one) or, for a cgroup that exists, its cgroup.procs. On v2 the kernel also wants
    write access to cgroup.procs of the closest common ancestor of the cgroup the
    process is in and the new one: hence a delegated subtree is used from inside
    (its cgroupsPath relative, or absolute below the caller's own cgroup)."""
    try:
        target = hier.directory(hier.resolve(path))
    except ValueError as exc:
        return str(exc)
    existing = _first_existing(target)
    if existing == target:
        if not _writable(os.path.join(target, "cgroup.procs")):
            return f"{target}/cgroup.procs is not writable by uid {uid}"
    elif not os.access(existing, os.W_OK | os.X_OK, effective_ids=True):
        return f"{existing} is not writable by uid {uid}"
    if hier.version == 2:
        try:
            own = hier.directory(hier.own)
        except ValueError as exc:
            return str(exc)
        common = os.path.commonpath([own, target])
        if not _writable(os.path.join(common, "cgroup.procs")):
            return (f"{common}/cgroup.procs is not writable by uid {uid} (moving a process "
                    f"from {own} needs it: the closest common ancestor)")
    return None


def hierarchy_of(host: Host, write: mapping.Write) -> Hierarchy:
    """The hierarchy ``write`` goes to (checked by :func:`planned`)."""
    hier = host.unified if write.version == 2 else host.v1(write.controller)
    assert hier is not None
    return hier


def planned(host: Host, spec: CgroupSpec) -> list[mapping.Write]:
    """The writes for ``spec`` on this host; SetupError naming the JSON path of the first
    field this host cannot apply (its cgroup version has no file for it, or its
    controller is not mounted) — for any caller, privileged or not."""
    writes, problems = mapping.plan(spec.resources, 2 if host.mode == "v2" else 1)
    if problems:
        where, reason = problems[0]
        raise SetupError(STEP, reason, where=where)
    for write in writes:
        _check_controller(host, write)
    return writes


def devices_asked(spec: CgroupSpec) -> bool:
    """Whether the device rules restrict anything (an "allow everything" list, as
    ``pyinit sandbox`` gives, does not)."""
    if not spec.resources.devices:
        return False
    policy = device_policy(spec.device_rules())
    return not (policy.default_allow and not any(not r.allow for r in policy.rules))


def placement(host: Host, spec: CgroupSpec, container_id: str,
              euid: int | None = None) -> Placement:
    """Where the container's cgroup can go for this caller, and what is not applied.

    In each hierarchy where :func:`no_access` finds nothing in the way: for root,
    every one unless the cgroup filesystem is read-only (in a container); for anyone
    else, a delegated subtree (systemd's ``Delegate=yes``, or a cgroup chowned to the
    user), without device rules (only CAP_SYS_ADMIN may set them). Whatever is asked
    for and cannot be applied is named in one warning; the container runs without
    it. A field this host cannot apply at all is an error (SetupError naming its JSON
    path), for every caller."""
    uid = os.geteuid() if euid is None else euid
    path = cgroup_path(spec, container_id, uid)
    if host.mode == "none":
        nothing = "this host has no cgroup filesystem under /sys/fs/cgroup"
        skipped = _asked(spec)
        return Placement(False, nothing, _warning(uid, [(w, nothing) for w in skipped]), path,
                         skipped=tuple(skipped))
    writes = planned(host, spec)
    # Root too: a read-only cgroup filesystem (pyinit as root in an ordinary container)
    # is no place for a cgroup either.
    refused = {h.name: why for h in host.hierarchies
               if (why := no_access(h, path, uid)) is not None}
    usable = tuple(h.name for h in host.hierarchies if h.name not in refused)
    if uid == 0 and not refused:
        return Placement(True, f"cgroup {path} in every hierarchy ({host.mode} host), as root",
                         None, path, usable)
    missing: list[tuple[str, str]] = []
    for write in writes:
        name = hierarchy_of(host, write).name
        if name in refused:
            missing.append((write.where, refused[name]))
    if devices_asked(spec):
        devices = host.v1("devices")
        if uid != 0:
            missing.append(("linux.resources.devices",
                            f"device rules need CAP_SYS_ADMIN, which uid {uid} does not have"))
        elif all(h is None or h.name in refused for h in (devices, host.unified)):
            name = (devices or host.unified or host.hierarchies[0]).name
            missing.append(("linux.resources.devices", refused[name]))
    not_applied = tuple(dict.fromkeys(w for w, _ in missing))
    not_delegated = "not delegated: " if uid != 0 else ""
    if not usable:
        first = host.unified.name if host.unified is not None else host.hierarchies[0].name
        reason = f"{not_delegated}no write access: {refused[first]}"
        if len(refused) > 1:
            reason += " (nor to any other hierarchy)"
        return Placement(False, reason, _warning(uid, missing), path, skipped=not_applied)
    delegated = "delegated: " if uid != 0 else ""
    reason = f"{delegated}cgroup {path} in {_names(host, usable)}, writable by uid {uid}"
    if refused:
        reason += (f"; not in {_names(host, tuple(refused))} (not writable by uid {uid}: "
                   "limits of their controllers are not applied)")
    return Placement(True, reason, _warning(uid, missing), path, usable, uid != 0,
                     not_applied)


def _names(host: Host, names: tuple[str, ...]) -> str:
    if host.unified is not None and names == (host.unified.name,):
        return f"the unified hierarchy ({host.unified.mount_point})"
    return ", ".join(names)


def _asked(spec: CgroupSpec) -> list[str]:
    """The JSON paths of ``spec`` that ask for something (for a host without cgroups)."""
    asked = list(dict.fromkeys(w.where for w in mapping.plan(spec.resources, 1)[0]))
    if devices_asked(spec):
        asked.append("linux.resources.devices")
    return asked


def _warning(uid: int, missing: list[tuple[str, str]]) -> str | None:
    """One line: each JSON path not applied, grouped by why."""
    if not missing:
        return None
    groups: dict[str, list[str]] = {}
    for where, why in missing:
        if where not in groups.setdefault(why, []):
            groups[why].append(where)
    parts = [f"{', '.join(wheres)} ({why})" for why, wheres in groups.items()]
    return (f"cgroups: not applied for uid {uid}, the container runs without them: "
            + "; ".join(parts))


# --------------------------------------------------------------------- create
def _lock(state_dir: str, path: str) -> tuple[str, int]:
    """Hold a lock file for this cgroup path while the container lives: the sweep
    removes only cgroups whose lock nobody holds (the owner died)."""
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    lock_path = os.path.join(state_dir, quote(path) + ".lock")
    # Another run's sweep locks each unheld file for a moment (this one too, between
    # our open and our flock: it is still empty then, so the sweep unlinks it). An
    # owner holds it for its container's life: only a lock still held after
    # LOCK_WAIT_S is another container's.
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() < deadline:
                time.sleep(0.01)
                continue
            raise SetupError(STEP, f"cgroup {path} belongs to another running container",
                             where="linux.cgroupsPath") from None
        try:
            same = os.stat(lock_path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:  # else a sweep unlinked it between open and flock: take a fresh one
            return lock_path, fd
        os.close(fd)


def _record(cg: Cgroup) -> None:
    assert cg.lock_fd is not None
    data = jsonio.dumps({"path": cg.path, "created": cg.created}).encode()
    os.ftruncate(cg.lock_fd, 0)
    os.pwrite(cg.lock_fd, data, 0)


# Parents (/pyinit) are shared by containers, so whoever created one cannot know
# whether it is last out. Each parent a pyinit creates gets a marker in
# STATE_DIR/parents; whoever removes a leaf then removes the empty marked
# ancestors. One flock serialises making and removing parents, so a parent is
# never removed between another run's mkdir of it and of its child.
class _Parents:
    """The registry of parents, held under its flock for the ``with`` block (a class, not
    contextlib.contextmanager: contextlib is an import on the way to the container)."""

    def __init__(self, state_dir: str) -> None:
        self.directory = os.path.join(state_dir, "parents")
        self.fd = -1

    def __enter__(self) -> str:
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        self.fd = os.open(os.path.join(self.directory, "LOCK"),
                          os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(self.fd)
            raise
        return self.directory

    def __exit__(self, *exc_info: object) -> None:
        os.close(self.fd)


def _marker(registry: str, directory: str) -> str:
    return os.path.join(registry, quote(directory))


def _remove_parents(state_dir: str, leaves: list[str]) -> list[str]:
    """rmdir the marked ancestors of ``leaves`` that are empty, deepest first; the removed."""
    removed = []
    with _Parents(state_dir) as registry:
        for leaf in leaves:
            parent = os.path.dirname(leaf)
            while os.path.exists(_marker(registry, parent)):
                try:
                    os.rmdir(parent)
                    removed.append(parent)
                except FileNotFoundError:
                    pass
                except OSError:
                    break  # busy: another container's cgroup is below it
                os.unlink(_marker(registry, parent))
                parent = os.path.dirname(parent)
    return removed


def create(host: Host, spec: CgroupSpec, container_id: str, *, state_dir: str | None = None,
           v1_devices: bool | None = None, bpf_devices: bool | None = None,
           decision: Placement | None = None) -> Cgroup:
    """Create the container's cgroup where ``decision`` (default: :func:`placement`) says
    and apply ``spec`` there; on failure nothing is left behind. ``v1_devices`` /
    ``bpf_devices`` choose the device mechanisms (both, on a hybrid host; tests take
    one at a time). Unprivileged (a delegated cgroup), neither: the kernel lets only
    CAP_SYS_ADMIN write devices.* and load device programs, and runc skips the device
    cgroup rootless too."""
    privileged = os.geteuid() == 0
    v1_devices = privileged if v1_devices is None else v1_devices
    bpf_devices = privileged if bpf_devices is None else bpf_devices
    if host.mode == "none":
        raise SetupError(STEP, "this host has no cgroup filesystem under /sys/fs/cgroup")
    writes = planned(host, spec)
    if decision is None:
        decision = placement(host, spec, container_id)
    if not decision.enforce:
        raise SetupError(STEP, decision.reason, where="linux.cgroupsPath")
    chosen = [h for h in host.hierarchies if h.name in decision.hierarchies]
    writes = [w for w in writes if hierarchy_of(host, w).name in decision.hierarchies]
    path = decision.path
    if state_dir is None:
        state_dir = state_dir_for(os.geteuid())
    lock_path, lock_fd = _lock(state_dir, path)
    dirs = {h.name: h.directory(h.resolve(path)) for h in chosen}
    cg = Cgroup(path, dirs, host, [], lock_path, lock_fd, state_dir)
    try:
        with _Parents(state_dir) as registry:
            for hier in chosen:
                _make(cg, hier, registry)
        wanted: dict[str, str] = {}
        for write in writes:
            if write.version == 2 and write.controller != "cgroup":
                wanted.setdefault(write.controller, write.where)
        if wanted and host.mode == "v2":
            # Not on a hybrid host: enabling a controller in its unified root is a
            # host-wide change; a `unified` key needs the controller enabled there already.
            _enable_controllers(cg, wanted)
        for write in writes:
            _apply(cg, write)
        policy = device_policy(spec.device_rules())
        devices = host.v1("devices")
        if v1_devices and devices is not None and devices.name in dirs:
            _apply_v1_devices(cg.dirs[devices.name], policy)
        if bpf_devices and host.unified is not None and host.unified.name in dirs:
            _attach_device_program(cg.dirs[host.unified.name], policy)
    except BaseException:
        cg.remove()
        raise
    return cg


def _check_controller(host: Host, write: mapping.Write) -> None:
    if write.version == 2 and host.unified is None:
        raise SetupError(STEP, f"needs cgroup v2, and this host has only v1 hierarchies "
                         f"({', '.join(host.v1_controllers)})", where=write.where)
    if write.version == 1 and host.v1(write.controller) is None:
        raise SetupError(STEP, f"the {write.controller} controller is not mounted on this host "
                         f"(cgroup v1 controllers: {', '.join(host.v1_controllers)})",
                         where=write.where)


def _make(cg: Cgroup, hier: Hierarchy, registry: str) -> None:
    directory = cg.dirs[hier.name]
    try:
        made = cgroupfs.make(directory, hier.mount_point)
    except OSError as exc:
        raise SetupError.from_os(STEP, f"mkdir {directory}", exc) from None
    for parent in made:
        if parent != directory:
            os.close(os.open(_marker(registry, parent), os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC,
                             0o600))
    if directory in made:
        cg.created.append(directory)
    _record(cg)
    if "cpuset" in hier.controllers and made:
        # A new v1 cpuset starts with no cpus and no memory nodes, and no process can
        # join it then (ENOSPC): copy each new level's from its parent, as runc does.
        for new in made:
            for name in ("cpuset.cpus", "cpuset.mems"):
                try:
                    if not cgroupfs.read(new, name).strip():
                        cgroupfs.write(new, name, cgroupfs.read(os.path.dirname(new), name))
                except OSError as exc:
                    raise SetupError.from_os(STEP, f"write {new}/{name}", exc) from None


def _enable_controllers(cg: Cgroup, wanted: dict[str, str]) -> None:
    """v2: a controller's files appear in a cgroup once its parent lists it in
    cgroup.subtree_control; enable it from the hierarchy's root down, as runc does.
    ``wanted``: controller -> the JSON path of the first field that needs it."""
    unified = cg.host.unified
    assert unified is not None
    leaf = cg.dirs[unified.name]
    chain = []
    directory = os.path.dirname(leaf)
    while True:
        chain.append(directory)
        if directory == unified.mount_point or directory == "/":
            break
        directory = os.path.dirname(directory)
    for directory in reversed(chain):
        available = set(cgroupfs.read(directory, "cgroup.controllers").split())
        enabled = set(cgroupfs.read(directory, "cgroup.subtree_control").split())
        for ctrl in sorted(set(wanted) - enabled):
            if ctrl not in available:
                raise SetupError(STEP, f"the {ctrl} controller is not available in "
                                 f"{directory} (cgroup.controllers: "
                                 f"{' '.join(sorted(available)) or 'none'})",
                                 where=wanted[ctrl])
            try:
                cgroupfs.write(directory, "cgroup.subtree_control", f"+{ctrl}")
            except OSError as exc:
                busy = ("; cgroup v2 lets no cgroup that has processes of its own enable "
                        "controllers for its children: run pyinit from a leaf below the "
                        "delegated cgroup, or enable the controller there beforehand"
                        if exc.errno == errno.EBUSY else "")
                raise SetupError(STEP, f"enable {ctrl} in {directory}: "
                                 f"{os.strerror(exc.errno or 0)}{busy}", err=exc.errno,
                                 where=wanted[ctrl]) from None


def _apply(cg: Cgroup, write: mapping.Write) -> None:
    directory = cg.directory("unified") if write.version == 2 else cg.directory(write.controller)
    for name, value in write.choices:
        if cgroupfs.exists(directory, name):
            try:
                cgroupfs.write(directory, name, value)
            except OSError as exc:
                raise SetupError.from_os(STEP, f"write {value!r} to {directory}/{name}", exc,
                                         where=write.where) from None
            return
    names = " or ".join(name for name, _ in write.choices)
    if write.version == 2 and write.controller != "cgroup":
        reason = (f"{directory} has no {names}: is the {write.controller} controller enabled "
                  "in the unified hierarchy?")
    else:
        reason = f"{directory} has no {names}: this kernel does not offer it"
    raise SetupError(STEP, reason, where=write.where)


def _apply_v1_devices(directory: str, policy: DevicePolicy) -> None:
    for name, line in policy.v1_writes():
        try:
            cgroupfs.write(directory, name, line)
        except OSError as exc:
            raise SetupError.from_os(STEP, f"write {line!r} to {directory}/{name}", exc,
                                     where="linux.resources.devices") from None


def _attach_device_program(directory: str, policy: DevicePolicy) -> None:
    code = devicefilter.assemble(policy)
    try:
        prog = bpf.load_device_program(code)
    except OSError as exc:
        raise SetupError.from_os(STEP, "load the device eBPF program", exc,
                                 where="linux.resources.devices") from None
    try:
        cgroup_fd = bpf.open_cgroup(directory)
        try:
            bpf.attach_device_program(cgroup_fd, prog)
        finally:
            os.close(cgroup_fd)
    except OSError as exc:
        raise SetupError.from_os(STEP, f"attach the device eBPF program to {directory}", exc,
                                 where="linux.resources.devices") from None
    finally:
        os.close(prog)  # the cgroup holds its own reference


# ------------------------------------------------------------------------ OOM
@record
class OomEvidence:
    cgroup: str  # the memory cgroup's directory
    kills: int  # processes the OOM killer killed in it
    limit: int | None  # bytes; None = no limit
    peak: int | None  # bytes

    def log_fields(self) -> dict[str, object]:
        return {"cgroup": self.cgroup, "kills": self.kills, "limit": self.limit,
                "peak": self.peak}


def _counter(text: str, key: str) -> int:
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return 0


def oom_evidence(cg: Cgroup) -> OomEvidence | None:
    """Evidence that the OOM killer fired in the container's memory cgroup, or None.

    v1: ``oom_kill`` in memory.oom_control, the limit in memory.limit_in_bytes (the
    kernel's "unlimited" is a page-rounded INT64_MAX), the peak in
    memory.max_usage_in_bytes. v2: ``oom_kill`` in memory.events, memory.max and
    memory.peak."""
    host = cg.host
    memory = host.v1("memory")
    if memory is not None:
        if memory.name not in cg.dirs:  # rootless, not delegated there: no evidence
            return None
        directory = cg.dirs[memory.name]
        kills = _counter(cgroupfs.read(directory, "memory.oom_control"), "oom_kill")
        raw_limit = int(cgroupfs.read(directory, "memory.limit_in_bytes"))
        limit = None if raw_limit >= (1 << 62) else raw_limit
        peak: int | None = int(cgroupfs.read(directory, "memory.max_usage_in_bytes"))
    elif host.unified is not None and host.mode == "v2" and host.unified.name in cg.dirs:
        directory = cg.dirs[host.unified.name]
        if not cgroupfs.exists(directory, "memory.events"):
            return None
        kills = _counter(cgroupfs.read(directory, "memory.events"), "oom_kill")
        text = cgroupfs.read(directory, "memory.max").strip()
        limit = None if text == "max" else int(text)
        peak = int(cgroupfs.read(directory, "memory.peak")) \
            if cgroupfs.exists(directory, "memory.peak") else None
    else:
        return None
    if kills == 0:
        return None
    return OomEvidence(directory, kills, limit, peak)


# ---------------------------------------------------------------------- sweep
@record
class SweepResult:
    removed: tuple[str, ...]
    kept: tuple[tuple[str, str], ...]  # (directory, why)


def sweep(state_dir: str | None = None) -> SweepResult:
    """Remove the cgroups of containers whose pyinit died without cleaning up.

    Each live container holds an flock on its lock file; a lock nobody holds
    belongs to a dead owner. Its cgroups are removed when no process is left in
    them; a cgroup with processes (an orphaned container still running) is kept
    and reported, never killed."""
    if state_dir is None:
        state_dir = state_dir_for(os.geteuid())
    removed: list[str] = []
    kept: list[tuple[str, str]] = []
    try:
        names = sorted(n for n in os.listdir(state_dir) if n.endswith(".lock"))
    except FileNotFoundError:
        return SweepResult((), ())
    for name in names:
        lock_path = os.path.join(state_dir, name)
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its owner is alive
            raw = os.pread(fd, 1 << 20, 0)
            if raw:  # a dead run's record: rare enough to import json for it
                import json

                created = json.loads(raw)["created"]
            else:
                created = []
            busy = [d for d in created if cgroupfs.procs(d)]
            if busy:
                kept += [(d, "processes still run in it") for d in busy]
                continue
            for directory in created:
                if not os.path.isdir(directory):
                    continue
                try:
                    cgroupfs.remove(directory, kill=False, attempts=1)
                    removed.append(directory)
                except OSError as exc:
                    kept.append((directory, exc.strerror or str(exc)))
            removed += _remove_parents(state_dir, created)
            if not any(os.path.isdir(d) for d in created):
                os.unlink(lock_path)
        finally:
            os.close(fd)
    return SweepResult(tuple(removed), tuple(kept))
