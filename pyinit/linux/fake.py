"""A recording fake of the kernel seam, for unit tests without root.

It keeps an in-memory tree of paths (directories, files, symlinks, device
nodes, each on a named filesystem), hands out fake fds, resolves ``openat2``
with RESOLVE_IN_ROOT as the kernel does (absolute symlinks and ``..`` stay
inside the root), and models detached mounts: ``open_tree`` copies a subtree,
``fsmount`` makes an empty one, ``move_mount`` puts it over the destination.
Every call that changes something is recorded as one readable line in
``calls``, e.g. ``move_mount tree:/srv/data -> /b/rootfs/data``; ``fail()``
makes the next matching call fail with an errno.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from dataclasses import dataclass, field, replace

from pyinit.errors import SetupError
from pyinit.linux import flags, mountinfo, syscalls
from pyinit.linux.kernel import Kernel

MAGIC = {"proc": syscalls.PROC_SUPER_MAGIC, "sysfs": syscalls.SYSFS_MAGIC,
         "tmpfs": 0x01021994, "cgroup2": 0x63677270}
_TYPES = {"dir": stat.S_IFDIR, "file": stat.S_IFREG, "link": stat.S_IFLNK,
          "chr": stat.S_IFCHR, "blk": stat.S_IFBLK, "fifo": stat.S_IFIFO}


@dataclass
class Node:
    kind: str = "dir"  # dir, file, link, chr, blk, fifo
    fs: str = "ext4"
    target: str = ""  # a symlink's content
    rdev: int = 0
    mode: int = 0o755
    ino: int = 0


@dataclass
class Handle:
    path: str  # where it is now (a detached mount lives under "/#N")
    label: str  # how calls name it
    fstype: str = ""  # an fs context's type
    options: list[str] = field(default_factory=list)


def _err(op: str, path: str | None, err: int) -> SetupError:
    return SetupError("", f"{op}{' ' + path if path else ''}: {os.strerror(err)}", err=err,
                      op=op, path=path)


def _names(value: int, table: dict[int, str]) -> str:
    return "|".join(name for bit, name in table.items() if value & bit) or "0"


_OPEN_TREE = {syscalls.OPEN_TREE_CLONE: "CLONE", syscalls.AT_RECURSIVE: "RECURSIVE",
              syscalls.AT_EMPTY_PATH: "EMPTY_PATH"}


class FakeKernel(Kernel):
    def __init__(self, tree: dict[str, Node] | None = None, host_pid: int = 4242,
                 mounts: list[mountinfo.MountEntry] | None = None) -> None:
        super().__init__()
        self.nodes: dict[str, Node] = {}
        self._ino = 0
        for path in ("/", "/dev"):
            self.add(path, Node("dir"))
        self.add("/dev/null", Node("chr", fs="devtmpfs", rdev=os.makedev(1, 3), mode=0o666))
        for path, node in (tree or {}).items():
            self.add(path, node)
        self.fds: dict[int, Handle] = {0: Handle("/dev/null", "stdin"),
                                       1: Handle("/dev/null", "stdout"),
                                       2: Handle("/dev/null", "stderr")}
        self._next = 10
        self._detached = 0
        self.calls: list[str] = []
        self._fail: list[tuple[str, str | None, int, int, int]] = []
        self._host_pid = host_pid
        self.nodev_under: list[str] = []  # fstatvfs says ST_NODEV for paths below these
        self._mounts = mounts or []

    # ----- the model --------------------------------------------------------------
    def add(self, path: str, node: Node) -> None:
        """Put ``node`` at ``path``, creating missing parent directories."""
        path = posixpath.normpath(path)
        parent = posixpath.dirname(path)
        if parent != path and parent not in self.nodes:
            self.add(parent, Node("dir"))
        self._ino += 1
        self.nodes[path] = replace(node, ino=self._ino)

    def fail(self, op: str, err: int, path: str | None = None, times: int = 1,
             skip: int = 0) -> None:
        """Make calls of ``op`` (on ``path``, if given) fail with ``err``.

        The first ``skip`` matching calls succeed, the next ``times`` fail.
        """
        self._fail.append((op, path, err, times, skip))

    def _check_fail(self, op: str, path: str | None) -> None:
        for i, (fop, fpath, err, times, skip) in enumerate(self._fail):
            if fop == op and (fpath is None or fpath == path):
                if skip:
                    self._fail[i] = (fop, fpath, err, times, skip - 1)
                    return
                if times <= 1:
                    del self._fail[i]
                else:
                    self._fail[i] = (fop, fpath, err, times - 1, 0)
                raise _err(op, path, err)

    def _new_fd(self, handle: Handle) -> int:
        fd = self._next
        self._next += 1
        self.fds[fd] = handle
        return fd

    def _h(self, fd: int) -> Handle:
        if fd not in self.fds:
            raise _err("fd", str(fd), errno.EBADF)
        return self.fds[fd]

    def name(self, fd: int) -> str:
        h = self._h(fd)
        return h.label if h.path.startswith("/#") or h.label.startswith(("tree:", "mnt:")) \
            else h.path

    def _base(self, dirfd: int) -> str:
        return "/" if dirfd == syscalls.AT_FDCWD else self._h(dirfd).path

    def _resolve(self, root: str, base: str, rel: str, follow: bool, in_root: bool,
                 op: str) -> str:
        parts = [p for p in rel.split("/") if p and p != "."]
        cur = root if rel.startswith("/") else base
        links = 0
        while parts:
            name = parts.pop(0)
            if name == "..":
                if not (in_root and cur == root):
                    cur = posixpath.dirname(cur) or "/"
                continue
            nxt = posixpath.join(cur, name)
            node = self.nodes.get(nxt)
            if node is None:
                raise _err(op, rel, errno.ENOENT)
            if node.kind == "link" and (parts or follow):
                links += 1
                if links > 40:
                    raise _err(op, rel, errno.ELOOP)
                target = node.target
                parts = [p for p in target.split("/") if p and p != "."] + parts
                if target.startswith("/"):
                    cur = root if in_root else "/"
                continue
            if parts and node.kind != "dir":
                raise _err(op, rel, errno.ENOTDIR)
            cur = nxt
        return cur

    def _move(self, old: str, new: str) -> None:
        """Put the subtree at ``old`` over ``new`` (what a mount shows)."""
        for key in [k for k in self.nodes if k == new or k.startswith(new.rstrip("/") + "/")]:
            del self.nodes[key]
        for key in sorted(k for k in self.nodes if k == old or k.startswith(old + "/")):
            node = self.nodes.pop(key)
            self._ino += 1
            self.nodes[new.rstrip("/") + key[len(old):] if key != old else new] = replace(
                node, ino=self._ino)
        for h in self.fds.values():
            if h.path == old or h.path.startswith(old + "/"):
                h.path = new.rstrip("/") + h.path[len(old):] if h.path != old else new

    def _detached_copy(self, source: str, label: str, fs: str | None) -> int:
        self._detached += 1
        where = f"/#{self._detached}"
        for key in sorted(k for k in self.nodes if k == source or k.startswith(source + "/")):
            self._ino += 1
            node = self.nodes[key]
            self.nodes[where + key[len(source):]] = replace(node, ino=self._ino,
                                                            fs=fs or node.fs)
        return self._new_fd(Handle(where, label))

    # ----- files -------------------------------------------------------------------
    def openat2(self, dirfd: int, path: str, flags_: int, resolve: int) -> int:
        self._check_fail("openat2", path)
        root = self._h(dirfd).path
        found = self._resolve(root, root, path, not flags_ & os.O_NOFOLLOW,
                              bool(resolve & syscalls.RESOLVE_IN_ROOT), "openat2")
        if flags_ & os.O_DIRECTORY and self.nodes[found].kind != "dir":
            raise _err("openat2", path, errno.ENOTDIR)
        return self._new_fd(Handle(found, found))

    def openat(self, dirfd: int, name: str, flags_: int, mode: int = 0) -> int:
        self._check_fail("open", name)
        base = self._base(dirfd)
        path = posixpath.normpath(posixpath.join(base, name))
        if name == "..":
            path = posixpath.dirname(base) or "/"
        if path not in self.nodes:
            if not flags_ & os.O_CREAT:
                raise _err("open", name, errno.ENOENT)
            self.add(path, Node("file", fs=self.nodes[base].fs, mode=mode))
            self.calls.append(f"create {self.label_path(path)}")
        elif flags_ & os.O_CREAT and flags_ & os.O_EXCL:
            raise _err("open", name, errno.EEXIST)
        return self._new_fd(Handle(path, self._h(dirfd).label if name == "." else path))

    def label_path(self, path: str) -> str:
        return path

    def _child(self, dirfd: int, name: str) -> str:
        return posixpath.join(self._base(dirfd), name)

    def mkdirat(self, dirfd: int, name: str, mode: int) -> None:
        self._check_fail("mkdir", name)
        path = self._child(dirfd, name)
        if path in self.nodes:
            raise _err("mkdir", name, errno.EEXIST)
        self.add(path, Node("dir", fs=self.nodes[self._base(dirfd)].fs, mode=mode))
        self.calls.append(f"mkdir {path}")

    def mknodat(self, dirfd: int, name: str, mode: int, rdev: int) -> None:
        self._check_fail("mknod", name)
        path = self._child(dirfd, name)
        if path in self.nodes:
            raise _err("mknod", name, errno.EEXIST)
        kind = {stat.S_IFCHR: "chr", stat.S_IFBLK: "blk", stat.S_IFIFO: "fifo"}[
            stat.S_IFMT(mode)]
        self.add(path, Node(kind, fs=self.nodes[self._base(dirfd)].fs, rdev=rdev,
                            mode=stat.S_IMODE(mode)))
        self.calls.append(f"mknod {path} {kind} {os.major(rdev)}:{os.minor(rdev)} "
                          f"{stat.S_IMODE(mode):04o}")

    def fchown(self, fd: int, uid: int, gid: int) -> None:
        self.calls.append(f"chown {self._h(fd).path} {uid}:{gid}")

    def fchmod(self, fd: int, mode: int) -> None:
        self.calls.append(f"chmod {self._h(fd).path} {mode:04o}")

    def symlinkat(self, target: str, dirfd: int, name: str) -> None:
        self._check_fail("symlink", name)
        path = self._child(dirfd, name)
        if path in self.nodes:
            raise _err("symlink", name, errno.EEXIST)
        self.add(path, Node("link", target=target))
        self.calls.append(f"symlink {path} -> {target}")

    def readlinkat(self, dirfd: int, name: str = "") -> str:
        path = self._child(dirfd, name) if name else self._h(dirfd).path
        node = self.nodes.get(path)
        if node is None or node.kind != "link":
            raise _err("readlink", name or None, errno.EINVAL)
        return node.target

    def unlinkat(self, dirfd: int, name: str) -> None:
        path = self._child(dirfd, name)
        if path not in self.nodes:
            raise _err("unlink", name, errno.ENOENT)
        del self.nodes[path]
        self.calls.append(f"unlink {path}")

    def fstat(self, fd: int) -> os.stat_result:
        return _stat(self.nodes[self._h(fd).path])

    def fstatfs_type(self, fd: int) -> int:
        return MAGIC.get(self.nodes[self._h(fd).path].fs, 0xEF53)

    def fstatvfs_flags(self, fd: int) -> int:
        path = self._h(fd).path
        under = any(path == p or path.startswith(p + "/") for p in self.nodev_under)
        return os.ST_NODEV if under else 0

    def close(self, fd: int) -> None:
        self._h(fd)
        del self.fds[fd]

    def dup(self, fd: int) -> int:
        h = self._h(fd)
        return self._new_fd(Handle(h.path, h.label))

    def dup2(self, fd: int, to: int) -> None:
        self.calls.append(f"dup2 {self.name(fd)} -> {to}")
        self.fds[to] = Handle(self._h(fd).path, self._h(fd).label)

    def write(self, fd: int, data: bytes) -> None:
        self.calls.append(f"write {self.name(fd)} {data.decode()}")

    def copy_tree(self, src_fd: int, dst_fd: int) -> tuple[int, list[str]]:
        src, dst = self._h(src_fd).path, self._h(dst_fd).path
        count = 0
        skipped = []
        for key in sorted(k for k in self.nodes if k.startswith(src.rstrip("/") + "/")):
            if self.nodes[key].kind in ("chr", "blk"):  # as copyup.copy_tree
                skipped.append(key[len(src.rstrip("/")) + 1:])
                continue
            self.add(dst + key[len(src):], replace(self.nodes[key],
                                                   fs=self.nodes[dst].fs))
            count += 1
        self.calls.append(f"copy {self.name(src_fd)} -> {self.name(dst_fd)} ({count} entries)")
        return count, skipped

    def describe_fd(self, fd: int) -> str:
        return self._h(fd).path

    def mountinfo(self) -> list[mountinfo.MountEntry]:
        return list(self._mounts)

    def host_pid(self) -> int:
        return self._host_pid

    def host_rdev(self, path: str) -> int:
        return self.nodes[path].rdev

    # ----- mounts ------------------------------------------------------------------
    def open_tree(self, dirfd: int, path: str, flags_: int) -> int:
        self._check_fail("open_tree", path or None)
        if path:
            base = self._base(dirfd)
            source = self._resolve("/", base, path, True, False, "open_tree")
        else:
            source = self._h(dirfd).path
        self.calls.append(f"open_tree {source if path else self.name(dirfd)} "
                          f"{_names(flags_, _OPEN_TREE)}")
        return self._detached_copy(source, f"tree:{source}", None)

    def fsopen(self, fstype: str) -> int:
        self._check_fail("fsopen", fstype)
        self.calls.append(f"fsopen {fstype}")
        return self._new_fd(Handle("", f"fs:{fstype}", fstype))

    def fsconfig(self, fd: int, cmd: int, key: str | None = None,
                 value: str | None = None) -> None:
        h = self._h(fd)
        self._check_fail("fsconfig", key if cmd != syscalls.FSCONFIG_CMD_CREATE else "create")
        if cmd == syscalls.FSCONFIG_CMD_CREATE:
            self.calls.append(f"fsconfig {h.fstype} create")
        elif cmd == syscalls.FSCONFIG_SET_FLAG:
            h.options.append(f"{key}")
        else:
            h.options.append(f"{key}={value}")
        if cmd != syscalls.FSCONFIG_CMD_CREATE:
            self.calls.append(f"fsconfig {h.fstype} {h.options[-1]}")

    def fsmount(self, fd: int, attr: int) -> int:
        h = self._h(fd)
        self._check_fail("fsmount", h.fstype)
        self.calls.append(f"fsmount {h.fstype} {flags.attr_names(attr)}")
        self._detached += 1
        where = f"/#{self._detached}"
        self.add(where, Node("dir", fs=h.fstype))
        return self._new_fd(Handle(where, f"mnt:{h.fstype}"))

    def mount_setattr(self, dirfd: int, path: str, flags_: int, attr_set: int,
                      attr_clr: int = 0, propagation: int = 0) -> None:
        target = path if path else self.name(dirfd)
        self._check_fail("mount_setattr", target)
        parts = [f"mount_setattr {target}"]
        if attr_set or attr_clr:
            parts.append(f"set={flags.attr_names(attr_set)} clr={flags.attr_names(attr_clr)}")
        if propagation:
            parts.append(flags.names(propagation))
        if flags_ & syscalls.AT_RECURSIVE:
            parts.append("recursive")
        self.calls.append(" ".join(parts))

    def move_mount(self, from_fd: int, from_path: str, to_fd: int, to_path: str,
                   flags_: int) -> None:
        src = self._h(from_fd)
        dest = to_path if to_path else self._h(to_fd).path
        self._check_fail("move_mount", dest)
        self.calls.append(f"move_mount {self.name(from_fd)} -> {dest}")
        if dest == "/":
            return  # the new root (--no-pivot): the fake keeps its one view of paths
        if dest in self.nodes and self.nodes[dest].kind == "link":
            raise _err("move_mount", dest, errno.EINVAL)
        self._move(src.path, dest)

    def umount2(self, path: str, flags_: int) -> None:
        self._check_fail("umount2", path)
        self.calls.append(f"umount2 {path}")

    def fchdir(self, fd: int) -> None:
        self.calls.append(f"fchdir {self.name(fd)}")

    def chdir(self, path: str) -> None:
        self.calls.append(f"chdir {path}")

    def chroot(self, path: str) -> None:
        self.calls.append(f"chroot {path}")

    def pivot_root(self, new_root: str, put_old: str) -> None:
        self._check_fail("pivot_root", new_root)
        self.calls.append(f"pivot_root {new_root} {put_old}")

    def unshare(self, flags_: int) -> None:
        self._check_fail("unshare", None)
        self.calls.append(f"unshare {flags_:#x}")

    def sethostname(self, name: str) -> None:
        self.calls.append(f"sethostname {name}")

    def setdomainname(self, name: str) -> None:
        self.calls.append(f"setdomainname {name}")


def _stat(node: Node) -> os.stat_result:
    # (mode, ino, dev, nlink, uid, gid, size, atime, mtime, ctime), and st_rdev
    return os.stat_result((_TYPES[node.kind] | node.mode, node.ino, 1, 1, 0, 0, 0, 0, 0, 0),
                          {"st_rdev": node.rdev})
