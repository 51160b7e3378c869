"""``pyinit run``, ``spec``, ``check``, ``diagnose`` and ``sandbox``.

Imported only when the first argument names one of them, so the init's
start-up path (``pyinit -- PROGRAM``) never pays for argparse. ``pyinit run``
does not either when its command line is plain (:func:`_fast_run`): argparse
is imported only for ``--help``, an error or anything unusual, and then parses
the whole command line itself, so help, errors and exit codes are argparse's.
"""

from __future__ import annotations

import os
import sys

from pyinit import cli

TYPE_CHECKING = False  # typing costs 6 ms at start-up; mypy reads the name
if TYPE_CHECKING:
    import argparse
    from typing import Any, NoReturn

    from pyinit.oci.config import RunOptions

EXIT_CHECK_FAILED = 1


def parser_class() -> type[argparse.ArgumentParser]:
    """argparse's parser, with pyinit's one-line usage errors (imported on demand)."""
    import argparse

    class Formatter(argparse.HelpFormatter):
        """argparse's, asking the terminal's width only when it formats something.

        argparse makes a formatter for every ``add_argument`` (to check the
        metavar), and each asked the terminal (importing shutil, with bz2 and
        lzma): 8 of the 20 ms ``pyinit sandbox``'s seventy options took to
        define, in every run. Only ``format_help`` uses the width.
        """

        def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                     width: int | None = None) -> None:
            super().__init__(prog, indent_increment, max_help_position,
                             width=80 if width is None else width)
            self._ask = (max_help_position, width is None)

        def format_help(self) -> str:
            max_help_position, ask = self._ask
            if ask:  # what HelpFormatter.__init__ does with width=None
                import shutil

                self._width = shutil.get_terminal_size().columns - 2
                self._max_help_position = min(max_help_position,
                                              max(self._width - 20, self._indent_increment * 2))
            return super().format_help()

    class Parser(argparse.ArgumentParser):
        """A usage error is one line, as the init's own (``pyinit: error: ... (see 'pyinit
        --help')``), naming the command whose help to read; exit status 2."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("formatter_class", Formatter)
            super().__init__(*args, **kwargs)

        def error(self, message: str) -> NoReturn:
            sys.stderr.write(f"{self.prog}: error: {message} (see '{self.prog} --help')\n")
            sys.exit(cli.EXIT_USAGE)

    return Parser


# pyinit run's options: (dest, takes a value, choices or None).
_RUN_OPTIONS: dict[str, tuple[str, bool, tuple[str, ...] | None]] = {
    "--bundle": ("bundle", True, None),
    "-b": ("bundle", True, None),
    "--id": ("id", True, None),
    "--console-socket": ("console_socket", True, None),
    "--no-pivot": ("no_pivot", False, None),
    "--sysfs-fallback": ("sysfs_fallback", False, None),
    "--cgroup-manager": ("cgroup_manager", True, ("cgroupfs", "systemd")),
    "--grace": ("grace", True, None),
    "--log-format": ("log_format", True, cli.LOG_FORMATS),
    "--log-level": ("log_level", True, cli.LOG_LEVELS),
}


def _fast_run(argv: list[str]) -> dict[str, Any] | None:
    """``pyinit run``'s options as argparse would parse them, or None for argparse to do it.

    Only the forms whose meaning is beyond doubt: ``--opt value``, ``--opt=value``,
    ``-b value`` and the flags, each value valid. Anything else (help, an unknown
    or abbreviated option, a missing or bad value, a value that starts with ``-``)
    is left to argparse, for its exact message and exit status.
    """
    args: dict[str, Any] = {"bundle": ".", "id": None, "console_socket": None,
                            "no_pivot": False, "sysfs_fallback": False,
                            "cgroup_manager": "cgroupfs", "grace": 5.0,
                            "log_format": "auto", "log_level": "info"}
    i = 0
    while i < len(argv):
        option, eq, value = argv[i].partition("=")
        if option not in _RUN_OPTIONS or (eq and option == "-b"):
            return None
        dest, takes_value, choices = _RUN_OPTIONS[option]
        if not takes_value:
            if eq:
                return None
            args[dest] = True
            i += 1
            continue
        if not eq:
            if i + 1 >= len(argv):
                return None
            value = argv[i + 1]
            i += 1
        i += 1
        if value.startswith("-") or (choices is not None and value not in choices):
            return None
        if dest == "grace":
            try:
                args[dest] = float(value)
            except ValueError:
                return None
        else:
            args[dest] = value
    return args


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The top parser, and each command's."""
    _Parser = parser_class()
    top = _Parser(prog="pyinit", description="pyinit's OCI bundle commands")
    sub = top.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="run an OCI bundle with pyinit as its PID 1",
                         description="Create the namespaces, set the root filesystem up "
                         "from config.json, and supervise process.args as PID 1.")
    run.add_argument("--bundle", "-b", default=".", help="bundle directory (default: .)")
    run.add_argument("--id", default=None, help="a name for the container, for the logs")
    run.add_argument("--console-socket", metavar="PATH", default=None,
                     help="with process.terminal: send the pty's master to the unix socket "
                     "PATH (SCM_RIGHTS) instead of relaying it, as runc does")
    run.add_argument("--no-pivot", action="store_true",
                     help="MS_MOVE and chroot instead of pivot_root (for roots pivot_root "
                     "refuses); the host's /proc and /sys are hidden first")
    run.add_argument("--sysfs-fallback", action="store_true",
                     help="when a user namespace may not mount sysfs, bind the host's /sys "
                     "read-only instead (as crun does)")
    run.add_argument("--cgroup-manager", choices=("cgroupfs", "systemd"), default="cgroupfs",
                     help="cgroupfs (the default): the cgroup filesystem, as runc's cgroupfs "
                     "driver; systemd: a transient scope asked of systemd over D-Bus, "
                     "cgroupsPath slice:prefix:name (docs/cgroups.md)")
    run.add_argument("--grace", type=float, default=5.0,
                     help="seconds between SIGTERM and SIGKILL at shutdown (default 5)")
    run.add_argument("--log-format", choices=cli.LOG_FORMATS, default="auto")
    run.add_argument("--log-level", choices=cli.LOG_LEVELS, default="info")
    spec = sub.add_parser("spec", help="write a default config.json",
                          description="Write a default config.json, like `runc spec`.")
    spec.add_argument("--bundle", "-b", default=".", help="where to write it (default: .)")
    spec.add_argument("--rootless", action="store_true",
                      help="a user namespace mapping your uid and gid to root, as "
                      "`runc spec --rootless` writes")
    check = sub.add_parser("check", help="validate config.json and print the setup plan",
                           description="Validate without touching anything: every problem "
                           "with its JSON path, then the setup plan.")
    check.add_argument("--bundle", "-b", default=".")
    # The options of run's that change its plan: check plans exactly what run would.
    check.add_argument("--no-pivot", action="store_true", help="as pyinit run's")
    check.add_argument("--sysfs-fallback", action="store_true", help="as pyinit run's")
    diag = sub.add_parser("diagnose", help="probe this environment (and a bundle) for what "
                          "will and will not mount",
                          description="Probe the environment: PID 1, capabilities, user "
                          "namespace, seccomp, cgroups, propagation, what covers /proc and "
                          "/sys, the mount limit, and which filesystems really mount here. "
                          "With --bundle, predict which of its mounts will fail and why.")
    diag.add_argument("--bundle", "-b", default=None)
    diag.add_argument("--json", action="store_true", help="JSON instead of a table")
    sub.add_parser("sandbox", help="run a program in a bubblewrap-style sandbox "
                   "(pyinit sandbox --help)", add_help=False)
    return top, sub.choices


