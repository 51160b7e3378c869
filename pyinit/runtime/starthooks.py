"""startContainer hooks, run from the workload's own process just before its exec.

Why there, and not in the container's PID 1 (docs/security.md, item 8):

* **PID 1 is locked down first.** The workload's process runs them after
  spawn's gate, that is after PID 1 has taken the workload's ids, kept
  ``CAP_KILL`` alone, set no_new_privs and not-dumpable and loaded the
  workload's seccomp filter (runtime/hardening.py). A hook decides how long
  it runs, and a child of it that calls ``setsid()`` escapes the group kill:
  whatever it does to PID 1 with ``CAP_SYS_PTRACE`` it could do as the
  workload anyway.
* **The hook keeps every capability the workload has.** PID 1 after its
  lock-down has ``CAP_KILL`` at most and could not hand a hook the
  workload's capabilities back; the workload's process has exactly them
  (``credentials.become`` has run: ids, groups, limits, capabilities,
  no_new_privs, the seccomp filter, umask), so a hook inherits them without
  a second implementation of the OCI process settings.
* **runc does the same**: its init applies the seccomp filter and drops to
  the workload's credentials (``finalizeNamespace``), then runs the
  startContainer hooks, then execs (libcontainer/standard_init_linux.go). So
  the hooks run under the workload's seccomp filter: a profile that
  refuses ``clone``, ``pipe2``, ``poll``, ``pidfd_open``, ``prctl``,
  ``wait4`` or ``execve`` makes them fail to start, and the container fails
  (exit 125).

This runs after ``pivot_root``: nothing may be imported from here on, and
trio may not run in a forked child, so this is plain ``os.fork``/``execve``
with ``poll`` on the output pipes and a pidfd, against a deadline.

The hooks run in a child of the workload's process, the *runner*, which is
a child subreaper: when a hook exits or its timeout fires, its process group
is killed while the leader is still an unreaped zombie, and every member,
reparented to the runner, is reaped before the next hook or the exec. A
child that called ``setsid()`` itself is not in the group; it goes to PID 1
when the runner exits, like any orphan, and is killed at shutdown. While
hooks run, the workload's process and the runner are not dumpable (exec
makes the workload dumpable again), so a hook's leftover without
``CAP_SYS_PTRACE`` cannot seize them.
"""

from __future__ import annotations

import _signal
import collections
import errno
import math
import os
import select
import time
from collections.abc import Sequence
from typing import Any

from pyinit.errors import EXIT_SETUP_FAILED, SetupError
from pyinit.hooks import DEFAULT_HOOK_TIMEOUT, LAST_LINES, Result, describe_failure
from pyinit.linux import syscalls, task
from pyinit.oci.command import Command

KIND = "startContainer"
_CHUNK = 65536


def run_all(cmds: Sequence[Command], state: bytes, log: Any, sink_fd: int,
            reset: frozenset[int]) -> int:
    """In the workload's process (all signals blocked): every hook, in order.

    Returns 0 when all succeeded, else the container's exit status; the
    runner has then logged ``hook.failed`` and written the one-line error to
    ``sink_fd`` (the caller's stderr, also when the workload's stdio is a
    terminal). ``reset``: the signals whose disposition goes back to default
    in a hook, as in the workload.
    """
    if not cmds:
        return 0
    try:
        task.set_dumpable(False)  # exec turns it back on for the workload
        runner = os.fork()
    except OSError as exc:
        _say(sink_fd, f"hooks.{KIND}: cannot start the hook runner: {exc.strerror or exc}")
        return EXIT_SETUP_FAILED
    if runner == 0:
        code = EXIT_SETUP_FAILED
        try:
            task.close_from(3, frozenset({sink_fd}))
            syscalls.set_child_subreaper()
            for cmd in cmds:
                _run_checked(cmd, state, log, reset)
            code = 0
        except SetupError as exc:
            log.error("hook.failed", **exc.log_fields())
            _say(sink_fd, exc.line())
        except Exception as exc:  # never a bare traceback
            log.error("hook.failed", kind=KIND, error=f"{type(exc).__name__}: {exc}")
            _say(sink_fd, f"hooks.{KIND}: could not run: {type(exc).__name__}: {exc}")
        finally:
            os._exit(code)
    _, status = os.waitpid(runner, 0)
    if status == 0:
        return 0
    if os.WIFSIGNALED(status):  # nobody has said why
        _say(sink_fd, f"hooks.{KIND}: the hook runner was killed by signal "
                      f"{os.WTERMSIG(status)}")
    return EXIT_SETUP_FAILED


def _say(fd: int, line: str) -> None:
    try:
        os.write(fd, f"pyinit: {line}\n".encode(errors="replace"))
    except OSError:
        pass


