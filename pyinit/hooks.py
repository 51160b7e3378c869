"""Commands pyinit runs for the setup: per-mount pre/post commands and OCI hooks.

Each one is a trio subprocess whose stdout and stderr are logged line by line
(tagged with what it belongs to), with a timeout, and with an exact exit
status: these run before the supervisor's reaper exists, so nothing else
waits for them (trap 1).

trio starts processes from a worker thread, and the child inherits that
thread's signal mask: in pyinit everything is blocked, so the child unblocks
all signals itself before exec (``preexec_fn``).

OCI hooks (not the per-mount commands, which are pyinit's extension and keep
their documented defaults):

* get exactly the ``env`` the config gives them, nothing of pyinit's own
  environment (which is the caller's, secrets included);
* have a timeout even when the config gives none (:data:`DEFAULT_HOOK_TIMEOUT`);
* ``startContainer`` hooks are not run here: they run the image's binaries
  inside the container, as the workload, from the workload's own process
  after PID 1's lock-down, where trio cannot run
  (:mod:`pyinit.runtime.starthooks`, same semantics).

Every command runs in a session and process group of its own (no controlling
terminal). When it exits or its timeout fires, the whole group is killed
while the leader is still an unreaped zombie (so its group id cannot have
been reused), and every member that was reparented to us is reaped: a
background child that keeps stdout open cannot hang the setup, and nothing a
command started outlives it. A child that calls setsid() itself leaves the
group; only cgroups could follow it.
"""

from __future__ import annotations

import collections
import math
import os
import signal
import subprocess
from typing import Any

from pyinit.errors import SetupError
from pyinit.oci.command import Command, parse_command, state_json
from pyinit.record import field, record

__all__ = ["Command", "Result", "describe_failure", "parse_command", "run", "run_checked",
           "state_json"]

LAST_LINES = 5
DEFAULT_HOOK_TIMEOUT = 60.0  # seconds, for an OCI hook whose config gives none


@record(frozen=False)
class Result:
    code: int | None  # None: killed at the timeout
    tail: list[str] = field(default_factory=list)
    timeout: float | None = None  # the one that applied


def _unblock_signals() -> None:
    signal.pthread_sigmask(signal.SIG_SETMASK, ())


def _reap_group(pgid: int) -> None:
    """Reap every member of process group ``pgid`` that is our child (all were killed)."""
    while True:
        try:
            os.waitpid(-pgid, 0)
        except ChildProcessError:
            return
        except InterruptedError:  # pragma: no cover - all signals are blocked
            continue


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


async def _pump(stream: Any, name: str, log: Any, tail: collections.deque[str],
                tags: dict[str, Any]) -> None:
    buffer = b""
    async for chunk in stream:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", "replace")
            tail.append(f"{name}: {line}")
            log.info("command.output", stream=name, line=line, **tags)
    if buffer:
        line = buffer.decode("utf-8", "replace")
        tail.append(f"{name}: {line}")
        log.info("command.output", stream=name, line=line, **tags)


async def run(cmd: Command, log: Any, stdin: bytes | None = None, *, hook: bool = False,
              cwd_fd: int | None = None,
              **tags: Any) -> Result:
    """Run ``cmd`` to completion (or its timeout); its output goes to the log.

    ``hook``: an OCI hook (its env only, a default timeout). ``cwd_fd``: the
    command starts in that directory, entered by fd in the child (a
    post-mount command starts in its new mount), unless it names its own
    ``cwd``.
    """
    import trio  # here, not at the top: a setup without commands runs without trio

    if cmd.env is not None:
        env: dict[str, str] | None = dict(item.split("=", 1) for item in cmd.env)
    else:
        env = {} if hook else None
    timeout = cmd.timeout or (DEFAULT_HOOK_TIMEOUT if hook else None)
    start_in = cwd_fd if cmd.cwd is None else None

    def child_setup() -> None:
        if start_in is not None:
            os.fchdir(start_in)
        _unblock_signals()

    tail: collections.deque[str] = collections.deque(maxlen=LAST_LINES)
    try:
        proc = await trio.lowlevel.open_process(
            cmd.argv, executable=cmd.path, env=env, cwd=cmd.cwd,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=child_setup,
            start_new_session=True,
        )
    except OSError as exc:
        raise SetupError.from_os("command", f"cannot start {cmd.path}", exc, where=cmd.where,
                                 **tags) from None
    # Its own pidfd: "exited" without reaping, so the group id stays ours.
    pidfd = os.pidfd_open(proc.pid)
    timed_out = False
    try:
        with trio.move_on_after(timeout if timeout else math.inf) as scope:
            async with trio.open_nursery() as nursery:
                assert proc.stdout is not None and proc.stderr is not None
                nursery.start_soon(_pump, proc.stdout, "stdout", log, tail, tags)
                nursery.start_soon(_pump, proc.stderr, "stderr", log, tail, tags)
                if stdin is not None and proc.stdin is not None:
                    try:
                        await proc.stdin.send_all(stdin)
                    except trio.BrokenResourceError:
                        pass
                    await proc.stdin.aclose()
                await trio.lowlevel.wait_readable(pidfd)
                _kill_group(proc.pid)  # its background children hold the pipes open
        if scope.cancelled_caught:
            timed_out = True
    finally:
        with trio.CancelScope(shield=True):
            _kill_group(proc.pid)
            os.close(pidfd)
            await proc.wait()
            _reap_group(proc.pid)
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    await stream.aclose()
    return Result(None if timed_out else proc.returncode, list(tail), timeout)


def describe_failure(cmd: Command, result: Result) -> str:
    what = f"{' '.join(cmd.argv)!r}"
    if result.code is None:
        status = f"was killed after its timeout of {result.timeout or cmd.timeout or 0:g}s"
    elif result.code < 0:
        status = f"was killed by signal {-result.code}"
    else:
        status = f"exited {result.code}"
    last = "; last output: " + " | ".join(result.tail) if result.tail else "; no output"
    return f"{what} {status}{last}"


async def run_checked(cmd: Command, log: Any, step: str, stdin: bytes | None = None,
                      cwd_fd: int | None = None, **tags: Any) -> None:
    """Run ``cmd``; a non-zero exit or a timeout becomes a SetupError."""
    hook = step == "hook"
    timeout = cmd.timeout or (DEFAULT_HOOK_TIMEOUT if hook else None)
    log.debug("command.started", argv=cmd.argv, timeout_s=timeout, **tags)
    result = await run(cmd, log, stdin=stdin, hook=hook, cwd_fd=cwd_fd, **tags)
    if result.code != 0:
        tags.setdefault("where", cmd.where)
        raise SetupError(step, describe_failure(cmd, result), **tags)
    log.debug("command.done", argv=cmd.argv, **tags)
