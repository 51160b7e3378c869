"""config -> the ordered list of setup steps. Pure: no system calls.

Every decision is made here, so ``pyinit check`` shows (and refuses) exactly
what ``pyinit run`` will do: which mounts may land in /proc and /sys, the
sysfs fallback, nodev on binds, devices made or bound, the sandbox's extra
symlinks and the ambient capabilities the kernel will grant. The executor
(:mod:`pyinit.rootfs.executor`) only carries the steps out.

The order is runc's (libcontainer's prepareRootfs and finalizeRootfs), made
safe: propagation, the rootfs bind, mounts in config order, /dev, hostname,
pivot, /dev/null, read-only root, read-only and masked paths.

Each kind of step is its own frozen record (pyinit.record); ``kind`` names the step in
the log (``mount.started``, ``mount.done``, ...), ``summary`` is the line
``pyinit check`` prints.
"""

from __future__ import annotations

import posixpath

from pyinit.errors import SetupError
from pyinit.linux import flags
from pyinit.linux.caps import CAPS
from pyinit.linux.host import Hierarchy, HostFacts
from pyinit.oci.command import Command
from pyinit.oci.config import Config, Device, FileOp, Mount, Process, RunOptions
from pyinit.oci.refusals import mounted_nodev
from pyinit.record import field, record, replace

TYPE_CHECKING = False  # typing costs 6 ms at start-up; mypy reads the name
if TYPE_CHECKING:
    from typing import Any, ClassVar

# The devices every container gets (config-linux.md "Default Devices"):
# name -> (major, minor). /dev/ptmx and /dev/console are handled separately.
DEFAULT_DEVICES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8),
                   "urandom": (1, 9), "tty": (5, 0)}
DEV_SYMLINKS = {"/dev/fd": "/proc/self/fd", "/dev/stdin": "/proc/self/fd/0",
                "/dev/stdout": "/proc/self/fd/1", "/dev/stderr": "/proc/self/fd/2"}
# runc's allowlist for binds under /proc (what lxcfs provides).
PROC_ALLOWLIST = frozenset({
    "/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps",
    "/proc/uptime", "/proc/loadavg", "/proc/slabinfo", "/proc/sys/kernel/ns_last_pid",
    "/proc/sys/fs/binfmt_misc", "/proc/sys/crypto/fips_enabled",
})
CGROUP_TYPES = ("cgroup", "cgroup2")
MASK_TMPFS_DATA = ("size=0", "nr_inodes=1")


def normal(path: str) -> str:
    """``path`` with ``.``, ``..`` and repeated slashes folded, lexically."""
    return posixpath.normpath("/" + path.lstrip("/")).replace("//", "/")


def _mount_fields(m: Mount) -> dict[str, Any]:
    return {"where": m.where, "destination": m.destination, "source": m.source,
            "fstype": m.type, "flags": flags.names(m.parsed.flags),
            "data": ",".join(m.parsed.data)}


def _mount_summary(m: Mount) -> str:
    parts = [f"{m.type} {m.source or '-'} on {m.destination}"]
    if m.parsed.flags:
        parts.append(flags.names(m.parsed.flags))
    if m.parsed.data:
        parts.append(",".join(m.parsed.data))
    return " ".join(parts)


# ----- the steps ---------------------------------------------------------------
class OnPath:
    """A step on one path in the root (its ``path``): that path is the ``destination``
    of its log events and of its errors."""

    if TYPE_CHECKING:
        @property
        def path(self) -> str: ...

    def fields(self) -> dict[str, Any]:
        return {"destination": self.path}


@record
class Propagation:
    """/ (and below, with MS_REC) made private, slave, shared or unbindable."""

    kind: ClassVar[str] = "propagation"
    flags: int
    why: str

    @property
    def summary(self) -> str:
        return f"/ {flags.names(self.flags)} ({self.why})"

    def fields(self) -> dict[str, Any]:
        return {}


