"""The container's PID 1 once the workload runs: nothing left worth taking.

A workload granted ``CAP_SYS_PTRACE`` can attach to its PID 1 when both live
in the same user namespace that holds the capability (no user namespace in
the config, for instance). What it could take from PID 1 is therefore made
worthless, rather than merely hard to reach:

* **Credentials.** PID 1 takes the workload's uid, gid and groups, so an
  attacker inside it owns no file the workload does not own already.
* **Capabilities.** It keeps ``CAP_KILL`` alone (effective and permitted; it
  is also the whole bounding set), and only when the container has its own
  PID namespace: forwarding a signal to, or killing at shutdown, a process
  that changed its uid needs it, and ``kill`` cannot name a process outside
  the namespace. Reaping needs no capability at all. Without a PID namespace
  it keeps nothing. Inheritable and ambient are empty.
* **no_new_privs** and **not dumpable**: no setuid or file-capability
  execve can give anything back, and without ``CAP_SYS_PTRACE`` in the user
  namespace of its memory (the host's, when pyinit made a user namespace:
  PID 1 never exec'd) nobody can ptrace it or open ``/proc/1/mem`` or
  ``/proc/1/fd``.
* **The workload's seccomp filter.** ``CAP_SYS_PTRACE`` overrides
  non-dumpability, so a workload that holds it can still attach and have
  PID 1 make calls for it. PID 1 therefore loads the same filter (on every
  thread, TSYNC) as the last step of the lock-down: what it is made to call
  is refused as the workload's own call would be. A profile that refuses
  what PID 1 itself needs (``read``/``epoll``/``signalfd`` for its signals,
  ``wait4``/``waitid``, ``kill``, ``write`` for logs, ``exit_group``) stops
  PID 1, and with it the container: failing closed. pyinit does not try to
  detect such a profile (conditions and actions make that guesswork); the
  workload's own shell would need the same calls, and the default profile
  allows them. See docs/config.md.
* **Descriptors.** Nothing of the caller's. Before the workload's exec
  (:func:`drop_stdio`, in the gate) 0, 1 and 2 become the container's
  ``/dev/null``; the log goes into a socket to the parent, which passes it on
  to the caller's stderr (runtime/logpipe.py). With ``process.terminal`` the
  workload does not share the caller's stdio at all, and even without it a
  workload that closed or replaced its own must not get them back through
  ``/proc/1/fd``. What the caller left open (``pyinit run 9</host/dir``) was
  closed by the middle process before any namespace existed; the console
  socket as soon as the pty's master is sent, the runtime's own pipe ends as
  soon as the workload has exec'd. Once the supervisor runs, PID 1 holds
  ``/dev/null`` three times, the log socket, and trio's and its own anonymous
  descriptors (epoll, its wake-up socket pair, a signalfd): all of the
  container's making (tests/security/test_review2_terminal.py lists them).

Capabilities, the bounding set and no_new_privs are per *thread*. A trio
worker thread left from the setup (it ran a hook or a mount command) would
keep everything, so each such thread runs the same drop before the main
thread changes its uid (which glibc applies to every thread), and gives up
every capability after it.
The supervisor's signal thread (pyinit/supervisor.py) starts after all this,
from the main thread, and so inherits its state: the workload's ids,
``CAP_KILL`` alone (it forwards signals), no_new_privs and the filter.
"""

from __future__ import annotations

import os
import sys

from pyinit.linux import caps, seccomp, syscalls, task
from pyinit.oci.config import User
from pyinit.record import replace

PR_CAP_AMBIENT_CLEAR_ALL = 4


