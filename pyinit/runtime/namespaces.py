"""Creating and joining namespaces, and writing a new user namespace's id maps."""

from __future__ import annotations

import errno
import os

from pyinit import diagnose
from pyinit.errors import SetupError
from pyinit.linux import caps, syscalls
from pyinit.oci.config import Config, IDMap
from pyinit.runtime import say

TYPE_CHECKING = False  # typing costs 6 ms at start-up; mypy reads the name
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

FLAGS = {
    "mount": syscalls.CLONE_NEWNS,
    "uts": syscalls.CLONE_NEWUTS,
    "ipc": syscalls.CLONE_NEWIPC,
    "network": syscalls.CLONE_NEWNET,
    "cgroup": syscalls.CLONE_NEWCGROUP,
    "pid": syscalls.CLONE_NEWPID,
    "user": syscalls.CLONE_NEWUSER,
}


def unshare(flags: int) -> None:
    names = [n for n, bit in FLAGS.items() if flags & bit]
    try:
        syscalls.unshare(flags)
    except OSError as exc:
        hint = diagnose.no_capability() if exc.errno == errno.EPERM else None
        raise SetupError.from_os("namespace", f"unshare {', '.join(names)}", exc,
                                 hint=hint) from None


def join(cfg: Config) -> int:
    """setns into every namespace given by path; the flags still to unshare.

    A user namespace comes first, so that the others are joined with its
    privileges.
    """
    to_unshare = 0
    for ns in sorted(cfg.namespaces, key=lambda n: n.type != "user"):
        if ns.path is None:
            to_unshare |= FLAGS[ns.type]
            continue
        try:
            fd = os.open(ns.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise SetupError.from_os("namespace", f"open {ns.path}", exc,
                                     where=f"linux.namespaces ({ns.type})") from None
        try:
            syscalls.setns(fd, FLAGS[ns.type])
        except OSError as exc:
            raise SetupError.from_os("namespace", f"setns {ns.path}", exc, op="setns",
                                     where=f"linux.namespaces ({ns.type})") from None
        finally:
            os.close(fd)
    return to_unshare


SETID_CAPS = 1 << caps.CAPS["CAP_SETGID"] | 1 << caps.CAPS["CAP_SETUID"]


def _only_self(maps: Sequence[IDMap], own: int) -> bool:
    return len(maps) == 1 and maps[0].host_id == own and maps[0].size == 1


def write_maps(cfg: Config, pid: int, log: Any) -> bool:
    """Write process ``pid``'s uid_map and gid_map (from the parent, on the host's /proc).

    With CAP_SETUID and CAP_SETGID: directly, any ranges. Without them (any
    user but root, and a root without capabilities, such as the program of a
    root's sandbox starting a sandbox of its own): a map of only our own uid
    and gid is written directly (setgroups must be denied first, the kernel
    says), anything larger goes through the setuid newuidmap/newgidmap and
    the ranges /etc/subuid and /etc/subgid grant us.
    """
    rootless = os.geteuid() != 0 or caps.effective() & SETID_CAPS != SETID_CAPS
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
                import shutil  # only here: subprocess alone costs 5 ms of every start
                import subprocess

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
            error = SetupError("namespace", f"write {name}: {exc.strerror or exc}",
                               err=exc.errno, op="write_id_map", where=f"linux.{key}")
            # Linux 5.12 and later: mapping uid 0 of the parent namespace needs CAP_SETFCAP
            # there, even for a root mapping only itself.
            root_needs_setfcap = (name == "uid_map" and any(m.host_id == 0 for m in maps)
                                  and not caps.effective() >> caps.CAPS["CAP_SETFCAP"] & 1)
            error.hint = diagnose.explain_error(
                error, {"rootless": rootless, "root_needs_setfcap": root_needs_setfcap},
                evidence=False)
            log.error("namespace.failed", **error.log_fields())
            say(error.line())
            return False
    return True