@record
class Rootfs(OnPath):
    """The root: a detached recursive bind of root.path (or a fresh tmpfs), nodev.

    ``source`` (pyinit sandbox --bind SRC /): a recursive bind of SRC instead,
    with ``attr`` (MOUNT_ATTR_*) on every mount of it.

    ``readonly`` (root.readonly): every mount under the root's top mount is
    made read-only on the detached tree, before anything is attached; the top
    stays as it was until RootReadonly, so destinations can still be created.
    ``private``: the tree is made recursively private once attached, so no
    mount the host adds under root.path later arrives (with the host's
    flags, writable) in a read-only root.
    """

    kind: ClassVar[str] = "rootfs"
    path: str
    tmpfs: bool = False
    source: str = ""
    attr: int = flags.MOUNT_ATTR_NODEV
    readonly: bool = False
    private: bool = False

    @property
    def summary(self) -> str:
        if self.source:
            return f"bind {self.source} on {self.path}, {flags.attr_names(self.attr)}"
        if self.tmpfs:
            return f"a fresh tmpfs on {self.path}"
        extra = ", its submounts read-only" if self.readonly else ""
        extra += ", recursively private" if self.private else ""
        return f"bind {self.path} onto itself, nodev{extra}"


@record
class MountStep:
    """What every mount step shares: the config entry and where it may land."""

    kind: ClassVar[str] = "mount"
    mount: Mount
    # "proc" or "sys": the destination may lie on that filesystem (the
    # lxcfs binds under /proc, cgroup under /sys/fs/cgroup); otherwise the
    # executor refuses a destination that resolves into /proc or /sys.
    inside: str | None

    @property
    def summary(self) -> str:
        return _mount_summary(self.mount)

    def fields(self) -> dict[str, Any]:
        return _mount_fields(self.mount)


@record
class BindMount(MountStep):
    """open_tree(CLONE) of the source, attributes set detached, move_mount onto the fd."""

    source: str
    recursive: bool
    attr_set: int  # MOUNT_ATTR_* on the top mount
    attr_clr: int
    cleared: int  # MOUNT_ATTR_* the config explicitly clears (for the locked-flag error)
    rec_set: int  # MOUNT_ATTR_* on the whole tree
    rec_clr: int
    propagation: tuple[int, ...] = ()
    sysfs_fallback: bool = False  # the host's /sys, because sysfs is refused here
    proc_fallback: str | None = None  # the caller's /proc, read-only: why a fresh one is not

    @property
    def summary(self) -> str:
        if self.proc_fallback:
            return f"bind the caller's /proc on {self.mount.destination} read-only (proc " \
                "fallback)"
        if self.sysfs_fallback:
            return (f"bind the host's /sys on {self.mount.destination} read-only, the mounts "
                    "under it covered (sysfs fallback)")
        return _mount_summary(self.mount)


@record
class NewMount(MountStep):
    """fsopen/fsconfig/fsmount: a new filesystem, detached, then move_mount onto the fd."""

    fstype: str
    source: str
    attr: int  # MOUNT_ATTR_* for fsmount
    sb_flags: tuple[str, ...]  # superblock flags for fsconfig (sync, dirsync, ...)
    data: tuple[str, ...]
    propagation: tuple[int, ...] = ()
    rec_set: int = 0
    rec_clr: int = 0
    copy_up: bool = False  # tmpcopyup: filled from what it covers before it is attached


@record
class CgroupMount(MountStep):
    """The container's cgroup tree: cgroup2, or a tmpfs with the v1 hierarchies."""

    unified: bool
    hierarchies: tuple[Hierarchy, ...]
    own_namespace: bool
    attr: int
    readonly: bool


@record
class RunCommand:
    """An io.pyinit.premount or postmount command (a postmount one starts in the mount)."""

    kind: ClassVar[str] = "command"
    command: Command
    mount: Mount
    phase: str  # "before" or "after"

    @property
    def summary(self) -> str:
        return f"{self.phase} {self.mount.destination}: {' '.join(self.command.argv)}"

    def fields(self) -> dict[str, Any]:
        return _mount_fields(self.mount)


