"""``pyinit sandbox``: bubblewrap's command line on the same machinery as ``pyinit run``.

The options become the same config objects ``pyinit run`` reads from
config.json, in memory, in the order given (later mounts on top of earlier
ones, as bubblewrap); then the same plan and executor run. The root is always
a fresh tmpfs, attached on top of / in the sandbox's own mount namespace until
the pivot (``ROOT``); the host sees neither it nor anything mounted in it, and
no directory of the host's is made for it. docs/sandbox.md has every
bubblewrap option: supported, refused (why) or different (how).

With no filesystem option at all, the embedded default applies: the host's
``/usr``, ``/bin``, ``/sbin``, ``/lib*`` and ``/etc`` read-only (a host
symlink such as ``/bin -> usr/bin`` is recreated as a symlink), a fresh
``/proc``, a minimal ``/dev`` and a ``/tmp``.

Unprivileged by default: as any user but root (and as root with
``--unshare-user`` or ``--unshare-all``) the sandbox gets a user namespace
that maps the caller's uid and gid to themselves, or to ``--uid``/``--gid``,
as bubblewrap does. The program runs with no supplementary groups,
no_new_privs, a session of its own, and no capability at all (bounding set
included) unless ``--cap-add`` keeps one that pyinit itself holds.

Everything read from the caller's descriptors (``--args``, ``--file``,
``--bind-data``, ``--seccomp``) is read here, before any namespace exists.

Every ``--proc`` gets bubblewrap's read-only paths (``sys``, ``sysrq-trigger``,
``irq``, ``bus``, and ``fs`` as ``pyinit spec``) as ``linux.readonlyPaths``:
the plan makes them read-only after the pivot, as for ``pyinit run``.
It also gets ``pyinit spec``'s ``maskedPaths`` (bubblewrap has none): the
directories (an empty tmpfs) and the files (``kcore``, ``keys``,
``timer_list``, ..., an empty read-only file of a private tmpfs, so no /dev is
needed). A bind of the host's ``/sys`` (or ``/``, or a directory on the way to a
masked one) gets ``firmware`` and ``devices/virtual/powercap`` masked; the host's
directories are recognised by st_dev/st_ino, however the source is spelled.
"""

from __future__ import annotations

import os

from pyinit import cli
from pyinit.linux import caps, flags, mountinfo, seccomp
from pyinit.oci import resources
from pyinit.oci.config import (
    Config,
    FileOp,
    IDMap,
    Mount,
    Namespace,
    Process,
    RunOptions,
    User,
)
from pyinit.oci.seccomp import Seccomp, parse_seccomp
from pyinit.oci.seccomp_default import default_profile
from pyinit.oci.spec import MASKED_PATHS
from pyinit.record import replace
from pyinit.rootfs import plan

TYPE_CHECKING = False  # typing costs 6 ms at start-up; mypy reads the name
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from types import SimpleNamespace
    from typing import Any, NoReturn

    # The parsed options: argparse's namespace, or the fast parser's (same attributes).
    Args = argparse.Namespace | SimpleNamespace

# Where the root's fresh tmpfs is attached until the pivot: on top of /, in the
# sandbox's own mount namespace (made slave first, so nothing propagates back). A path
# lookup starts at the root mount's root and never enters a mount stacked on it, so
# every host path (bind sources included) resolves as before, while the executor
# reaches the tmpfs through its fd. No directory is made on the host: there is
# nothing to remove afterwards, nor to leave behind when pyinit is SIGKILLed.
ROOT = "/"

DEFAULT_RO = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
# Made read-only in every fresh --proc, as bubblewrap does (and as linux.readonlyPaths
# does in `pyinit spec`'s config): the program may be the host's uid 0, and a sysctl's
# permission check is only its file mode against the euid, no capability needed.
PROC_READONLY = ("sys", "sysrq-trigger", "irq", "bus", "fs")
# pyinit spec's maskedPaths, split: a directory is covered by an empty tmpfs, a
# file by an empty read-only file (the sandbox may have no /dev/null).
PROC_MASKED_DIRS = ("acpi", "asound", "scsi")
PROC_MASKED_FILES = tuple(p.removeprefix("/proc/") for p in MASKED_PATHS
                          if p.startswith("/proc/") and p[6:] not in PROC_MASKED_DIRS)
SYS_MASKED = tuple(p.removeprefix("/sys/") for p in MASKED_PATHS if p.startswith("/sys/"))


