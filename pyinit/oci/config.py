"""The OCI runtime-spec ``config.json``, parsed and validated.

Every problem is reported with its JSON path and reason
(``mounts[3].destination: must be an absolute path``); :func:`load` collects
all of them, so ``pyinit check`` can list everything at once. Fields pyinit
does not know are ignored, as the spec asks; fields it knows but cannot honour
yet are refused, never silently dropped.
"""

from __future__ import annotations

import os
import resource

from pyinit.linux import flags
from pyinit.linux.caps import CAPS
from pyinit.oci import jsonio, refusals, resources
from pyinit.oci.command import Command, parse_command
from pyinit.oci.seccomp import Seccomp, parse_seccomp
from pyinit.record import field, record, replace

TYPE_CHECKING = False  # typing costs 6 ms at start-up; mypy reads the name
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from typing import Any

NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")
SUPPORTED_NAMESPACES = ("pid", "network", "mount", "ipc", "uts", "cgroup", "user")
PROPAGATIONS = ("shared", "slave", "private", "unbindable")
DEVICE_TYPES = ("c", "b", "u", "p")
# pyinit's extension of a mount entry (docs/config.md): commands run before
# and after that mount. Namespaced keys, so other runtimes ignore them.
PREMOUNT = "io.pyinit.premount"
POSTMOUNT = "io.pyinit.postmount"
HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
              "poststop")


FILE = "config.json"  # the JSON path of a problem with the whole file