@record
class MakeDevice:
    kind: ClassVar[str] = "device"
    device: Device
    where: str | None = None  # linux.devices[N]; None for the default devices

    @property
    def summary(self) -> str:
        d = self.device
        return f"{d.path} {d.type} {d.major}:{d.minor}"

    def fields(self) -> dict[str, Any]:
        return {"destination": self.device.path}


@record
class BindDevice(MakeDevice):
    """In a user namespace mknod is refused: the host's node is bound instead."""

    @property
    def summary(self) -> str:
        d = self.device
        return f"{d.path} {d.type} {d.major}:{d.minor} (the host's node, bound)"


@record
class Ptmx:
    kind: ClassVar[str] = "ptmx"
    summary: ClassVar[str] = "/dev/ptmx -> pts/ptmx"

    def fields(self) -> dict[str, Any]:
        return {"destination": "/dev/ptmx"}


@record
class Symlink(OnPath):
    kind: ClassVar[str] = "symlink"
    path: str
    target: str

    @property
    def summary(self) -> str:
        return f"{self.path} -> {self.target}"


@record
class MakeDir(OnPath):
    """sandbox --dir: a directory (and its parents) in the root, with its mode."""

    kind: ClassVar[str] = "dir"
    path: str
    mode: int

    @property
    def summary(self) -> str:
        return f"directory {self.path} (mode {self.mode:o})"


@record
class WriteFile(OnPath):
    """sandbox --file: a new file with the bytes read from the caller's fd."""

    kind: ClassVar[str] = "file"
    path: str
    data: bytes
    mode: int

    @property
    def summary(self) -> str:
        return f"file {self.path} ({len(self.data)} bytes, mode {self.mode:o})"


@record
class BindData(WriteFile):
    """sandbox --bind-data/--ro-bind-data: the bytes in a file of a detached tmpfs, bound."""

    kind: ClassVar[str] = "bind-data"
    readonly: bool = False

    @property
    def summary(self) -> str:
        ro = " read-only" if self.readonly else ""
        return f"bind {len(self.data)} bytes on {self.path}{ro} (mode {self.mode:o})"


@record
class Chmod(OnPath):
    kind: ClassVar[str] = "chmod"
    path: str
    mode: int

    @property
    def summary(self) -> str:
        return f"chmod {self.mode:o} {self.path}"


@record
class RemountRo(OnPath):
    """sandbox --remount-ro: the mount at the path read-only (not its submounts)."""

    kind: ClassVar[str] = "remount-ro"
    path: str

    @property
    def summary(self) -> str:
        return f"{self.path} read-only"


@record
class Hostname:
    kind: ClassVar[str] = "hostname"
    name: str

    @property
    def summary(self) -> str:
        return self.name

    def fields(self) -> dict[str, Any]:
        return {}


@record
class Domainname(Hostname):
    kind: ClassVar[str] = "domainname"


@record
class MakeCwd(OnPath):
    kind: ClassVar[str] = "cwd"
    path: str

    @property
    def summary(self) -> str:
        return f"create {self.path} inside the root"


@record
class Hook:
    kind: ClassVar[str] = "hook"
    command: Command
    hook_kind: str  # createContainer (startContainer: runtime/starthooks.py)

    @property
    def summary(self) -> str:
        return f"{self.hook_kind}: {' '.join(self.command.argv)}"

    def fields(self) -> dict[str, Any]:
        return {}


@record
class Pivot:
    kind: ClassVar[str] = "pivot"
    summary: ClassVar[str] = "pivot_root into the rootfs, detach the old root"

    def fields(self) -> dict[str, Any]:
        return {}


@record
class NoPivot(OnPath):
    kind: ClassVar[str] = "nopivot"
    path: str
    summary: ClassVar[str] = ("hide the host's /proc and /sys, then move the rootfs onto / "
                              "and chroot")


