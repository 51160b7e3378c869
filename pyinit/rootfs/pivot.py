"""Switching to the new root: pivot_root, or MS_MOVE + chroot (``--no-pivot``).

Both act on the root's mount fd (kept since the ``rootfs`` step), never on
the rootfs path again.
"""

from __future__ import annotations

import errno

from pyinit.errors import SetupError
from pyinit.linux import flags, syscalls
from pyinit.rootfs import detached
from pyinit.rootfs.context import Context
from pyinit.rootfs.plan import NoPivot, Pivot


def pivot(ctx: Context, step: Pivot) -> None:
    k = ctx.kernel
    k.release()  # nothing of the host's /proc stays open into the container's life
    k.fchdir(ctx.root_mount)
    try:
        k.pivot_root(".", ".")
    except SetupError as exc:
        exc.fields["destination"] = ctx.root_path
        raise
    # The old root is now stacked on top of "." (our cwd): make it a slave
    # (not private: host unmounts must still reach it) and detach it.
    k.mount_setattr(syscalls.AT_FDCWD, ".", syscalls.AT_RECURSIVE, 0, 0, flags.MS_SLAVE)
    k.umount2(".", syscalls.MNT_DETACH)
    k.chdir("/")
    ctx.pivoted = True


def no_pivot(ctx: Context, step: NoPivot) -> None:
    """MS_MOVE + chroot, for roots pivot_root cannot handle (e.g. an initramfs).

    The host's procfs and sysfs stay in this mount namespace, just out of
    sight: a process with CAP_SYS_ADMIN in a nested user namespace could
    then mount a fresh procfs, because the kernel finds a fully visible
    one. So every host proc and sysfs mount outside the new root is
    detached first, or covered by an empty read-only tmpfs (runc
    f5c345c30). Their mount points come from the host's mount table, read
    before the move, and lie outside the container's root.
    """
    k = ctx.kernel
    hidden = []
    inside = step.path.rstrip("/") + "/"
    for entry in sorted(k.mountinfo(), key=lambda e: -len(e.mount_point)):
        if entry.fstype not in ("proc", "sysfs"):
            continue
        if entry.mount_point == step.path or entry.mount_point.startswith(inside):
            continue
        try:
            k.umount2(entry.mount_point, syscalls.MNT_DETACH)
        except SetupError as exc:
            if exc.errno not in (errno.EINVAL, errno.EPERM):
                raise
            cover = detached.new_mount(ctx, "tmpfs", "tmpfs", ("size=0", "nr_inodes=1"),
                                       flags.MOUNT_ATTR_RDONLY)
            try:
                k.move_mount(cover, "", syscalls.AT_FDCWD, entry.mount_point,
                             syscalls.MOVE_MOUNT_F_EMPTY_PATH)
            finally:
                k.close(cover)
        hidden.append(entry.mount_point)
    ctx.log.debug("nopivot.hidden", mounts=hidden)
    k.release()
    k.fchdir(ctx.root_mount)
    k.move_mount(ctx.root_mount, "", syscalls.AT_FDCWD, "/", syscalls.MOVE_MOUNT_F_EMPTY_PATH)
    k.chroot(".")
    k.chdir("/")
    ctx.pivoted = True
