"""pyinit's entry point.

The first statements block every signal. Until they run, a SIGTERM kills
pyinit (outside a PID namespace) or is dropped by the kernel (as PID 1 of a
namespace, where signals without a handler are discarded); once they have
run, every signal stays pending until the supervisor forwards it. So nothing
may come before them, and ``pyinit/__init__.py`` imports nothing.

Then the command line is parsed and the workload spawned at once, before
trio and structlog (about 300 ms of imports) are loaded; the supervisor
catches up and finds the signals and SIGCHLDs that arrived meanwhile pending.
Nothing is imported before the spawn that the spawn does not need: not
``os`` (``posix`` is its C half), not ``ctypes`` (pyinit/linux/prctl.py), and,
through the installed ``pyinit`` command, not even ``site`` (scripts/pyinit:
Python runs with ``-S`` and pyinit runs ``site`` after the spawn).
tests/integration/test_launcher.py holds the list.
"""

import _signal

_INHERITED_MASK = _signal.pthread_sigmask(_signal.SIG_BLOCK, _signal.valid_signals())

import posix  # noqa: E402  (after the mask on purpose; os costs 1.5 ms, see pyinit/spawn.py)
import sys  # noqa: E402
import time  # noqa: E402

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import NoReturn

_START_NS = time.monotonic_ns()
_START_PPID = posix.getppid()


def _ensure_std_fds() -> None:
    """Give closed 0, 1 or 2 a /dev/null, so no later descriptor lands there."""
    for fd in (0, 1, 2):
        try:
            posix.fstat(fd)
        except OSError:
            null = posix.open("/dev/null", posix.O_RDWR)
            if null != fd:
                posix.dup2(null, fd)
                posix.close(null)


def _usage_error(message: str) -> int:
    """Say so on fd 2 and return status 2, even when nobody reads fd 2.

    Written to the descriptor, not through sys.stderr: a failed write there
    stays in its buffer, the interpreter's exit flushes it again, fails again
    and makes the status 120 (unless PYTHONUNBUFFERED is set).
    """
    from pyinit.cli import EXIT_USAGE

    line = f"pyinit: error: {message} (see 'pyinit --help')\n"
    data = line.encode(getattr(sys.stderr, "encoding", None) or "utf-8", "backslashreplace")
    try:
        while data:
            data = data[posix.write(2, data):]
    except OSError:
        pass
    return EXIT_USAGE


SUBCOMMANDS = ("run", "spec", "check", "diagnose", "sandbox")


def main(argv: list[str] | None = None, *, site_deferred: bool = False,
         launched: bool = False) -> int:
    """pyinit's command line.

    ``site_deferred``: the launcher started Python without ``site`` (``-S``)
    and put pyinit's site-packages on ``sys.path``; ``site`` runs in full once
    the workload is spawned, or before a subcommand. ``launched``: started by
    the installed command (scripts/pyinit-py), whose process is named pyinit.
    """
    if launched:
        _name_process()
    try:
        try:
            return _main(argv, site_deferred)
        finally:
            if sys.stdout is not None:  # None when pyinit started with fd 1 closed
                sys.stdout.flush()  # here, where EPIPE can still be handled, not at exit
    except BrokenPipeError:
        if not _reader_gone():
            raise
        _die_of_sigpipe()


def _name_process() -> None:
    """Name this process ``pyinit``, as the kernel did when it ran the launcher itself.

    The kernel names a process after the file it executes: ``pyinit`` when it
    ran the launcher script through its ``#!`` line, the interpreter's name
    now that the launcher, a shell script, runs the interpreter (see
    scripts/pyinit). ``ps``, ``pgrep pyinit`` and pyinit's own processes in a
    container (forked from this one) go by that name.
    """
    try:
        comm = posix.open("/proc/self/comm", posix.O_WRONLY | posix.O_CLOEXEC)
    except OSError:  # no /proc: the name stays the interpreter's
        return
    try:
        posix.write(comm, b"pyinit")
    except OSError:
        pass
    finally:
        posix.close(comm)