@record
class DevNull:
    kind: ClassVar[str] = "devnull"
    summary: ClassVar[str] = "stdio on the host's /dev/null -> the container's (char 1:3)"

    def fields(self) -> dict[str, Any]:
        return {}


@record
class Sysctl(OnPath):
    kind: ClassVar[str] = "sysctl"
    key: str
    value: str

    @property
    def summary(self) -> str:
        return f"{self.key} = {self.value}"

    @property
    def path(self) -> str:
        return "/proc/sys/" + self.key.replace(".", "/")


@record
class RootReadonly:
    kind: ClassVar[str] = "readonly"
    summary: ClassVar[str] = "/ read-only (on the root's mount fd, keeping locked flags)"

    def fields(self) -> dict[str, Any]:
        return {"destination": "/"}


@record
class ReadonlyPath(OnPath):
    kind: ClassVar[str] = "readonly"
    path: str

    @property
    def summary(self) -> str:
        return f"{self.path} read-only"


@record
class MaskPath(OnPath):
    kind: ClassVar[str] = "mask"
    path: str
    # A file is covered by an empty read-only file of a private tmpfs instead of
    # the container's /dev/null (the sandbox: its layout may have no /dev).
    empty_file: bool = False
    where: str = ""  # linux.maskedPaths[i]; none for the sandbox's own masks

    @property
    def summary(self) -> str:
        return f"mask {self.path}"


Step = (Propagation | Rootfs | BindMount | NewMount | CgroupMount | RunCommand
        | MakeDevice | BindDevice | Ptmx | Symlink | MakeDir | WriteFile | BindData | Chmod
        | RemountRo | Hostname | Domainname | MakeCwd | Hook | Pivot | NoPivot | DevNull
        | Sysctl | RootReadonly | ReadonlyPath | MaskPath)
STEP_KINDS = ("propagation", "rootfs", "mount", "command", "hook", "device", "ptmx",
              "symlink", "dir", "file", "bind-data", "chmod", "remount-ro", "hostname",
              "domainname", "cwd", "pivot", "nopivot", "devnull", "sysctl", "readonly", "mask")


@record
class Plan:
    steps: tuple[Step, ...]
    process: Process  # process.capabilities as the kernel will grant them
    notes: tuple[tuple[str, dict[str, Any]], ...] = field(default=())  # warnings to log
    run: RunOptions = field(default_factory=RunOptions)  # how it runs (sandbox: seccomp, ...)


# ----- decisions ---------------------------------------------------------------
def _propagation(cfg: Config) -> int:
    """How / is made before any mount: never shared, whatever the config says.

    After unshare(CLONE_NEWNS) a shared mount stays in the host's peer group,
    so anything mounted under it would appear on the host. Only private
    (when asked) or slave (the default, as runc: host mounts still arrive).
    """
    name = (cfg.rootfs_propagation or "slave").lstrip("r")
    return flags.MS_REC | (flags.MS_PRIVATE if name == "private" else flags.MS_SLAVE)


def _final_propagation(cfg: Config) -> int | None:
    """rootfsPropagation applied to / after the pivot, shared included.

    As written: ``shared`` and ``unbindable`` touch / itself, the ``r``
    forms the whole tree (a recursively unbindable /proc could no longer be
    bound for readonlyPaths).
    """
    if cfg.rootfs_propagation is None:
        return None
    return flags.PROPAGATION[cfg.rootfs_propagation]


def _root_private(cfg: Config) -> bool:
    """A read-only root receives no propagation, unless rootfsPropagation asks for it.

    Recursive read-only does not hold for mounts that propagate in later.
    """
    name = (cfg.rootfs_propagation or "").lstrip("r")
    return cfg.root_readonly and name not in ("slave", "shared")


def refuse(m: Mount, reason: str, op: str = "mount-refused") -> SetupError:
    """The one refusal of a mount's destination, at plan time or on the resolved fd."""
    return SetupError("mount", reason, op=op, where=m.where, destination=m.destination)


