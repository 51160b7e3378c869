"""``pyinit sandbox``'s steps that are not mounts: --dir, --file, --bind-data, --chmod and
--remount-ro.

Each path is resolved once inside the root (openat2 RESOLVE_IN_ROOT, as every
other step) and then used by its fd. The bytes of --file and --bind-data were
read from the caller's descriptors before anything was set up; nothing here
reads from the host.

--bind-data keeps its bytes in a file of a tmpfs of its own that is never
attached anywhere: the file is cloned out of the detached tmpfs with
``open_tree`` and that clone alone is attached on the destination, so the
sandbox sees the file and nothing else of the tmpfs.
"""

from __future__ import annotations

import errno
import os
import stat

from pyinit.errors import SetupError
from pyinit.linux import flags, syscalls
from pyinit.linux.paths import O_PATH
from pyinit.rootfs import detached
from pyinit.rootfs.context import Context
from pyinit.rootfs.plan import BindData, Chmod, MakeDir, RemountRo, WriteFile

DATA_ATTR = flags.MOUNT_ATTR_NOSUID | flags.MOUNT_ATTR_NODEV


def make_dir(ctx: Context, step: MakeDir) -> None:
    """The directory and its parents; a new one gets exactly ``mode`` (an existing one is kept)."""
    existed = ctx.root.lstat(step.path) is not None
    fd = ctx.root.mkdir_all(step.path, step.mode)
    try:
        if not existed:
            ctx.kernel.fchmod(fd, step.mode)
    finally:
        ctx.kernel.close(fd)


def _write(ctx: Context, parent: int, name: str, data: bytes, mode: int, oflags: int) -> None:
    k = ctx.kernel
    fd = k.openat(parent, name, os.O_WRONLY | os.O_NOFOLLOW | oflags, mode)
    try:
        if not stat.S_ISREG(k.fstat(fd).st_mode):
            raise SetupError("", f"{name} is not a regular file", err=errno.EEXIST, op="open",
                             path=name)
        k.write(fd, data)
        k.fchmod(fd, mode)
    finally:
        k.close(fd)


def write_file(ctx: Context, step: WriteFile) -> None:
    """A file with the bytes given (truncated first if it exists; a symlink is refused)."""
    parent, name = ctx.root.parent(step.path)
    try:
        _write(ctx, parent, name, step.data, step.mode, os.O_CREAT | os.O_TRUNC)
    finally:
        ctx.kernel.close(parent)


def bind_data(ctx: Context, step: BindData) -> None:
    k = ctx.kernel
    tmp = detached.new_mount(ctx, "tmpfs", "tmpfs", ("mode=0700",), DATA_ATTR)
    try:
        _write(ctx, tmp, "data", step.data, step.mode, os.O_CREAT | os.O_EXCL)
        tree = k.open_tree(tmp, "data", syscalls.OPEN_TREE_CLONE)
    finally:
        k.close(tmp)
    try:
        if step.readonly:
            k.mount_setattr(tree, "", detached.EMPTY, flags.MOUNT_ATTR_RDONLY)
        dest = ctx.root.create_file(step.path, 0o600)
        try:
            if not stat.S_ISREG(k.fstat(dest).st_mode):
                raise SetupError("", f"{step.path} exists and is not a regular file",
                                 err=errno.EISDIR, op="move_mount", path=step.path)
            k.move_mount(tree, "", dest, "", detached.MOVE)
        finally:
            k.close(dest)
    finally:
        k.close(tree)


def chmod(ctx: Context, step: Chmod) -> None:
    """The mode of what the path names (a symlink is followed inside the root, as chmod does)."""
    fd = ctx.root.open(step.path, O_PATH)
    try:
        ctx.kernel.fchmod(fd, step.mode)
    finally:
        ctx.kernel.close(fd)


def remount_ro(ctx: Context, step: RemountRo) -> None:
    """The mount whose root the path is, read-only; its submounts are left as they are.

    A path that is not the root of a mount is refused by the kernel (EINVAL),
    as bubblewrap's remount is.
    """
    fd = ctx.root.open(step.path, O_PATH)
    try:
        ctx.kernel.mount_setattr(fd, "", detached.EMPTY, flags.MOUNT_ATTR_RDONLY)
    finally:
        ctx.kernel.close(fd)
