"""Start the workload, before trio or structlog are imported.

Why fork+exec by hand rather than ``os.posix_spawn`` or ``subprocess``:

* glibc's posix_spawn sets its internal signals 32 and 33 to SIG_IGN in the
  child, and ``setsigdef`` cannot undo it, so the workload would start with
  two ignored signals its parent never ignored.
* ``subprocess`` resets only SIGPIPE and SIGXFSZ and cannot restore the
  signal mask; pyinit blocks every signal, and the workload must get the mask
  pyinit inherited instead.
* A fork from the main thread before any thread exists is safe, and in the
  child we can put everything back exactly: Python's own dispositions
  (SIGINT's handler, SIGPIPE and SIGXFSZ ignored) go back to default, signals
  pyinit's parent ignored stay ignored, and the mask is the inherited one.

Only C modules are used here: ``_signal`` (see :mod:`pyinit.signals`) and
``posix``, the C half of ``os``. ``import os`` costs 1.5 ms before the
workload's spawn (its ``environ`` is a ``Mapping``, which loads
``_collections_abc``), and the init mode spawns before anything else loads it.
"""

from __future__ import annotations

import _signal
import errno
import posix
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (2 ms)
if TYPE_CHECKING:  # collections.abc imports collections: 1 ms of start-up
    from collections.abc import Callable, Iterable, Mapping, Sequence

EXIT_NOT_FOUND = 127
EXIT_NOT_EXECUTABLE = 126
_ABORTED = b"\xff\xff\xff\xff"  # in place of an errno: ``before_exec`` failed
# Written just before the exec. A child that closes the pipe without it
# never got there: ``prepare`` (the workload's credentials) exited having
# said why, and the caller must not take the workload as started.
_EXECING = b"exec"


class Spawned:
    """What the supervisor needs to know about the started workload."""

    __slots__ = ("aborted", "argv", "exec_errno", "foreground", "pid", "spawned_ns")

    def __init__(self, pid: int, argv: Sequence[str], foreground: bool, spawned_ns: int,
                 exec_errno: int, aborted: bool = False) -> None:
        self.pid = pid
        self.argv = list(argv)
        self.foreground = foreground
        self.spawned_ns = spawned_ns
        self.exec_errno = exec_errno
        # ``prepare`` or ``before_exec`` failed: the child exited without its
        # exec, having said why
        self.aborted = aborted


def signals_to_reset() -> frozenset[int]:
    """Signals whose disposition Python changed at start-up, to reset in the workload.

    Python ignores SIGPIPE and SIGXFSZ and installs a handler for SIGINT (only
    when SIGINT was not ignored). Every other disposition is still the one
    pyinit inherited, and exec turns handlers back into SIG_DFL, so leaving
    the rest alone hands the workload exactly what pyinit's parent gave.
    """
    reset = {_signal.SIGPIPE, _signal.SIGXFSZ}
    for sig in _signal.valid_signals():
        try:
            handler = _signal.getsignal(sig)
        except (OSError, ValueError):
            continue
        if callable(handler):
            reset.add(sig)
    return frozenset(reset)


def exec_exit_code(err: int) -> int:
    """Shell convention: 127 when the program is not found, 126 otherwise."""
    return EXIT_NOT_FOUND if err in (errno.ENOENT, errno.ENOTDIR) else EXIT_NOT_EXECUTABLE


def exec_error_line(program: str, err: int) -> str:
    verb = "run" if exec_exit_code(err) == EXIT_NOT_FOUND else "execute"
    where = " (not found in PATH)" if err in (errno.ENOENT, errno.ENOTDIR) \
        and "/" not in program else ""
    return f"pyinit: cannot {verb} {program!r}: {posix.strerror(err)}{where}\n"


def environ() -> Mapping[str, str]:
    """pyinit's environment: ``os.environ`` once ``os`` is loaded, its source until then.

    ``posix.environ`` is what ``os.environ`` is built from (bytes, as the
    kernel gave them), decoded the way ``os`` decodes it. It does not follow
    later changes to ``os.environ``, which is why it is only read while ``os``
    is not loaded (no one can have changed it then).
    """
    os_module = sys.modules.get("os")
    if os_module is not None:
        loaded: Mapping[str, str] = os_module.environ
        return loaded
    encoding, errors = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()
    return {key.decode(encoding, errors): value.decode(encoding, errors)
            for key, value in posix.environ.items()}