# Options that act in the order given (later mounts on top of earlier ones), with
# their number of values, as bubblewrap takes them.
FS_OPTIONS = {
    "--bind": ("SRC", "DEST"), "--bind-try": ("SRC", "DEST"),
    "--ro-bind": ("SRC", "DEST"), "--ro-bind-try": ("SRC", "DEST"),
    "--dev-bind": ("SRC", "DEST"), "--dev-bind-try": ("SRC", "DEST"),
    "--remount-ro": ("DEST",), "--tmpfs": ("DEST",), "--proc": ("DEST",), "--dev": ("DEST",),
    "--mqueue": ("DEST",), "--dir": ("DEST",), "--symlink": ("TARGET", "DEST"),
    "--file": ("FD", "DEST"), "--bind-data": ("FD", "DEST"), "--ro-bind-data": ("FD", "DEST"),
    "--chmod": ("OCTAL", "PATH"), "--perms": ("OCTAL",), "--size": ("BYTES",),
}
FS_HELP = {
    "--bind": "bind SRC on DEST, read-write (nosuid, nodev)",
    "--bind-try": "--bind, skipped if SRC does not exist",
    "--ro-bind": "bind SRC on DEST, recursively read-only",
    "--ro-bind-try": "--ro-bind, skipped if SRC does not exist",
    "--dev-bind": "bind SRC on DEST, devices allowed",
    "--dev-bind-try": "--dev-bind, skipped if SRC does not exist",
    "--remount-ro": "make the mount at DEST read-only (not its submounts)",
    "--tmpfs": "a fresh tmpfs on DEST (mode 0755 unless --perms)",
    "--proc": "a fresh procfs on DEST",
    "--dev": "a minimal /dev (tmpfs, the host's null, zero, full, random, urandom and tty, "
             "devpts, shm); only on /dev",
    "--mqueue": "a fresh mqueue on DEST (needs --unshare-ipc, which is always on)",
    "--dir": "create the directory DEST (mode 0755 unless --perms)",
    "--symlink": "create the symlink DEST -> TARGET",
    "--file": "create DEST with the bytes read from FD (mode 0666 unless --perms)",
    "--bind-data": "bind a file with the bytes read from FD on DEST (0600 unless --perms)",
    "--ro-bind-data": "--bind-data, read-only",
    "--chmod": "chmod PATH (which must exist) to OCTAL",
    "--perms": "the mode of the next --dir, --file, --tmpfs, --bind-data or --ro-bind-data",
    "--size": "the size in bytes of the next --tmpfs",
}
ENV_OPTIONS = {"--setenv": ("VAR", "VALUE"), "--unsetenv": ("VAR",), "--clearenv": ()}
# bubblewrap's options pyinit refuses, and why (docs/sandbox.md has the table).
UNSUPPORTED = {
    "--userns": ("FD", "joining a user namespace by fd is not supported"),
    "--userns2": ("FD", "joining a user namespace by fd is not supported"),
    "--pidns": ("FD", "joining a PID namespace by fd is not supported"),
    "--assert-userns-disabled": ("", "not supported: --disable-userns refuses new user "
                                 "namespaces with the seccomp filter, which needs no check"),
    "--lock-file": ("DEST", "not supported"),
    "--bind-fd": ("FD DEST", "binding an fd is not supported; bind its path"),
    "--ro-bind-fd": ("FD DEST", "binding an fd is not supported; bind its path"),
    "--exec-label": ("LABEL", "SELinux labels are not supported"),
    "--file-label": ("LABEL", "SELinux labels are not supported"),
    "--add-seccomp-fd": ("FD", "only one program: use --seccomp FD"),
    "--block-fd": ("FD", "not supported"),
    "--userns-block-fd": ("FD", "not supported: pyinit writes the maps itself"),
    "--as-pid-1": ("", "pyinit is always the sandbox's PID 1 (that is its job)"),
}


def _actions() -> tuple[type[argparse.Action], type[argparse.Action]]:
    """argparse's two actions of the sandbox's parser (argparse is imported on demand)."""
    import argparse

    class Ops(argparse.Action):
        """Collect options in the order given, as bubblewrap does: (option, values)."""

        def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                     values: Any, option_string: str | None = None) -> None:
            ops = list(getattr(namespace, self.dest, None) or [])
            ops.append((option_string or "", values if isinstance(values, list) else
                        [] if values is None else [values]))
            setattr(namespace, self.dest, ops)

    class Unsupported(argparse.Action):
        def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                     values: Any, option_string: str | None = None) -> None:
            parser.error(f"{option_string}: {self.help}")

    return Ops, Unsupported


