"""Every mount of the setup, one function per kind, all on the new mount API.

The shape of each, and why:

1. The mount is built **detached**: ``open_tree(OPEN_TREE_CLONE)`` for a bind
   (the source is resolved exactly once, here), ``fsopen``/``fsconfig``/
   ``fsmount`` for a new filesystem.
2. Its flags are set **on the detached mount** with ``mount_setattr``: nothing
   in the container can see it, let alone swap it, before it is read-only
   (CVE-2021-30465 raced exactly that window between a bind and its remount).
3. The destination is resolved **once**, in the root, with openat2
   (RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS), and checked on its fd: a
   destination that lands in /proc or /sys, other than their own mounts, is
   refused whatever symlinks led there.
4. The mount is **attached** with ``move_mount(MOVE_MOUNT_T_EMPTY_PATH)`` onto
   that fd; propagation is set afterwards on the same mount fd. A bind or a
   root that must be private is made so on the detached mount already,
   before its flags: attached as a slave, it would receive the host's mounts
   until then.

No path is ever handed to the kernel twice, and no ``/proc/.../fd/N`` path is
used at all.
"""

from __future__ import annotations

import errno
import os
import stat

from pyinit.errors import SetupError
from pyinit.linux import flags, syscalls
from pyinit.linux.paths import O_PATH
from pyinit.rootfs import cgroups, detached
from pyinit.rootfs.context import Context, dev_of
from pyinit.rootfs.plan import (
    BindMount,
    CgroupMount,
    MountStep,
    NewMount,
    Propagation,
    Rootfs,
    refuse,
)

TYPE_CHECKING = False  # typing costs 6 ms at start-up; mypy reads the name
if TYPE_CHECKING:
    from typing import Any

EMPTY = detached.EMPTY
MOVE = detached.MOVE
_FS_NAMES = {syscalls.PROC_SUPER_MAGIC: "proc", syscalls.SYSFS_MAGIC: "sys"}


# ----- the root ---------------------------------------------------------------
def propagation(ctx: Context, step: Propagation) -> None:
    k = ctx.kernel
    recursive = syscalls.AT_RECURSIVE if step.flags & flags.MS_REC else 0
    kind = step.flags & ~flags.MS_REC
    if ctx.pivoted:  # the container's /, by its mount fd
        k.mount_setattr(ctx.root_mount, "", EMPTY | recursive, 0, 0, kind)
    else:  # the host's / in our own mount namespace, before anything is mounted
        k.mount_setattr(syscalls.AT_FDCWD, "/", recursive, 0, 0, kind)


def rootfs(ctx: Context, step: Rootfs) -> None:
    """The root becomes a mount of its own (pivot_root needs one), nodev.

    Its fd is kept: root.readonly and the pivot act on it, never on a path.
    """
    k = ctx.kernel
    if step.tmpfs:
        tree = detached.new_mount(ctx, "tmpfs", "tmpfs", ("mode=0755",),
                                  flags.MOUNT_ATTR_NOSUID | flags.MOUNT_ATTR_NODEV)
    else:
        source = step.source or step.path
        try:
            tree = k.open_tree(syscalls.AT_FDCWD, source,
                               syscalls.OPEN_TREE_CLONE | syscalls.AT_RECURSIVE)
        except SetupError as exc:
            exc.fields["source"] = source
            raise
        try:
            if step.private:
                # On the detached tree, before it is attached: a clone of a slave
                # mount is a slave of the same master, so once attached it would
                # receive the host's mounts until made private. Attached under a
                # parent that is not shared (/ is made slave or private first),
                # it stays private. And before the read-only flags: a mount that
                # arrived between the two would keep the host's flags. (Linux
                # 6.18 propagates nothing into a detached tree, so this order
                # guards kernels that would.)
                k.mount_setattr(tree, "", EMPTY | syscalls.AT_RECURSIVE, 0, 0,
                                flags.MS_PRIVATE)
            top_ro = step.readonly and k.fstatvfs_flags(tree) & os.ST_RDONLY
            attr = step.attr | (flags.MOUNT_ATTR_RDONLY if step.readonly else 0)
            k.mount_setattr(tree, "", EMPTY | syscalls.AT_RECURSIVE, attr)
            if step.readonly and not top_ro:
                # The submounts stay read-only; the top until RootReadonly.
                k.mount_setattr(tree, "", EMPTY, 0, flags.MOUNT_ATTR_RDONLY)
        except BaseException:
            k.close(tree)
            raise
    try:
        # root.path is the caller's (a host path of the bundle), not the container's.
        k.move_mount(tree, "", syscalls.AT_FDCWD, step.path, syscalls.MOVE_MOUNT_F_EMPTY_PATH)
    except BaseException:
        k.close(tree)
        raise
    ctx.root_mount = tree


