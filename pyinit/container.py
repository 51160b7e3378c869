"""``pyinit run --bundle DIR``: namespaces, the root filesystem, then PID 1.

The process model (the kernel forces most of it):

1. The parent validates config.json and plans the setup, imports everything
   the container will need (nothing can be imported after pivot_root), then
   unshares the PID namespace, which only applies to children, and forks.
2. The child is PID 1 of the new PID namespace. It unshares mount, uts, ipc,
   net and cgroup, sets the root filesystem up, pivots, spawns the workload
   with the OCI process settings, and becomes the supervisor.
3. The parent relays every signal to the child and exits with its status.

Nothing forks inside a running trio loop: the setup runs in one ``trio.run``
that has returned before the workload is forked.
"""

from __future__ import annotations

import _signal
import errno
import os
import resource
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, NoReturn

import trio

from pyinit import cli, core, diagnose, early, spawn
from pyinit.errors import EXIT_SETUP_FAILED, SetupError
from pyinit.linux import caps, seccomp, syscalls
from pyinit.log import Sink, configure
from pyinit.oci.config import Config, Process
from pyinit.report import exit_code
from pyinit.rootfs import plan
from pyinit.rootfs.setup import Executor

if TYPE_CHECKING:
    from pyinit.cgroups.manager import Cgroup

NAMESPACE_FLAGS = {
    "mount": syscalls.CLONE_NEWNS,
    "uts": syscalls.CLONE_NEWUTS,
    "ipc": syscalls.CLONE_NEWIPC,
    "network": syscalls.CLONE_NEWNET,
    "cgroup": syscalls.CLONE_NEWCGROUP,
    "pid": syscalls.CLONE_NEWPID,
    "user": syscalls.CLONE_NEWUSER,
}


def _say(line: str) -> None:
    try:
        os.write(2, f"pyinit: {line}\n".encode(errors="replace"))
    except OSError:
        pass


def _unshare(flags: int) -> None:
    names = [n for n, bit in NAMESPACE_FLAGS.items() if flags & bit]
    try:
        syscalls.unshare(flags)
    except OSError as exc:
        hint = diagnose.no_capability() if exc.errno == errno.EPERM else None
        raise SetupError.from_os("namespace", f"unshare {', '.join(names)}", exc,
                                 hint=hint) from None