def _reader_gone() -> bool:
    """Whether stdout or stderr is a pipe (or socket) whose reader went away."""
    import select

    poll = select.poll()
    for fd in (1, 2):
        poll.register(fd, select.POLLOUT)
    return any(revents & select.POLLERR for _fd, revents in poll.poll(0))


def _die_of_sigpipe() -> "NoReturn":
    """End as ``ls | head`` ends for ``ls``: killed by SIGPIPE, without a word.

    A shell then reports 141 (128 + SIGPIPE), and a parent sees the process
    killed by signal 13, as for any C program whose reader went away. Python
    ignores SIGPIPE (so that EPIPE becomes BrokenPipeError), and pyinit blocks
    every signal at its first line: restore the default action, then unblock.
    If pyinit survives that (PID 1 of a PID namespace cannot be killed by its
    own signal), it exits 141.
    """
    _signal.signal(_signal.SIGPIPE, _signal.SIG_DFL)
    posix.kill(posix.getpid(), _signal.SIGPIPE)
    _signal.pthread_sigmask(_signal.SIG_UNBLOCK, {_signal.SIGPIPE})
    posix._exit(128 + _signal.SIGPIPE)


def load_site() -> None:
    """What Python's start-up skipped under ``-S``: ``site.main()``.

    The virtualenv's (or the system's) site directories and their ``.pth``
    files, ``sitecustomize``: everything a plain ``python`` has before its
    first line, so that trio, structlog and the subcommands import exactly as
    they would there.
    """
    import site

    site.main()


def _main(argv: list[str] | None, site_deferred: bool) -> int:
    from pyinit import cli, spawn

    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in SUBCOMMANDS:
        if site_deferred:
            load_site()
        from pyinit import commands

        return commands.main(args, _START_NS)
    try:
        opts = cli.parse(args, spawn.environ())
    except cli.UsageError as exc:
        return _usage_error(str(exc))
    if opts.action == "help":
        sys.stdout.write(cli.HELP)
        return 0
    if opts.action == "version":
        sys.stdout.write(cli.VERSION + "\n")
        return 0

    _ensure_std_fds()
    mask = frozenset(_INHERITED_MASK)
    reset = spawn.signals_to_reset()
    is_pid1 = posix.getpid() == 1
    subreaper_error: OSError | None = None

    if opts.pdeathsig is not None:
        from pyinit.linux import prctl

        prctl.set_pdeathsig(opts.pdeathsig)
        if posix.getppid() != _START_PPID:
            # The parent died before the request took effect: deliver it
            # ourselves. It stays pending (blocked) until the supervisor runs.
            posix.kill(posix.getpid(), opts.pdeathsig)

    if opts.exec_mode:
        return spawn.exec_in_place(opts.argv, mask=mask, reset=reset,
                                   preserve_fds=opts.preserve_fds)

    if not is_pid1 and opts.subreaper:
        # Before the fork, so that no instruction of the workload runs before
        # pyinit adopts its orphans. pyinit.linux.prctl: no ctypes (3 ms).
        from pyinit.linux import prctl

        try:
            prctl.set_child_subreaper()
        except OSError as exc:
            subreaper_error = exc

    child = spawn.spawn(opts.argv, mask=mask, reset=reset, preserve_fds=opts.preserve_fds,
                        clock_ns=time.monotonic_ns())
    if child.exec_errno:
        # The child already printed one line and exits 126 or 127; nothing
        # else runs, so there is nothing to supervise.
        _, status = posix.waitpid(child.pid, 0)
        return posix.waitstatus_to_exitcode(status)

    from pyinit import early

    early.run(
        opts,
        child,
        early.Startup(
            start_ns=_START_NS,
            inherited_mask=mask,
            is_pid1=is_pid1,
            subreaper_error=subreaper_error,
            inherited_ignored=frozenset(
                s for s in (_signal.SIGINT, _signal.SIGQUIT)
                if _signal.getsignal(s) == _signal.SIG_IGN
            ),
        ),
        site_deferred=site_deferred,
    )


if __name__ == "__main__":
    sys.exit(main())
