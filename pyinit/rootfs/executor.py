"""Carry out the setup plan: the only code that mounts, in a private mount namespace.

The executor runs the plan's steps in order and dispatches each on its type;
the work is in one module per concern: :mod:`~pyinit.rootfs.mounts`,
:mod:`~pyinit.rootfs.cgroups`, :mod:`~pyinit.rootfs.devices`,
:mod:`~pyinit.rootfs.pivot` and :mod:`~pyinit.rootfs.hardening`. Every call to
the kernel goes through a :class:`~pyinit.linux.kernel.Kernel` (a recording
fake in unit tests).

Each step logs ``<kind>.started`` and ``<kind>.done`` (debug) or
``<kind>.failed`` (error, with the full context and the hint from
:mod:`pyinit.diagnose`) and raises :class:`SetupError` on failure.
"""

from __future__ import annotations

import os
import time

from pyinit import diagnose
from pyinit.errors import SetupError
from pyinit.linux.kernel import Kernel
from pyinit.oci.command import state_json
from pyinit.rootfs import devices, files, hardening, mounts, pivot
from pyinit.rootfs.context import Context
from pyinit.rootfs.plan import (
    BindData,
    BindDevice,
    BindMount,
    CgroupMount,
    Chmod,
    DevNull,
    Domainname,
    Hook,
    Hostname,
    MakeCwd,
    MakeDevice,
    MakeDir,
    MaskPath,
    NewMount,
    NoPivot,
    Pivot,
    Propagation,
    Ptmx,
    ReadonlyPath,
    RemountRo,
    Rootfs,
    RootReadonly,
    RunCommand,
    Step,
    Symlink,
    Sysctl,
    WriteFile,
)

TYPE_CHECKING = False  # typing costs 6 ms at start-up; mypy reads the name
if TYPE_CHECKING:
    from typing import Any

    from pyinit.rootfs.context import CommandRunner


def _doing(step: Step, root_path: str) -> str:
    """What a step was doing, for the message of a failed system call."""
    match step:
        case Rootfs():
            return f"mount the rootfs at {step.path}"
        case Pivot():
            return f"pivot_root into {root_path}"
        case RootReadonly():
            return "remount / read-only"
    return step.summary


async def _run_checked(*args: Any, **kwargs: Any) -> Any:
    """hooks.run_checked, imported when a command or hook step runs (subprocess: a few
    ms that a setup without them does not pay); such a setup runs before the pivot."""
    from pyinit import hooks

    return await hooks.run_checked(*args, **kwargs)