def main(argv: list[str], start_ns: int) -> int:
    if argv[:1] == ["sandbox"]:
        from pyinit import sandbox

        return sandbox.main(argv[1:], start_ns, parser_class)  # argparse only if needed
    fast = _fast_run(argv[1:]) if argv[:1] == ["run"] else None
    if fast is not None:
        from types import SimpleNamespace

        return _run(SimpleNamespace(**fast), start_ns)
    top, commands = _parser()
    args, extra = top.parse_known_args(argv)
    if extra:  # argparse would blame the top parser: point to the command's --help
        commands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "spec":
        return spec(args.bundle, args.rootless)
    if args.command == "check":
        from pyinit.oci.config import RunOptions

        return check(args.bundle, RunOptions(no_pivot=args.no_pivot,
                                             sysfs_fallback=args.sysfs_fallback))
    if args.command == "diagnose":
        return diagnose(args.bundle, args.json)
    return _run(args, start_ns)


def _run(args: Any, start_ns: int) -> int:
    """``pyinit run`` with its parsed options (argparse's namespace, or the fast parser's)."""
    from pyinit import container

    opts = cli.Options()
    opts.grace = args.grace
    opts.log_format = args.log_format
    opts.log_level = args.log_level
    container.run(args.bundle, opts, start_ns, args.id, no_pivot=args.no_pivot,
                  sysfs_fallback=args.sysfs_fallback, console_socket=args.console_socket,
                  cgroup_manager=args.cgroup_manager)


