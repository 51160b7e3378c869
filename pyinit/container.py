"""``pyinit run --bundle DIR``: namespaces, the root filesystem, then PID 1.

The process model (the kernel forces most of it; docs/config.md has the
whole story of what each process holds):

1. The parent validates config.json and plans the setup and forks a middle
   process. It imports trio only if it runs hooks.
2. The middle process closes what the caller left open, sets what only the
   host can grant (oom_score_adj, raised hard limits), joins or creates the
   user namespace (the parent writes its maps), unshares the PID namespace,
   which only applies to children, forks PID 1 and exits.
3. PID 1 starts its own session, unshares mount, uts, ipc, net and cgroup,
   reads trio's code into memory (nothing can be imported from a file after
   pivot_root: pyinit/memimport.py), sets the root filesystem up without
   trio, pivots, spawns the workload with the OCI process settings, locks
   itself down (runtime/hardening.py) and imports trio from memory,
   forwarding signals and reaping between two modules (pyinit/early.py);
   then it becomes the supervisor. A
   setup with commands or hooks needs trio: then it is imported before the
   setup, from its files.
4. The parent runs the host-side hooks, relays every signal (and the
   terminal, with ``process.terminal``) and exits with the workload's status.

Nothing forks inside a running trio loop: the setup runs without trio, or in
one ``trio.run`` that has returned before the workload is forked.
"""

from __future__ import annotations

import _signal as signal  # the C half: signal.py imports enum (4 ms of start-up)
import _socket
import errno
import fcntl
import os
import select
import sys
import time
from _functools import partial  # functools.partial itself; functools imports collections

from pyinit import cli, closure, core, diagnose, early, memimport, proc, spawn
from pyinit.errors import EXIT_SETUP_FAILED, SetupError
from pyinit.linux import cachefile, caps, seccomp, seccomp_cache, syscalls, task
from pyinit.linux import host as linux_host
from pyinit.log import Sink, configure
from pyinit.oci import resources
from pyinit.oci.command import state_json
from pyinit.oci.config import Config, RunOptions
from pyinit.report import exit_code
from pyinit.rootfs import devices, plan
from pyinit.rootfs.executor import Executor
from pyinit.runtime import credentials, hardening, logpipe, namespaces, say, tracebacks
from pyinit.runtime.sync import Sync, decode, expect, open_channel, send, shut

TYPE_CHECKING = False  # typing costs 6 ms at start-up; mypy reads the name
if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine
    from typing import Any, NoReturn

    from pyinit.cgroups.manager import Cgroup
    from pyinit.cgroups.systemd import Scope
    from pyinit.runtime import console


def _failed(exc: SetupError, log: Any) -> None:
    """``<step>.failed`` and the one line, with the hint from diagnose's table (rows that
    read no evidence: the caller may be in new namespaces already)."""
    exc.hint = exc.hint or diagnose.explain_error(exc, {}, evidence=False)
    log.error(f"{exc.step}.failed", **exc.log_fields())
    say(exc.line())


def _read_runtime(setup: plan.Plan, log: Any) -> memimport.Bundle | None:
    """In the parent, before PID 1 exists: what PID 1 will import after the pivot.

    A setup that runs commands or hooks needs trio for them, so PID 1 imports
    it from its files before the pivot (None here). Any other setup runs
    without trio, and trio is only read into memory now (pyinit/memimport.py),
    to be imported from there while the workload already runs: where the
    build-time closure is this install's (same Python, same trio and their
    dependencies, every module found as a file); elsewhere None too. PID 1
    inherits the bundle. Read from the cache of the closure when it holds.
    """
    if any(isinstance(step, plan.RunCommand | plan.Hook) for step in setup.steps) \
            or not memimport.built_for_here(closure.BUILT_FOR):
        return None
    began = time.monotonic_ns()
    bundle, how = memimport.cached_snapshot(closure.MODULES, cachefile.directory(memimport.CACHE),
                                            closure.STUBS)
    if how.startswith("refused: "):
        log.warning("closure.cache_refused", reason=how.removeprefix("refused: "))
    log.debug("closure.read", source="cache" if how == "cache" else "files",
              modules=len(bundle.code) + len(bundle.extensions), missing=bundle.missing,
              duration_ms=round((time.monotonic_ns() - began) / 1e6, 3))
    # A module of the closure that this install does not have as a file (a
    # frozen build, an incomplete install): after the seal it could not be
    # imported at all, so not this way.
    return None if bundle.missing else bundle


