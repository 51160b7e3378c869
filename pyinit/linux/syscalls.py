"""ctypes wrappers for the system calls Python 3.11 lacks.

Every raw call to the kernel that ``os`` cannot make goes through this module,
so a fake can stand in for it in unit tests and there is one place to read
when a call misbehaves. Each wrapper raises ``OSError`` with the errno and the
call's name, exactly as ``os`` functions do.

ctypes passes plain Python ints as C ``int``; every argument here is wrapped
in ``c_ulong`` or ``c_int`` explicitly so that 64-bit values survive.
"""

from __future__ import annotations

import ctypes
import os
import struct

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:  # collections.abc imports collections: ~2 ms before the workload is spawned
    from collections.abc import Iterable

_libc = ctypes.CDLL(None, use_errno=True)

PR_SET_PDEATHSIG = 1
PR_GET_PDEATHSIG = 2
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37


def _check(result: int, what: str) -> int:
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def _prctl(option: int, arg2: int | ctypes._CArgObject = 0) -> int:
    arg = arg2 if not isinstance(arg2, int) else ctypes.c_ulong(arg2)
    zero = ctypes.c_ulong(0)
    result: int = _libc.prctl(ctypes.c_int(option), arg, zero, zero, zero)
    return result


def set_child_subreaper(enable: bool = True) -> None:
    """Become (or stop being) the reaper of orphaned descendants."""
    _check(_prctl(PR_SET_CHILD_SUBREAPER, int(enable)), "prctl(PR_SET_CHILD_SUBREAPER)")


def is_child_subreaper() -> bool:
    value = ctypes.c_int(0)
    _check(_prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(value)), "prctl(PR_GET_CHILD_SUBREAPER)")
    return bool(value.value)


def set_pdeathsig(signum: int) -> None:
    """Ask for ``signum`` when the thread that forked us exits."""
    _check(_prctl(PR_SET_PDEATHSIG, signum), "prctl(PR_SET_PDEATHSIG)")


def get_pdeathsig() -> int:
    value = ctypes.c_int(0)
    _check(_prctl(PR_GET_PDEATHSIG, ctypes.byref(value)), "prctl(PR_GET_PDEATHSIG)")
    return value.value


# ----- signalfd -----------------------------------------------------------
SFD_NONBLOCK = os.O_NONBLOCK
SFD_CLOEXEC = os.O_CLOEXEC
SIGINFO_SIZE = 128  # sizeof(struct signalfd_siginfo)
_SIGINFO = struct.Struct("<IiiII")  # ssi_signo, ssi_errno, ssi_code, ssi_pid, ssi_uid
SI_USER = 0


class SigInfo:
    """One signal read from a signalfd: who sent what."""

    __slots__ = ("code", "pid", "signo", "uid")

    def __init__(self, signo: int, code: int, pid: int, uid: int) -> None:
        self.signo = signo
        self.code = code
        self.pid = pid
        self.uid = uid


def signalfd(signals: Iterable[int]) -> int:
    """A non-blocking, close-on-exec signalfd for ``signals`` (which must be blocked)."""
    mask = (ctypes.c_ulong * 16)()  # glibc's sigset_t: 1024 bits
    for sig in signals:
        mask[(sig - 1) // 64] |= 1 << ((sig - 1) % 64)
    fd: int = _libc.signalfd(ctypes.c_int(-1), ctypes.byref(mask),
                             ctypes.c_int(SFD_NONBLOCK | SFD_CLOEXEC))
    return _check(fd, "signalfd")


def read_signals(fd: int) -> list[SigInfo]:
    """Every signal pending on the signalfd; empty when none is."""
    try:
        data = os.read(fd, SIGINFO_SIZE * 64)
    except BlockingIOError:
        return []
    found = []
    for offset in range(0, len(data) - SIGINFO_SIZE + 1, SIGINFO_SIZE):
        signo, _errno, code, pid, uid = _SIGINFO.unpack_from(data, offset)
        found.append(SigInfo(signo, code, pid, uid))
    return found


# ----- namespaces ---------------------------------------------------------
CLONE_NEWTIME = 0x80
CLONE_NEWNS = 0x20000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# Raw numbers only for what glibc 2.36 has no wrapper for, all of them here.
# The numbers of syscalls added since 5.0 are the same on every architecture
# (the unified table); the older ones (seccomp, bpf) differ, so each is named
# per architecture.
_NR: dict[str, dict[str, int]] = {
    "x86_64": {"openat2": 437, "fchmodat2": 452, "seccomp": 317, "bpf": 321},
    "aarch64": {"openat2": 437, "fchmodat2": 452, "seccomp": 277, "bpf": 280},
}


def _machine() -> str:
    machine = os.uname().machine
    if machine not in _NR:
        raise RuntimeError(f"pyinit knows the syscall numbers of {', '.join(_NR)}, "
                           f"not of {machine}")
    return machine


def number(name: str) -> int:
    """This architecture's number of the system call ``name`` (for ``syscall()``)."""
    return _NR[_machine()][name]


_NR_OPENAT2 = number("openat2")
_NR_FCHMODAT2 = number("fchmodat2")

_libc.syscall.restype = ctypes.c_long


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def setns(fd: int, nstype: int) -> None:
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")


# ----- mounts -------------------------------------------------------------
MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8
AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 0x04
MOVE_MOUNT_T_EMPTY_PATH = 0x40
FSOPEN_CLOEXEC = 1
FSMOUNT_CLOEXEC = 1
FSCONFIG_SET_FLAG = 0
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6


def _b(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def umount2(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), ctypes.c_int(flags)), "umount2")