# ----- destinations ---------------------------------------------------------------
def _destination(ctx: Context, step: MountStep, is_dir: bool) -> int:
    """The destination's O_PATH fd, created inside the root if missing, and checked."""
    m = step.mount
    root = ctx.root
    if isinstance(step, NewMount) and step.fstype in ("proc", "sysfs"):
        st = root.lstat(m.destination)
        if st is not None and not stat.S_ISDIR(st.st_mode):
            what = "file"
            if stat.S_ISLNK(st.st_mode):
                parent, name = root.parent(m.destination)
                try:
                    what = f"symlink that points to {ctx.kernel.readlinkat(parent, name)}"
                finally:
                    ctx.kernel.close(parent)
            raise SetupError(
                "mount", f"{step.fstype} must be mounted on an ordinary directory, and "
                f"{m.destination} is a {what} in the image", op="proc-on-symlink",
                where=m.where, destination=m.destination)
    fd = root.mkdir_all(m.destination) if is_dir else root.create_file(m.destination)
    try:
        check_landing(ctx, step, fd)
    except BaseException:
        ctx.kernel.close(fd)
        raise
    return fd


def check_landing(ctx: Context, step: MountStep, fd: int) -> None:
    """Refuse a destination that resolved into /proc or /sys (other than their own mounts).

    The plan refused such destinations by name; an image symlink
    (``/data -> /proc``) can still lead there, so the resolved fd is checked
    twice: its filesystem (procfs or sysfs once they are mounted), and whether
    the root's own /proc or /sys directory is among its ancestors (before
    they are).
    """
    k = ctx.kernel
    m = step.mount
    if dev_of(k.fstat(fd)) == dev_of(k.fstat(ctx.root_mount)):
        # Only a symlink (or a rename racing the lookup) leads there: "/" itself
        # is refused by name in config.json.
        raise refuse(m, "the destination resolves to the container's root itself",
                     "mount-on-root")
    magic = k.fstatfs_type(fd)
    found = _FS_NAMES.get(magic)
    if found is not None and found != step.inside:
        raise refuse(m, f"the destination resolves into /{found} (a {found}fs mount is "
                     "there); only /proc's and /sys's own mounts may be made there")
    anchors = {}
    for name in ("proc", "sys"):
        if name == step.inside:
            continue
        st = ctx.root.lstat(name)
        if st is not None and stat.S_ISDIR(st.st_mode):
            anchors[dev_of(st)] = name
    if not anchors:
        return
    if not stat.S_ISDIR(k.fstat(fd).st_mode):
        # A file has no ".." to walk; a file bind that lands in the image's
        # /proc directory is covered when proc is mounted there.
        return
    top = dev_of(k.fstat(ctx.root_mount))
    cur = k.dup(fd)
    try:
        for _ in range(4096):
            here = dev_of(k.fstat(cur))
            if here in anchors:
                raise refuse(m, f"the destination resolves into /{anchors[here]}; only "
                             f"/{anchors[here]}'s own mounts may be made there")
            if here == top:
                return
            parent = k.openat(cur, "..", O_PATH | os.O_DIRECTORY)
            k.close(cur)
            cur = parent
            if dev_of(k.fstat(cur)) == here:
                return
    finally:
        k.close(cur)


def _attach(ctx: Context, mnt: int, dest: int, step: MountStep) -> None:
    k = ctx.kernel
    k.move_mount(mnt, "", dest, "", MOVE)
    for prop in getattr(step, "propagation", ()):
        rec = syscalls.AT_RECURSIVE if prop & flags.MS_REC else 0
        k.mount_setattr(mnt, "", EMPTY | rec, 0, 0, prop & ~flags.MS_REC)


def _keep(ctx: Context, step: MountStep, mnt: int, is_dir: bool) -> None:
    """Keep a directory mount's fd while post-mount commands may need it."""
    if step.mount.after and is_dir:
        ctx.mount_fds[step.mount.index] = mnt
    else:
        ctx.kernel.close(mnt)