def _runtime_before_pivot(bundle: memimport.Bundle | None) -> memimport.Bundle | None:
    """In PID 1: serve the bundle read by the parent, or import trio from its files now."""
    if bundle is not None:
        bundle.install()
        return bundle
    early.load_runtime()
    return None


def _run_without_trio(setup: Coroutine[Any, Any, None]) -> None:
    """Drive the executor's coroutine when no step awaits anything (no command, no hook)."""
    try:
        setup.send(None)
    except StopIteration:
        return
    setup.close()
    raise RuntimeError("a setup step waited for trio, which this setup runs without")


def _prepare_seccomp(cfg: Config, log: Any,
                     program: bytes | None = None) -> seccomp.PreparedFilter | None:
    """The workload's filter, compiled in the parent (or found in the cache,
    linux/seccomp_cache.py) before PID 1 exists; PID 1 inherits it in memory."""
    if program is not None:  # pyinit sandbox --seccomp FD: compiled already
        return seccomp.PreparedFilter(program)
    if cfg.seccomp is None:
        return None
    began = time.monotonic_ns()
    try:
        full_key = seccomp_cache.key(repr(cfg.seccomp))  # loads libseccomp: its version
        where = seccomp_cache.directory()
        filt = _cached_seccomp(where, full_key, log)
        cached = filt is not None
        if filt is None:
            filt = seccomp.prepare(cfg.seccomp)
            if where is not None:
                try:
                    seccomp_cache.store(where, full_key, filt)
                except (OSError, seccomp_cache.Refused) as exc:
                    log.debug("seccomp.cache_unwritable", path=str(where), error=str(exc))
    except SetupError as exc:  # libseccomp missing: the table says what to install
        exc.hint = exc.hint or diagnose.explain_error(exc, {}, evidence=False)
        raise
    log.info("seccomp.prepared", instructions=filt.instructions, flags=list(cfg.seccomp.flags),
             skipped=list(filt.skipped), default_action=cfg.seccomp.default_action.name,
             cached=cached, duration_ms=round((time.monotonic_ns() - began) / 1e6, 3))
    return filt


def _cached_seccomp(where: cachefile.Where | None, full_key: bytes,
                    log: Any) -> seccomp.PreparedFilter | None:
    if where is None:
        return None
    try:
        return seccomp_cache.load(where, full_key)
    except seccomp_cache.Refused as exc:
        log.warning("seccomp.cache_refused", reason=str(exc))
    except OSError as exc:  # ELOOP on a directory, EACCES ...: compile instead
        log.warning("seccomp.cache_refused", reason=f"{where}: {exc.strerror or exc}")
    except Exception as exc:  # a whole file of the caller's, but not one we wrote
        log.warning("seccomp.cache_refused",
                    reason=f"{where}: unreadable ({type(exc).__name__}: {exc})")
    return None