def _exec_path(env: Mapping[str, str]) -> list[str]:
    """``os.get_exec_path``: PATH's directories, or the C library's default."""
    path = env.get("PATH")
    return (path if path is not None else "/bin:/usr/bin").split(":")


def _is_file(path: str) -> bool:
    """``os.path.isfile``."""
    try:
        return (posix.stat(path).st_mode & 0o170000) == 0o100000  # S_ISREG
    except (OSError, ValueError):
        return False


def _exec(argv: Sequence[str], env: Mapping[str, str] | None = None) -> None:
    """execve ``argv``, searching PATH like a shell: raises the OSError that explains why not.

    Unlike ``execvp``, a directory in PATH that cannot be searched (EACCES,
    e.g. another user's home) is skipped rather than reported, so a program
    found nowhere is ENOENT (127); EACCES (126) means a file that exists but
    cannot be executed.
    """
    program = argv[0]
    env = environ() if env is None else env
    if "/" in program:
        posix.execve(program, list(argv), env)
    failure: OSError | None = None
    for directory in _exec_path(env):
        directory = directory or "."
        candidate = f"{directory}{'' if directory.endswith('/') else '/'}{program}"
        try:
            posix.execve(candidate, list(argv), env)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                continue
            if exc.errno == errno.EACCES and not _is_file(candidate):
                continue  # the directory was not searchable: not found there
            failure = failure or exc
    raise failure or FileNotFoundError(errno.ENOENT, posix.strerror(errno.ENOENT), program)


def _prepare_fds(preserve_fds: int, keep: Iterable[int] = ()) -> None:
    """Close every descriptor above 2 except the preserved ones (and those in ``keep``)."""
    first = 3 + preserve_fds
    for fd in range(3, first):
        try:
            posix.set_inheritable(fd, True)
        except OSError:
            pass
    # closerange uses the close_range() system call where it exists.
    start = first
    for fd in sorted(k for k in set(keep) if k >= first):
        posix.closerange(start, fd)
        start = fd + 1
    posix.closerange(start, 2**31 - 1)


def _restore_signals(reset: Iterable[int], mask: Iterable[int]) -> None:
    # Dispositions first, while everything is still blocked, so no Python
    # handler can run in the child; then the inherited mask.
    for sig in reset:
        _signal.signal(sig, _signal.SIG_DFL)
    _signal.pthread_sigmask(_signal.SIG_SETMASK, mask)


def _owns_terminal() -> bool:
    """stdin is a terminal and pyinit's process group is its foreground.

    Only then does the workload take the foreground: pyinit started in the
    background (``pyinit -- cmd &``) must not steal the terminal from the
    shell that started it, as tini does.
    """
    try:
        return posix.tcgetpgrp(0) == posix.getpgrp()
    except OSError:  # not a terminal, or not our controlling one
        return False