def _inside(m: Mount) -> str | None:
    """Where a mount may land inside /proc or /sys (runc's checkProcMount, and /sys's).

    Lexical: the executor checks the resolved destination again, on its fd.
    """
    dest = normal(m.destination)
    bind = m.parsed.is_bind
    if dest == "/proc":
        if bind or m.type != "proc":
            raise refuse(m, "only a fresh proc may be mounted on /proc", "proc-only")
        return "proc"
    if dest.startswith("/proc/"):
        if dest not in PROC_ALLOWLIST:
            raise refuse(m, "mounts under /proc are refused (only runc's lxcfs allowlist "
                         "is accepted)", "under-proc")
        return "proc"
    if dest == "/sys":
        if (bind and normal(m.source) != "/sys") or (not bind and m.type != "sysfs"):
            raise refuse(m, "only a fresh sysfs, or a bind of the host's /sys, may be "
                         "mounted on /sys")
        return "sys"
    if dest.startswith("/sys/"):
        if m.type not in CGROUP_TYPES or not (dest + "/").startswith("/sys/fs/cgroup/"):
            raise refuse(m, "mounts under /sys are refused (only cgroup on /sys/fs/cgroup "
                         "is accepted)")
        return "sys"
    return None


def _bind(m: Mount, inside: str | None) -> BindMount:
    opts = m.parsed
    recursive = bool(opts.flags & flags.MS_REC)
    attr_set, attr_clr = flags.mount_attr(opts.flags & ~(flags.MS_BIND | flags.MS_REC
                                                         | flags.MS_REMOUNT))
    cleared = flags.mount_attr_cleared(opts.cleared)
    rec_set, rec_clr = opts.rec_set, opts.rec_clr
    # ro on a recursive bind holds for the whole tree (as crun and bubblewrap's
    # --ro-bind; runc makes only the top read-only): a submount of the volume
    # must not stay writable when the config asked for ro. "rrw" opts out.
    if recursive and opts.flags & flags.MS_RDONLY and not rec_clr & flags.MOUNT_ATTR_RDONLY:
        rec_set |= flags.MOUNT_ATTR_RDONLY
    # Every bind is nodev unless the config asks for dev: a device node on a
    # volume is a way to the host's disks.
    if not (cleared & flags.MOUNT_ATTR_NODEV):
        attr_set |= flags.MOUNT_ATTR_NODEV
        if recursive and not (rec_clr & flags.MOUNT_ATTR_NODEV):
            rec_set |= flags.MOUNT_ATTR_NODEV
    # A read-only bind receives no propagation unless the config asks for it:
    # what the host mounts under the source later would arrive with the
    # host's flags, writable (Kubernetes' recursiveReadOnly requires
    # mountPropagation None for this reason). An explicit choice wins.
    propagation = opts.propagation
    if opts.flags & flags.MS_RDONLY and not propagation:
        propagation = ((flags.MS_REC if recursive else 0) | flags.MS_PRIVATE,)
    return BindMount(m, inside, m.source, recursive, attr_set, attr_clr | cleared, cleared,
                     rec_set, rec_clr, propagation)


def _sysfs_fallback(m: Mount) -> BindMount:
    return BindMount(m, "sys", "/sys", True, flags.MOUNT_ATTR_LOCKED_DOWN, 0, 0,
                     flags.MOUNT_ATTR_LOCKED_DOWN, 0, (), sysfs_fallback=True)


def _nodev(m: Mount, attr: int) -> int:
    """nodev where refusals.py says device deny rules rely on it, unless the mount asks for dev."""
    if mounted_nodev(m) and not m.parsed.cleared & flags.MS_NODEV:
        return attr | flags.MOUNT_ATTR_NODEV
    return attr


