"""Command line of ``pyinit [OPTIONS] -- PROGRAM [ARGS...]``.

A small hand-written parser instead of argparse: ``import argparse`` costs
about 25 ms here, and this code runs before the workload is spawned. Every
error is a one-line :class:`UsageError` that names the option (or the
environment variable) and the reason; the caller exits 2 with it.
"""

from __future__ import annotations

from pyinit import __version__

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (2 ms)
if TYPE_CHECKING:  # collections.abc imports collections: 1 ms of start-up
    from collections.abc import Mapping, Sequence

EXIT_USAGE = 2

HELP = """\
usage: pyinit [OPTIONS] [--] PROGRAM [ARGS...]

Run PROGRAM as the workload of a container init: forward every signal to it,
reap every zombie, shut the rest down gracefully when it exits, and exit with
its status (128+N when signal N killed it).

options:
  -g, --kill-group        forward signals to the workload's process group, not
                          just to the workload (env PYINIT_KILL_GROUP=1)
  --grace SECONDS         after the workload exits, or pyinit gets SIGTERM,
                          SIGINT or SIGQUIT, the other processes get SIGTERM and,
                          SECONDS later, SIGKILL (default 5; env PYINIT_GRACE)
  -e, --remap-exit FROM:TO
                          exit with TO when the workload's status is FROM
                          (0..255, repeatable; e.g. 143:0 for Java)
  -p, --pdeathsig SIGNAL  ask the kernel for SIGNAL when pyinit's parent dies,
                          and handle it like any other signal
  --no-subreaper          when not PID 1, do not become a child subreaper
                          (orphans are then not reaped by pyinit)
  --preserve-fds N        pass file descriptors 3..3+N-1 to the workload (all
                          others beyond 0, 1 and 2 are closed)
  --exec                  do the setup, then replace pyinit with PROGRAM
                          (no supervision; for images that have an init)
  --log-format FORMAT     json, console or auto (default: console on a
                          terminal, json otherwise; env PYINIT_LOG_FORMAT)
  --log-level LEVEL       debug, info, warning or error (default info;
                          env PYINIT_LOG_LEVEL)
  -h, --help              show this help and exit
  -V, --version           show the version and exit

exit status: the workload's, 128+N if signal N killed it, 126 if PROGRAM is not
executable, 127 if it is not found, 2 for a usage error, 1 if pyinit itself
failed.
"""

VERSION = f"pyinit {__version__}"

LOG_FORMATS = ("auto", "json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error")


class UsageError(Exception):
    """A bad command line or environment variable; the message is one line."""


class Options:
    """The parsed command line. A plain class: dataclasses imports inspect."""

    __slots__ = (
        "action",
        "argv",
        "exec_mode",
        "grace",
        "kill_group",
        "log_format",
        "log_level",
        "pdeathsig",
        "preserve_fds",
        "remap",
        "subreaper",
    )

    def __init__(self) -> None:
        self.action = "init"  # or "help", "version"
        self.argv: list[str] = []
        self.exec_mode = False
        self.grace = 5.0
        self.kill_group = False
        self.log_format = "auto"
        self.log_level = "info"
        self.pdeathsig: int | None = None
        self.preserve_fds = 0
        self.remap: dict[int, int] = {}
        self.subreaper = True