def _run_checked(cmd: Command, state: bytes, log: Any, reset: frozenset[int]) -> None:
    timeout = cmd.timeout or DEFAULT_HOOK_TIMEOUT
    log.debug("command.started", argv=cmd.argv, timeout_s=timeout, kind=KIND)
    result = _run(cmd, state, log, timeout, reset)
    if result.code != 0:
        raise SetupError("hook", describe_failure(cmd, result), kind=KIND, where=cmd.where)
    log.debug("command.done", argv=cmd.argv, kind=KIND)


def _child(cmd: Command, stdio: tuple[int, int, int], report: int,
           reset: frozenset[int]) -> None:
    """The hook's process: never returns. ``report`` gets errno and phase on failure."""
    phase = b"e"
    try:
        os.setsid()  # a session and process group of its own, no terminal
        for target, fd in enumerate(stdio):
            os.dup2(fd, target)
        # Before the chdir: a cwd that is the image's symlink to
        # /proc/self/fd/N can only name stdio or the report pipe.
        task.close_from(3, frozenset({report}))
        phase = b"d"
        os.chdir(cmd.cwd if cmd.cwd is not None else "/")
        phase = b"e"
        env = dict(item.split("=", 1) for item in cmd.env) if cmd.env is not None else {}
        for sig in reset:
            _signal.signal(sig, _signal.SIG_DFL)
        _signal.pthread_sigmask(_signal.SIG_SETMASK, ())
        os.execve(cmd.path, cmd.argv, env)
    except OSError as exc:
        try:
            os.write(report, (exc.errno or errno.EINVAL).to_bytes(4, "little") + phase)
        except OSError:
            pass
    finally:
        os._exit(127)


def _start(cmd: Command, state: bytes, reset: frozenset[int]) -> tuple[int, int, int]:
    """Fork and exec the hook; its pid and the read ends of its stdout and stderr."""
    in_r, in_w = os.pipe2(os.O_CLOEXEC)
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    report_r, report_w = os.pipe2(os.O_CLOEXEC)
    try:
        os.write(in_w, state)  # a few hundred bytes: the pipe holds them all
    except BrokenPipeError:  # pragma: no cover - the read end is still ours
        pass
    os.close(in_w)
    pid = os.fork()
    if pid == 0:
        _child(cmd, (in_r, out_w, err_w), report_w, reset)
    for fd in (in_r, out_w, err_w, report_w):
        os.close(fd)
    failed = b""
    while chunk := os.read(report_r, 8):
        failed += chunk
    os.close(report_r)
    if len(failed) == 5:
        os.waitpid(pid, 0)
        os.close(out_r)
        os.close(err_r)
        err = int.from_bytes(failed[:4], "little")
        what = f"cannot enter its cwd {cmd.cwd}" if failed[4:] == b"d" \
            else f"cannot start {cmd.path}"
        raise SetupError.from_os("command", what, OSError(err, os.strerror(err)),
                                 where=cmd.where, kind=KIND)
    return pid, out_r, err_r


def _run(cmd: Command, state: bytes, log: Any, timeout: float,
         reset: frozenset[int]) -> Result:
    pid, out_r, err_r = _start(cmd, state, reset)
    # "exited" without reaping it, so the group id stays ours until the kill.
    pidfd = os.pidfd_open(pid)
    streams = {out_r: "stdout", err_r: "stderr"}
    partial = {out_r: b"", err_r: b""}
    tail: collections.deque[str] = collections.deque(maxlen=LAST_LINES)

    def emit(name: str, raw: bytes) -> None:
        line = raw.decode("utf-8", "replace")
        tail.append(f"{name}: {line}")
        log.info("command.output", stream=name, line=line, kind=KIND)

    poller = select.poll()
    for fd in (out_r, err_r, pidfd):
        poller.register(fd, select.POLLIN)
    deadline = time.monotonic() + timeout
    exited = timed_out = False
    try:
        # Its background children hold the pipes open: they die with the group.
        while streams or not exited:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            for fd, _mask in poller.poll(math.ceil(left * 1000)):
                if fd == pidfd:
                    exited = True
                    poller.unregister(pidfd)
                    _kill_group(pid)
                    continue
                data = os.read(fd, _CHUNK)
                if data:
                    *lines, partial[fd] = (partial[fd] + data).split(b"\n")
                    for raw in lines:
                        emit(streams[fd], raw)
                    continue
                poller.unregister(fd)
                if partial[fd]:
                    emit(streams[fd], partial[fd])
                del streams[fd]
    finally:
        _kill_group(pid)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        _reap_group(pid)
        os.close(out_r)
        os.close(err_r)
    code = None if timed_out else os.waitstatus_to_exitcode(status)
    return Result(code, list(tail), timeout)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, _signal.SIGKILL)
    except ProcessLookupError:
        pass


def _reap_group(pgid: int) -> None:
    """Every member of the killed group, reparented to us (the runner is a subreaper)."""
    while True:
        try:
            os.waitpid(-pgid, 0)
        except ChildProcessError:
            return