class Executor:
    def __init__(self, root_path: str, log: Any, container_id: str = "pyinit",
                 bundle: str = "", user_ns: bool = False, kernel: Kernel | None = None,
                 run_command: CommandRunner = _run_checked,
                 own_cgroups: dict[str, str] | None = None) -> None:
        k = kernel or Kernel()
        # Read now, before any mount: hooks get the container's PID as the
        # runtime sees it, and stdio on the host's /dev/null is recognised.
        # ``own_cgroups`` was read before the cgroup namespace (Context).
        self.ctx = Context(k, log, root_path, run_command, container_id, bundle, user_ns,
                           host_pid=k.host_pid(), host_devnull=k.host_rdev("/dev/null"),
                           own_cgroups=dict(own_cgroups or {}))
        self.log = log

    async def run(self, steps: tuple[Step, ...] | list[Step]) -> None:
        started = time.monotonic_ns()
        try:
            for step in steps:
                await self.run_step(step)
        finally:
            self.ctx.close()
        self.log.info("rootfs.ready", steps=len(steps),
                      duration_ms=round((time.monotonic_ns() - started) / 1e6, 3))

    async def run_step(self, step: Step) -> None:
        fields = step.fields()
        self.log.debug(f"{step.kind}.started", step=step.summary, **fields)
        t0 = time.monotonic_ns()
        try:
            extra = await self._do(step)
        except SetupError as exc:
            if not exc.step and exc.errno:
                # Raw from the kernel seam: say what the step was doing, as
                # every message does (the operation stays in exc.op).
                exc.reason = f"{_doing(step, self.ctx.root_path)}: {os.strerror(exc.errno)}"
            exc.step = exc.step or step.kind
            exc.where = exc.where or fields.get("where")
            for key, value in fields.items():
                if key != "where":
                    exc.fields.setdefault(key, value)
            if exc.hint is None:
                exc.hint = diagnose.explain_error(exc, self._context(),
                                                  evidence=not self.ctx.pivoted)
            self.log.error(f"{step.kind}.failed", step=step.summary, **exc.log_fields())
            raise
        self.log.debug(f"{step.kind}.done", step=step.summary,
                       duration_ms=round((time.monotonic_ns() - t0) / 1e6, 3),
                       **{**fields, **(extra or {})})

    def _context(self) -> dict[str, Any]:
        # Before the pivot, destinations are under the rootfs on the host.
        root = self.ctx.root_path
        return {"root_path": root if root != "/" and not self.ctx.pivoted else "",
                "user_ns": self.ctx.user_ns}

    async def _do(self, step: Step) -> dict[str, Any] | None:
        ctx = self.ctx
        match step:
            case Propagation():
                mounts.propagation(ctx, step)
            case Rootfs():
                mounts.rootfs(ctx, step)
            case BindMount():
                return mounts.bind(ctx, step)
            case NewMount():
                return mounts.new_mount(ctx, step)
            case CgroupMount():
                return mounts.cgroup(ctx, step)
            case RunCommand():
                await self._command(step)
            case BindDevice():
                devices.bind(ctx, step)
            case MakeDevice():
                devices.make(ctx, step)
            case Ptmx():
                devices.ptmx(ctx, step)
            case Symlink():
                devices.symlink(ctx, step)
            case MakeDir():
                files.make_dir(ctx, step)
            case BindData():
                files.bind_data(ctx, step)
            case WriteFile():
                files.write_file(ctx, step)
            case Chmod():
                files.chmod(ctx, step)
            case RemountRo():
                files.remount_ro(ctx, step)
            case Domainname():
                ctx.kernel.setdomainname(step.name)
            case Hostname():
                ctx.kernel.sethostname(step.name)
            case MakeCwd():
                self._cwd(step)
            case Hook():
                state = state_json(ctx.container_id, "created", ctx.host_pid, ctx.bundle)
                await ctx.run_command(step.command, self.log, "hook", stdin=state,
                                      kind=step.hook_kind)
            case Pivot():
                pivot.pivot(ctx, step)
            case NoPivot():
                pivot.no_pivot(ctx, step)
            case DevNull():
                hardening.devnull(ctx, step)
            case Sysctl():
                hardening.sysctl(ctx, step)
            case RootReadonly():
                await hardening.root_readonly(ctx, step)
            case ReadonlyPath():
                hardening.readonly_path(ctx, step)
            case MaskPath():
                hardening.mask_path(ctx, step)
        return None

    async def _command(self, step: RunCommand) -> None:
        """A pre- or post-mount command; a post-mount one starts in its new mount (by fd)."""
        cwd_fd = self.ctx.mount_fds.get(step.mount.index) if step.phase == "after" else None
        try:
            await self.ctx.run_command(step.command, self.log, "command", cwd_fd=cwd_fd,
                                       destination=step.mount.destination, phase=step.phase)
        finally:
            last = step.mount.after[-1] if step.mount.after else None
            if step.phase == "after" and step.command is last and cwd_fd is not None:
                self.ctx.kernel.close(self.ctx.mount_fds.pop(step.mount.index))

    def _cwd(self, step: MakeCwd) -> None:
        try:
            self.ctx.kernel.close(self.ctx.root.mkdir_all(step.path))
        except SetupError as exc:
            exc.step = "cwd"
            exc.where = "process.cwd"
            exc.op = "cwd"
            detail = os.strerror(exc.errno) if exc.errno else exc.reason
            exc.reason = f"process.cwd {step.path} cannot be a directory inside the root: " \
                f"{detail}"
            raise
