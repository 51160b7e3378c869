"""Detached mounts: a clone of a host path, or a new filesystem built with fsopen/fsconfig/fsmount.

Shared by every part of the executor that makes a new filesystem (mounts,
cgroups, masks, the sandbox's root), so there is one way to do it.
"""

from __future__ import annotations

import errno

from pyinit.errors import SetupError
from pyinit.linux import syscalls
from pyinit.rootfs.context import Context

EMPTY = syscalls.AT_EMPTY_PATH
MOVE = syscalls.MOVE_MOUNT_F_EMPTY_PATH | syscalls.MOVE_MOUNT_T_EMPTY_PATH


def clone_host(ctx: Context, path: str, flags: int, step: str, missing: str) -> int:
    """open_tree(OPEN_TREE_CLONE) of a host path: a bind source or a host device node.

    The host's side is trusted (the config names it), so it is looked up by
    name, once; what is attached later is exactly this detached clone. A
    missing path gets ``missing`` as its reason instead of a bare ENOENT.
    """
    try:
        return ctx.kernel.open_tree(syscalls.AT_FDCWD, path, flags)
    except SetupError as exc:
        if exc.errno == errno.ENOENT:
            exc.step = step
            exc.reason = missing
        raise


def fs_context(ctx: Context, fstype: str, source: str, sb_flags: tuple[str, ...],
               data: tuple[str, ...]) -> int:
    """fsopen and fsconfig: a filesystem context ready for fsmount.

    Each option is one fsconfig call: ``key=value`` a string, ``key`` a flag,
    so the filesystem names the option it refuses.
    """
    k = ctx.kernel
    fs = k.fsopen(fstype)
    try:
        k.fsconfig(fs, syscalls.FSCONFIG_SET_STRING, "source", source)
        for name in sb_flags:
            k.fsconfig(fs, syscalls.FSCONFIG_SET_FLAG, name)
        for option in data:
            key, eq, value = option.partition("=")
            if eq:
                k.fsconfig(fs, syscalls.FSCONFIG_SET_STRING, key, value)
            else:
                k.fsconfig(fs, syscalls.FSCONFIG_SET_FLAG, key)
        k.fsconfig(fs, syscalls.FSCONFIG_CMD_CREATE)
    except BaseException:
        k.close(fs)
        raise
    return fs


def new_mount(ctx: Context, fstype: str, source: str, data: tuple[str, ...], attr: int,
              sb_flags: tuple[str, ...] = ()) -> int:
    """A detached mount of a new ``fstype`` filesystem, as an fd."""
    fs = fs_context(ctx, fstype, source, sb_flags, data)
    try:
        return ctx.kernel.fsmount(fs, attr)
    finally:
        ctx.kernel.close(fs)
