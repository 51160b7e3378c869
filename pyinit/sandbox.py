"""``pyinit sandbox``: a bubblewrap-style command line for the same machinery.

The options become the same config objects ``pyinit run`` reads from
config.json, in memory, in the order given; then the same plan and executor
run. The root is always a fresh tmpfs (on an empty directory that is removed
afterwards); the host sees neither it nor anything mounted in it.

With no mount option at all, the embedded default applies: the host's
``/usr``, ``/bin``, ``/sbin``, ``/lib*`` and ``/etc`` read-only (a host
symlink such as ``/bin -> usr/bin`` is recreated as a symlink), a fresh
``/proc``, a minimal ``/dev`` and a ``/tmp``.

The program runs with the caller's uid and gid, no supplementary groups,
no_new_privs, and no capability at all (bounding set included) unless
``--cap-add`` keeps one, which only root may ask for.

Every ``--proc`` gets bubblewrap's read-only paths (``sys``, ``sysrq-trigger``,
``irq``, ``bus``, and ``fs`` as ``pyinit spec``) as ``linux.readonlyPaths``:
the plan makes them read-only after the pivot, as for ``pyinit run``.
It also gets ``pyinit spec``'s ``maskedPaths`` (bubblewrap has none): the
directories always, the files (``kcore``, ``keys``, ``timer_list``, ...)
when the sandbox has a ``--dev /dev``, whose ``null`` covers them. A bind of
the host's ``/sys`` (or ``/``) gets ``firmware`` and ``devices/virtual/powercap``
masked.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from typing import Any, NoReturn

from pyinit import cli
from pyinit.linux import caps, flags
from pyinit.oci import resources
from pyinit.oci.config import Config, Mount, Namespace, Process, RunOptions, User
from pyinit.oci.seccomp import Seccomp, parse_seccomp
from pyinit.oci.seccomp_default import default_profile
from pyinit.oci.spec import MASKED_PATHS

DEFAULT_RO = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
# Made read-only in every fresh --proc, as bubblewrap does (and as linux.readonlyPaths
# does in `pyinit spec`'s config): the program may be the host's uid 0, and a sysctl's
# permission check is only its file mode against the euid, no capability needed.
PROC_READONLY = ("sys", "sysrq-trigger", "irq", "bus", "fs")
# pyinit spec's maskedPaths, split: a directory is covered by an empty tmpfs, a
# file by the sandbox's /dev/null (so only when there is one).
PROC_MASKED_DIRS = ("acpi", "asound", "scsi")
PROC_MASKED_FILES = tuple(p.removeprefix("/proc/") for p in MASKED_PATHS
                          if p.startswith("/proc/") and p[6:] not in PROC_MASKED_DIRS)
SYS_MASKED = tuple(p.removeprefix("/sys/") for p in MASKED_PATHS if p.startswith("/sys/"))


class _Ops(argparse.Action):
    """Collect mount options in the order given, as bubblewrap does."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        ops = getattr(namespace, "ops", None) or []
        ops.append((self.dest, values if isinstance(values, list) else [values]))
        namespace.ops = ops