def _new(m: Mount, inside: str | None) -> NewMount:
    opts = m.parsed
    attr = _nodev(m, flags.mount_attr(opts.flags)[0])
    sb = tuple(name for bit, name in flags.SB_FLAG_NAMES.items() if opts.flags & bit)
    return NewMount(m, inside, m.type, m.source or m.type, attr, sb, opts.data,
                    opts.propagation, opts.rec_set, opts.rec_clr, copy_up=opts.tmpcopyup)


def _proc_fallback(m: Mount, why: str) -> BindMount:
    return BindMount(m, "proc", "/proc", True, flags.MOUNT_ATTR_LOCKED_DOWN, 0, 0,
                     flags.MOUNT_ATTR_LOCKED_DOWN, 0, (), proc_fallback=why)


def _mount_steps(cfg: Config, run: RunOptions, host: HostFacts, m: Mount) -> Step:
    if m.type == "proc" and run.proc_fallback and normal(m.destination) == "/proc":
        return _proc_fallback(m, run.proc_fallback)
    inside = _inside(m)
    if m.type in CGROUP_TYPES and not m.parsed.is_bind:
        attr = _nodev(m, flags.mount_attr(m.parsed.flags & ~flags.MS_RDONLY)[0])
        return CgroupMount(m, inside, host.cgroup_unified, host.cgroup_hierarchies,
                           cfg.owns_namespace("cgroup"), attr,
                           bool(m.parsed.flags & flags.MS_RDONLY))
    if m.parsed.is_bind:
        return _bind(m, inside)
    if m.type == "sysfs" and sysfs_refused(cfg):
        if run.sysfs_fallback:
            return _sysfs_fallback(m)
        how = "one joined by path" if cfg.has_namespace("network") else "the host's"
        raise refuse(m, "sysfs in a new user namespace needs a new network namespace, not "
                     f"{how}: the kernel mounts sysfs only for a network namespace that user "
                     "namespace owns", op="sysfs-without-netns")
    return _new(m, inside)


def sysfs_refused(cfg: Config) -> bool:
    """Will the kernel refuse a new sysfs (EPERM)? It mounts one only for a network
    namespace the mounting user namespace owns: not for the host's (with a user
    namespace, new or joined), nor for one joined by path next to a new user namespace
    (it existed first). A user namespace and a network namespace both joined by path may
    belong together: left to the kernel. The one decision for run, check and diagnose,
    and for --sysfs-fallback."""
    if not cfg.has_namespace("user") or cfg.owns_namespace("network"):
        return False
    return cfg.owns_namespace("user") or not cfg.has_namespace("network")


def _devices(cfg: Config, run: RunOptions, host: HostFacts) -> list[Step]:
    make = BindDevice if cfg.has_namespace("user") or run.bind_devices else MakeDevice
    steps: list[Step] = []
    for name, (major, minor) in DEFAULT_DEVICES.items():
        steps.append(make(Device("c", f"/dev/{name}", major, minor, 0o666, 0, 0)))
    steps += [make(dev, f"linux.devices[{i}]") for i, dev in enumerate(cfg.devices)]
    steps.append(Ptmx())
    steps += [Symlink(path, target) for path, target in DEV_SYMLINKS.items()]
    if host.has_kcore:
        steps.append(Symlink("/dev/core", "/proc/kcore"))
    return steps


def _process(cfg: Config) -> tuple[Process, list[tuple[str, dict[str, Any]]]]:
    """Ambient capabilities need the same ones in permitted and inheritable.

    The spec says to warn about the others, not to fail.
    """
    proc = cfg.process
    if not proc.capabilities:
        return proc, []
    ok = set(proc.capabilities.get("permitted", [])) & set(
        proc.capabilities.get("inheritable", []))
    wanted = proc.capabilities.get("ambient", [])
    skipped = [c for c in wanted if c not in ok]
    if not skipped:
        return proc, []
    names = {v: k for k, v in CAPS.items()}
    note = ("capabilities.ambient_skipped",
            {"capabilities": [names[c] for c in skipped],
             "detail": "an ambient capability must also be permitted and inheritable; "
                       "the spec says to warn, not fail"})
    capabilities = {**proc.capabilities, "ambient": [c for c in wanted if c in ok]}
    return replace(proc, capabilities=capabilities), [note]