def parser(parser_class: type[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """The sandbox's whole command line for argparse: --help, and every command line
    the fast parser (:func:`fast_parse`) leaves to it."""
    import argparse

    _Ops, _Unsupported = _actions()
    p = parser_class(
        prog="pyinit sandbox",
        description="Run PROGRAM in new namespaces on a fresh tmpfs root, with pyinit as "
        "PID 1, as bubblewrap's command line says (docs/sandbox.md). Without filesystem "
        "options: the host's /usr, /bin, /sbin, /lib* and /etc read-only, a fresh /proc, "
        "a minimal /dev and a /tmp. Run as a user other than root, it creates a user "
        "namespace that maps your uid and gid to themselves.")
    for option, metavar in FS_OPTIONS.items():
        p.add_argument(option, nargs=len(metavar) if len(metavar) > 1 else None,
                       metavar=metavar if len(metavar) > 1 else metavar[0], action=_Ops,
                       dest="ops", help=FS_HELP[option])
    p.add_argument("--setenv", nargs=2, metavar=("VAR", "VALUE"), action=_Ops, dest="env_ops",
                   help="set an environment variable")
    p.add_argument("--unsetenv", metavar="VAR", action=_Ops, dest="env_ops",
                   help="unset an environment variable")
    p.add_argument("--clearenv", nargs=0, action=_Ops, dest="env_ops",
                   help="unset every environment variable (before the --setenv after it)")
    p.add_argument("--unshare-user", action="store_true",
                   help="a user namespace even as root (always, for anyone else)")
    p.add_argument("--unshare-user-try", action="store_true", dest="unshare_user",
                   help="the same as --unshare-user")
    p.add_argument("--unshare-ipc", action="store_true",
                   help="accepted: the sandbox always has its own ipc namespace")
    p.add_argument("--unshare-pid", action="store_true",
                   help="accepted: the sandbox always has its own PID namespace")
    p.add_argument("--unshare-uts", action="store_true",
                   help="accepted: the sandbox always has its own uts namespace")
    p.add_argument("--unshare-net", action="store_true", help="a new, empty network namespace")
    p.add_argument("--unshare-cgroup", action="store_true", help="a new cgroup namespace")
    p.add_argument("--unshare-cgroup-try", action="store_true", dest="unshare_cgroup",
                   help="the same as --unshare-cgroup")
    p.add_argument("--unshare-all", action="store_true",
                   help="user, ipc, pid, net, uts and cgroup namespaces")
    p.add_argument("--share-net", action="store_true",
                   help="keep the network namespace (only with --unshare-all)")
    p.add_argument("--uid", type=_id, metavar="UID",
                   help="the uid inside (needs a user namespace; default: yours)")
    p.add_argument("--gid", type=_id, metavar="GID",
                   help="the gid inside (needs a user namespace; default: yours)")
    p.add_argument("--map-subids", action="store_true",
                   help="map your /etc/subuid and /etc/subgid ranges too (with newuidmap and "
                   "newgidmap), to the ids inside but --uid/--gid, from 0 up")
    p.add_argument("--hostname", help="the sandbox's hostname")
    p.add_argument("--chdir", metavar="DIR",
                   help="working directory (default: yours if it exists inside, else $HOME "
                   "if it does, else /)")
    p.add_argument("--new-session", action="store_true",
                   help="accepted: the program always runs in a new session")
    p.add_argument("--die-with-parent", action="store_true",
                   help="SIGKILL the sandbox when the process that started pyinit dies")
    p.add_argument("--args", metavar="FD",
                   help="read NUL-separated arguments from FD, in place of this option")
    p.add_argument("--info-fd", type=_fd, metavar="FD",
                   help="write {\"child-pid\": ...} and the namespace ids as JSON to FD")
    p.add_argument("--json-status-fd", type=_fd, metavar="FD",
                   help="write the same, then {\"exit-code\": N}, as JSON lines to FD")
    p.add_argument("--sync-fd", type=_fd, metavar="FD",
                   help="keep FD open while the sandbox runs")
    p.add_argument("--seccomp", type=_fd, metavar="FD",
                   help="a compiled seccomp BPF program from FD instead of the default filter")
    p.add_argument("--no-seccomp", action="store_true",
                   help="no seccomp filter (by default: the usual container default for a "
                   "process without capabilities; unless you are root or give --memory, "
                   "--pids or --cpus, it also lets the program make namespaces and mount "
                   "in them, so a sandbox can run in the sandbox)")
    p.add_argument("--disable-userns", action="store_true",
                   help="the default filter without namespaces: the program cannot make a "
                   "user namespace (or any other), as `pyinit spec`'s filter")
    p.add_argument("--seccomp-profile", metavar="FILE",
                   help="apply the OCI linux.seccomp object in FILE instead of the default")
    for option, (values, reason) in UNSUPPORTED.items():
        names = tuple(values.split())
        p.add_argument(option, nargs=len(names) if len(names) != 1 else None,
                       action=_Unsupported, metavar=names if len(names) > 1 else values or None,
                       help=f"not supported: {reason}")
    p.add_argument("--memory", metavar="SIZE", type=_size,
                   help="memory limit (bytes, or with k, m, g): linux.resources.memory.limit")
    p.add_argument("--pids", metavar="N", type=_positive,
                   help="at most N tasks: linux.resources.pids.limit")
    p.add_argument("--cpus", metavar="X", type=_cpus,
                   help="at most X CPUs' worth of time: cpu quota X*100000 per 100000 µs")
    p.add_argument("--cap-add", action=_Ops, dest="cap_ops", metavar="CAP",
                   help="keep capability CAP (e.g. CAP_NET_RAW), only if pyinit has it "
                   "itself; every other one is dropped")
    p.add_argument("--cap-drop", action=_Ops, dest="cap_ops", metavar="CAP",
                   help="drop CAP (or ALL) again after --cap-add")
    p.add_argument("--grace", type=float, default=5.0)
    p.add_argument("--log-format", choices=cli.LOG_FORMATS, default="auto")
    p.add_argument("--log-level", choices=cli.LOG_LEVELS, default="warning")
    p.add_argument("program", nargs=argparse.REMAINDER, help="[--] PROGRAM [ARGS...]")
    return p


def _type_error(message: str) -> Exception:
    """argparse's ArgumentTypeError (its message is argparse's error line)."""
    import argparse

    return argparse.ArgumentTypeError(message)


def _id(text: str) -> int:
    if not text.isdigit() or int(text) > 2**32 - 2:
        raise _type_error(f"{text!r} is not an id (0 to 4294967294)")
    return int(text)


def _fd(text: str) -> int:
    if not text.isdigit():
        raise _type_error(f"{text!r} is not a file descriptor number")
    try:
        os.fstat(int(text))
    except OSError as exc:
        raise _type_error(f"{text} is not an open file descriptor "
                                         f"({exc.strerror})") from None
    return int(text)


MAX_ARGS_DEPTH = 16


def expand_args(argv: list[str]) -> list[str]:
    """``--args FD`` replaced by the NUL-separated arguments read from FD (flatpak's way).

    Only among the options: the program and its arguments are left alone.
    Raises ValueError naming the option.
    """
    arity = ARITY
    out: list[str] = []
    rest = list(argv)
    expanded = 0
    while rest:
        token = rest.pop(0)
        if token == "--args":
            if not rest:
                raise ValueError("--args: needs FD")
            fd = rest.pop(0)
            expanded += 1
            if expanded > MAX_ARGS_DEPTH:
                raise ValueError(f"--args {fd}: more than {MAX_ARGS_DEPTH} --args")
            data = _read_fd(fd, "--args")
            items = data.split(b"\0")
            if items and items[-1] == b"":
                items.pop()
            try:
                rest[:0] = [item.decode() for item in items]
            except UnicodeDecodeError:
                raise ValueError(f"--args {fd}: the arguments are not UTF-8") from None
            continue
        out.append(token)
        if token == "--" or not token.startswith("--") or token not in arity:
            out += rest
            break
        count = arity[token]
        out += rest[:count]
        del rest[:count]
    return out


def _read_fd(text: str, option: str) -> bytes:
    """Everything readable from the caller's descriptor ``text``, which is then closed."""
    if not text.isdigit():
        raise ValueError(f"{option} {text}: not a file descriptor number")
    fd = int(text)
    chunks = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except OSError as exc:
        raise ValueError(f"{option} {text}: cannot read it: {exc.strerror}") from None
    os.close(fd)
    return b"".join(chunks)


def _size(text: str) -> int:
    scale = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(text[-1:].lower(), 1)
    digits = text[:-1] if scale != 1 else text
    if not digits.isdigit() or int(digits) == 0:
        raise _type_error(f"{text!r} is not a size like 64m")
    return int(digits) * scale


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise _type_error(f"{text!r} is not a positive number")
    return int(text)


def _cpus(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0
    if not 0.01 <= value <= 100000:
        raise _type_error(f"{text!r} is not a number of CPUs like 0.5 or 2")
    return value


CPU_PERIOD = 100000  # µs, the kernel's default CFS period

# The fast parser's table (:func:`fast_parse`), the same options as :func:`parser`'s
# (tests/unit/test_sandbox_parser.py holds them together): option -> (dest, number
# of values, how). How: "ops" appends (option, values) to dest, in the order given;
# "flag" stores True; a tuple is the choices of the value; anything else converts the
# value, as argparse's ``type=``. --help, --args and the refused options are not in
# it: argparse answers them.
FAST: dict[str, tuple[str, int, str | tuple[str, ...] | Callable[[str], Any]]] = {
    **{option: ("ops", len(values), "ops") for option, values in FS_OPTIONS.items()},
    **{option: ("env_ops", len(values), "ops") for option, values in ENV_OPTIONS.items()},
    **{option: (option.removeprefix("--").removesuffix("-try").replace("-", "_"), 0, "flag")
       for option in ("--unshare-user", "--unshare-user-try", "--unshare-ipc",
                      "--unshare-pid", "--unshare-uts", "--unshare-net", "--unshare-cgroup",
                      "--unshare-cgroup-try", "--unshare-all", "--share-net", "--map-subids",
                      "--new-session", "--die-with-parent", "--no-seccomp",
                      "--disable-userns")},
    "--uid": ("uid", 1, _id), "--gid": ("gid", 1, _id),
    "--hostname": ("hostname", 1, str), "--chdir": ("chdir", 1, str),
    "--info-fd": ("info_fd", 1, _fd), "--json-status-fd": ("json_status_fd", 1, _fd),
    "--sync-fd": ("sync_fd", 1, _fd), "--seccomp": ("seccomp", 1, _fd),
    "--seccomp-profile": ("seccomp_profile", 1, str),
    "--memory": ("memory", 1, _size), "--pids": ("pids", 1, _positive),
    "--cpus": ("cpus", 1, _cpus),
    "--cap-add": ("cap_ops", 1, "ops"), "--cap-drop": ("cap_ops", 1, "ops"),
    "--grace": ("grace", 1, float),
    "--log-format": ("log_format", 1, cli.LOG_FORMATS),
    "--log-level": ("log_level", 1, cli.LOG_LEVELS),
}
# The namespace of a command line with no option at all, as argparse makes it.
FAST_DEFAULTS: dict[str, Any] = {
    **{dest: False if how == "flag" else None for dest, _n, how in FAST.values()},
    **{option.removeprefix("--").replace("-", "_"): None for option in UNSUPPORTED},
    "args": None, "grace": 5.0, "log_format": "auto", "log_level": "warning", "program": [],
}
# How many values each option takes, for expand_args (argparse's nargs, as a number).
ARITY = {**{option: count for option, (_d, count, _h) in FAST.items()},
         **{option: len(values.split()) for option, (values, _r) in UNSUPPORTED.items()},
         "-h": 0, "--help": 0, "--args": 1}


def fast_parse(argv: list[str]) -> SimpleNamespace | None:
    """The options as argparse would parse them, or None for argparse to do it.

    Only the forms whose meaning is beyond doubt: each option of :data:`FAST` spelled
    out in full with its values (``--opt=value`` for one value), none of them starting
    with ``-``, each valid; then ``--`` or the program, which takes the rest. Anything
    else (help, an unknown, refused or abbreviated option, a missing or bad value) is
    left to argparse, for its exact message and exit status. The point: argparse, and
    the re and enum it imports, cost ``pyinit sandbox`` 15 ms of its start.
    """
    from types import SimpleNamespace

    args = dict(FAST_DEFAULTS)
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--" or (token and not token.startswith("-")):
            args["program"] = argv[i:]
            break
        option, eq, value = token.partition("=")
        if option not in FAST:
            return None
        dest, count, how = FAST[option]
        if eq:
            if count != 1 or not value:
                return None
            values = [value]
            i += 1
        else:
            values = argv[i + 1:i + 1 + count]
            if len(values) < count:
                return None
            i += 1 + count
        if any(v.startswith("-") for v in values):
            return None
        if isinstance(how, str):  # "ops" or "flag"
            args[dest] = [*(args[dest] or []), (option, values)] if how == "ops" else True
        elif isinstance(how, tuple):
            if values[0] not in how:
                return None
            args[dest] = values[0]
        else:
            try:
                args[dest] = how(values[0])
            except Exception:  # argparse says what is wrong with it
                return None
    return SimpleNamespace(**args)


def cgroup_spec(args: Args) -> resources.CgroupSpec | None:
    """--memory, --pids and --cpus as the cgroup part pyinit run reads from config.json
    (docs/cgroups.md); None without them: then the sandbox gets no cgroup of its own.
    The cgroup is /pyinit/sandbox-<pid>-<random> (root), else the same relative, under the
    caller's own cgroup, where a delegated subtree would be. Devices stay as bubblewrap
    leaves them: all allowed (the sandbox's /dev holds only the minimal set anyway)."""
    if args.memory is None and args.pids is None and args.cpus is None:
        return None
    res = resources.Resources(
        memory=None if args.memory is None else resources.Memory(limit=args.memory),
        pids_limit=args.pids,
        cpu=None if args.cpus is None else resources.Cpu(
            quota=max(1000, round(args.cpus * CPU_PERIOD)), period=CPU_PERIOD),
        devices=(resources.DeviceRule(True, "a", -1, -1, "rwm"),),
    )
    path = resources.default_path(resources.unique_id("sandbox"))
    return resources.CgroupSpec(path if os.geteuid() == 0 else path.lstrip("/"), res)


def _default_ops() -> list[tuple[str, list[str]]]:
    ops: list[tuple[str, list[str]]] = []
    for path in DEFAULT_RO:
        if os.path.islink(path):
            ops.append(("--symlink", [os.readlink(path), path]))
        elif os.path.isdir(path):
            ops.append(("--ro-bind", [path, path]))
    ops += [("--proc", ["/proc"]), ("--dev", ["/dev"]), ("--perms", ["1777"]),
            ("--tmpfs", ["/tmp"])]
    return ops


def _own_capabilities() -> int:
    """CapEff of pyinit itself, read now (before any namespace)."""
    return caps.effective()


def capabilities(cap_ops: list[tuple[str, list[str]]],
                 have: int | None = None) -> dict[str, list[int]]:
    """All five sets: only the ``--cap-add`` ones (less the later ``--cap-drop`` ones).

    A capability is kept only when pyinit holds it itself (CapEff): as root,
    the program would otherwise keep every capability (and remount a
    --ro-bind read-write); without it there is nothing to keep, so asking is
    an error rather than a silent no-op.
    """
    kept: list[int] = []
    for option, (name,) in cap_ops:
        upper = name.upper()
        if option == "--cap-drop" and upper == "ALL":
            kept = []
            continue
        full = upper if upper.startswith("CAP_") else f"CAP_{upper}"
        if full not in caps.CAPS:
            raise ValueError(f"{option} {name}: unknown capability")
        number = caps.CAPS[full]
        if option == "--cap-drop":
            kept = [n for n in kept if n != number]
            continue
        if have is None:
            have = _own_capabilities()
        if not have >> number & 1:
            raise ValueError(f"--cap-add {name}: pyinit does not have {full} itself "
                             "(CapEff of /proc/self/status), so the program cannot keep it")
        if number not in kept:
            kept.append(number)
    return {kind: list(kept) for kind in ("bounding", "effective", "permitted",
                                          "inheritable", "ambient")}


def _mode(text: str, option: str) -> int:
    try:
        mode = int(text, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o7777:
        raise ValueError(f"{option} {text}: not an octal mode (0 to 7777)")
    return mode


MODED = ("--dir", "--file", "--tmpfs", "--bind-data", "--ro-bind-data")
BIND_OPTIONS = {
    "--bind": ["rbind", "nosuid", "nodev", "rnosuid"],
    "--ro-bind": ["rbind", "ro", "nosuid", "nodev", "rro", "rnosuid"],
    "--dev-bind": ["rbind", "nosuid", "rnosuid", "dev"],
}


# --bind SRC / and friends: the root itself, with these flags on every mount of it.
ROOT_ATTR = {
    "--bind": flags.MOUNT_ATTR_NOSUID | flags.MOUNT_ATTR_NODEV,
    "--ro-bind": flags.MOUNT_ATTR_RDONLY | flags.MOUNT_ATTR_NOSUID | flags.MOUNT_ATTR_NODEV,
    "--dev-bind": flags.MOUNT_ATTR_NOSUID,
}


class _Layout:
    """The mounts and the other filesystem steps, in the order given."""

    def __init__(self) -> None:
        self.mounts: list[Mount] = []
        self.order: list[int | FileOp] = []
        self.root_bind: tuple[str, int] | None = None

    def mount(self, dest: str, kind: str, source: str, options: list[str]) -> None:
        index = len(self.mounts)
        self.mounts.append(Mount(index, dest, kind, source, tuple(options),
                                 flags.parse_options(options)))
        self.order.append(index)


def _layout(ops: list[tuple[str, list[str]]]) -> _Layout:
    out = _Layout()
    perms: int | None = None
    size: int | None = None
    for option, values in ops:
        dest = values[-1]
        if option not in ("--perms", "--size", "--chmod") and not dest.startswith("/"):
            raise ValueError(f"{option} {dest}: destinations must be absolute paths")
        if option == "--perms":
            perms = _mode(values[0], option)
            continue
        if option == "--size":
            if not values[0].isdigit() or int(values[0]) == 0:
                raise ValueError(f"--size {values[0]}: not a number of bytes")
            size = int(values[0])
            continue
        if perms is not None and option not in MODED:
            raise ValueError(f"--perms must come right before one of {', '.join(MODED)}, "
                             f"not {option}")
        if size is not None and option != "--tmpfs" and option != "--perms":
            raise ValueError(f"--size must come right before --tmpfs, not {option}")
        mode, perms = perms, None
        base = option.removesuffix("-try")
        if base in BIND_OPTIONS:
            source = os.path.abspath(values[0])
            if option.endswith("-try") and not os.path.lexists(source):
                continue
            if not os.path.exists(source):
                raise ValueError(f"{option} {values[0]} {dest}: {source} does not exist")
            if plan.normal(dest) == "/":
                if out.mounts or out.order or out.root_bind:
                    raise ValueError(f"{option} {values[0]} {dest}: a bind on / must be the "
                                     "first filesystem option (it becomes the root)")
                if not os.path.isdir(source):
                    raise ValueError(f"{option} {values[0]} {dest}: {source} is not a "
                                     "directory")
                out.root_bind = (source, ROOT_ATTR[base])
                continue
            out.mount(dest, "bind", source, BIND_OPTIONS[base])
        elif option == "--tmpfs":
            data = [f"mode={0o755 if mode is None else mode:o}"]
            if size is not None:
                data.append(f"size={size}")
            size = None
            out.mount(dest, "tmpfs", "tmpfs", ["nosuid", "nodev", *data])
        elif option == "--proc":
            out.mount(dest, "proc", "proc", ["nosuid", "nodev", "noexec"])
        elif option == "--mqueue":
            # As bubblewrap: no flags (an mqueue holds neither programs nor device nodes).
            out.mount(dest, "mqueue", "mqueue", ["dev"])
        elif option == "--dev":
            if plan.normal(dest) != "/dev":
                raise ValueError(f"--dev {dest}: pyinit makes its minimal /dev only on /dev")
            out.mount("/dev", "tmpfs", "tmpfs", ["nosuid", "nodev", "mode=755"])
            out.order.append(FileOp("devices", "/dev", option))
            out.mount("/dev/pts", "devpts", "devpts",
                      ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"])
            out.mount("/dev/shm", "tmpfs", "shm", ["nosuid", "nodev", "noexec", "mode=1777"])
        elif option == "--symlink":
            out.order.append(FileOp("symlink", dest, option, target=values[0]))
        elif option == "--dir":
            out.order.append(FileOp("dir", dest, option, mode))
        elif option == "--remount-ro":
            out.order.append(FileOp("remount-ro", dest, option))
        elif option == "--chmod":
            if not dest.startswith("/"):
                raise ValueError(f"--chmod {values[0]} {dest}: paths must be absolute")
            out.order.append(FileOp("chmod", dest, option, _mode(values[0], option)))
        else:  # --file, --bind-data, --ro-bind-data
            out.order.append(FileOp(option.removeprefix("--"), dest, option, mode,
                                    data=_read_fd(values[0], option)))
    if perms is not None or size is not None:
        raise ValueError("--perms and --size must be followed by the option they apply to")
    return out


def _environment(env_ops: list[tuple[str, list[str]]]) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYINIT_")}
    for option, values in env_ops:
        if option == "--clearenv":
            env.clear()
        elif option == "--unsetenv":
            env.pop(values[0], None)
        else:
            if not values[0] or "=" in values[0]:
                raise ValueError(f"--setenv {values[0]!r}: not a variable name")
            env[values[0]] = values[1]
    return [f"{k}={v}" for k, v in env.items()]


CAP_SYS_ADMIN = 21
# Empty directories of procfs that the kernel ignores when it checks whether a
# proc mount is fully visible (systemd's binfmt_misc automount sits on one).
PERMANENTLY_EMPTY = ("/proc/sys/fs/binfmt_misc",)


def fresh_proc_refused(user_ns: bool) -> str | None:
    """Why the kernel will refuse a fresh proc to the sandbox, or None.

    In a user namespace other than the initial one, proc may only be mounted
    when a proc mount of the mount namespace is fully visible: nothing mounted
    on top of anything in it (the kernel's mount_too_revealing). A container
    engine's masked /proc, or an outer sandbox's read-only /proc/sys, is not.
    """
    from pyinit import diagnose  # loaded by the container's code anyway

    if not user_ns and not diagnose.in_user_namespace():
        return None
    entries = mountinfo.read()
    procs = [e.mount_point for e in entries if e.fstype == "proc" and e.root == "/"]
    covered: list[str] = []
    for base in procs:
        prefix = base.rstrip("/") + "/"
        on_top = [e.mount_point for e in entries if e.mount_point.startswith(prefix)
                  and e.mount_point not in PERMANENTLY_EMPTY]
        if not on_top:
            return None
        covered += on_top
    shown = ", ".join(sorted(covered)[:4]) + (" …" if len(covered) > 4 else "")
    return (f"a fresh /proc is refused in a user namespace while every proc mount here has "
            f"mounts on top of it ({shown or 'no proc mount at all'})")


def build(args: Args) -> tuple[Config, RunOptions]:
    """The Config for these options, and how to run it (the other steps, in their order)."""
    default = not getattr(args, "ops", None)
    ops = _default_ops() if default else args.ops
    layout = _layout(ops)
    if args.share_net and not args.unshare_all:
        raise ValueError("--share-net: only with --unshare-all")
    # As bubblewrap: anyone but root gets a user namespace; so does a root without
    # CAP_SYS_ADMIN (an ordinary container's), which could not unshare anything else.
    user_ns = (os.geteuid() != 0 or not _own_capabilities() >> CAP_SYS_ADMIN & 1
               or args.unshare_user or args.unshare_all)
    # Only the default layout falls back; an explicit --proc fails with the hint.
    proc_fallback = fresh_proc_refused(user_ns) if default else None
    procs = [] if proc_fallback else [
        plan.normal(m.destination) for m in layout.mounts if m.type == "proc"]
    readonly = tuple(f"{dest}/{name}" for dest in procs for name in PROC_READONLY)
    masked = _masked(layout.mounts, procs)
    if layout.root_bind is not None:  # --ro-bind / / first: the host's / is the root
        masked += _sys_masks(layout.root_bind[0], "/")
    for option, value in (("--uid", args.uid), ("--gid", args.gid)):
        if value is not None and not user_ns:
            raise ValueError(f"{option} {value}: needs a user namespace (--unshare-user)")
    namespaces = [Namespace(t) for t in ("mount", "pid", "ipc", "uts")]
    if args.unshare_net or (args.unshare_all and not args.share_net):
        namespaces.append(Namespace("network"))
    if args.unshare_cgroup or args.unshare_all:
        namespaces.append(Namespace("cgroup"))
    uid = os.getuid() if args.uid is None else args.uid
    gid = os.getgid() if args.gid is None else args.gid
    uid_maps: tuple[IDMap, ...] = ()
    gid_maps: tuple[IDMap, ...] = ()
    if user_ns:
        # As bubblewrap: the caller's own ids, seen inside as --uid/--gid (or themselves).
        namespaces.append(Namespace("user"))
        uid_maps = (IDMap(uid, os.getuid(), 1),)
        gid_maps = (IDMap(gid, os.getgid(), 1),)
        if args.map_subids:
            uid_maps = fill_map(uid, os.getuid(), subordinate_ranges(SUBUID, os.getuid()))
            gid_maps = fill_map(gid, os.getgid(), subordinate_ranges(SUBGID, os.getuid()))
    elif args.map_subids:
        raise ValueError("--map-subids: needs a user namespace (--unshare-user)")
    kept = capabilities(getattr(args, "cap_ops", None) or [])
    names = {number: name for name, number in caps.CAPS.items()}
    if args.seccomp is not None and (args.no_seccomp or args.seccomp_profile):
        raise ValueError("--seccomp: not together with --no-seccomp or --seccomp-profile")
    if args.disable_userns and (args.no_seccomp or args.seccomp_profile
                                or args.seccomp is not None):
        raise ValueError("--disable-userns: it is the default seccomp filter without "
                         "namespaces; not together with --seccomp, --seccomp-profile or "
                         "--no-seccomp")
    program = None
    if args.seccomp is not None:
        try:
            program = seccomp.read_program(args.seccomp).program
        except (OSError, ValueError) as exc:
            raise ValueError(f"--seccomp {args.seccomp}: {exc}") from None
        os.close(args.seccomp)
    cgroup = cgroup_spec(args)
    env = _environment(getattr(args, "env_ops", None) or [])
    choices = (args.chdir,) if args.chdir is not None else _cwd_choices(env)
    cfg = Config(
        bundle=ROOT, root_path=ROOT, root_readonly=False,
        seccomp=None if args.no_seccomp or program is not None else _seccomp(
            args.seccomp_profile, [names[n] for n in kept["bounding"]],
            namespaces=may_nest(args.disable_userns, os.geteuid(), cgroup)),
        process=Process(args=args.program, cwd=choices[0], env=env,
                        user=User(uid=uid, gid=gid), no_new_privileges=True,
                        capabilities=kept),
        hostname=args.hostname, mounts=tuple(layout.mounts), namespaces=tuple(namespaces),
        readonly_paths=readonly, masked_paths=masked, cgroup=cgroup,
        uid_mappings=uid_maps, gid_mappings=gid_maps,
    )
    run = RunOptions(root_tmpfs=True, dev_setup=False, bind_devices=True,
                     proc_fallback=proc_fallback, root_bind=layout.root_bind,
                     order=tuple(layout.order), die_with_parent=args.die_with_parent,
                     cwd_choices=choices,
                     seccomp_program=program)
    return cfg, run


SUBUID = "/etc/subuid"
SUBGID = "/etc/subgid"


def subordinate_ranges(path: str, uid: int) -> list[tuple[int, int]]:
    """(start, count) of every line of ``path`` (/etc/subuid or /etc/subgid) for the user
    ``uid``, named by login name or by number, as newuidmap reads them."""
    import pwd

    try:
        names = {str(uid), pwd.getpwuid(uid).pw_name}
    except KeyError:
        names = {str(uid)}
    ranges = []
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                fields = line.strip().split(":")
                if len(fields) == 3 and fields[0] in names and fields[1].isdigit() \
                        and fields[2].isdigit() and int(fields[2]) > 0:
                    ranges.append((int(fields[1]), int(fields[2])))
    except OSError as exc:
        raise ValueError(f"--map-subids: {path}: {exc.strerror}") from None
    if not ranges:
        raise ValueError(f"--map-subids: {path} has no range for "
                         f"{' or '.join(sorted(names))}")
    return ranges


def fill_map(inside: int, outside: int, ranges: list[tuple[int, int]]) -> tuple[IDMap, ...]:
    """``inside`` -> ``outside``, and the subordinate ``ranges`` on the ids from 0 up,
    around ``inside``: with --uid 0 and 65536 subordinate ids, 0 to 65536 are mapped."""
    maps = [IDMap(inside, outside, 1)]
    nxt = 0
    for start, count in ranges:
        while count:
            if nxt == inside:
                nxt += 1
            size = count if nxt > inside else min(count, inside - nxt)
            maps.append(IDMap(nxt, start, size))
            nxt, start, count = nxt + size, start + size, count - size
    return tuple(maps)


def _cwd_choices(env: list[str]) -> tuple[str, ...]:
    """bubblewrap's working directory without --chdir: the caller's (as $PWD names it when
    that is the same directory, as get_current_dir_name(3)), else the sandbox's $HOME,
    else /; each tried inside, as the program's user."""
    choices: list[str] = []
    try:
        here = os.stat(".")
        cwd = os.getcwd()
    except OSError:  # the caller's directory is gone: there is nothing to keep
        pass
    else:
        logical = os.environ.get("PWD", "")
        try:
            same = logical.startswith("/") and os.path.samestat(os.stat(logical), here)
        except OSError:
            same = False
        choices.append(logical if same else cwd)
    home = next((item[5:] for item in env if item.startswith("HOME=")), "")
    if home:
        choices.append(home)
    return (*choices, "/")


def _masked(mounts: list[Mount], procs: list[str]) -> tuple[str, ...]:
    """pyinit spec's maskedPaths under every fresh proc and every bind of the host's /sys.

    Files are masked with an empty read-only file (the plan's ``empty_file``), so
    they need no /dev/null in the sandbox.
    """
    masked = [f"{dest}/{name}" for dest in procs
              for name in PROC_MASKED_DIRS + PROC_MASKED_FILES]
    for m in mounts:
        if m.type == "bind":
            masked += _sys_masks(m.source, m.destination)
    return tuple(masked)


def _sys_masks(source: str, destination: str) -> tuple[str, ...]:
    """The masks a bind of ``source`` on ``destination`` needs: where it shows a masked
    /sys path of the host's. The host's directories are recognised by identity
    (st_dev, st_ino), not by spelling: ``//sys``, ``/sys/.``, a symlink to /sys."""
    try:
        st = os.stat(source)
    except OSError:
        return ()  # a --bind-try source that is missing: no bind
    found: list[str] = []
    for name in SYS_MASKED:
        path = f"/sys/{name}"
        ancestors = ["/"] + ["/" + "/".join(path.split("/")[1:i])
                             for i in range(2, path.count("/") + 2)]
        for ancestor in ancestors:
            try:
                host = os.stat(ancestor)
            except OSError:
                continue
            if (host.st_dev, host.st_ino) == (st.st_dev, st.st_ino):
                rest = path.removeprefix(ancestor).lstrip("/")
                top = destination.rstrip("/")
                found.append(f"{top}/{rest}" if rest else top or "/")
                break
    return tuple(found)


def may_nest(disabled: bool, euid: int, cgroup: resources.CgroupSpec | None) -> bool:
    """Does the default filter let the program make namespaces (docs/sandbox.md, "Seccomp")?

    Only when that gives it nothing its caller lacks. Not for root (any uid 0): its
    program is the host's uid 0 without capabilities, and in a user namespace of its
    own it could mount a cgroup hierarchy whose files uid 0 owns and raise the limits
    it runs under. Not with --memory, --pids or --cpus: the sandbox's cgroup belongs
    to the caller, and the program could lift those limits the same way.
    """
    return not disabled and euid != 0 and cgroup is None


def _seccomp(path: str | None, kept: list[str], namespaces: bool) -> Seccomp | None:
    """The sandbox's profile: FILE's linux.seccomp object, or the default for ``kept``
    (that may make namespaces, as under bubblewrap, unless --disable-userns)."""
    doc = default_profile(kept, namespaces=namespaces)
    if path is not None:
        import json  # only here: the sandbox's start does without it (3 ms)

        try:
            with open(path, encoding="utf-8") as fh:
                doc = json.load(fh)
        except (OSError, ValueError) as exc:
            raise ValueError(f"--seccomp-profile {path}: {exc}") from None
    profile, problems = parse_seccomp(doc, "linux.seccomp")
    if problems:
        where, reason = problems[0]
        raise ValueError(f"--seccomp-profile {path}: {where}: {reason}")
    return profile


def main(argv: list[str], start_ns: int,
         parser_class: Callable[[], type[argparse.ArgumentParser]]) -> int:
    """``parser_class`` (commands.parser_class) is called, and argparse imported, only
    for a command line the fast parser leaves to argparse, or for an error."""
    p: argparse.ArgumentParser | None = None
    try:
        argv = expand_args(argv)
        args: Args | None = fast_parse(argv)
        if args is None:
            p = parser(parser_class())
            args = p.parse_args(argv)
        program = args.program[1:] if args.program[:1] == ["--"] else args.program
        if not program:
            raise ValueError("no PROGRAM given (usage: pyinit sandbox [OPTIONS] -- PROGRAM "
                             "[ARGS...])")
        args.program = program
        cfg, run = build(args)
    except ValueError as exc:
        # one line, then where the help is; exit status 2
        (p or parser(parser_class())).error(str(exc))
    created = tuple(ns.type for ns in cfg.namespaces)
    return _run(cfg, _with_status(run, created, args.info_fd, args.json_status_fd), args,
                start_ns)


# The namespaces bubblewrap's --info-fd names (when it created them): config type, /proc name.
INFO_NAMESPACES = (("cgroup", "cgroup"), ("ipc", "ipc"), ("mount", "mnt"), ("network", "net"),
                   ("pid", "pid"), ("uts", "uts"))


def namespace_ids(pid: int, created: tuple[str, ...]) -> dict[str, int]:
    """The namespaces the sandbox created, by inode, as bubblewrap's --info-fd names them."""
    out = {}
    for kind, name in INFO_NAMESPACES:
        if kind not in created:
            continue
        try:
            out[f"{name}-namespace"] = os.stat(f"/proc/{pid}/ns/{name}").st_ino
        except OSError:
            continue
    return out


def _with_status(run: RunOptions, created: tuple[str, ...], info_fd: int | None,
                 status_fd: int | None) -> RunOptions:
    """--info-fd and --json-status-fd, written by the parent (on the host's /proc)."""
    if info_fd is None and status_fd is None:
        return run
    import json

    def write(fd: int, text: str) -> None:
        try:
            os.write(fd, text.encode())
        except OSError:
            pass  # the reader went away: the sandbox goes on, as bubblewrap's does

    def started(pid: int) -> None:
        info = {"child-pid": pid, **namespace_ids(pid, created)}
        if info_fd is not None:
            write(info_fd, json.dumps(info, indent=4) + "\n")
            os.close(info_fd)
        if status_fd is not None:
            write(status_fd, json.dumps(info) + "\n")

    def exited(code: int) -> None:
        if status_fd is not None:
            write(status_fd, json.dumps({"exit-code": code}) + "\n")

    return replace(run, on_started=started, on_exit=exited)


def _run(cfg: Config, run: RunOptions, args: Args, start_ns: int) -> NoReturn:
    from pyinit import container

    opts = cli.Options()
    opts.grace = args.grace
    opts.log_format = args.log_format
    opts.log_level = args.log_level
    container.run_config(cfg, opts, start_ns, "sandbox", run=run)