def _drop(keep: list[int], last_cap: int) -> None:
    """This thread: bounding set, ambient, inheritable, then no_new_privs."""
    caps.drop_bounding(keep, last_cap)
    syscalls.prctl(syscalls.PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    mask = caps.mask(keep)
    # Keep CAP_SETUID/SETGID/SETPCAP effective until the uid changes (main thread).
    syscalls.capset(mask | _ID_CAPS, mask | _ID_CAPS, 0)
    task.set_no_new_privs()


_ID_CAPS = caps.mask([caps.CAPS["CAP_SETUID"], caps.CAPS["CAP_SETGID"]])


def _in_every_other_thread(fn: object) -> None:
    """Run ``fn`` once in every thread but this one (trio's idle workers).

    Each job holds its thread at a barrier until all have started, so no two
    jobs share a thread; afterwards the set of threads that ran it must be
    exactly the set that exists.
    """
    if "threading" not in sys.modules:  # never imported here: no thread was started
        return
    import threading  # loaded (the line above): this runs after the pivot

    others = threading.active_count() - 1
    if others <= 0:
        return
    barrier = threading.Barrier(others + 1)
    ran: set[int] = set()
    errors: list[BaseException] = []

    def job() -> None:
        try:
            fn()  # type: ignore[operator]
            ran.add(threading.get_ident())
        except BaseException as exc:
            errors.append(exc)
        finally:
            barrier.wait()

    import trio  # threads exist only when the setup ran in trio (pyinit/container.py)

    for _ in range(others):
        trio.lowlevel.start_thread_soon(job, lambda _outcome: None)
    barrier.wait()
    if errors:
        raise errors[0]
    existing = {t.ident or 0 for t in threading.enumerate()} - {threading.get_ident()}
    if ran != existing:
        raise OSError(0, f"threads {sorted(existing - ran)} could not be hardened")


SECCOMP_FILTER_FLAG_TSYNC = 1


def lock_down(user: User, may_setgroups: bool, last_cap: int, own_pid_ns: bool,
              filt: seccomp.PreparedFilter | None = None) -> None:
    """The calling process's (the container's PID 1) credentials, as the module says.

    Runs between the workload's fork and its exec (spawn's ``gate``), so the
    workload never runs next to a PID 1 that still holds anything. The
    descriptors are closed right after (:func:`close_all_but`).
    """
    keep = [caps.CAPS["CAP_KILL"]] if own_pid_ns else []
    _in_every_other_thread(lambda: _drop(keep, last_cap))
    _drop(keep, last_cap)
    syscalls.prctl(syscalls.PR_SET_KEEPCAPS, 1)
    if may_setgroups:
        os.setgroups(user.additional_gids)
    os.setresgid(user.gid, user.gid, user.gid)
    os.setresuid(user.uid, user.uid, user.uid)
    syscalls.capset(caps.mask(keep), caps.mask(keep), 0)
    syscalls.prctl(syscalls.PR_SET_KEEPCAPS, 0)
    # The other threads still hold CAP_SETUID and CAP_SETGID when the uid
    # stayed 0; they never signal anyone, so they keep nothing at all.
    _in_every_other_thread(lambda: syscalls.capset(0, 0, 0))
    task.set_dumpable(False)  # after the uid change, which may have reset it
    if filt is not None:  # last: no_new_privs is set on every thread (_drop)
        seccomp.install(replace(filt, flags=filt.flags | SECCOMP_FILTER_FLAG_TSYNC))


def drop_stdio(devnull: int, log_fd: int) -> None:
    """PID 1's 0, 1 and 2 become the container's /dev/null (``devnull``, checked to be
    char 1:3 in the root: rootfs/hardening.py), or without one its log socket to the
    parent (``log_fd``): nothing of the caller's stays in PID 1 once the workload runs.

    Runs in the gate, after the workload's fork (it has its own copies, or the
    pty) and before its exec.
    """
    source = devnull if devnull >= 0 else log_fd
    for fd in (0, 1, 2):
        os.dup2(source, fd)
    if devnull >= 0:
        os.close(devnull)


def close_all_but(keep_fds: frozenset[int]) -> None:
    """Every descriptor above 2 but ``keep_fds`` (the log sink)."""
    task.close_from(3, keep_fds)