def _container(cfg: Config, setup: plan.Plan, opts: cli.Options, log: Any, sink: Sink,
               to_unshare: int, start_ns: int, sync: tuple[int, int, int], name: str,
               host: credentials.HostFacts, procs: int = -1,
               filt: seccomp.PreparedFilter | None = None,
               bundle: memimport.Bundle | None = None) -> NoReturn:
    """PID 1 of the container (when there is a PID namespace)."""
    parent, console_sock, log_fd = sync  # parent: the sync channel (runtime/sync.py)
    # First: PID 1 keeps no descriptor of the caller's stderr; its log goes
    # through a socket to the parent, which passes it on (runtime/logpipe.py). And no
    # traceback opens a source file by its host path, which the pivot hands
    # to the container (runtime/tracebacks.py).
    logpipe.write_to_parent(sink, log_fd)
    tracebacks.without_source()
    # A session of its own, without the caller's terminal as its controlling
    # one: neither PID 1 nor anything it starts can type into the caller's
    # shell (TIOCSTI) or take its terminal over. The parent stays in the
    # caller's session and relays Ctrl-C and friends.
    os.setsid()
    # PID 1 is pyinit: its original environment block is the caller's, secrets
    # included, and /proc/1/environ shows it to a workload allowed to ptrace.
    # Nothing here needs it (the workload's and hooks' env come from the config,
    # per-mount commands get os.environ, a copy): zero it before any of the
    # container's code runs, and before the pivot, while /proc is the host's.
    task.wipe_environ(task.environ_block())
    try:
        # Before the cgroup namespace: inside it /proc/self/cgroup reads "/".
        own_cgroups = _own_cgroups(setup)
        namespaces.unshare(to_unshare & ~(syscalls.CLONE_NEWPID | syscalls.CLONE_NEWUSER))
        # The namespaces exist: the parent runs createRuntime hooks now.
        send(parent, Sync.NAMESPACES_READY)
        if not expect(parent, Sync.GO):
            os._exit(EXIT_SETUP_FAILED)  # the parent has said why
        shut(parent, _socket.SHUT_RD)  # nothing more comes: a copy of this end reads nothing
        executor = Executor(cfg.root_path, log, name, cfg.bundle,
                            user_ns=cfg.has_namespace("user"), own_cgroups=own_cgroups)
        runtime = _runtime_before_pivot(bundle)
        if runtime is None:
            import trio

            trio.run(executor.run, setup.steps)
        else:
            _run_without_trio(executor.run(setup.steps))
            runtime.seal()  # from here on nothing is imported from a file
        peer = _open_console(console_sock, cfg.process.console_size) \
            if cfg.process.terminal else -1
        # Checked now, before anything of the container runs: the shutdown reads
        # who is left through this fd only, never through /proc by path.
        own_proc = _own_proc(executor.ctx.proc_dir)
        own_cgroup = _own_cgroup_procs(procs, own_proc)

        def prepare() -> None:
            if peer >= 0:
                from pyinit.runtime import console  # loaded by the parent: _load_for

                console.attach(peer)
            cwd = credentials.become(setup.process, host.last_cap, host.may_setgroups, filt,
                                     setup.run.cwd_choices)
            if setup.run.cwd_choices:
                env["PWD"] = cwd  # in this child only, as bubblewrap sets it

        env = dict(item.split("=", 1) for item in cfg.process.env)
        reset = spawn.signals_to_reset()
        # startContainer hooks run the image's binaries, so they run as the
        # workload does, from the workload's own process once it has become
        # the workload and PID 1 has locked itself down (the gate), just
        # before the exec, as runc's init does: a hook, and anything it
        # leaves behind, never sees a PID 1 that holds more than the
        # workload. PID 1 itself could not run them afterwards with the
        # workload's capabilities. Why, at length: runtime/starthooks.py.
        start_hooks = cfg.hooks.get("startContainer", ())
        if os.getpid() != 1:
            # Without a PID namespace, a subreaper before the spawn: a hook's
            # setsid child that outlives the hook comes back to this process,
            # which ends with the container, not to the host-side pyinit.
            syscalls.set_child_subreaper()
        state = state_json(name, "created", executor.ctx.host_pid, cfg.bundle)
        if start_hooks:
            from pyinit.runtime import starthooks  # loaded by the parent: _load_for

        def gate() -> None:
            # The workload has its own stdio (or the pty) by now: PID 1 gives
            # up the caller's before the workload can run (runtime/hardening.py).
            hardening.drop_stdio(executor.ctx.devnull, sink.fileno())
            hardening.lock_down(cfg.process.user, host.may_setgroups, host.last_cap,
                                own_pid_ns=bool(to_unshare & syscalls.CLONE_NEWPID), filt=filt)

        child = spawn.spawn(
            cfg.process.args, mask=frozenset(), reset=reset,
            preserve_fds=0, clock_ns=time.monotonic_ns(), env=env, prepare=prepare,
            new_session=True, gate=gate,
            before_exec=partial(starthooks.run_all, start_hooks, state, log, sink.fileno(),
                                reset) if start_hooks else None,
            before_exec_fds={sink.fileno()},
        )
        if peer >= 0:
            os.close(peer)
        if setup.run.die_with_parent:
            _die_with_parent(parent)
    except SetupError as exc:
        if exc.step == "namespace":
            log.error("namespace.failed", **exc.log_fields())
        say(exc.line())
        os._exit(EXIT_SETUP_FAILED)
    except Exception as exc:  # never a bare traceback, never a half-set-up container
        log.error("setup.failed", error=f"{type(exc).__name__}: {exc}")
        say(f"setup failed: {type(exc).__name__}: {exc}")
        os._exit(EXIT_SETUP_FAILED)
    if child.exec_errno or child.aborted:  # it has said why
        _, status = os.waitpid(child.pid, 0)
        os._exit(exit_code(status))
    send(parent, Sync.STARTED)  # the parent runs poststart hooks
    os.close(parent)
    keep = {sink.fileno()} | {fd for fd in (own_proc, own_cgroup) if fd is not None}
    hardening.close_all_but(frozenset(keep))
    startup = early.Startup(start_ns=start_ns, inherited_mask=frozenset(),
                            is_pid1=os.getpid() == 1, subreaper_error=None,
                            inherited_ignored=frozenset())
    startup.proc = own_proc
    startup.cgroup_procs = own_cgroup
    if runtime is None:
        from pyinit import supervisor

        startup.runtime_ready_ns = child.spawned_ns  # loaded before the workload: import_ms 0
        supervisor.run(opts, child, startup, logging=(log, sink))
    # The workload runs; trio is imported from memory, and between two
    # modules every signal is forwarded and the workload reaped.
    startup.runtime_source = "memory"

    def between(poll: Callable[[], None] | None) -> None:
        runtime.between = poll

    early.run_importing(opts, child, startup, (log, sink), between)