def _flag_env(env: Mapping[str, str], var: str) -> bool:
    value = env.get(var, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise UsageError(f"{var}={env[var]!r}: expected 1/0, true/false, yes/no or on/off")


def _grace(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{where}: {text!r} is not a number of seconds") from None
    if not (0 <= value <= 86400) or value != value:
        raise UsageError(f"{where}: {text!r} must be between 0 and 86400 seconds")
    return value


def _remap(text: str, where: str) -> tuple[int, int]:
    left, sep, right = text.partition(":")
    if not sep or not left.strip().isdigit() or not right.strip().isdigit():
        raise UsageError(f"{where}: {text!r} is not FROM:TO (two exit codes 0..255)")
    src, dst = int(left), int(right)
    if src > 255 or dst > 255:
        raise UsageError(f"{where}: {text!r}: exit codes are 0..255")
    return src, dst


def _choice(text: str, choices: Sequence[str], where: str) -> str:
    value = text.strip().lower()
    if value not in choices:
        raise UsageError(f"{where}: {text!r} is not one of {', '.join(choices)}")
    return value


# option name -> (takes a value, attribute setter)
_LONG_WITH_VALUE = {
    "--grace",
    "--remap-exit",
    "--pdeathsig",
    "--preserve-fds",
    "--log-format",
    "--log-level",
}
_LONG_FLAGS = {"--kill-group", "--no-subreaper", "--exec", "--help", "--version"}
_SHORT = {"g": "--kill-group", "h": "--help", "V": "--version", "e": "--remap-exit",
          "p": "--pdeathsig"}


def _apply(opts: Options, option: str, value: str | None) -> None:
    where = option
    if option == "--kill-group":
        opts.kill_group = True
    elif option == "--no-subreaper":
        opts.subreaper = False
    elif option == "--exec":
        opts.exec_mode = True
    elif option == "--help":
        opts.action = "help"
    elif option == "--version":
        opts.action = "version"
    elif value is None:  # pragma: no cover - guarded by the caller
        raise UsageError(f"{option} needs a value")
    elif option == "--grace":
        opts.grace = _grace(value, where)
    elif option == "--remap-exit":
        src, dst = _remap(value, where)
        opts.remap[src] = dst
    elif option == "--pdeathsig":
        from pyinit import signals  # only here: its name tables cost 0.3 ms of start-up

        try:
            opts.pdeathsig = signals.parse(value)
        except ValueError as exc:
            raise UsageError(f"{where}: {exc}") from None
    elif option == "--preserve-fds":
        if not value.isdigit() or int(value) > 65536:
            raise UsageError(f"{where}: {value!r} is not a count of file descriptors")
        opts.preserve_fds = int(value)
    elif option == "--log-format":
        opts.log_format = _choice(value, LOG_FORMATS, where)
    elif option == "--log-level":
        opts.log_level = _choice(value, LOG_LEVELS, where)


def parse(argv: Sequence[str], env: Mapping[str, str]) -> Options:
    """Parse pyinit's arguments (without argv[0]) and its environment variables.

    Options stop at ``--`` or at the first argument that is not an option, as
    with dumb-init, so ``pyinit sh -c 'exit 3'`` works as well as
    ``pyinit -- sh -c 'exit 3'`` (the form docker's ``--init`` uses).
    """
    opts = Options()
    # Environment first, so the command line overrides it.
    opts.kill_group = _flag_env(env, "PYINIT_KILL_GROUP")
    if env.get("PYINIT_GRACE", "").strip():
        opts.grace = _grace(env["PYINIT_GRACE"], "PYINIT_GRACE")
    if env.get("PYINIT_LOG_FORMAT", "").strip():
        opts.log_format = _choice(env["PYINIT_LOG_FORMAT"], LOG_FORMATS, "PYINIT_LOG_FORMAT")
    if env.get("PYINIT_LOG_LEVEL", "").strip():
        opts.log_level = _choice(env["PYINIT_LOG_LEVEL"], LOG_LEVELS, "PYINIT_LOG_LEVEL")

    i = 0

    def separate_value(option: str) -> str:
        """``--grace 5``, ``-e 143:0``: the value is the next argument."""
        nonlocal i
        i += 1
        if i >= len(argv):
            raise UsageError(f"{option} needs a value")
        return argv[i]

    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if arg.startswith("--"):
            option, eq, value = arg.partition("=")
            if option in _LONG_FLAGS:
                if eq:
                    raise UsageError(f"{option} takes no value")
                _apply(opts, option, None)
            elif option in _LONG_WITH_VALUE:
                _apply(opts, option, value if eq else separate_value(option))
            else:
                raise UsageError(f"unknown option {option!r}")
        elif arg.startswith("-") and len(arg) > 1:
            j = 1
            while j < len(arg):
                letter = arg[j]
                if letter not in _SHORT:
                    raise UsageError(f"unknown option '-{letter}'")
                option = _SHORT[letter]
                if option in _LONG_WITH_VALUE:  # -e143:0 or -e 143:0
                    _apply(opts, option, arg[j + 1:] or separate_value(f"-{letter}"))
                    break
                _apply(opts, option, None)
                j += 1
        else:
            break
        i += 1

    opts.argv = list(argv[i:])
    if opts.action == "init" and not opts.argv:
        raise UsageError("no PROGRAM given (usage: pyinit [OPTIONS] -- PROGRAM [ARGS...])")
    return opts
