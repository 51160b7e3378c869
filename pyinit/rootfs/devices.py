"""/dev: the allowed device nodes, /dev/ptmx and the standard symlinks.

Only the nodes the plan lists are made. Each is created relative to its
parent directory's fd (resolved in the root once) and then checked by an
O_NOFOLLOW fd of the same name in the same directory: a node of another kind
or number that the image put there is refused, never used.
"""

from __future__ import annotations

import errno
import os
import stat

from pyinit.errors import SetupError
from pyinit.linux import flags, syscalls
from pyinit.linux.paths import O_PATH
from pyinit.oci.config import Config, Device, IDMap
from pyinit.rootfs import detached
from pyinit.rootfs.context import Context
from pyinit.rootfs.plan import BindDevice, MakeDevice, Ptmx, Symlink

TYPE_CHECKING = False  # typing costs 6 ms at start-up; mypy reads the name
if TYPE_CHECKING:  # collections.abc imports collections: 1 ms of start-up
    from collections.abc import Sequence

KINDS = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def _node(step: MakeDevice) -> tuple[int, int]:
    """The device's file type (S_IFCHR, ...) and its device number (0 for a fifo)."""
    d = step.device
    return KINDS[d.type], os.makedev(d.major, d.minor) if d.type != "p" else 0


def _is(st: os.stat_result, kind: int, rdev: int) -> bool:
    return stat.S_IFMT(st.st_mode) == kind and (kind == stat.S_IFIFO or st.st_rdev == rdev)


def _wrong(step: MakeDevice) -> SetupError:
    d = step.device
    return SetupError("device", f"{d.path} exists and is not the device {d.type} "
                      f"{d.major}:{d.minor}", op="device-conflict", destination=d.path)


def make(ctx: Context, step: MakeDevice) -> None:
    k = ctx.kernel
    d = step.device
    kind, rdev = _node(step)
    parent, name = ctx.root.parent(d.path)
    try:
        created = True
        try:
            k.mknodat(parent, name, kind | (d.file_mode & 0o7777), rdev)
        except SetupError as exc:
            if exc.errno != errno.EEXIST:
                raise
            created = False  # checked below: the same device is fine, anything else is not
        fd = k.openat(parent, name, O_PATH | os.O_NOFOLLOW)
        try:
            if not _is(k.fstat(fd), kind, rdev):
                raise _wrong(step)
            # Mode and owner through the checked fd, never by name: a racer in
            # the image can swap the name for a symlink to a host file after
            # the check (tests/security/test_review_devices_race.py).
            if not created:  # the image's node: the config's mode, as runc does
                k.fchmod(fd, d.file_mode & 0o7777)
            k.fchown(fd, d.uid, d.gid)
            if kind != stat.S_IFIFO and k.fstatvfs_flags(fd) & os.ST_NODEV:
                _allow(ctx, fd)
        finally:
            k.close(fd)
    finally:
        k.close(parent)


def _allow(ctx: Context, fd: int) -> None:
    """The image's /dev on the nodev root: this node alone is made usable.

    A clone of the node's own mount, with nodev cleared while detached,
    attached onto the node: every other node the image ships stays dead.
    """
    k = ctx.kernel
    tree = k.open_tree(fd, "", syscalls.OPEN_TREE_CLONE | detached.EMPTY)
    try:
        k.mount_setattr(tree, "", detached.EMPTY, 0, flags.MOUNT_ATTR_NODEV)
        k.move_mount(tree, "", fd, "", detached.MOVE)
    finally:
        k.close(tree)


def _inside(maps: Sequence[IDMap], host_id: int) -> int | None:
    """The id ``host_id`` of the host has in the container, if the maps map it."""
    for m in maps:
        if m.host_id <= host_id < m.host_id + m.size:
            return m.container_id + host_id - m.host_id
    return None


def _host_mode(d: Device, where: str, mode: int) -> SetupError:
    return SetupError("device", f"in a user namespace the host's {d.path} is bound (mknod is "
                      f"not allowed there), and its mode is {mode:04o}, not "
                      f"{d.file_mode & 0o7777:04o}",
                      op="device-host-mode", where=f"{where}.fileMode", destination=d.path)