PROC_FD_MIN = 100


def _own_proc(fd: int) -> int | None:
    """The procfs fd the setup opened, if it is a procfs of our own PID namespace.

    None without one (no proc mount in the config): then the shutdown knows
    nobody by name and signals everyone (kill -1 as PID 1 of the namespace, the
    workload's process group otherwise: docs/security.md).
    """
    if fd < 0:
        return None
    if not proc.proc_is_ours(fd):
        os.close(fd)
        return None
    try:  # out of the way of the descriptors trio opens, which stay 3, 4, ...
        high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, PROC_FD_MIN)
    except OSError:  # a RLIMIT_NOFILE this low: keep it where it is
        return fd
    os.close(fd)
    return high


def _own_cgroup_procs(fd: int, own_proc: int | None) -> int | None:
    """The cgroup.procs fd the parent opened on the cgroup it made for the container,
    kept only where the shutdown has no other way to know who is left: no procfs of
    its own, and not PID 1 of a PID namespace (kill -1 would be the host's). A
    descendant that called setsid is not in the workload's process group, and
    without a PID namespace this process, a child subreaper, adopts it and waits
    for it: it must be able to signal it (docs/security.md rule 4)."""
    if fd < 0:
        return None
    if own_proc is not None or os.getpid() == 1:
        os.close(fd)
        return None
    try:  # next to the procfs fd, out of trio's way
        high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, PROC_FD_MIN + 1)
    except OSError:
        return fd
    os.close(fd)
    return high


def _own_cgroups(setup: plan.Plan) -> dict[str, str]:
    """Hierarchy name -> our cgroup (the container's: the middle process joined it).

    Read in PID 1 before it unshares the cgroup namespace, for a cgroup
    mount that falls back to a bind of the container's own cgroup
    (rootfs/cgroups.py); only when the plan has one.
    """
    if not any(isinstance(step, plan.CgroupMount) for step in setup.steps):
        return {}
    try:
        return {h.name: h.own_cgroup for h in linux_host.host_hierarchies()}
    except OSError as exc:
        raise SetupError.from_os("cgroup", "read /proc/self/cgroup", exc) from None


def _die_with_parent(parent: int) -> None:
    """sandbox --die-with-parent: SIGKILL for PID 1 (and so the whole sandbox) when the
    parent dies. Set here, after the lock-down (a change of credentials clears it) and
    after the middle process, PID 1's first parent, has exited; if the parent died
    already, its end of the sync channel is closed: both directions of ours are shut."""
    syscalls.set_pdeathsig(signal.SIGKILL)
    poller = select.poll()
    poller.register(parent, select.POLLIN)
    if any(ev & select.POLLHUP for _fd, ev in poller.poll(0)):
        os._exit(EXIT_SETUP_FAILED)


def _open_console(sock: int, size: tuple[int, int] | None) -> int:
    """process.terminal: the master goes to the parent; the workload's end stays here."""
    from pyinit.runtime import console  # loaded by the parent: _load_for

    try:
        master, peer = console.allocate(size)
    except OSError as exc:
        raise SetupError.from_os("terminal", f"allocate a pty from {console.PTMX}", exc,
                                 where="process.terminal") from None
    try:
        console.send_master(sock, master)
    finally:
        os.close(master)
    return peer