def spec(bundle: str, rootless: bool = False) -> int:
    import json

    from pyinit.oci.spec import default_config
    from pyinit.oci.spec import rootless as make_rootless

    path = os.path.join(bundle, "config.json")
    doc = make_rootless(default_config()) if rootless else default_config()
    try:
        with open(path, "x", encoding="utf-8") as fh:
            json.dump(doc, fh, indent="\t")
            fh.write("\n")
    except FileExistsError:
        sys.stderr.write(f"pyinit spec: {path} exists; remove it first\n")
        return EXIT_CHECK_FAILED
    except OSError as exc:
        sys.stderr.write(f"pyinit spec: cannot write {path}: {exc.strerror}\n")
        return EXIT_CHECK_FAILED
    return 0


def diagnose(bundle: str | None, as_json: bool) -> int:
    from pyinit import diagnose as d

    env = d.report()
    if bundle is not None:
        env["bundle"] = {"path": os.path.abspath(bundle), "predicted_failures":
                         d.predict(bundle, env)}
    if as_json:
        import json

        sys.stdout.write(json.dumps(env, indent=2) + "\n")
    else:
        for key, value in env.items():
            if isinstance(value, dict):
                sys.stdout.write(f"{key}:\n")
                for sub, item in value.items():
                    sys.stdout.write(f"  {sub:<20} {_show(item)}\n")
            else:
                sys.stdout.write(f"{key:<22} {_show(value)}\n")
    failures = env.get("bundle", {}).get("predicted_failures")
    return EXIT_CHECK_FAILED if failures else 0


def _show(value: object) -> str:
    if isinstance(value, list):
        if value and isinstance(value[0], dict):
            return "; ".join(", ".join(f"{k}={v}" for k, v in item.items()) for item in value)
        return ", ".join(str(v) for v in value) or "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def check(bundle: str, run: RunOptions | None = None) -> int:
    """Exactly what ``pyinit run`` (with ``run``'s options) would refuse, and otherwise
    its plan: the same plan.build, so every refusal is decided in one place."""
    from pyinit.errors import SetupError
    from pyinit.linux import host
    from pyinit.oci.config import ConfigError, RunOptions, load
    from pyinit.rootfs import devices, plan

    try:
        cfg = load(bundle)
        setup = plan.build(cfg, run or RunOptions(), host.probe())
        devices.check_host_nodes(cfg)
    except ConfigError as exc:
        for path, reason in exc.problems:
            sys.stdout.write(f"{path}: {reason}\n")
        return EXIT_CHECK_FAILED
    except SetupError as exc:
        from pyinit.diagnose import explain_error

        exc.hint = exc.hint or explain_error(exc, {}, evidence=False)
        sys.stdout.write(exc.line() + "\n")
        return EXIT_CHECK_FAILED
    sys.stdout.write(f"config.json is valid; the setup plan for {cfg.root_path}:\n")
    for i, step in enumerate(setup.steps, 1):
        sys.stdout.write(f"{i:3}. {step.kind:<11} {step.summary}\n")
    if cfg.seccomp is not None:
        sc = cfg.seccomp
        sys.stdout.write(f"then, just before exec: a seccomp filter (default "
                         f"{sc.default_action.name}, {len(sc.syscalls)} rules, architectures "
                         f"{', '.join(sc.architectures) or 'native only'})\n")
    return 0