def pivot_root(new_root: str, put_old: str) -> None:
    _check(_libc.pivot_root(_b(new_root), _b(put_old)), "pivot_root")


def open_tree(dirfd: int, path: str, flags: int) -> int:
    """A detached copy (OPEN_TREE_CLONE) of the mount at ``path``, as an fd."""
    return _check(_libc.open_tree(ctypes.c_int(dirfd), _b(path), ctypes.c_uint(flags)),
                  "open_tree")


def move_mount(from_fd: int, from_path: str, to_fd: int, to_path: str, flags: int) -> None:
    _check(_libc.move_mount(ctypes.c_int(from_fd), _b(from_path), ctypes.c_int(to_fd),
                            _b(to_path), ctypes.c_uint(flags)), "move_mount")


def fsopen(fstype: str) -> int:
    return _check(_libc.fsopen(_b(fstype), ctypes.c_uint(FSOPEN_CLOEXEC)), "fsopen")


def fsconfig(fd: int, cmd: int, key: str | None = None, value: str | None = None) -> None:
    _check(_libc.fsconfig(ctypes.c_int(fd), ctypes.c_uint(cmd), _b(key), _b(value),
                          ctypes.c_int(0)), "fsconfig")


def fsmount(fd: int, attr: int) -> int:
    return _check(_libc.fsmount(ctypes.c_int(fd), ctypes.c_uint(FSMOUNT_CLOEXEC),
                                ctypes.c_uint(attr)), "fsmount")


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """openat2(2); retried on EAGAIN, which the kernel returns under rename races."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    for _ in range(64):
        fd = _libc.syscall(ctypes.c_long(_NR_OPENAT2), ctypes.c_long(dirfd), _b(path),
                           ctypes.byref(how), ctypes.c_long(ctypes.sizeof(how)))
        if fd != -1 or ctypes.get_errno() != 11:  # EAGAIN
            break
    return _check(fd, "openat2")


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def mount_setattr(dirfd: int, path: str, flags: int, attr_set: int, attr_clr: int,
                  propagation: int = 0) -> None:
    attr = _MountAttr(attr_set, attr_clr, propagation, 0)
    _check(_libc.mount_setattr(ctypes.c_int(dirfd), _b(path), ctypes.c_uint(flags),
                               ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr))),
           "mount_setattr")


def setdomainname(name: str) -> None:
    raw = name.encode()
    _check(_libc.setdomainname(raw, ctypes.c_size_t(len(raw))), "setdomainname")


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, ctypes.c_size_t(len(raw))), "sethostname")


# ----- capabilities -------------------------------------------------------
PR_SET_KEEPCAPS = 8
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_SET_NO_NEW_PRIVS = 38
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def prctl(option: int, arg2: int = 0, arg3: int = 0) -> int:
    zero = ctypes.c_ulong(0)
    result: int = _libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(arg3),
                              zero, zero)
    return _check(result, f"prctl({option})")


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set the calling thread's capability sets (bit masks of capability numbers)."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in range(2):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_libc.capset(ctypes.byref(header), data), "capset")


# ----- statfs -------------------------------------------------------------
PROC_SUPER_MAGIC = 0x9FA0
SYSFS_MAGIC = 0x62656572


class _Statfs(ctypes.Structure):
    """struct statfs of the 64-bit generic and x86_64 ABIs (<bits/statfs.h>).

    x86_64 and aarch64 share this layout: every word is a long, 120 bytes.
    """

    _fields_ = [("f_type", ctypes.c_long), ("f_bsize", ctypes.c_long),
                ("f_blocks", ctypes.c_ulong), ("f_bfree", ctypes.c_ulong),
                ("f_bavail", ctypes.c_ulong), ("f_files", ctypes.c_ulong),
                ("f_ffree", ctypes.c_ulong), ("f_fsid", ctypes.c_int * 2),
                ("f_namelen", ctypes.c_long), ("f_frsize", ctypes.c_long),
                ("f_flags", ctypes.c_long), ("f_spare", ctypes.c_long * 4)]


_STATFS_SIZE = {"x86_64": 120, "aarch64": 120}
assert ctypes.sizeof(_Statfs) == _STATFS_SIZE[_machine()]


def fstatfs_type(fd: int) -> int:
    """The filesystem magic (``f_type``) of the file behind ``fd``."""
    buf = _Statfs()
    _check(_libc.fstatfs(ctypes.c_int(fd), ctypes.byref(buf)), "fstatfs")
    return int(buf.f_type) & 0xFFFFFFFF


def fchmod_path_fd(fd: int, mode: int) -> None:
    """chmod the very inode an O_PATH fd holds: fchmodat2(fd, "", AT_EMPTY_PATH).

    fchmod() refuses O_PATH fds and fchmodat() takes a name, which a racer can
    swap for a symlink to a host file between the check and the chmod; only
    fchmodat2 (Linux 6.6) acts on the descriptor itself. glibc 2.36 has no
    wrapper for it.
    """
    result = _libc.syscall(ctypes.c_long(_NR_FCHMODAT2), ctypes.c_long(fd), b"",
                           ctypes.c_long(mode), ctypes.c_long(AT_EMPTY_PATH))
    _check(result, "fchmodat2")


def fchown_path_fd(fd: int, uid: int, gid: int) -> None:
    """chown the inode an O_PATH fd holds: fchownat(fd, "", AT_EMPTY_PATH)."""
    _check(_libc.fchownat(ctypes.c_int(fd), b"", ctypes.c_uint(uid), ctypes.c_uint(gid),
                          ctypes.c_int(AT_EMPTY_PATH)), "fchownat")