def _parent_hooks(cfg: Config, kind: str, name: str, pid: int, status: str, log: Any) -> bool:
    """Hooks that run in the runtime's namespaces; False if one failed."""
    if not cfg.hooks.get(kind):
        return True
    from pyinit import hooks

    state = state_json(name, status, pid, cfg.bundle)
    early.import_trio()  # only now: a container without hooks never needs it here
    for cmd in cfg.hooks.get(kind, []):
        import trio

        try:
            trio.run(partial(hooks.run_checked, cmd, log, "hook", stdin=state, kind=kind))
        except SetupError as exc:
            log.error("hook.failed", **exc.log_fields())
            say(exc.line())
            return False
        except Exception as exc:  # never a bare traceback
            log.error("hook.failed", kind=kind, where=cmd.where,
                      error=f"{type(exc).__name__}: {exc}")
            say(f"{cmd.where}: {kind} hook could not run: {exc}")
            return False
    return True


def _fork_container(cfg: Config, setup: plan.Plan, opts: cli.Options, log: Any,
                    sink: Sink, start_ns: int, name: str, sync: tuple[int, int, int],
                    cgroup: Cgroup | Scope | None = None, procs: int = -1,
                    filt: seccomp.PreparedFilter | None = None,
                    bundle: memimport.Bundle | None = None) -> int | None:
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
            if cgroup is not None and cgroup.joined_by_parent:  # systemd: see below
                if not expect(mapped_r, Sync.CGROUP_JOINED):
                    os._exit(EXIT_SETUP_FAILED)  # the parent has said why
            elif cgroup is not None:
                cgroup.add(os.getpid())
            # Nothing the caller left open goes further (pyinit run 9</host/dir).
            task.close_from(3, frozenset({report_w, mapped_r, *sync, sink.fileno(), procs}))
            credentials.before_namespaces(cfg.process)
            host = credentials.HostFacts(caps.last_cap(), False)
            to_unshare = namespaces.join(cfg)
            if to_unshare & syscalls.CLONE_NEWUSER:
                # First, so every namespace created after it is owned by it
                # (proc needs its PID namespace, sysfs its network one, ...).
                namespaces.unshare(syscalls.CLONE_NEWUSER)
                send(report_w, Sync.USERNS_CREATED)  # the parent writes our maps
                if not expect(mapped_r, Sync.MAPPED):
                    os._exit(EXIT_SETUP_FAILED)  # the parent has said why
            host = credentials.HostFacts(host.last_cap, credentials.setgroups_allowed())
            if cfg.has_namespace("user") and _maps_root(cfg):
                os.setresgid(0, 0, 0)
                os.setresuid(0, 0, 0)
            # Otherwise (pyinit sandbox maps the caller's ids to themselves, as
            # bubblewrap does) the ids stay as mapped: the creator of a user
            # namespace holds every capability in it whatever its uid there.
            if to_unshare & syscalls.CLONE_NEWPID:
                namespaces.unshare(syscalls.CLONE_NEWPID)
            init = os.fork()
            if init == 0:
                os.close(report_w)
                os.close(mapped_r)
                _container(cfg, setup, opts, log, sink, to_unshare, start_ns, sync, name, host,
                           procs, filt, bundle)
            os.write(report_w, str(init).encode())
            code = 0
        except SetupError as exc:
            _failed(exc, log)
        except OSError as exc:
            log.error("namespace.failed", error=str(exc))
            say(f"namespaces: {exc}")
        finally:
            os._exit(code)
    os.close(report_w)
    os.close(mapped_r)
    if cgroup is not None and cgroup.joined_by_parent:
        # systemd starts no empty scope: it is made with the middle process in it,
        # which waits for this before it unshares or forks anything.
        try:
            cgroup.add(middle)
            send(mapped_w, Sync.CGROUP_JOINED)
        except SetupError as exc:
            _failed(exc, log)
            send(mapped_w, Sync.FAILED)
    data = b""
    while chunk := os.read(report_r, 32):
        data += chunk
        if data == Sync.USERNS_CREATED.value:
            data = b""
            send(mapped_w, Sync.MAPPED if namespaces.write_maps(cfg, middle, log)
                 else Sync.FAILED)
    os.close(report_r)
    os.close(mapped_w)
    os.waitpid(middle, 0)
    return int(data) if data else None