def parser(parser_class: type[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    p = parser_class(
        prog="pyinit sandbox",
        description="Run PROGRAM in new namespaces on a fresh tmpfs root, with pyinit as "
        "PID 1. Without mount options: the host's /usr, /bin, /sbin, /lib* and /etc "
        "read-only, a fresh /proc, a minimal /dev and a /tmp.")
    p.add_argument("--ro-bind", nargs=2, metavar=("SRC", "DEST"), action=_Ops,
                   help="bind SRC on DEST, recursively read-only")
    p.add_argument("--bind", nargs=2, metavar=("SRC", "DEST"), action=_Ops,
                   help="bind SRC on DEST, read-write")
    p.add_argument("--tmpfs", metavar="DEST", action=_Ops, help="a fresh tmpfs on DEST")
    p.add_argument("--proc", metavar="DEST", action=_Ops, help="a fresh procfs on DEST")
    p.add_argument("--dev", metavar="DEST", action=_Ops,
                   help="a minimal /dev on DEST (tmpfs, devices, devpts, shm)")
    p.add_argument("--symlink", nargs=2, metavar=("TARGET", "DEST"), action=_Ops,
                   help="create the symlink DEST -> TARGET")
    p.add_argument("--hostname", help="the sandbox's hostname")
    p.add_argument("--unshare-net", action="store_true", help="a new, empty network namespace")
    p.add_argument("--chdir", default="/", metavar="DIR", help="working directory (default /)")
    p.add_argument("--setenv", nargs=2, metavar=("VAR", "VALUE"), action="append", default=[],
                   help="set an environment variable")
    p.add_argument("--no-seccomp", action="store_true",
                   help="no seccomp filter (by default: the usual container default for a "
                   "process without capabilities, as `pyinit spec` writes)")
    p.add_argument("--seccomp-profile", metavar="FILE",
                   help="apply the OCI linux.seccomp object in FILE instead of the default")
    p.add_argument("--memory", metavar="SIZE", type=_size,
                   help="memory limit (bytes, or with k, m, g): linux.resources.memory.limit")
    p.add_argument("--pids", metavar="N", type=_positive,
                   help="at most N tasks: linux.resources.pids.limit")
    p.add_argument("--cpus", metavar="X", type=_cpus,
                   help="at most X CPUs' worth of time: cpu quota X*100000 per 100000 µs")
    p.add_argument("--cap-add", action="append", default=[], metavar="CAP",
                   help="keep capability CAP (e.g. CAP_NET_RAW; only when started as root); "
                   "every other one is dropped")
    p.add_argument("--grace", type=float, default=5.0)
    p.add_argument("--log-format", choices=cli.LOG_FORMATS, default="auto")
    p.add_argument("--log-level", choices=cli.LOG_LEVELS, default="warning")
    p.add_argument("program", nargs=argparse.REMAINDER, help="-- PROGRAM [ARGS...]")
    return p


def _size(text: str) -> int:
    scale = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(text[-1:].lower(), 1)
    digits = text[:-1] if scale != 1 else text
    if not digits.isdigit() or int(digits) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 64m")
    return int(digits) * scale


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return int(text)


def _cpus(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0
    if not 0.01 <= value <= 100000:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of CPUs like 0.5 or 2")
    return value


CPU_PERIOD = 100000  # µs, the kernel's default CFS period


def cgroup_spec(args: argparse.Namespace) -> resources.CgroupSpec | None:
    """--memory, --pids and --cpus as the cgroup part pyinit run reads from config.json
    (docs/cgroups.md); None without them: then the sandbox gets no cgroup of its own.
    The cgroup is /pyinit/sandbox-<pid> (root), else pyinit/sandbox-<pid> under the
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
    path = resources.default_path(f"sandbox-{os.getpid()}")
    return resources.CgroupSpec(path if os.geteuid() == 0 else path.lstrip("/"), res)


def _mount(index: int, dest: str, kind: str, source: str, options: list[str]) -> Mount:
    return Mount(index, dest, kind, source, tuple(options), flags.parse_options(options))


def _default_ops() -> list[tuple[str, list[str]]]:
    ops: list[tuple[str, list[str]]] = []
    for path in DEFAULT_RO:
        if os.path.islink(path):
            ops.append(("symlink", [os.readlink(path), path]))
        elif os.path.isdir(path):
            ops.append(("ro_bind", [path, path]))
    ops += [("proc", ["/proc"]), ("dev", ["/dev"]), ("tmpfs", ["/tmp"])]
    return ops


def capabilities(names: list[str], euid: int) -> dict[str, list[int]]:
    """All five sets: only the ``--cap-add`` ones, and those only for root.

    As bubblewrap does: as root, the program would otherwise keep every
    capability (and remount a --ro-bind read-write); as anyone else it has
    none to keep, so asking for one is an error rather than a silent no-op.
    """
    numbers = []
    for name in names:
        full = name.upper() if name.upper().startswith("CAP_") else f"CAP_{name.upper()}"
        if full not in caps.CAPS:
            raise ValueError(f"--cap-add {name}: unknown capability")
        numbers.append(caps.CAPS[full])
    if numbers and euid != 0:
        raise ValueError("--cap-add needs pyinit to be started as root")
    return {kind: list(numbers) for kind in ("bounding", "effective", "permitted",
                                             "inheritable", "ambient")}


def build(args: argparse.Namespace, root: str) -> tuple[Config, RunOptions]:
    """The Config for these options, and how to run it (the symlinks after the mounts)."""
    ops = getattr(args, "ops", None) or _default_ops()
    mounts: list[Mount] = []
    links: list[tuple[str, str]] = []
    for kind, values in ops:
        n = len(mounts)
        if kind == "ro_bind":
            mounts.append(_mount(n, values[1], "bind", os.path.abspath(values[0]),
                                 ["rbind", "ro", "nosuid", "nodev", "rro"]))
        elif kind == "bind":
            mounts.append(_mount(n, values[1], "bind", os.path.abspath(values[0]),
                                 ["rbind", "nosuid", "nodev"]))
        elif kind == "tmpfs":
            mounts.append(_mount(n, values[0], "tmpfs", "tmpfs",
                                 ["nosuid", "nodev", "mode=1777"]))
        elif kind == "proc":
            mounts.append(_mount(n, values[0], "proc", "proc", ["nosuid", "nodev", "noexec"]))
        elif kind == "dev":
            dest = values[0].rstrip("/") or "/dev"
            mounts.append(_mount(n, dest, "tmpfs", "tmpfs", ["nosuid", "mode=755"]))
            mounts.append(_mount(n + 1, f"{dest}/pts", "devpts", "devpts",
                                 ["nosuid", "noexec", "newinstance", "ptmxmode=0666",
                                  "mode=0620"]))
            mounts.append(_mount(n + 2, f"{dest}/shm", "tmpfs", "shm",
                                 ["nosuid", "nodev", "noexec", "mode=1777"]))
        elif kind == "symlink":
            links.append((values[0], values[1]))
    procs = [m.destination.rstrip("/") for m in mounts if m.type == "proc"]
    readonly = tuple(f"{dest}/{name}" for dest in procs for name in PROC_READONLY)
    masked = _masked(mounts, procs, has_null=any(
        kind == "dev" and (values[0].rstrip("/") or "/dev") == "/dev" for kind, values in ops))
    for dest in [m.destination for m in mounts] + [link for _, link in links]:
        if not dest.startswith("/"):
            raise ValueError(f"{dest!r}: destinations must be absolute paths")
    env = [f"{k}={v}" for k, v in os.environ.items() if not k.startswith("PYINIT_")]
    env += [f"{k}={v}" for k, v in args.setenv]
    namespaces = [Namespace(t) for t in ("mount", "pid", "ipc", "uts")]
    if args.unshare_net:
        namespaces.append(Namespace("network"))
    kept = capabilities(args.cap_add, os.geteuid())
    names = {number: name for name, number in caps.CAPS.items()}
    cfg = Config(
        bundle=root, root_path=root, root_readonly=False,
        seccomp=None if args.no_seccomp else _seccomp(
            args.seccomp_profile, [names[n] for n in kept["bounding"]]),
        process=Process(args=args.program, cwd=args.chdir, env=env,
                        user=User(uid=os.getuid(), gid=os.getgid()), no_new_privileges=True,
                        capabilities=kept),
        hostname=args.hostname, mounts=tuple(mounts), namespaces=tuple(namespaces),
        readonly_paths=readonly, masked_paths=masked, cgroup=cgroup_spec(args),
    )
    run = RunOptions(root_tmpfs=True, dev_setup=any(kind == "dev" for kind, _ in ops),
                     symlinks=tuple(links))
    return cfg, run


def _masked(mounts: list[Mount], procs: list[str], has_null: bool) -> tuple[str, ...]:
    """pyinit spec's maskedPaths under every fresh proc and every bind of the host's /sys."""
    names = PROC_MASKED_DIRS + (PROC_MASKED_FILES if has_null else ())
    masked = [f"{dest}/{name}" for dest in procs for name in names]
    for m in mounts:
        if m.type == "bind" and m.source in ("/", "/sys"):
            top = m.destination.rstrip("/") + ("/sys" if m.source == "/" else "")
            masked += [f"{top}/{name}" for name in SYS_MASKED]
    return tuple(masked)


def _seccomp(path: str | None, kept: list[str]) -> Seccomp | None:
    """The sandbox's profile: FILE's linux.seccomp object, or the default for ``kept``."""
    doc = default_profile(kept)
    if path is not None:
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


def main(argv: list[str], start_ns: int, parser_class: type[argparse.ArgumentParser]) -> int:
    usage = parser(parser_class)
    args = usage.parse_args(argv)
    program = args.program[1:] if args.program[:1] == ["--"] else args.program
    if not program:
        usage.error("no PROGRAM given (usage: pyinit sandbox [OPTIONS] -- PROGRAM [ARGS...])")
    args.program = program
    root = tempfile.mkdtemp(prefix="pyinit-sandbox-")
    try:
        cfg, run = build(args, root)
    except ValueError as exc:
        os.rmdir(root)
        usage.error(str(exc))
    return _run(cfg, run, args, start_ns, root)


def _run(cfg: Config, run: RunOptions, args: argparse.Namespace, start_ns: int,
         root: str) -> NoReturn:
    from pyinit import container

    opts = cli.Options()
    opts.grace = args.grace
    opts.log_format = args.log_format
    opts.log_level = args.log_level

    def cleanup() -> None:
        # The tmpfs lived in the sandbox's mount namespace: on the host there
        # is only the empty directory. rmdir, never anything recursive.
        try:
            os.rmdir(root)
        except OSError:
            pass

    container.run_config(cfg, opts, start_ns, "sandbox", cleanup=cleanup, run=run)