def check_host_nodes(cfg: Config) -> None:
    """With a user namespace, ``linux.devices`` are the host's nodes, bound: their
    mode and owner are the host's, not the config's. On the host side, before
    anything runs (the parent, and ``pyinit check``): refuse with its JSON path a
    node whose mode is not ``fileMode``, or whose owner is a container id other
    than ``uid``/``gid`` (that user would get what the config gives another).
    An owner the maps leave unmapped is nobody in the container: its bits then
    go to no one (the container's root cannot override them either), which is
    less than the config gives, never more.
    """
    if not cfg.has_namespace("user"):
        return
    for i, d in enumerate(cfg.devices):
        where = f"linux.devices[{i}]"
        try:
            st = os.stat(d.path)  # the node bind() clones, by the same name
        except FileNotFoundError:
            continue  # bind() says the host has none
        except OSError as exc:
            raise SetupError.from_os("device", f"stat the host's {d.path}", exc,
                                     where=where, destination=d.path) from None
        if stat.S_IMODE(st.st_mode) != d.file_mode & 0o7777:
            raise _host_mode(d, where, stat.S_IMODE(st.st_mode))
        for key, host_id, wanted, maps in (("uid", st.st_uid, d.uid, cfg.uid_mappings),
                                           ("gid", st.st_gid, d.gid, cfg.gid_mappings)):
            inside = _inside(maps, host_id)
            if inside is not None and inside != wanted:
                raise SetupError(
                    "device", f"in a user namespace the host's {d.path} is bound (mknod is "
                    f"not allowed there), and it belongs to host {key} {host_id}, which is "
                    f"{key} {inside} in the container, not {wanted}", op="device-host-owner",
                    where=f"{where}.{key}", destination=d.path, id_key=key, inside=inside)


def bind(ctx: Context, step: BindDevice) -> None:
    """A user namespace may not mknod: the host's node is bound instead.

    The host's node is cloned (open_tree) and checked on that fd, so what is
    bound is exactly what was checked.
    """
    k = ctx.kernel
    d = step.device
    kind, rdev = _node(step)
    tree = detached.clone_host(ctx, d.path, syscalls.OPEN_TREE_CLONE, "device",
                               f"mknod is not allowed here and the host has no {d.path} to bind")
    try:
        st = k.fstat(tree)
        if not _is(st, kind, rdev):
            raise SetupError("device", f"mknod is not allowed here and the host's {d.path} "
                             "is another device", op="device-conflict", destination=d.path)
        # linux.devices were checked on the host (check_host_nodes); the mode
        # again on what is bound, in case the host's node changed since.
        if step.where is not None and stat.S_IMODE(st.st_mode) != d.file_mode & 0o7777:
            raise _host_mode(d, step.where, stat.S_IMODE(st.st_mode))
        # nosuid, as on every other bind (a device node needs only dev).
        k.mount_setattr(tree, "", detached.EMPTY, flags.MOUNT_ATTR_NOSUID)
        target = ctx.root.create_file(d.path, 0)
        try:
            if not stat.S_ISREG(k.fstat(target).st_mode) and not _is(k.fstat(target), kind,
                                                                      rdev):
                raise _wrong(step)
            k.move_mount(tree, "", target, "", detached.MOVE)
        finally:
            k.close(target)
    finally:
        k.close(tree)
    ctx.log.debug("device.bound", destination=d.path,
                  detail="mknod is not allowed in a user namespace; the host's node "
                  "is bound instead")


def ptmx(ctx: Context, step: Ptmx) -> None:
    parent, name = ctx.root.parent("/dev/ptmx")
    k = ctx.kernel
    try:
        try:
            k.unlinkat(parent, name)
        except SetupError as exc:
            if exc.errno != errno.ENOENT:
                raise
        k.symlinkat("pts/ptmx", parent, name)
    finally:
        k.close(parent)


def symlink(ctx: Context, step: Symlink) -> None:
    k = ctx.kernel
    parent, name = ctx.root.parent(step.path)
    try:
        try:
            k.symlinkat(step.target, parent, name)
        except SetupError as exc:
            if exc.errno != errno.EEXIST:
                raise
            fd = k.openat(parent, name, O_PATH | os.O_NOFOLLOW)
            try:
                ok = stat.S_ISLNK(k.fstat(fd).st_mode) and k.readlinkat(fd) == step.target
            finally:
                k.close(fd)
            if not ok:
                raise SetupError("symlink", f"{step.path} exists and is not a link to "
                                 f"{step.target}", destination=step.path) from None
    finally:
        k.close(parent)