def _load_for(cfg: Config) -> None:
    """Import now, in the parent, what only some configs need, and need where nothing
    can be imported any more (PID 1 after the pivot): the terminal, startContainer
    hooks. Other configs do not pay for them (socket, termios, subprocess)."""
    if cfg.process.terminal:
        import pyinit.runtime.console
    if cfg.hooks.get("startContainer"):
        import pyinit.runtime.starthooks  # noqa: F401


def _socketpair() -> tuple[Any, Any]:
    import socket

    return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)


def _maps_root(cfg: Config) -> bool:
    """Is id 0 mapped in the new user namespace (always so for one joined by path)?"""
    if not cfg.uid_mappings:
        return True
    return any(m.container_id == 0 for m in cfg.uid_mappings) and \
        any(m.container_id == 0 for m in cfg.gid_mappings)


def _relay(pid: int, cfg: Config, name: str, child: int, log: Any,
           pid1_log: logpipe.Forwarder, console_sock: int = -1,
           console_socket: str | None = None,
           on_started: Callable[[int], None] | None = None) -> int:
    """The parent: hooks at their moments, every signal passed on, PID 1's log
    passed on to the caller's stderr; the child's status."""
    terminal: console.Relay | None = None
    seen: set[Sync] = set()
    os.set_blocking(child, False)
    relay = core.Core(pid, kill_group=False, everyone=False)  # the child, by its PID only
    # Woken by a signal or by PID 1's news, whichever comes first: PID 1 waits
    # for the answer to "namespaces exist" on its way to the workload, so the
    # parent must not sleep through it (a 50 ms poll cost 25 ms on average).
    sfd = syscalls.signalfd(core.WATCHED)
    waiter = select.poll()
    waiter.register(sfd, select.POLLIN)
    waiter.register(child, select.POLLIN)
    news_open = True
    # ... and on PID 1's log lines, passed on as they come (runtime/logpipe.py).
    log_fd = pid1_log.fileno()
    if log_fd >= 0:
        waiter.register(log_fd, select.POLLIN)

    def pump_log() -> None:
        nonlocal log_fd
        if not pid1_log.pump() and log_fd >= 0:  # its end: closed by the forwarder
            waiter.unregister(log_fd)
            log_fd = -1

    def take_console() -> None:
        nonlocal terminal
        from pyinit.runtime import console

        master = console.receive_master(console_sock)
        if master is None:
            return
        if console_socket is None:
            terminal = console.Relay(master)
            terminal.start()
            return
        try:
            console.hand_to_socket(console_socket, master)
        except OSError as exc:
            say(f"--console-socket {console_socket}: {exc.strerror or exc}")
            log.error("console.failed", path=console_socket, error=str(exc))
            os.kill(pid, signal.SIGKILL)
        finally:
            os.close(master)

    def handle_news() -> None:
        nonlocal news_open
        try:
            news = os.read(child, 16)
        except (BlockingIOError, OSError):
            return
        # What PID 1 logged before it said so comes before what the parent does about it.
        pump_log()
        if not news and news_open:  # PID 1 closed its end: nothing more will come
            waiter.unregister(child)
            news_open = False
        for event in decode(news):
            if event in seen:
                continue  # each moment comes once; a repeat is not PID 1's doing
            seen.add(event)
            if event is Sync.NAMESPACES_READY:
                if on_started is not None:
                    on_started(pid)
                ok = (_parent_hooks(cfg, "prestart", name, pid, "creating", log)
                      and _parent_hooks(cfg, "createRuntime", name, pid, "creating", log))
                try:
                    send(child, Sync.GO if ok else Sync.FAILED)
                    shut(child, _socket.SHUT_WR)  # the only answer PID 1 gets
                except OSError:  # PID 1 is gone already
                    pass
            elif event is Sync.STARTED:
                if console_sock >= 0:
                    take_console()
                if not _parent_hooks(cfg, "poststart", name, pid, "running", log):
                    log.warning("hook.poststart_failed",
                                detail="the spec says to warn and go on")

    try:
        while True:
            handle_news()
            pump_log()
            waiter.poll(50)
            for outcome in _relay_signals(relay, sfd, terminal):
                if isinstance(outcome, core.Exited):
                    handle_news()  # a quick workload: "started" may still be unread
                    pid1_log.drain()  # PID 1 has exited: its last lines are all in the pipe
                    if terminal is not None:
                        terminal.finish()
                    return exit_code(outcome.status)
    finally:
        os.close(sfd)