# ----- binds -------------------------------------------------------------------------
def bind(ctx: Context, step: BindMount) -> dict[str, Any]:
    k = ctx.kernel
    m = step.mount
    clone = syscalls.OPEN_TREE_CLONE | (syscalls.AT_RECURSIVE if step.recursive else 0)
    # The host's /sys submounts, read before the clone from the host's mount table.
    covers = _sys_submounts(ctx) if step.sysfs_fallback else []
    tree = detached.clone_host(ctx, step.source, clone, "mount",
                               f"the bind source {step.source} does not exist")
    try:
        is_dir = stat.S_ISDIR(k.fstat(tree).st_mode)
        _private_first(ctx, step, tree)
        _set_attr(ctx, step, tree)
        if step.proc_fallback:
            ctx.log.warning("mount.proc_fallback", where=m.where, destination=m.destination,
                            detail=f"{step.proc_fallback}; the caller's /proc is bound "
                            "read-only instead (recursively, with its masks; it shows the "
                            "caller's PID namespace)")
        if step.sysfs_fallback:
            ctx.log.warning("mount.sysfs_fallback", where=m.where, destination=m.destination,
                            detail="sysfs is refused in this user namespace (it does not own "
                            "the network namespace); the host's /sys is bound read-only "
                            "instead, the mounts under it covered by empty tmpfs",
                            covered=covers)
        dest = _destination(ctx, step, is_dir)
        try:
            if stat.S_ISDIR(k.fstat(dest).st_mode) != is_dir:
                what = ("a directory onto a file" if is_dir else "a file onto a directory")
                raise SetupError("", f"cannot mount {what}", err=errno.ENOTDIR, op="move_mount")
            resolved = k.describe_fd(dest)
            _attach(ctx, tree, dest, step)
        finally:
            k.close(dest)
        if covers:
            _cover(ctx, tree, covers)
    except BaseException:
        k.close(tree)
        raise
    _keep(ctx, step, tree, is_dir)
    return {"resolved": resolved}


def _sys_submounts(ctx: Context) -> list[str]:
    """The mounts right under the host's /sys (cgroup, securityfs, debugfs, bpf, ...).

    Relative to /sys. A fresh sysfs shows their mount points as empty
    directories; the fallback's recursive bind would show what is mounted
    there (read-only), so each is covered.
    """
    entries = ctx.kernel.mountinfo()
    tops = [e.mount_id for e in entries if e.mount_point == "/sys"]
    if not tops:
        return []
    return sorted(e.mount_point.removeprefix("/sys/") for e in entries
                  if e.parent_id == tops[-1] and e.mount_point.startswith("/sys/"))


def _cover(ctx: Context, tree: int, paths: list[str]) -> None:
    """An empty read-only tmpfs on each of ``paths`` (relative to the attached sysfs bind).

    The kernel refuses a non-recursive bind of a tree with locked submounts
    (in a user namespace, EINVAL), and a locked mount cannot be unmounted;
    a mount on top of one can be made. The walk starts at the bind's own
    mount fd, stays beneath it and follows no symlink: the host's sysfs,
    before anything of the container runs.
    """
    k = ctx.kernel
    for path in paths:
        fd = k.openat2(tree, path, O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW,
                       syscalls.RESOLVE_BENEATH | syscalls.RESOLVE_NO_SYMLINKS)
        try:
            cover = detached.new_mount(ctx, "tmpfs", "tmpfs", ("size=0", "nr_inodes=1", "mode=755"),
                                       flags.MOUNT_ATTR_LOCKED_DOWN)
            try:
                k.move_mount(cover, "", fd, "", MOVE)
            finally:
                k.close(cover)
        finally:
            k.close(fd)


def _private_first(ctx: Context, step: BindMount, tree: int) -> None:
    """A bind made private (a read-only one, unless its options say otherwise) is made
    so on the detached tree, before its flags and before it is attached.

    A clone of a slave mount is a slave of the same master: attached, it would
    receive what the host mounts under the source, with the host's flags
    (writable), until made private, which :func:`_attach` used to do only
    after the ``move_mount``. Attached under a parent that is not shared, the
    tree stays private; under a shared one (``rootfsPropagation: shared``) the
    kernel makes it shared, so :func:`_attach` sets it again.
    """
    for prop in step.propagation:
        if prop & ~flags.MS_REC == flags.MS_PRIVATE:
            rec = syscalls.AT_RECURSIVE if prop & flags.MS_REC else 0
            ctx.kernel.mount_setattr(tree, "", EMPTY | rec, 0, 0, flags.MS_PRIVATE)


