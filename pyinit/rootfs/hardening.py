"""After the pivot: /dev/null for stdio, sysctls, read-only and masked paths.

Nothing here reads or writes through a path the container controls by name:
each path is resolved once inside the root with openat2 and then used by its
fd, and what is found is checked (a sysctl file must be on procfs, the
/dev/null that masks files must be the char device 1:3). The read-only root
is set on the root's mount fd, kept from before the pivot.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import time

from pyinit.errors import SetupError
from pyinit.linux import flags, syscalls
from pyinit.linux.paths import is_char_device
from pyinit.rootfs import detached
from pyinit.rootfs.context import Context
from pyinit.rootfs.plan import (
    MASK_TMPFS_DATA,
    DevNull,
    MaskPath,
    ReadonlyPath,
    RootReadonly,
    Sysctl,
)

EBUSY_TRIES = 5
EBUSY_DELAY = 0.1
LOCKED_DOWN = flags.MOUNT_ATTR_LOCKED_DOWN
# The tmpfs that holds the empty file masking a file: its root and that file.
EMPTY_FILE_TMPFS_DATA = ("size=4k", "nr_inodes=2", "mode=0555")


def devnull(ctx: Context, step: DevNull) -> None:
    """Stdio on the host's /dev/null moves to the container's; the container's stays
    open (``ctx.devnull``) for PID 1's own stdio once the workload has its own
    (runtime/hardening.py: nothing of the caller's stays in PID 1)."""
    k = ctx.kernel
    targets = []
    for fd in (0, 1, 2):
        st = k.fstat(fd)
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == ctx.host_devnull:
            targets.append(fd)
    # O_NOCTTY: PID 1 leads a session, and the node is checked only once open.
    try:
        null = ctx.root.open_if_exists("/dev/null", os.O_RDWR | os.O_CLOEXEC | os.O_NOCTTY,
                                       nofollow=True)
    except SetupError as exc:
        if targets and not (exc.errno == errno.EACCES and _unusable_null(ctx)):
            raise
        null = None  # PID 1 makes do without (runtime/hardening.py)
    if null is None:
        # No /dev in there (pyinit sandbox without --dev): the open fds
        # stay as they are; they expose no path.
        ctx.log.debug("devnull.skipped", reason="the container has no /dev/null")
        return
    if not is_char_device(k.fstat(null), 1, 3):
        k.close(null)
        if targets:
            raise SetupError("devnull", "the container's /dev/null is not the char device 1:3",
                             op="devnull-wrong", destination="/dev/null")
        ctx.log.debug("devnull.skipped", reason="the container's /dev/null is not the "
                      "char device 1:3")
        return
    for fd in targets:
        k.dup2(null, fd)
    ctx.devnull = null


def _unusable_null(ctx: Context) -> bool:
    """Is the container's /dev/null the char device 1:3 on a nodev mount (``pyinit
    sandbox --ro-bind / /``: every mount of the tree is nodev)? Then nobody can open
    it; stdio stays as it is, as bubblewrap leaves it, rather than fail the run."""
    k = ctx.kernel
    fd = ctx.root.open_if_exists("/dev/null", nofollow=True)
    if fd is None:
        return False
    try:
        return is_char_device(k.fstat(fd), 1, 3) and bool(k.fstatvfs_flags(fd) & os.ST_NODEV)
    finally:
        k.close(fd)


def sysctl(ctx: Context, step: Sysctl) -> None:
    k = ctx.kernel
    fd = ctx.root.open(step.path, os.O_WRONLY | os.O_NOCTTY, nofollow=True)
    try:
        if k.fstatfs_type(fd) != syscalls.PROC_SUPER_MAGIC:
            raise SetupError("sysctl", f"{step.path} is not on a procfs", op="sysctl-not-procfs",
                             destination=step.path)
        k.write(fd, step.value.encode())
    finally:
        k.close(fd)


async def _sleep(seconds: float) -> None:
    """trio.sleep inside trio; outside (a setup without commands runs without
    trio, pyinit/container.py), a plain sleep that never suspends the coroutine."""
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            trio.lowlevel.current_task()
        except RuntimeError:
            pass
        else:
            await trio.sleep(seconds)
            return
    time.sleep(seconds)


async def root_readonly(ctx: Context, step: RootReadonly) -> None:
    """mount_setattr(RDONLY) on the root's mount fd; retried while the mount is busy.

    mount_setattr changes only the bits it names, so flags locked in a user
    namespace (nosuid, nodev, noexec, atime) are kept as they are.
    """
    k = ctx.kernel
    for attempt in range(1, EBUSY_TRIES + 1):
        try:
            k.mount_setattr(ctx.root_mount, "", detached.EMPTY, flags.MOUNT_ATTR_RDONLY)
            return
        except SetupError as exc:
            if exc.errno != errno.EBUSY or attempt == EBUSY_TRIES:
                exc.fields["attempts"] = attempt
                raise
        ctx.log.warning("remount.busy", destination="/", attempt=attempt,
                        retry_in_ms=int(EBUSY_DELAY * 1000))
        await _sleep(EBUSY_DELAY)


def readonly_path(ctx: Context, step: ReadonlyPath) -> None:
    """A read-only (nosuid, nodev, noexec) clone of ``path``, attached onto itself."""
    k = ctx.kernel
    fd = ctx.root.open_if_exists(step.path)
    if fd is None:
        return  # nothing to protect
    try:
        tree = k.open_tree(fd, "", syscalls.OPEN_TREE_CLONE | syscalls.AT_RECURSIVE
                           | detached.EMPTY)
        try:
            k.mount_setattr(tree, "", detached.EMPTY | syscalls.AT_RECURSIVE, LOCKED_DOWN)
            k.move_mount(tree, "", fd, "", detached.MOVE)
        finally:
            k.close(tree)
    finally:
        k.close(fd)


def mask_path(ctx: Context, step: MaskPath) -> None:
    """An empty read-only tmpfs over a directory; over a file, the container's
    /dev/null, or (``empty_file``) an empty read-only file of a private tmpfs."""
    k = ctx.kernel
    fd = ctx.root.open_if_exists(step.path)
    if fd is None:
        return
    try:
        if stat.S_ISDIR(k.fstat(fd).st_mode):
            cover = detached.new_mount(ctx, "tmpfs", "tmpfs", MASK_TMPFS_DATA,
                                       flags.MOUNT_ATTR_RDONLY)
        elif step.empty_file:
            cover = _empty_file(ctx)
        else:
            null = ctx.root.open_if_exists("/dev/null", nofollow=True)
            where = step.where or None
            if null is None:
                raise SetupError("mask", "the container has no /dev/null, so it cannot mask "
                                 "files", op="mask-no-devnull", where=where,
                                 destination=step.path)
            if not is_char_device(k.fstat(null), 1, 3):
                k.close(null)
                raise SetupError("mask", "/dev/null is not the char device 1:3, so it cannot "
                                 "mask files", op="mask-devnull", where=where,
                                 destination=step.path)
            try:
                cover = k.open_tree(null, "", syscalls.OPEN_TREE_CLONE | detached.EMPTY)
            finally:
                k.close(null)
        try:
            k.move_mount(cover, "", fd, "", detached.MOVE)
        finally:
            k.close(cover)
    finally:
        k.close(fd)


def _empty_file(ctx: Context) -> int:
    """A detached read-only (nosuid, nodev, noexec) mount of one empty file, mode 0444,
    on a tmpfs of its own (never a host path, nothing the container can name)."""
    k = ctx.kernel
    tmpfs = detached.new_mount(ctx, "tmpfs", "tmpfs", EMPTY_FILE_TMPFS_DATA, 0)
    try:
        empty = k.openat(tmpfs, "empty", os.O_CREAT | os.O_EXCL | os.O_RDONLY | os.O_NOFOLLOW,
                         0o444)
        try:
            cover = k.open_tree(empty, "", syscalls.OPEN_TREE_CLONE | detached.EMPTY)
        finally:
            k.close(empty)
    finally:
        k.close(tmpfs)
    try:
        k.mount_setattr(cover, "", detached.EMPTY, LOCKED_DOWN)
    except BaseException:
        k.close(cover)
        raise
    return cover