def _relay_signals(relay: core.Core, sfd: int, terminal: console.Relay | None,
                   ) -> list[core.Forwarded | core.Dropped | core.Exited | core.Stopped]:
    """Every signal pending on ``sfd`` passed on, in order (a reap when there is none)."""
    infos = syscalls.read_signals(sfd)
    if not infos:
        return [*relay.reap()]
    outcomes: list[core.Forwarded | core.Dropped | core.Exited | core.Stopped] = []
    for info in infos:
        if info.signo == signal.SIGWINCH and terminal is not None:
            terminal.resize()  # the kernel tells the workload, through its terminal
            continue
        outcomes += relay.handle(info.signo, info.pid)
    return outcomes


def run(bundle: str, opts: cli.Options, start_ns: int, container_id: str | None = None,
        no_pivot: bool = False, sysfs_fallback: bool = False,
        console_socket: str | None = None, cgroup_manager: str = "cgroupfs") -> NoReturn:
    from pyinit.oci import config

    try:
        cfg = config.load(bundle)
        if not cfg.has_namespace("mount"):
            raise config.ConfigError([("linux.namespaces", "pyinit run needs a mount "
                                       "namespace (add {\"type\": \"mount\"})")])
    except config.ConfigError as exc:
        say(exc.line())
        os._exit(EXIT_SETUP_FAILED)
    name = container_id or os.path.basename(cfg.bundle) or "pyinit"
    # Without --id, two runs of bundles with the same directory name must not meet in
    # one default cgroup: the name alone is not unique, nor is the name and pid.
    cgroup_id = container_id or resources.unique_id(name)
    run_config(cfg, opts, start_ns, name, console_socket=console_socket,
               run=RunOptions(no_pivot=no_pivot, sysfs_fallback=sysfs_fallback,
                              cgroup_id=cgroup_id, cgroup_manager=cgroup_manager))


def run_config(cfg: Config, opts: cli.Options, start_ns: int, name: str,
               cleanup: Callable[[], None] | None = None,
               console_socket: str | None = None,
               run: RunOptions | None = None) -> NoReturn:
    """Run a validated config (from a bundle, or built by ``pyinit sandbox``) as ``run`` says."""
    code = EXIT_SETUP_FAILED
    try:
        code = _run_config(cfg, opts, start_ns, name, run or RunOptions(), console_socket)
    finally:
        if cleanup is not None:
            cleanup()
        try:
            sys.stdout.flush()
        except Exception:
            pass
        os._exit(code)


def _cgroup(cfg: Config, name: str, log: Any, manager: str = "cgroupfs"
            ) -> Cgroup | Scope | None:
    """The container's cgroup, created and limited (docs/cgroups.md); None when the
    config has no cgroup part (pyinit sandbox) or this user cannot create one.
    With ``manager`` systemd, a transient scope to be started with the middle
    process in it (the parent does that, ``Scope.add``)."""
    if cfg.cgroup is None:
        return None
    from pyinit import cgroups

    for warning in cfg.cgroup.warnings:
        log.warning("cgroup.field_ignored", detail=warning)
    host = cgroups.detect()
    if manager == "systemd":
        from pyinit.cgroups import systemd

        scope = systemd.create(host, cfg.cgroup, name, log)
        log.info("cgroup.ready", path=scope.path, mode=host.mode, manager="systemd",
                 unit=scope.scope.unit)
        return scope
    if cfg.cgroup.systemd is not None:
        raise SetupError("cgroup", f"{str(cfg.cgroup.systemd)!r} is systemd's form "
                         "(slice:prefix:name): run with --cgroup-manager systemd, or give a "
                         "path like /pyinit/NAME", where="linux.cgroupsPath")
    decision = cgroups.placement(host, cfg.cgroup, name)
    if decision.warning is not None:  # one line: what is not applied, and why
        log.warning("cgroup.no_limits", reason=decision.reason, detail=decision.warning,
                    skipped=list(decision.skipped))
    if not decision.enforce:
        return None
    swept = cgroups.sweep()  # root's lock directory, or this user's (delegated)
    if swept.removed or swept.kept:
        log.info("cgroup.swept", removed=list(swept.removed),
                 kept=[f"{d}: {why}" for d, why in swept.kept])
    cgroup = cgroups.create(host, cfg.cgroup, name, decision=decision)
    log.info("cgroup.ready", path=cgroup.path, mode=host.mode, delegated=decision.delegated,
             directories=sorted(cgroup.dirs.values()))
    return cgroup


