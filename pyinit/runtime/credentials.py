"""Turning a process into the workload: the OCI ``process`` settings."""

from __future__ import annotations

import os
import resource
from typing import Any

from pyinit.errors import EXIT_SETUP_FAILED
from pyinit.linux import caps, seccomp, syscalls
from pyinit.oci.config import Process
from pyinit.runtime import say


def _setgroups_allowed() -> bool:
    try:
        with open("/proc/self/setgroups") as fh:
            return fh.read().strip() != "deny"
    except OSError:
        return True


def become(proc: Process, last_cap: int, filt: seccomp.PreparedFilter | None = None) -> None:
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
            resource.setrlimit(res, (soft, hard))
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
        say(f"{'linux' if step == 'seccomp' else 'process'}.{step}: {exc.strerror or exc}")
        os._exit(EXIT_SETUP_FAILED)


def grantable_ambient(proc: Process, log: Any) -> None:
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
