"""Detached mounts: a new filesystem built with fsopen/fsconfig/fsmount.

Shared by every part of the executor that makes a new filesystem (mounts,
cgroups, masks, the sandbox's root), so there is one way to do it.
"""

from __future__ import annotations

from pyinit.linux import syscalls
from pyinit.rootfs.context import Context

EMPTY = syscalls.AT_EMPTY_PATH
MOVE = syscalls.MOVE_MOUNT_F_EMPTY_PATH | syscalls.MOVE_MOUNT_T_EMPTY_PATH


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