def _run_config(cfg: Config, opts: cli.Options, start_ns: int, name: str,
                run: RunOptions, console_socket: str | None) -> int:
    if run.die_with_parent:
        parent = os.getppid()
        syscalls.set_pdeathsig(signal.SIGKILL)
        if os.getppid() != parent:  # the caller died before the line above
            return EXIT_SETUP_FAILED
    log, sink = configure(opts.log_format, opts.log_level)
    try:  # the host as it is now, before any namespace or mount
        setup = plan.build(cfg, run, linux_host.probe())
        devices.check_host_nodes(cfg)
    except SetupError as exc:
        _failed(exc, log)
        return EXIT_SETUP_FAILED
    for event, fields in setup.notes:
        log.warning(event, **fields)
    log.info("container.starting", bundle=cfg.bundle, rootfs=cfg.root_path,
             namespaces=[ns.type for ns in cfg.namespaces], steps=len(setup.steps))
    try:
        filt = _prepare_seccomp(cfg, log, setup.run.seccomp_program)
    except SetupError as exc:
        say(exc.line())
        return EXIT_SETUP_FAILED
    bundle = _read_runtime(setup, log)
    try:
        cgroup = _cgroup(cfg, run.cgroup_id or name, log, run.cgroup_manager)
    except SetupError as exc:
        if exc.op is not None and exc.op.startswith("systemd-"):
            exc.hint = diagnose.explain_error(exc, {}, evidence=False)
        elif exc.errno == errno.EPERM and exc.hint is None:
            exc.hint = diagnose.no_capability()  # v1 device rules need CAP_SYS_ADMIN
        log.error("cgroup.failed", **exc.log_fields())
        say(exc.line())
        return EXIT_SETUP_FAILED
    except (OSError, ValueError) as exc:
        log.error("cgroup.failed", error=str(exc))
        say(f"cgroup: {exc}")
        return EXIT_SETUP_FAILED
    try:
        child, parent = open_channel()  # PID 1's news and the answer: runtime/sync.py
        _load_for(cfg)
        pair = _socketpair() if cfg.process.terminal else None  # the pty's master comes back
        log_r, log_w = logpipe.open_channel()
        pid1_log = logpipe.Forwarder(log_r, sink)
        # Not when PID 1 makes a PID namespace: its kill -1 reaches everyone there.
        procs = cgroup.procs_fd() if cgroup is not None and \
            not cfg.owns_namespace("pid") else None
        pid = _fork_container(cfg, setup, opts, log, sink, start_ns, name,
                              (parent, pair[1].fileno() if pair else -1, log_w), cgroup,
                              -1 if procs is None else procs, filt, bundle)
        del bundle  # PID 1 has its copy; the parent never runs this code
        os.close(parent)
        os.close(log_w)
        if procs is not None:
            os.close(procs)
        if pair is not None:
            pair[1].close()
        if pid is None:
            pid1_log.drain()  # a PID 1 that failed early
            return EXIT_SETUP_FAILED  # the middle process has said why
        # Not before the fork: an unprivileged parent must still be able to write
        # its child's uid_map, which belongs to root once the child is not dumpable.
        task.set_dumpable(False)
        code = _relay(pid, cfg, name, child, log, pid1_log,
                      pair[0].fileno() if pair else -1, console_socket, run.on_started)
        if run.on_exit is not None:
            run.on_exit(code)
        evidence = cgroup.oom() if cgroup is not None else None
        if evidence is not None:
            hint = diagnose.explain("oom-killed", None, evidence.log_fields(), evidence=False)
            log.error("oom.killed", **evidence.log_fields(), hint=hint)
            if hint is not None:
                say(hint)
    finally:
        if cgroup is not None:
            try:
                cgroup.remove()
            except SetupError as exc:
                log.error("cgroup.remove_failed", **exc.log_fields())
                say(exc.line())
    if not _parent_hooks(cfg, "poststop", name, pid, "stopped", log):
        log.warning("hook.poststop_failed", detail="the spec says to warn and go on")
    return code