def _join_namespaces(cfg: Config) -> int:
    """setns into every namespace given by path; the flags still to unshare.

    A user namespace comes first, so that the others are joined with its
    privileges.
    """
    to_unshare = 0
    for ns in sorted(cfg.namespaces, key=lambda n: n.type != "user"):
        if ns.path is None:
            to_unshare |= NAMESPACE_FLAGS[ns.type]
            continue
        try:
            fd = os.open(ns.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise SetupError.from_os("namespace", f"open {ns.path}", exc,
                                     where=f"linux.namespaces ({ns.type})") from None
        try:
            syscalls.setns(fd, NAMESPACE_FLAGS[ns.type])
        except OSError as exc:
            raise SetupError.from_os("namespace", f"setns {ns.path}", exc,
                                     where=f"linux.namespaces ({ns.type})",
                                     hint="is it a namespace of that type?") from None
        finally:
            os.close(fd)
    return to_unshare


def _setgroups_allowed() -> bool:
    try:
        with open("/proc/self/setgroups") as fh:
            return fh.read().strip() != "deny"
    except OSError:
        return True


def _become(proc: Process, last_cap: int, filt: seccomp.PreparedFilter | None = None) -> None:
    """In the workload's process, before exec: the OCI process settings, then seccomp.

    The filter is loaded last, once no_new_privs is set; without
    noNewPrivileges, before the capabilities go, while CAP_SYS_ADMIN lets the
    kernel take it (runc's order).
    """
    step = "cwd"
    try:
        os.chdir(proc.cwd)
        if os.getcwd() != os.path.normpath(proc.cwd):
            raise OSError(0, f"the working directory is {os.getcwd()}, not {proc.cwd}")
        step = "rlimits"
        for res, _name, soft, hard in proc.rlimits:
            inf = resource.RLIM_INFINITY  # config.json's 2^64-1 does not fit a C long
            resource.setrlimit(res, (inf if soft >= 2**63 else soft,
                                     inf if hard >= 2**63 else hard))
        if proc.oom_score_adj is not None:
            step = "oomScoreAdj"
            with open("/proc/self/oom_score_adj", "w") as fh:
                fh.write(str(proc.oom_score_adj))
        capabilities = proc.capabilities
        if capabilities is not None:
            step = "capabilities.bounding"
            caps.drop_bounding(capabilities.get("bounding", []), last_cap)
            syscalls.prctl(syscalls.PR_SET_KEEPCAPS, 1)
        if filt is not None and not proc.no_new_privileges:
            step = "seccomp"
            seccomp.install(filt)
        step = "user"
        if proc.user.additional_gids or _setgroups_allowed():
            os.setgroups(proc.user.additional_gids)
        os.setresgid(proc.user.gid, proc.user.gid, proc.user.gid)
        os.setresuid(proc.user.uid, proc.user.uid, proc.user.uid)
        if capabilities is not None:
            step = "capabilities"
            caps.apply_sets(capabilities)
        os.umask(0o022 if proc.user.umask is None else proc.user.umask)
        if proc.no_new_privileges:
            step = "noNewPrivileges"
            syscalls.prctl(syscalls.PR_SET_NO_NEW_PRIVS, 1)
            if filt is not None:
                step = "seccomp"
                seccomp.install(filt)
    except OSError as exc:
        _say(f"{'linux' if step == 'seccomp' else 'process'}.{step}: {exc.strerror or exc}")
        os._exit(EXIT_SETUP_FAILED)


def _prepare_seccomp(cfg: Config, log: Any) -> seccomp.PreparedFilter | None:
    if cfg.seccomp is None:
        return None
    began = time.monotonic_ns()
    filt = seccomp.prepare(cfg.seccomp)
    log.info("seccomp.prepared", instructions=filt.instructions, flags=list(cfg.seccomp.flags),
             skipped=list(filt.skipped), default_action=cfg.seccomp.default_action.name,
             duration_ms=round((time.monotonic_ns() - began) / 1e6, 3))
    return filt


def _grantable_ambient(proc: Process, log: Any) -> None:
    """Ambient capabilities need the same ones in permitted and inheritable."""
    if not proc.capabilities:
        return
    ok = set(proc.capabilities.get("permitted", [])) & set(
        proc.capabilities.get("inheritable", []))
    wanted = proc.capabilities.get("ambient", [])
    skipped = [c for c in wanted if c not in ok]
    if skipped:
        names = {v: k for k, v in caps.CAPS.items()}
        log.warning("capabilities.ambient_skipped", capabilities=[names[c] for c in skipped],
                    detail="an ambient capability must also be permitted and inheritable; "
                    "the spec says to warn, not fail")
        proc.capabilities["ambient"] = [c for c in wanted if c in ok]


def _container(cfg: Config, steps: list[plan.Step], opts: cli.Options, log: Any, sink: Sink,
               to_unshare: int, start_ns: int, sync: tuple[int, int], name: str) -> NoReturn:
    """PID 1 of the container (when there is a PID namespace)."""
    to_parent, from_parent = sync
    try:
        _unshare(to_unshare & ~(syscalls.CLONE_NEWPID | syscalls.CLONE_NEWUSER))
        # The namespaces exist: the parent runs createRuntime hooks now.
        os.write(to_parent, b"N")
        if os.read(from_parent, 1) != b"G":
            os._exit(EXIT_SETUP_FAILED)  # the parent has said why
        executor = Executor(cfg.root_path, log, name, cfg.bundle,
                            cgroup_ns=bool(to_unshare & syscalls.CLONE_NEWCGROUP),
                            user_ns=cfg.has_namespace("user"), sysfs_fallback=cfg.sysfs_fallback)
        filt = _prepare_seccomp(cfg, log)  # before the pivot: libseccomp is the host's
        trio.run(executor.run, steps)
        env = dict(item.split("=", 1) for item in cfg.process.env)
        last = caps.last_cap()
        child = spawn.spawn(
            cfg.process.args, mask=frozenset(), reset=spawn.signals_to_reset(),
            preserve_fds=0, clock_ns=time.monotonic_ns(), env=env,
            prepare=lambda: _become(cfg.process, last, filt),
        )
    except SetupError as exc:
        if exc.step == "namespace":
            log.error("namespace.failed", **exc.log_fields())
        _say(exc.line())
        os._exit(EXIT_SETUP_FAILED)
    except Exception as exc:  # never a bare traceback, never a half-set-up container
        log.error("setup.failed", error=f"{type(exc).__name__}: {exc}")
        _say(f"setup failed: {type(exc).__name__}: {exc}")
        os._exit(EXIT_SETUP_FAILED)
    if child.exec_errno:
        _, status = os.waitpid(child.pid, 0)
        os._exit(exit_code(status))
    os.write(to_parent, b"S")  # started: the parent runs poststart hooks
    os.close(to_parent)
    os.close(from_parent)
    from pyinit import supervisor

    startup = early.Startup(start_ns=start_ns, inherited_mask=frozenset(),
                            is_pid1=os.getpid() == 1, subreaper_error=None,
                            inherited_ignored=frozenset())
    if not startup.is_pid1:
        syscalls.set_child_subreaper()
    supervisor.run(opts, child, startup, logging=(log, sink))


def _parent_hooks(cfg: Config, kind: str, name: str, pid: int, status: str, log: Any) -> bool:
    """Hooks that run in the runtime's namespaces; False if one failed."""
    from pyinit import hooks

    state = hooks.state_json(name, status, pid, cfg.bundle)
    for cmd in cfg.hooks.get(kind, []):
        try:
            trio.run(partial(hooks.run_checked, cmd, log, "hook", stdin=state, kind=kind))
        except SetupError as exc:
            log.error("hook.failed", **exc.log_fields())
            _say(exc.line())
            return False
        except Exception as exc:  # never a bare traceback
            log.error("hook.failed", kind=kind, where=cmd.where,
                      error=f"{type(exc).__name__}: {exc}")
            _say(f"{cmd.where}: {kind} hook could not run: {exc}")
            return False
    return True


def _fork_container(cfg: Config, steps: list[plan.Step], opts: cli.Options, log: Any,
                    sink: Sink, start_ns: int, name: str, sync: tuple[int, int],
                    cgroup: Cgroup | None = None) -> int | None:
    """Fork the container's PID 1 through a short-lived middle process.

    unshare(CLONE_NEWPID) and setns into a PID namespace only affect children,
    and afterwards the process that made them can no longer start threads
    (the kernel refuses CLONE_THREAD once pid_for_children differs) -- but
    the parent must, to run hooks as trio subprocesses. So a middle process
    joins or creates the namespaces, forks PID 1, reports its PID and exits;
    the parent, a child subreaper, adopts PID 1. The parent stays in the
    runtime's namespaces, where createRuntime, poststart and poststop run.

    The middle process moves itself into the container's cgroup first, while
    it still has the host's privileges (after a user namespace it has none
    over the host's cgroup files); PID 1 inherits the cgroup and unshares its
    cgroup namespace inside it, so the container sees its own cgroup as "/".
    """
    syscalls.set_child_subreaper()
    report_r, report_w = os.pipe2(os.O_CLOEXEC)
    mapped_r, mapped_w = os.pipe2(os.O_CLOEXEC)
    middle = os.fork()
    if middle == 0:
        code = EXIT_SETUP_FAILED
        try:
            os.close(report_r)
            os.close(mapped_w)
            if cgroup is not None:
                cgroup.add(os.getpid())
            to_unshare = _join_namespaces(cfg)
            if to_unshare & syscalls.CLONE_NEWUSER:
                # First, so every namespace created after it is owned by it
                # (proc needs its PID namespace, sysfs its network one, ...).
                _unshare(syscalls.CLONE_NEWUSER)
                os.write(report_w, b"U")  # the parent writes our maps
                if os.read(mapped_r, 1) != b"M":
                    os._exit(EXIT_SETUP_FAILED)  # the parent has said why
            if cfg.has_namespace("user"):
                os.setresgid(0, 0, 0)
                os.setresuid(0, 0, 0)
            if to_unshare & syscalls.CLONE_NEWPID:
                _unshare(syscalls.CLONE_NEWPID)
            init = os.fork()
            if init == 0:
                os.close(report_w)
                _container(cfg, steps, opts, log, sink, to_unshare, start_ns, sync, name)
            os.write(report_w, str(init).encode())
            code = 0
        except SetupError as exc:
            log.error("namespace.failed", **exc.log_fields())
            _say(exc.line())
        except OSError as exc:
            log.error("namespace.failed", error=str(exc))
            _say(f"namespaces: {exc}")
        finally:
            os._exit(code)
    os.close(report_w)
    os.close(mapped_r)
    data = b""
    while chunk := os.read(report_r, 32):
        data += chunk
        if data == b"U":
            data = b""
            os.write(mapped_w, b"M" if _write_maps(cfg, middle, log) else b"F")
    os.close(report_r)
    os.close(mapped_w)
    os.waitpid(middle, 0)
    return int(data) if data else None


def _only_self(maps: list[Any], own: int) -> bool:
    return len(maps) == 1 and maps[0].host_id == own and maps[0].size == 1


def _write_maps(cfg: Config, pid: int, log: Any) -> bool:
    """Write the middle process's uid_map and gid_map.

    As root: directly, any ranges. Unprivileged: a map of only our own uid
    and gid is written directly (setgroups must be denied first, the kernel
    says), anything larger goes through the setuid newuidmap/newgidmap and
    the ranges /etc/subuid and /etc/subgid grant us.
    """
    import shutil
    import subprocess

    rootless = os.geteuid() != 0
    self_only = rootless and _only_self(cfg.uid_mappings, os.getuid()) and \
        _only_self(cfg.gid_mappings, os.getgid())
    jobs = (("gidMappings", "gid_map", cfg.gid_mappings, "newgidmap"),
            ("uidMappings", "uid_map", cfg.uid_mappings, "newuidmap"))
    for key, name, maps, helper in jobs:
        try:
            if self_only and name == "gid_map":
                with open(f"/proc/{pid}/setgroups", "w") as fh:
                    fh.write("deny")
            if rootless and not self_only:
                tool = shutil.which(helper)
                if tool is None:
                    raise OSError(errno.ENOENT, f"{helper} is not installed (package uidmap)")
                args = [str(v) for m in maps for v in (m.container_id, m.host_id, m.size)]
                done = subprocess.run([tool, str(pid), *args], capture_output=True, text=True,
                                      check=False)
                if done.returncode != 0:
                    raise OSError(errno.EPERM, done.stderr.strip() or f"{helper} failed")
            else:
                with open(f"/proc/{pid}/{name}", "w") as fh:
                    fh.write("".join(m.line() for m in maps))
        except OSError as exc:
            hint = "host IDs must exist and ranges must not overlap"
            if rootless:
                hint = ("unprivileged, pyinit can map only your own uid and gid itself; "
                        "larger maps need newuidmap/newgidmap and ranges in /etc/subuid and "
                        "/etc/subgid")
            error = SetupError(
                "namespace", f"write {name}: {exc.strerror or exc}",
                err=exc.errno, where=f"linux.{key}", hint=hint)
            log.error("namespace.failed", **error.log_fields())
            _say(error.line())
            return False
    return True


def _relay(pid: int, cfg: Config, name: str, sync: tuple[int, int], log: Any) -> int:
    """The parent: hooks at their moments, every signal passed on; the child's status."""
    from_child, to_child = sync
    os.set_blocking(from_child, False)
    relay = core.Core(pid, kill_group=False, everyone=False)  # the child, by its PID only

    def handle_news() -> None:
        try:
            news = os.read(from_child, 16)
        except (BlockingIOError, OSError):
            return
        for event in news.decode():
            if event == "N":
                ok = (_parent_hooks(cfg, "prestart", name, pid, "creating", log)
                      and _parent_hooks(cfg, "createRuntime", name, pid, "creating", log))
                try:
                    os.write(to_child, b"G" if ok else b"F")
                except BrokenPipeError:
                    pass
            elif event == "S" and not _parent_hooks(cfg, "poststart", name, pid, "running",
                                                     log):
                log.warning("hook.poststart_failed", detail="the spec says to warn and go on")

    while True:
        handle_news()
        info = _signal.sigtimedwait(core.WATCHED, 0.05)
        for outcome in relay.reap() if info is None else relay.handle(info.si_signo,
                                                                      info.si_pid):
            if isinstance(outcome, core.Exited):
                handle_news()  # a quick workload: "started" may still be unread
                return exit_code(outcome.status)


def run(bundle: str, opts: cli.Options, start_ns: int, container_id: str | None = None,
        no_pivot: bool = False, sysfs_fallback: bool = False) -> NoReturn:
    from pyinit.oci import config

    try:
        cfg = config.load(bundle)
        cfg.no_pivot = no_pivot
        cfg.sysfs_fallback = sysfs_fallback
        if not cfg.has_namespace("mount"):
            raise config.ConfigError([("linux.namespaces", "pyinit run needs a mount "
                                       "namespace (add {\"type\": \"mount\"})")])
    except config.ConfigError as exc:
        _say(f"config.json: {exc.first_line()}")
        os._exit(EXIT_SETUP_FAILED)
    run_config(cfg, opts, start_ns, container_id or os.path.basename(cfg.bundle) or "pyinit")


def run_config(cfg: Config, opts: cli.Options, start_ns: int, name: str,
               cleanup: Callable[[], None] | None = None,
               extra_steps: list[plan.Step] | None = None) -> NoReturn:
    """Run a validated config (from a bundle, or built by ``pyinit sandbox``).

    ``extra_steps`` go right after the mounts (the sandbox's symlinks).
    """
    code = EXIT_SETUP_FAILED
    try:
        code = _run_config(cfg, opts, start_ns, name, extra_steps or [])
    finally:
        if cleanup is not None:
            cleanup()
        try:
            sys.stdout.flush()
        except Exception:
            pass
        os._exit(code)


def _cgroup(cfg: Config, name: str, log: Any) -> Cgroup | None:
    """The container's cgroup, created and limited (docs/cgroups.md); None when the
    config has no cgroup part (pyinit sandbox) or this user cannot create one."""
    if cfg.cgroup is None:
        return None
    from pyinit import cgroups

    for warning in cfg.cgroup.warnings:
        log.warning("cgroup.field_ignored", detail=warning)
    host = cgroups.detect()
    decision = cgroups.placement(host, cfg.cgroup, name)
    if not decision.enforce:
        if decision.warning is not None:
            log.warning("cgroup.no_limits", reason=decision.reason, detail=decision.warning)
        return None
    if os.geteuid() == 0:
        swept = cgroups.sweep()
        if swept.removed or swept.kept:
            log.info("cgroup.swept", removed=list(swept.removed),
                     kept=[f"{d}: {why}" for d, why in swept.kept])
    cgroup = cgroups.create(host, cfg.cgroup, name)
    log.info("cgroup.ready", path=cgroup.path, mode=host.mode,
             directories=sorted(cgroup.dirs.values()))
    return cgroup


def _run_config(cfg: Config, opts: cli.Options, start_ns: int, name: str,
                extra_steps: list[plan.Step]) -> int:
    early.load_runtime()  # everything the container will need, before the fork
    log, sink = configure(opts.log_format, opts.log_level)
    steps = plan.build(cfg)
    after_mounts = max((i for i, s in enumerate(steps) if s.kind in ("mount", "command")),
                       default=1) + 1
    steps[after_mounts:after_mounts] = extra_steps
    _grantable_ambient(cfg.process, log)
    log.info("container.starting", bundle=cfg.bundle, rootfs=cfg.root_path,
             namespaces=[ns.type for ns in cfg.namespaces], steps=len(steps))
    try:
        cgroup = _cgroup(cfg, name, log)
    except SetupError as exc:
        if exc.errno == errno.EPERM and exc.hint is None:
            exc.hint = diagnose.no_capability()  # v1 device rules need CAP_SYS_ADMIN
        log.error("cgroup.failed", **exc.log_fields())
        _say(exc.line())
        return EXIT_SETUP_FAILED
    except (OSError, ValueError) as exc:
        log.error("cgroup.failed", error=str(exc))
        _say(f"cgroup: {exc}")
        return EXIT_SETUP_FAILED
    try:
        from_child, to_parent = os.pipe2(os.O_CLOEXEC)
        from_parent, to_child = os.pipe2(os.O_CLOEXEC)
        pid = _fork_container(cfg, steps, opts, log, sink, start_ns, name,
                              (to_parent, from_parent), cgroup)
        os.close(to_parent)
        os.close(from_parent)
        if pid is None:
            return EXIT_SETUP_FAILED  # the middle process has said why
        code = _relay(pid, cfg, name, (from_child, to_child), log)
        evidence = cgroup.oom() if cgroup is not None else None
        if evidence is not None:
            log.error("oom.killed", **evidence.log_fields(), hint=evidence.hint())
            _say(evidence.hint())
    finally:
        if cgroup is not None:
            try:
                cgroup.remove()
            except SetupError as exc:
                log.error("cgroup.remove_failed", **exc.log_fields())
                _say(exc.line())
    if not _parent_hooks(cfg, "poststop", name, pid, "stopped", log):
        log.warning("hook.poststop_failed", detail="the spec says to warn and go on")
    return code
