"""config -> the ordered list of setup steps. Pure: no system calls.

The order is runc's (libcontainer's prepareRootfs and finalizeRootfs), made
safe: propagation, the rootfs bind, mounts in config order, /dev, hostname,
pivot, /dev/null, read-only root, read-only and masked paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyinit.linux import flags
from pyinit.oci.config import Config, Device, Mount

# The devices every container gets (config-linux.md "Default Devices"):
# name -> (major, minor). /dev/ptmx and /dev/console are handled separately.
DEFAULT_DEVICES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8),
                   "urandom": (1, 9), "tty": (5, 0)}
DEV_SYMLINKS = {"/dev/fd": "/proc/self/fd", "/dev/stdin": "/proc/self/fd/0",
                "/dev/stdout": "/proc/self/fd/1", "/dev/stderr": "/proc/self/fd/2"}


@dataclass
class Step:
    kind: str  # "propagation", "rootfs", "mount", "device", "ptmx", "symlink", ...
    summary: str
    params: dict[str, Any] = field(default_factory=dict)


def _propagation(cfg: Config) -> int:
    """How / is made before any mount: never shared, whatever the config says.

    After unshare(CLONE_NEWNS) a shared mount stays in the host's peer group,
    so anything mounted under it would appear on the host. Only private
    (when asked) or slave (the default, as runc: host mounts still arrive).
    """
    name = (cfg.rootfs_propagation or "slave").lstrip("r")
    return flags.MS_REC | (flags.MS_PRIVATE if name == "private" else flags.MS_SLAVE)


def _final_propagation(cfg: Config) -> int | None:
    """rootfsPropagation applied to / after the pivot, shared included.

    As written: ``shared`` and ``unbindable`` touch / itself, the ``r``
    forms the whole tree (a recursively unbindable /proc could no longer be
    bound for readonlyPaths).
    """
    if cfg.rootfs_propagation is None:
        return None
    return flags.PROPAGATION[cfg.rootfs_propagation]


def _mount_summary(m: Mount) -> str:
    parts = [f"{m.type} {m.source or '-'} on {m.destination}"]
    if m.parsed.flags:
        parts.append(flags.names(m.parsed.flags))
    if m.parsed.data:
        parts.append(",".join(m.parsed.data))
    return " ".join(parts)


def _dev_is_bound(cfg: Config) -> bool:
    return any(m.parsed.is_bind and m.destination.rstrip("/") == "/dev" for m in cfg.mounts)


def build(cfg: Config) -> list[Step]:
    prop = _propagation(cfg)
    steps = [
        Step("propagation", f"/ {flags.names(prop)} (no mount reaches the host)",
             {"flags": prop}),
        Step("rootfs", f"a fresh tmpfs on {cfg.root_path}" if cfg.root_tmpfs
             else f"bind {cfg.root_path} onto itself",
             {"path": cfg.root_path, "tmpfs": cfg.root_tmpfs}),
    ]
    for m in cfg.mounts:
        for cmd in m.before:
            steps.append(Step("command", f"before {m.destination}: {' '.join(cmd.argv)}",
                              {"command": cmd, "mount": m, "phase": "before"}))
        steps.append(Step("mount", _mount_summary(m), {"mount": m}))
        for cmd in m.after:
            steps.append(Step("command", f"after {m.destination}: {' '.join(cmd.argv)}",
                              {"command": cmd, "mount": m, "phase": "after"}))
    if cfg.dev_setup and not _dev_is_bound(cfg):
        for name, (major, minor) in DEFAULT_DEVICES.items():
            dev = Device("c", f"/dev/{name}", major, minor, 0o666, 0, 0)
            steps.append(Step("device", f"/dev/{name} c {major}:{minor}", {"device": dev}))
        for dev in cfg.devices:
            steps.append(Step("device", f"{dev.path} {dev.type} {dev.major}:{dev.minor}",
                              {"device": dev}))
        steps.append(Step("ptmx", "/dev/ptmx -> pts/ptmx"))
        for path, target in DEV_SYMLINKS.items():
            steps.append(Step("symlink", f"{path} -> {target}", {"path": path, "target": target}))
        steps.append(Step("symlink", "/dev/core -> /proc/kcore (if the host has it)",
                          {"path": "/dev/core", "target": "/proc/kcore", "if_exists": True}))
    if cfg.hostname is not None:
        steps.append(Step("hostname", cfg.hostname, {"name": cfg.hostname}))
    if cfg.domainname is not None:
        steps.append(Step("domainname", cfg.domainname, {"name": cfg.domainname}))
    steps.append(Step("cwd", f"create {cfg.process.cwd} inside the root",
                      {"path": cfg.process.cwd}))
    steps += _hooks(cfg, "createContainer")
    if cfg.no_pivot:
        steps.append(Step("nopivot", "hide the host's /proc and /sys, then MS_MOVE the rootfs "
                          "onto / and chroot", {"path": cfg.root_path}))
    else:
        steps.append(Step("pivot", "pivot_root into the rootfs, detach the old root"))
    final = _final_propagation(cfg)
    if final is not None:
        steps.append(Step("propagation", f"/ {flags.names(final)} (rootfsPropagation)",
                          {"flags": final}))
    steps.append(Step("devnull", "stdio on the host's /dev/null -> the container's (char 1:3)"))
    for key, value in cfg.sysctl.items():  # before readonlyPaths makes /proc/sys read-only
        steps.append(Step("sysctl", f"{key} = {value}", {"key": key, "value": value}))
    if cfg.root_readonly:
        steps.append(Step("readonly", "/ read-only (keeping locked flags)", {"path": "/"}))
    for path in cfg.readonly_paths:
        steps.append(Step("readonly", f"{path} read-only", {"path": path}))
    for path in cfg.masked_paths:
        steps.append(Step("mask", f"mask {path}", {"path": path}))
    steps += _hooks(cfg, "startContainer")
    return steps


def _hooks(cfg: Config, kind: str) -> list[Step]:
    return [Step("hook", f"{kind}: {' '.join(cmd.argv)}", {"hook": cmd, "kind": kind})
            for cmd in cfg.hooks.get(kind, [])]