def _file_step(op: FileOp) -> Step:
    """A sandbox FileOp as its step (its mode: --perms, or bubblewrap's default)."""
    path = normal(op.path)
    if op.kind == "symlink":
        return Symlink(path, op.target)
    if op.kind == "dir":
        return MakeDir(path, 0o755 if op.mode is None else op.mode)
    if op.kind == "file":
        return WriteFile(path, op.data, 0o666 if op.mode is None else op.mode)
    if op.kind in ("bind-data", "ro-bind-data"):
        return BindData(path, op.data, 0o600 if op.mode is None else op.mode,
                        readonly=op.kind == "ro-bind-data")
    if op.kind == "chmod":
        return Chmod(path, op.mode or 0)
    if op.kind == "remount-ro":
        return RemountRo(path)
    raise ValueError(f"unknown sandbox operation {op.kind!r}")


def build(cfg: Config, run: RunOptions | None = None, host: HostFacts | None = None) -> Plan:
    """The plan for ``cfg``; raises SetupError for a mount pyinit refuses."""
    run = run or RunOptions()
    host = host or HostFacts()
    steps: list[Step] = [
        Propagation(_propagation(cfg), "no mount reaches the host"),
        Rootfs(cfg.root_path, tmpfs=run.root_tmpfs,
               readonly=cfg.root_readonly and not run.root_tmpfs,
               private=_root_private(cfg) and not run.root_tmpfs)
        if run.root_bind is None else
        Rootfs(cfg.root_path, source=run.root_bind[0], attr=run.root_bind[1]),
    ]
    for item in run.order or range(len(cfg.mounts)):
        if isinstance(item, FileOp):
            steps += _devices(cfg, run, host) if item.kind == "devices" else [_file_step(item)]
            continue
        m = cfg.mounts[item]
        steps += [RunCommand(cmd, m, "before") for cmd in m.before]
        steps.append(_mount_steps(cfg, run, host, m))
        steps += [RunCommand(cmd, m, "after") for cmd in m.after]
    if run.dev_setup and not any(m.parsed.is_bind and normal(m.destination) == "/dev"
                                 for m in cfg.mounts):
        steps += _devices(cfg, run, host)
    if cfg.hostname is not None:
        steps.append(Hostname(cfg.hostname))
    if cfg.domainname is not None:
        steps.append(Domainname(cfg.domainname))
    if not run.cwd_choices:  # the sandbox's are tried as they are, never created
        steps.append(MakeCwd(cfg.process.cwd))
    steps += [Hook(cmd, "createContainer") for cmd in cfg.hooks.get("createContainer", ())]
    steps.append(NoPivot(cfg.root_path) if run.no_pivot else Pivot())
    final = _final_propagation(cfg)
    if final is not None:
        steps.append(Propagation(final, "rootfsPropagation"))
    steps.append(DevNull())
    # Before readonlyPaths makes /proc/sys read-only.
    steps += [Sysctl(key, value) for key, value in cfg.sysctl.items()]
    if cfg.root_readonly:
        steps.append(RootReadonly())
    steps += [ReadonlyPath(path) for path in cfg.readonly_paths]
    # The sandbox (a private root tmpfs) masks files with an empty file: its layout
    # may have no /dev/null. pyinit run needs its /dev/null, or fails closed.
    steps += [MaskPath(path, empty_file=run.root_tmpfs,
                       where="" if run.root_tmpfs else f"linux.maskedPaths[{i}]")
              for i, path in enumerate(cfg.masked_paths)]
    # startContainer hooks are no step: the workload's process runs them just
    # before its exec, after PID 1's lock-down (runtime/starthooks.py).
    process, notes = _process(cfg)
    return Plan(tuple(steps), process, tuple(notes), run)