def spawn(argv: Sequence[str], *, mask: Iterable[int], reset: Iterable[int],
          preserve_fds: int, clock_ns: int, env: dict[str, str] | None = None,
          prepare: Callable[[], None] | None = None, new_session: bool = False,
          gate: Callable[[], None] | None = None,
          before_exec: Callable[[], int] | None = None,
          before_exec_fds: Iterable[int] = ()) -> Spawned:
    """Fork and exec ``argv`` in its own process group (in the terminal's foreground).

    ``env`` replaces pyinit's environment (PATH is searched in it), and
    ``prepare`` runs in the child just before the exec (``pyinit run`` sets
    the OCI process's user, limits and capabilities there). Returns once the
    child has either exec'd or failed to; a failure is reported through a
    close-on-exec pipe as the errno.

    ``gate`` runs in the parent after the fork, while the child waits between
    ``prepare`` and the exec: ``pyinit run``'s PID 1 locks itself down there,
    so that the workload never runs next to a PID 1 that still holds
    anything. If it raises, the child exits without exec'ing.

    ``before_exec`` runs in the child after the gate, with every descriptor
    closed but 0, 1, 2, the preserved ones and ``before_exec_fds``, and
    signals still blocked (``pyinit run`` runs the startContainer hooks
    there). A non-zero return is the child's exit status: it exits without
    exec'ing, and the result says ``aborted``.

    ``new_session``: the child calls setsid() instead (``pyinit run`` and
    ``sandbox``): it has no controlling terminal, so it can never push input
    into the caller's with TIOCSTI nor take it over. The init mode keeps job
    control, because there the terminal belongs to the workload by design.
    """
    mask = frozenset(mask)
    reset = frozenset(reset)
    foreground = not new_session and _owns_terminal()
    read_end, write_end = posix.pipe2(posix.O_CLOEXEC)
    # The preserved range must not swallow our own pipe.
    if write_end < 3 + preserve_fds:
        import fcntl  # only here (--preserve-fds): an extension module to load

        moved = fcntl.fcntl(write_end, fcntl.F_DUPFD_CLOEXEC, 3 + preserve_fds)
        posix.close(write_end)
        write_end = moved
    gate_r, gate_w = posix.pipe2(posix.O_CLOEXEC) if gate is not None else (-1, -1)
    pid = posix.fork()
    if pid == 0:  # the workload-to-be
        code = 1
        try:
            posix.close(read_end)
            if gate_w >= 0:
                posix.close(gate_w)
            if new_session:
                posix.setsid()
            else:
                posix.setpgid(0, 0)
            if foreground:
                try:
                    # SIGTTOU is still blocked, so this works from the background too.
                    posix.tcsetpgrp(0, posix.getpid())
                except OSError:
                    pass
            if prepare is not None:
                prepare()
            if gate_r >= 0 and posix.read(gate_r, 1) != b"G":
                posix._exit(code)  # the parent could not finish its side
            if before_exec is not None:
                _prepare_fds(preserve_fds, keep={write_end, *before_exec_fds})
                code = before_exec()
                if code:
                    posix.write(write_end, _ABORTED)
                    posix._exit(code)
            _prepare_fds(preserve_fds, keep={write_end})
            _restore_signals(reset, mask)
            posix.write(write_end, _EXECING)
            _exec(argv, env)
        except OSError as exc:
            err = exc.errno or errno.EINVAL
            code = exec_exit_code(err)
            try:
                posix.write(write_end, err.to_bytes(4, "little"))
                posix.write(2, exec_error_line(argv[0], err).encode(errors="replace"))
            except OSError:
                pass
        except Exception as exc:  # never a silent exit: say why, as prepare's own failures do
            try:
                posix.write(2, f"pyinit: {type(exc).__name__}: {exc}\n".encode(errors="replace"))
            except OSError:
                pass
        finally:
            posix._exit(code)
    posix.close(write_end)
    if gate is not None:
        posix.close(gate_r)
        try:
            gate()
            try:
                posix.write(gate_w, b"G")
            except BrokenPipeError:
                pass  # prepare() failed in the child, which has said why and exited
        finally:
            posix.close(gate_w)  # on failure: EOF, and the child exits
    if not new_session:  # setsid() fails in a child that already leads a group
        try:
            posix.setpgid(pid, pid)  # also in the parent, so either order of the race works
        except OSError:
            pass
    spawned_ns = clock_ns
    data = b""
    while True:
        try:
            chunk = posix.read(read_end, 4)
        except InterruptedError:  # pragma: no cover - all signals are blocked
            continue
        if not chunk:
            break
        data += chunk
    posix.close(read_end)
    exec_errno = 0
    if data[:4] == _EXECING:  # it got to its exec; an errno after the marker says why not
        aborted = False
        exec_errno = int.from_bytes(data[4:8], "little") if len(data) >= 8 else 0
    elif len(data) >= 4 and data[:4] != _ABORTED:  # an OSError before it got there
        aborted = False
        exec_errno = int.from_bytes(data[:4], "little")
    else:  # before_exec failed, or the child exited before its exec, having said why
        aborted = True
    return Spawned(pid, argv, foreground, spawned_ns, exec_errno, aborted)


def exec_in_place(argv: Sequence[str], *, mask: Iterable[int], reset: Iterable[int],
                  preserve_fds: int) -> int:
    """``--exec``: replace pyinit with the workload. Returns only on failure."""
    _prepare_fds(preserve_fds)
    try:
        _restore_signals(reset, mask)
        _exec(argv)
    except OSError as exc:
        # Back to everything blocked: we are still pyinit.
        _signal.pthread_sigmask(_signal.SIG_BLOCK, _signal.valid_signals())
        err = exc.errno or errno.EINVAL
        sys.stderr.write(exec_error_line(argv[0], err))
        return exec_exit_code(err)
    raise AssertionError("unreachable")  # pragma: no cover