def _set_attr(ctx: Context, step: BindMount, tree: int) -> None:
    """The bind's flags, on the detached tree: mount_setattr changes only the bits named.

    In a user namespace, flags the source has from outside (nosuid, nodev,
    noexec, atime) are locked; clearing one gives EPERM, which is reported
    with the flags in question.
    """
    k = ctx.kernel
    try:
        # The whole tree first, then the top: "rbind,ro,rrw" keeps the top read-only.
        if step.rec_set or step.rec_clr:
            k.mount_setattr(tree, "", EMPTY | syscalls.AT_RECURSIVE, step.rec_set,
                            step.rec_clr)
        if step.attr_set or step.attr_clr:
            k.mount_setattr(tree, "", EMPTY, step.attr_set, step.attr_clr)
    except SetupError as exc:
        if exc.errno != errno.EPERM:
            raise
        locked = flags.locked_flags(k.fstatvfs_flags(tree))
        conflict = locked & _ms_of_attr(step.cleared)
        if conflict:
            exc.op = "locked-flags"
            exc.fields["locked"] = flags.names(conflict)
        raise


def _ms_of_attr(attr: int) -> int:
    out = 0
    for ms, bit in ((flags.MS_RDONLY, flags.MOUNT_ATTR_RDONLY),
                    (flags.MS_NOSUID, flags.MOUNT_ATTR_NOSUID),
                    (flags.MS_NODEV, flags.MOUNT_ATTR_NODEV),
                    (flags.MS_NOEXEC, flags.MOUNT_ATTR_NOEXEC)):
        if attr & bit:
            out |= ms
    return out


# ----- new filesystems -------------------------------------------------------------
def new_mount(ctx: Context, step: NewMount) -> dict[str, Any]:
    k = ctx.kernel
    m = step.mount
    existed = ctx.root.lstat(m.destination) is not None
    dest = _destination(ctx, step, True)
    try:
        data = step.data
        if step.fstype == "tmpfs" and existed and not any(d.startswith("mode=") for d in data):
            # Keep the mode of the directory the tmpfs covers.
            data = (f"mode={stat.S_IMODE(k.fstat(dest).st_mode):o}", *data)
        resolved = k.describe_fd(dest)
        attr = step.attr & ~flags.MOUNT_ATTR_RDONLY if step.copy_up else step.attr
        mnt = detached.new_mount(ctx, step.fstype, step.source, data, attr, step.sb_flags)
        try:
            if step.copy_up:
                _copy_up(ctx, step, dest, mnt)
            if step.rec_set or step.rec_clr:
                k.mount_setattr(mnt, "", EMPTY | syscalls.AT_RECURSIVE, step.rec_set,
                                step.rec_clr)
            _attach(ctx, mnt, dest, step)
        except BaseException:
            k.close(mnt)
            raise
    finally:
        k.close(dest)
    if step.fstype == "proc" and ctx.proc_dir < 0:
        # Opened on the mount itself, before anything of the container runs:
        # PID 1's shutdown lists processes through it (pyinit/proc.py).
        ctx.proc_dir = k.openat(mnt, ".", os.O_RDONLY | os.O_DIRECTORY)
    _keep(ctx, step, mnt, True)
    return {"resolved": resolved}


def _copy_up(ctx: Context, step: NewMount, dest: int, mnt: int) -> None:
    """tmpcopyup: fill the detached tmpfs from the directory it will cover, fd to fd."""
    k = ctx.kernel
    below = k.openat(dest, ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        above = k.openat(mnt, ".", os.O_RDONLY | os.O_DIRECTORY)
        try:
            copied, skipped = k.copy_tree(below, above)
        finally:
            k.close(above)
    finally:
        k.close(below)
    ctx.log.debug("mount.tmpcopyup", where=step.mount.where,
                  destination=step.mount.destination, entries=copied)
    if skipped:
        ctx.log.warning("mount.tmpcopyup_skipped", where=step.mount.where,
                        destination=step.mount.destination, skipped=skipped,
                        detail="device nodes of the image are not copied onto a tmpfs; "
                        "list them in linux.devices to have them")
    if step.attr & flags.MOUNT_ATTR_RDONLY:
        k.mount_setattr(mnt, "", EMPTY, flags.MOUNT_ATTR_RDONLY)


# ----- cgroup ----------------------------------------------------------------------
def cgroup(ctx: Context, step: CgroupMount) -> dict[str, Any]:
    dest = _destination(ctx, step, True)
    try:
        resolved = ctx.kernel.describe_fd(dest)
        mnt = cgroups.mount(ctx, step, dest)
    finally:
        ctx.kernel.close(dest)
    _keep(ctx, step, mnt, True)
    return {"resolved": resolved}