class ConfigError(Exception):
    """One or more problems, each ``(json_path, reason)``."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__(self.first_line())

    def first_line(self) -> str:
        path, reason = self.problems[0]
        more = f" (and {len(self.problems) - 1} more; see pyinit check)" \
            if len(self.problems) > 1 else ""
        return f"{path}: {reason}{more}"

    def line(self) -> str:
        """The first problem as ``pyinit run`` says it: the file, the JSON path in it
        (none for the file as a whole: unreadable, not JSON), the reason."""
        first = self.first_line()
        return first if self.problems[0][0] == FILE else f"{FILE}: {first}"


@record
class User:
    uid: int = 0
    gid: int = 0
    umask: int | None = None
    additional_gids: list[int] = field(default_factory=list)


@record
class Process:
    args: list[str]
    cwd: str
    env: list[str] = field(default_factory=list)
    user: User = field(default_factory=User)
    # (resource, name, soft, hard)
    rlimits: list[tuple[int, str, int, int]] = field(default_factory=list)
    capabilities: dict[str, list[int]] | None = None  # set name -> capability numbers
    no_new_privileges: bool = False
    oom_score_adj: int | None = None
    terminal: bool = False  # a pty from the container's devpts (docs/config.md)
    console_size: tuple[int, int] | None = None  # (height, width) of that pty


@record
class Mount:
    index: int
    destination: str
    type: str
    source: str
    options: tuple[str, ...]
    parsed: flags.MountOptions
    before: tuple[Command, ...] = ()
    after: tuple[Command, ...] = ()

    @property
    def where(self) -> str:
        return f"mounts[{self.index}]"


@record
class Namespace:
    type: str
    path: str | None = None


@record
class IDMap:
    container_id: int
    host_id: int
    size: int

    def line(self) -> str:
        return f"{self.container_id} {self.host_id} {self.size}\n"


@record
class Device:
    type: str
    path: str
    major: int
    minor: int
    file_mode: int
    uid: int
    gid: int


@record
class Config:
    """config.json, validated. Immutable: how to run it is :class:`RunOptions`."""

    bundle: str
    root_path: str
    root_readonly: bool
    process: Process
    hostname: str | None = None
    domainname: str | None = None
    mounts: tuple[Mount, ...] = ()
    namespaces: tuple[Namespace, ...] = ()
    devices: tuple[Device, ...] = ()
    masked_paths: tuple[str, ...] = ()
    readonly_paths: tuple[str, ...] = ()
    rootfs_propagation: str | None = None
    sysctl: dict[str, str] = field(default_factory=dict)
    hooks: dict[str, tuple[Command, ...]] = field(default_factory=dict)
    uid_mappings: tuple[IDMap, ...] = ()
    gid_mappings: tuple[IDMap, ...] = ()
    seccomp: Seccomp | None = None  # linux.seccomp (pyinit/oci/seccomp.py)
    # linux.cgroupsPath and linux.resources (docs/cgroups.md); None: no cgroup of its own
    # (pyinit sandbox).
    cgroup: resources.CgroupSpec | None = None

    def has_namespace(self, kind: str) -> bool:
        return any(ns.type == kind for ns in self.namespaces)

    def owns_namespace(self, kind: str) -> bool:
        """A new namespace of ``kind`` is created (not joined by path)."""
        return any(ns.type == kind and ns.path is None for ns in self.namespaces)


@record
class FileOp:
    """A ``pyinit sandbox`` step that is not a mount: made in the root, in its turn.

    ``kind`` is ``dir``, ``file``, ``bind-data``, ``ro-bind-data``, ``symlink``,
    ``chmod``, ``remount-ro`` or ``devices`` (--dev's nodes, ptmx and symlinks);
    ``data`` was read from the caller's fd before anything was set up; ``option``
    is the command-line option, for messages.
    """

    kind: str
    path: str
    option: str
    mode: int | None = None
    data: bytes = b""
    target: str = ""


@record
class RunOptions:
    """How ``pyinit run`` or ``pyinit sandbox`` runs a config: never stored in it."""

    no_pivot: bool = False  # pyinit run --no-pivot: MS_MOVE + chroot
    sysfs_fallback: bool = False  # pyinit run --sysfs-fallback
    root_tmpfs: bool = False  # pyinit sandbox: the root is a fresh tmpfs on root_path
    dev_setup: bool = True  # default devices, ptmx and /dev symlinks (sandbox: only with --dev)
    # The <id> of the default cgroup path /pyinit/<id> (docs/cgroups.md); None: the name.
    cgroup_id: str | None = None
    cgroup_manager: str = "cgroupfs"  # pyinit run --cgroup-manager: or "systemd"
    bind_devices: bool = False  # sandbox: the host's device nodes are bound, as bubblewrap's
    # sandbox --bind SRC / (first): the root is SRC, bound recursively with these MOUNT_ATTR_*
    root_bind: tuple[str, int] | None = None
    # sandbox, default layout only: a fresh proc would be refused here ("too revealing"),
    # so the caller's /proc is bound read-only instead (the reason, for the warning).
    proc_fallback: str | None = None
    # pyinit sandbox: mounts (by index) and FileOps, in the order given; empty: config order.
    order: tuple[int | FileOp, ...] = ()
    die_with_parent: bool = False  # sandbox --die-with-parent: SIGKILL when the caller dies
    # pyinit sandbox: the working directories to try, in order, as the program's user (none
    # is created); the first it enters is its cwd and $PWD, as bubblewrap's. Empty: pyinit
    # run's process.cwd, created in the root if missing.
    cwd_choices: tuple[str, ...] = ()
    seccomp_program: bytes | None = None  # sandbox --seccomp FD: a compiled BPF program
    # sandbox --info-fd/--json-status-fd: called by the parent with PID 1's host PID once
    # its namespaces exist, and with the exit status at the end.
    on_started: Callable[[int], None] | None = None
    on_exit: Callable[[int], None] | None = None


class _Reader:
    """Typed access to the JSON document that records problems with their paths."""

    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []

    def problem(self, path: str, reason: str) -> None:
        self.problems.append((path, reason))

    def get(self, obj: dict[str, Any], key: str, path: str, kind: type | tuple[type, ...],
            default: Any = None, required: bool = False) -> Any:
        where = f"{path}.{key}" if path else key
        if key not in obj or obj[key] is None:
            if required:
                self.problem(where, "is required")
            return default
        value = obj[key]
        if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            self.problem(where, f"must be {_article(names)}, not {type(value).__name__}")
            return default
        return value

    def objects(self, obj: dict[str, Any], key: str,
                path: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """Each object of the array ``obj[key]``, with its JSON path; others are problems."""
        for i, item in enumerate(self.get(obj, key, path, list, [])):
            where = f"{path}.{key}[{i}]" if path else f"{key}[{i}]"
            if isinstance(item, dict):
                yield where, item
            else:
                self.problem(where, "must be an object")

    def strings(self, obj: dict[str, Any], key: str, path: str,
                required: bool = False) -> list[str]:
        values = self.get(obj, key, path, list, [], required)
        out = []
        for i, item in enumerate(values):
            if isinstance(item, str):
                out.append(item)
            else:
                self.problem(f"{path}.{key}[{i}]" if path else f"{key}[{i}]",
                             f"must be a string, not {type(item).__name__}")
        return out


def _article(names: str) -> str:
    return {"dict": "an object", "list": "an array", "str": "a string", "int": "an integer",
            "bool": "true or false"}.get(names, names)


def _absolute(r: _Reader, value: str, where: str) -> None:
    if not value.startswith("/"):
        r.problem(where, f"must be an absolute path, not {value!r}")


def _parse_process(r: _Reader, doc: dict[str, Any]) -> Process:
    proc = r.get(doc, "process", "", dict, {}, required=True)
    args = r.strings(proc, "args", "process", required=bool(proc))
    if proc and not args and isinstance(proc.get("args"), list):
        r.problem("process.args", "must name a program (at least one entry)")
    cwd = r.get(proc, "cwd", "process", str, "/", required=bool(proc))
    _absolute(r, cwd, "process.cwd")
    terminal = r.get(proc, "terminal", "process", bool, False)
    console_size = None
    size_doc = r.get(proc, "consoleSize", "process", dict, None)
    if size_doc is not None:
        height = r.get(size_doc, "height", "process.consoleSize", int, 0, required=True)
        width = r.get(size_doc, "width", "process.consoleSize", int, 0, required=True)
        for key, value in (("height", height), ("width", width)):
            if not 0 <= value <= 65535:
                r.problem(f"process.consoleSize.{key}", f"{value} is not 0 to 65535")
        console_size = (height, width)
    env = r.strings(proc, "env", "process")
    for i, item in enumerate(env):
        if "=" not in item:
            r.problem(f"process.env[{i}]", f"{item!r} is not KEY=VALUE")
    user_doc = r.get(proc, "user", "process", dict, {})
    user = User(
        uid=r.get(user_doc, "uid", "process.user", int, 0),
        gid=r.get(user_doc, "gid", "process.user", int, 0),
        umask=r.get(user_doc, "umask", "process.user", int, None),
        # Ids outside 0..2^32-2 are refused with their paths by refusals.py.
        additional_gids=[g for g in r.get(user_doc, "additionalGids", "process.user", list, [])
                         if isinstance(g, int) and not isinstance(g, bool)],
    )
    rlimits = []
    seen = set()
    for where, limit in r.objects(proc, "rlimits", "process"):
        name = r.get(limit, "type", where, str, "", required=True)
        soft = r.get(limit, "soft", where, int, 0, required=True)
        hard = r.get(limit, "hard", where, int, 0, required=True)
        res = getattr(resource, name, None) if name.startswith("RLIMIT_") else None
        if name and res is None:
            r.problem(f"{where}.type", f"unknown resource limit {name!r}")
        elif name in seen:
            r.problem(f"{where}.type", f"{name} is given twice")
        elif res is not None:
            seen.add(name)
            if soft > hard:
                r.problem(f"{where}.soft", f"{soft} is above the hard limit {hard}")
            rlimits.append((res, name, soft, hard))
    caps = None
    caps_doc = r.get(proc, "capabilities", "process", dict, None)
    if caps_doc is not None:
        caps = {}
        for kind in ("bounding", "effective", "inheritable", "permitted", "ambient"):
            numbers = []
            for i, name in enumerate(r.strings(caps_doc, kind, "process.capabilities")):
                if name.upper() in CAPS:
                    numbers.append(CAPS[name.upper()])
                else:
                    r.problem(f"process.capabilities.{kind}[{i}]", f"unknown capability {name!r}")
            caps[kind] = numbers
    return Process(
        args=args, cwd=cwd, env=env, user=user, rlimits=rlimits, capabilities=caps,
        no_new_privileges=r.get(proc, "noNewPrivileges", "process", bool, False),
        oom_score_adj=r.get(proc, "oomScoreAdj", "process", int, None), terminal=terminal,
        console_size=console_size,
    )


def _parse_mounts(r: _Reader, doc: dict[str, Any], bundle: str) -> tuple[Mount, ...]:
    mounts = []
    for i, (where, item) in enumerate(r.objects(doc, "mounts", "")):
        dest = r.get(item, "destination", where, str, "", required=True)
        if dest:
            _absolute(r, dest, f"{where}.destination")
            if dest.rstrip("/") == "":
                r.problem(f"{where}.destination", "nothing may be mounted on top of /")
        options = r.strings(item, "options", where)
        try:
            parsed = flags.parse_options(options)
        except ValueError as exc:
            bad = next(o for o in options if o in flags.UNSUPPORTED)
            r.problem(f"{where}.options[{options.index(bad)}]", str(exc))
            parsed = flags.MountOptions()
        kind = r.get(item, "type", where, str, "")
        source = r.get(item, "source", where, str, "")
        if not kind and not parsed.is_bind:
            r.problem(f"{where}.type", "is required unless options contain bind or rbind")
        if kind == "bind" and not parsed.is_bind:
            # accepted for compatibility, as youki does
            parsed = replace(parsed, flags=parsed.flags | flags.MS_BIND)
        if parsed.is_bind and not source:
            r.problem(f"{where}.source", "a bind mount needs a source")
        if parsed.tmpcopyup and kind != "tmpfs":
            r.problem(f"{where}.options[{options.index('tmpcopyup')}]",
                      "tmpcopyup only applies to tmpfs mounts")
        for key in ("uidMappings", "gidMappings"):
            if item.get(key):
                r.problem(f"{where}.{key}", "idmapped mounts are not supported by pyinit yet")
        commands = {key: tuple(parse_command(r, entry, at)
                               for at, entry in r.objects(item, key, where))
                    for key in (PREMOUNT, POSTMOUNT)}
        if parsed.is_bind and source and not os.path.isabs(source):
            source = os.path.normpath(os.path.join(bundle, source))
        mounts.append(Mount(i, dest, kind or "bind", source, tuple(options), parsed,
                            commands[PREMOUNT], commands[POSTMOUNT]))
    return tuple(mounts)


def _parse_linux(r: _Reader, doc: dict[str, Any]) -> dict[str, Any]:
    """The Config fields under ``linux``."""
    linux = r.get(doc, "linux", "", dict, {})
    namespaces: list[Namespace] = []
    uid_mappings: list[IDMap] = []
    gid_mappings: list[IDMap] = []
    devices: list[Device] = []
    masked_paths: list[str] = []
    readonly_paths: list[str] = []
    sysctl_values: dict[str, str] = {}
    seen: set[str] = set()
    for where, item in r.objects(linux, "namespaces", "linux"):
        kind = r.get(item, "type", where, str, "", required=True)
        path = r.get(item, "path", where, str, None)
        if kind and kind not in NAMESPACE_TYPES:
            r.problem(f"{where}.type", f"unknown namespace type {kind!r}")
        elif kind and kind not in SUPPORTED_NAMESPACES:
            r.problem(f"{where}.type", f"{kind} namespaces are not supported by pyinit yet")
        elif kind in seen:
            r.problem(f"{where}.type", f"the {kind} namespace is listed twice")
        elif kind:
            seen.add(kind)
            if path is not None:
                _absolute(r, path, f"{where}.path")
            namespaces.append(Namespace(kind, path))
    for key, id_maps in (("uidMappings", uid_mappings), ("gidMappings", gid_mappings)):
        for where, item in r.objects(linux, key, "linux"):
            values = [r.get(item, k, where, int, 0, required=True)
                      for k in ("containerID", "hostID", "size")]
            if any(v < 0 for v in values) or values[2] == 0:
                r.problem(where, "IDs must be >= 0 and size > 0")
            else:
                id_maps.append(IDMap(*values))
    new_user = any(ns.type == "user" and ns.path is None for ns in namespaces)
    if new_user and not (uid_mappings and gid_mappings):
        r.problem("linux.uidMappings", "a new user namespace needs uidMappings and gidMappings")
    if not new_user and (uid_mappings or gid_mappings):
        r.problem("linux.uidMappings", "mappings need a new user namespace in linux.namespaces")
    for where, item in r.objects(linux, "devices", "linux"):
        kind = r.get(item, "type", where, str, "", required=True)
        path = r.get(item, "path", where, str, "", required=True)
        if kind and kind not in DEVICE_TYPES:
            r.problem(f"{where}.type", f"must be one of c, b, u, p, not {kind!r}")
        if path:
            _absolute(r, path, f"{where}.path")
        major = r.get(item, "major", where, int, 0, required=kind not in ("p", ""))
        minor = r.get(item, "minor", where, int, 0, required=kind not in ("p", ""))
        devices.append(Device(kind, path, major, minor,
                                  r.get(item, "fileMode", where, int, 0o666),
                                  r.get(item, "uid", where, int, 0),
                                  r.get(item, "gid", where, int, 0)))
    for key, target in (("maskedPaths", masked_paths), ("readonlyPaths", readonly_paths)):
        for i, path in enumerate(r.strings(linux, key, "linux")):
            _absolute(r, path, f"linux.{key}[{i}]")
            target.append(path)
    seccomp, problems = parse_seccomp(linux.get("seccomp"), "linux.seccomp")
    r.problems += problems
    cgroup, problems = resources.parse(linux)
    r.problems += problems
    prop = r.get(linux, "rootfsPropagation", "linux", str, None)
    if prop is not None and prop not in PROPAGATIONS and prop not in flags.PROPAGATION:
        r.problem("linux.rootfsPropagation", f"must be one of {', '.join(PROPAGATIONS)}")
    sysctl = r.get(linux, "sysctl", "linux", dict, {})
    own = {ns.type for ns in namespaces if ns.path is None}
    for key, value in sysctl.items():
        where = f"linux.sysctl.{key}"
        if not isinstance(value, str):
            r.problem(where, f"must be a string, not {type(value).__name__}")
            continue
        need = sysctl_namespace(key)
        if need is None:
            r.problem(where, "is not a namespaced sysctl; setting it would change the host")
        elif need not in own:
            r.problem(where, f"needs a new {need} namespace in linux.namespaces")
        elif ".." in key.split(".") or "/" in key:
            r.problem(where, "is not a sysctl name")
        else:
            sysctl_values[key] = value
    return {"namespaces": tuple(namespaces), "uid_mappings": tuple(uid_mappings),
            "gid_mappings": tuple(gid_mappings), "devices": tuple(devices),
            "masked_paths": tuple(masked_paths), "readonly_paths": tuple(readonly_paths),
            "rootfs_propagation": prop, "sysctl": sysctl_values, "seccomp": seccomp,
            "cgroup": cgroup}


_IPC_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}


def sysctl_namespace(key: str) -> str | None:
    """The namespace a sysctl belongs to, or None if it is global (runc's rules)."""
    if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
        return "ipc"
    if key.startswith("net."):
        return "network"
    if key == "kernel.domainname":
        return "uts"
    return None


# The filesystems the kernel lets a user namespace mount (FS_USERNS_MOUNT).
USERNS_FILESYSTEMS = ("proc", "sysfs", "tmpfs", "ramfs", "devpts", "mqueue", "cgroup",
                      "cgroup2", "overlay", "fuse")


def _mapped(maps: Sequence[IDMap], value: int) -> bool:
    """Is ``value`` mapped? An id that is no id at all counts as mapped: refusals.py says why."""
    if not 0 <= value <= 2**32 - 2:
        return True
    return any(m.container_id <= value < m.container_id + m.size for m in maps)


# A filesystem the kernel mounts in a user namespace only for a namespace of
# this type that the user namespace owns (its superblock belongs to it):
# proc (a PID namespace), mqueue (an IPC one). A namespace joined by path
# existed before the container's new user namespace, so that one never owns it.
# sysfs (network) has --sysfs-fallback, cgroup binds the host's hierarchies.
_OWNER_NEEDED = {"proc": ("pid", "PID"), "mqueue": ("ipc", "IPC")}


def _check_owned(r: _Reader, cfg: Config) -> None:
    """With a new user namespace: what needs a namespace that user namespace owns.

    Without a user namespace, root may mount proc for the host's PID
    namespace or set the hostname of a uts namespace joined by path; with
    one, the kernel refuses both (EPERM), so the config is refused first.
    """
    for m in cfg.mounts:
        if m.parsed.is_bind or m.type not in _OWNER_NEEDED:
            continue
        kind, name = _OWNER_NEEDED[m.type]
        if not cfg.owns_namespace(kind):
            how = "one joined by path" if cfg.has_namespace(kind) else "the host's"
            r.problem(f"{m.where}.type", f"{m.type} in a new user namespace needs a new "
                      f"{name} namespace, not {how}: the kernel mounts {m.type} only for "
                      f"a{'n' if name == 'IPC' else ''} {name} namespace that user namespace "
                      f'owns; add {{"type": "{kind}"}} without a path to linux.namespaces')
    for key, value in (("hostname", cfg.hostname), ("domainname", cfg.domainname)):
        if value is not None and cfg.has_namespace("uts") and not cfg.owns_namespace("uts"):
            r.problem(key, "a new user namespace cannot set it in a uts namespace joined by "
                      "path (the kernel allows it only in one that user namespace owns): "
                      "remove the uts namespace's path, or the field")


def _check_user_namespace(r: _Reader, cfg: Config) -> None:
    """What a user namespace rules out, refused with its JSON path before anything runs."""
    if not cfg.has_namespace("user"):
        return
    for m in cfg.mounts:
        if not m.parsed.is_bind and m.type not in USERNS_FILESYSTEMS:
            r.problem(f"{m.where}.type", f"{m.type} cannot be mounted in a user namespace "
                      f"(the kernel allows only {', '.join(USERNS_FILESYSTEMS)} there); "
                      "mount it on the host and bind it")
    if cfg.owns_namespace("user"):
        _check_owned(r, cfg)
    if not (cfg.uid_mappings and cfg.gid_mappings):
        return  # a namespace joined by path: its maps are not in the config
    user = cfg.process.user
    if not _mapped(cfg.uid_mappings, user.uid):
        r.problem("process.user.uid", f"{user.uid} is not mapped by linux.uidMappings")
    if not _mapped(cfg.gid_mappings, user.gid):
        r.problem("process.user.gid", f"{user.gid} is not mapped by linux.gidMappings")
    for i, gid in enumerate(user.additional_gids):
        if not _mapped(cfg.gid_mappings, gid):
            r.problem(f"process.user.additionalGids[{i}]",
                      f"{gid} is not mapped by linux.gidMappings")
    # A filesystem's uid=/gid= (tmpfs, devpts, proc) is read in the user namespace:
    # an unmapped id is EINVAL there, while without one any id goes.
    for m in cfg.mounts:
        if m.parsed.is_bind:
            continue
        for j, option in enumerate(m.options):
            key, _, value = option.partition("=")
            maps = {"uid": cfg.uid_mappings, "gid": cfg.gid_mappings}.get(key)
            if maps is not None and value.isdigit() and not _mapped(maps, int(value)):
                r.problem(f"{m.where}.options[{j}]", f"{key} {value} is not mapped by "
                          f"linux.{key}Mappings")


def parse(doc: Any, bundle: str) -> Config:
    """Build a :class:`Config` from the decoded JSON; raises ConfigError."""
    r = _Reader()
    if not isinstance(doc, dict):
        raise ConfigError([("(top level)", "must be a JSON object")])
    r.get(doc, "ociVersion", "", str, "", required=True)
    root = r.get(doc, "root", "", dict, {}, required=True)
    root_path = r.get(root, "path", "root", str, "", required=bool(root))
    process = _parse_process(r, doc)
    mounts = _parse_mounts(r, doc, bundle)
    linux = _parse_linux(r, doc)
    hooks_doc = r.get(doc, "hooks", "", dict, {})
    hooks = {kind: tuple(parse_command(r, entry, at)
                         for at, entry in r.objects(hooks_doc, kind, "hooks"))
             for kind in HOOK_KINDS}
    cfg = Config(
        bundle=bundle,
        root_path=os.path.normpath(os.path.join(bundle, root_path)) if root_path else "",
        root_readonly=r.get(root, "readonly", "root", bool, False),
        process=process,
        hostname=r.get(doc, "hostname", "", str, None),
        domainname=r.get(doc, "domainname", "", str, None),
        mounts=mounts,
        hooks=hooks,
        **linux,
    )
    if cfg.root_path and not os.path.isdir(cfg.root_path):
        r.problem("root.path", f"{cfg.root_path} is not a directory")
    _check_user_namespace(r, cfg)
    if cfg.process.terminal and not any(
            m.type == "devpts" and m.destination.rstrip("/") == "/dev/pts" for m in cfg.mounts):
        r.problem("process.terminal", "needs a devpts mount on /dev/pts: the terminal is "
                  "allocated from the container's own devpts")
    # Without a private UTS namespace sethostname/setdomainname would rename
    # the host (runc refuses both the same way).
    for key, value in (("hostname", cfg.hostname), ("domainname", cfg.domainname)):
        if value is not None and not cfg.has_namespace("uts"):
            r.problem(key, "needs a uts namespace in linux.namespaces")
    r.problems += refusals.problems(doc, already=r.problems)  # what pyinit does not enforce
    if r.problems:
        raise ConfigError(r.problems)
    return cfg


def load(bundle: str) -> Config:
    path = os.path.join(bundle, FILE)
    try:
        with open(path, encoding="utf-8") as fh:
            doc = jsonio.loads(fh.read())  # json.load's, without importing re and enum
    except FileNotFoundError:
        raise ConfigError([(FILE, f"{path} does not exist")]) from None
    except ValueError as exc:  # json.JSONDecodeError, from json itself (pyinit/oci/jsonio.py)
        import json

        if not isinstance(exc, json.JSONDecodeError):
            raise  # not UTF-8: a UnicodeDecodeError, as from json.load
        raise ConfigError([(FILE, f"not valid JSON: {exc.msg} at line {exc.lineno} "
                            f"column {exc.colno}")]) from None
    except OSError as exc:
        raise ConfigError([(FILE, f"cannot read {path}: {exc.strerror}")]) from None
    return parse(doc, os.path.abspath(bundle))
