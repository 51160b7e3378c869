"""Turning a process into the workload: the OCI ``process`` settings."""

from __future__ import annotations

import errno
import os
import resource

from pyinit import diagnose
from pyinit.errors import EXIT_SETUP_FAILED, SetupError
from pyinit.linux import caps, seccomp, syscalls, task
from pyinit.oci.config import Process
from pyinit.record import record
from pyinit.runtime import say


@record
class HostFacts:
    """Read in the middle process from the host's /proc, for the processes after it."""

    last_cap: int  # the highest capability number this kernel knows
    may_setgroups: bool  # see setgroups_allowed


def setgroups_allowed() -> bool:
    """May this process call setgroups? Read on the host's /proc, before any pivot.

    A user namespace whose gid_map an unprivileged process wrote has
    setgroups denied for good; the answer is inherited by every process
    created in it, so the middle process reads it once for all of them.
    """
    try:
        with open("/proc/thread-self/setgroups") as fh:
            return fh.read().strip() != "deny"
    except FileNotFoundError:
        return True  # no user namespace support at all: setgroups is never denied


def _limit(value: int) -> int:
    """config.json's unlimited (2^64-1) as Python's RLIM_INFINITY: it does not fit a C long."""
    return resource.RLIM_INFINITY if value >= 2**63 else value


def _above(wanted: int, current: int) -> bool:
    """Is limit ``wanted`` higher than ``current`` (-1 is RLIM_INFINITY)?"""
    if current == resource.RLIM_INFINITY:
        return False
    return wanted == resource.RLIM_INFINITY or wanted > current


def before_namespaces(proc: Process) -> None:
    """What only the host can grant: set it here, and every child inherits it.

    Runs in the middle process, before it joins or creates any namespace, so
    ``/proc`` is the host's and the process still has the caller's
    privileges. Inside a new user namespace, a process can neither lower its
    oom_score_adj nor raise a hard resource limit (both need CAP_SYS_RESOURCE
    in the initial user namespace), and its ``/proc/self`` files may belong
    to an unmapped uid: runc does the same from its parent side.

    oom_score_adj is set to the final value (the container's PID 1 then has
    it too, as runc's init does). A hard limit is only *raised* here, where
    the config wants more than the caller has; ``become`` sets the exact
    values in the workload, which never needs privilege to lower them.
    """
    if proc.oom_score_adj is not None:
        try:
            task.write_oom_score_adj(proc.oom_score_adj)
        except task.NotProcfs as exc:
            raise SetupError("process", f"{exc.strerror}: pyinit writes it only through the "
                             "host's procfs", err=exc.errno, op="oom-not-procfs",
                             where="process.oomScoreAdj") from None
        except OSError as exc:
            raise SetupError.from_os("process", f"cannot set it to {proc.oom_score_adj}", exc,
                                     op="oom_score_adj", where="process.oomScoreAdj") from None
    for i, (res, name, _soft, wanted) in enumerate(proc.rlimits):
        hard = _limit(wanted)
        now_soft, now_hard = task.get_rlimit(res)
        if not _above(hard, now_hard):
            continue
        try:
            task.set_rlimit(res, now_soft, hard)
        except (OSError, ValueError) as exc:
            err = getattr(exc, "errno", None) or errno.EPERM
            shown = "unlimited" if now_hard == resource.RLIM_INFINITY else str(now_hard)
            raise SetupError.from_os(
                "process", f"cannot raise the hard {name} to "
                f"{'unlimited' if hard == resource.RLIM_INFINITY else hard}",
                OSError(err, str(exc)), op="setrlimit", where=f"process.rlimits[{i}].hard",
                own_hard=shown) from None


def become(proc: Process, last_cap: int, may_setgroups: bool,
           filt: seccomp.PreparedFilter | None = None,
           cwd_choices: tuple[str, ...] = ()) -> str:
    """In the workload's process, before exec: the OCI process settings, then seccomp.

    Returns the working directory entered: process.cwd, or with ``cwd_choices``
    (pyinit sandbox) the first of them the workload's user can enter, tried once
    it is that user, as bubblewrap does.
    """
    if cwd_choices:
        take_identity(proc, last_cap, may_setgroups, filt)
        return enter_first(cwd_choices)
    try:
        os.chdir(proc.cwd)
        if os.getcwd() != os.path.normpath(proc.cwd):
            raise OSError(0, f"the working directory is {os.getcwd()}, not {proc.cwd}")
    except OSError as exc:
        say(f"process.cwd: {exc.strerror or exc}")
        os._exit(EXIT_SETUP_FAILED)
    take_identity(proc, last_cap, may_setgroups, filt)
    return proc.cwd


def enter_first(choices: tuple[str, ...]) -> str:
    """chdir to the first of ``choices`` that works; exits (125) if none does."""
    failure = ""
    for path in choices:
        try:
            os.chdir(path)
            return path
        except OSError as exc:
            failure = f"{path}: {exc.strerror}"
    say(f"process.cwd {failure}")
    os._exit(EXIT_SETUP_FAILED)


def take_identity(proc: Process, last_cap: int, may_setgroups: bool,
                  filt: seccomp.PreparedFilter | None = None) -> None:
    """Everything of the workload but its working directory.

    The seccomp filter is loaded last, once no_new_privs is set; without
    noNewPrivileges, before the capabilities go, while CAP_SYS_ADMIN lets the
    kernel take it (runc's order). Exits the process (status 125, one line on
    stderr) when a setting fails: this runs in a forked child, before exec.
    """
    step = "rlimits"
    try:
        for res, _name, soft, hard in proc.rlimits:
            resource.setrlimit(res, (_limit(soft), _limit(hard)))
        capabilities = proc.capabilities
        if capabilities is not None:
            step = "capabilities.bounding"
            caps.drop_bounding(capabilities.get("bounding", []), last_cap)
            syscalls.prctl(syscalls.PR_SET_KEEPCAPS, 1)
        if filt is not None and not proc.no_new_privileges:
            step = "seccomp"
            seccomp.install(filt)
        step = "user"
        if may_setgroups:
            os.setgroups(proc.user.additional_gids)
        elif proc.user.additional_gids:
            say("process.user.additionalGids: this user namespace denies setgroups (an "
                "unprivileged map of only your own gid); "
                f"{diagnose.explain('setgroups-denied', None, {}, evidence=False)}")
            os._exit(EXIT_SETUP_FAILED)
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
        say(f"{'linux' if step == 'seccomp' else 'process'}.{step}: {exc.strerror or exc}")
        os._exit(EXIT_SETUP_FAILED)

