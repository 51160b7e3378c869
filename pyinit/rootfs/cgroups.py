"""The cgroup mount of a container: v1 hierarchies, hybrid, or cgroup2.

v1 (and hybrid): a fresh tmpfs on the destination, then per host hierarchy
either a fresh cgroup mount (with a cgroup namespace its root is the
namespace's root) or, without one, a bind of this process's own cgroup
directory; the co-mount symlinks (``cpu -> cpu,cpuacct``); hybrid's
``unified`` gets cgroup2. The hierarchies' directories are made in that
fresh tmpfs through its mount fd, never by a path. Read-only, when asked, is
applied last, so the tmpfs can be filled.
v2 only: with a cgroup namespace a fresh cgroup2 (or, when the kernel
refuses with EPERM or EBUSY, a bind); without one a bind of our own cgroup
directory, as runc does: a fresh cgroup2 there would be the host's whole tree.
Every bind gets the step's attributes (nosuid, nodev, noexec) too.
"""

from __future__ import annotations

import errno
import os

from pyinit.errors import SetupError
from pyinit.linux import flags, syscalls
from pyinit.linux.host import CGROUP_BASE, Hierarchy
from pyinit.linux.paths import O_PATH
from pyinit.rootfs import detached
from pyinit.rootfs.context import Context
from pyinit.rootfs.plan import CgroupMount

MOVE = detached.MOVE
EMPTY = detached.EMPTY
FRESH = "a fresh mount"  # the source the log names for one


def mount(ctx: Context, step: CgroupMount, dest: int) -> int:
    """Mount the container's cgroup filesystem(s) on ``dest``; the top mount's fd."""
    k = ctx.kernel
    if step.unified:
        mnt, _source = _v2(ctx, step)
        try:
            if step.readonly:
                k.mount_setattr(mnt, "", EMPTY | syscalls.AT_RECURSIVE, flags.MOUNT_ATTR_RDONLY)
            k.move_mount(mnt, "", dest, "", MOVE)
        except BaseException:
            k.close(mnt)
            raise
        return mnt
    base = detached.new_mount(ctx, "tmpfs", "tmpfs", ("mode=755",),
                             step.attr & ~flags.MOUNT_ATTR__ATIME)
    try:
        k.move_mount(base, "", dest, "", MOVE)
        links: list[tuple[str, str]] = []
        for h in step.hierarchies:
            k.mkdirat(base, h.name, 0o755)
            target = k.openat(base, h.name, O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW)
            try:
                sub, source = _v2(ctx, step) if h.version == 2 else _v1(ctx, step, h)
                try:
                    k.move_mount(sub, "", target, "", MOVE)
                finally:
                    k.close(sub)
            finally:
                k.close(target)
            if "," in h.name:  # co-mounted: cpu -> cpu,cpuacct
                links += [(h.name, c) for c in h.name.split(",")]
            ctx.log.debug("cgroup.hierarchy", name=h.name, version=h.version, source=source)
        for target_name, name in links:
            try:
                k.symlinkat(target_name, base, name)
            except SetupError as exc:
                if exc.errno != errno.EEXIST:
                    raise
        if step.readonly:
            k.mount_setattr(base, "", EMPTY | syscalls.AT_RECURSIVE,
                            flags.MOUNT_ATTR_LOCKED_DOWN)
    except BaseException:
        k.close(base)
        raise
    return base


def _v1(ctx: Context, step: CgroupMount, h: Hierarchy) -> tuple[int, str]:
    if step.own_namespace:
        try:
            fs = detached.fs_context(ctx, "cgroup", "cgroup", (), h.controllers)
            try:
                return ctx.kernel.fsmount(fs, step.attr), FRESH
            finally:
                ctx.kernel.close(fs)
        except SetupError as exc:
            if exc.errno != errno.EPERM:
                raise  # v1 in a user namespace is refused: bind our own instead
    return _own(ctx, step, h.name, h.host_path, h.own_cgroup)


def _v2(ctx: Context, step: CgroupMount) -> tuple[int, str]:
    name, host = ("", CGROUP_BASE) if step.unified else ("unified", f"{CGROUP_BASE}/unified")
    planned = {h.name: h.own_cgroup for h in step.hierarchies}.get(name, "/")
    if not step.own_namespace:
        # A fresh cgroup2 outside a cgroup namespace is the host's whole tree.
        return _own(ctx, step, name, host, planned)
    k = ctx.kernel
    try:
        fs = k.fsopen("cgroup2")
        try:
            k.fsconfig(fs, syscalls.FSCONFIG_CMD_CREATE)
            return k.fsmount(fs, step.attr), FRESH
        finally:
            k.close(fs)
    except SetupError as exc:
        if exc.errno not in (errno.EPERM, errno.EBUSY):
            raise
        ctx.log.info("cgroup.bind_fallback", destination=step.mount.destination,
                     errno=errno.errorcode[exc.errno],
                     detail="the kernel refused a cgroup2 mount; binding our own cgroup instead")
    return _own(ctx, step, name, host, planned)


def _own(ctx: Context, step: CgroupMount, name: str, host_path: str,
         planned: str) -> tuple[int, str]:
    """A bind of our own cgroup, the container's (PID 1 was moved into it).

    As PID 1 read it before it unshared the cgroup namespace
    (``ctx.own_cgroups``): inside the namespace /proc/self/cgroup says "/",
    and a bind of that would be the host hierarchy's root, with every
    sibling cgroup in it.
    """
    k = ctx.kernel
    own = ctx.own_cgroups.get(name, planned)
    source = host_path + (own if own != "/" else "")
    mnt = k.open_tree(syscalls.AT_FDCWD, source, syscalls.OPEN_TREE_CLONE | syscalls.AT_RECURSIVE)
    try:
        atime = flags.MOUNT_ATTR__ATIME if step.attr & flags.MOUNT_ATTR__ATIME else 0
        k.mount_setattr(mnt, "", EMPTY | syscalls.AT_RECURSIVE, step.attr, atime)
    except BaseException:
        k.close(mnt)
        raise
    return mnt, source
