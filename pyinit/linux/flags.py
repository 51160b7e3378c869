"""Mount flags: the OCI option table, and names for logs and errors.

Pure data and pure functions: unit-tested without root.
"""

from __future__ import annotations

from pyinit.record import record

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_I_VERSION = 1 << 23
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

MS_NAMES = {
    value: name for name, value in globals().items()
    if name.startswith("MS_") and isinstance(value, int)
}

MS_PROPAGATION = MS_SHARED | MS_SLAVE | MS_PRIVATE | MS_UNBINDABLE
MS_ATIME = MS_NOATIME | MS_RELATIME | MS_STRICTATIME

MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR__ATIME = 0x70
MOUNT_ATTR_RELATIME = 0x0
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_NOSYMFOLLOW = 0x200000
# What "read-only" means for the host trees pyinit shows inside (cgroup, /sys).
MOUNT_ATTR_LOCKED_DOWN = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | \
    MOUNT_ATTR_NOEXEC

# option -> (clears the flag?, flag): config.md's "Linux mount options" table.
OPTIONS: dict[str, tuple[bool, int]] = {
    "async": (True, MS_SYNCHRONOUS),
    "atime": (True, MS_NOATIME),
    "bind": (False, MS_BIND),
    "defaults": (False, 0),
    "dev": (True, MS_NODEV),
    "diratime": (True, MS_NODIRATIME),
    "dirsync": (False, MS_DIRSYNC),
    "exec": (True, MS_NOEXEC),
    "iversion": (False, MS_I_VERSION),
    "lazytime": (False, MS_LAZYTIME),
    "loud": (True, MS_SILENT),
    "mand": (False, MS_MANDLOCK),
    "noatime": (False, MS_NOATIME),
    "nodev": (False, MS_NODEV),
    "nodiratime": (False, MS_NODIRATIME),
    "noexec": (False, MS_NOEXEC),
    "noiversion": (True, MS_I_VERSION),
    "nolazytime": (True, MS_LAZYTIME),
    "nomand": (True, MS_MANDLOCK),
    "norelatime": (True, MS_RELATIME),
    "nostrictatime": (True, MS_STRICTATIME),
    "nosuid": (False, MS_NOSUID),
    "nosymfollow": (False, MS_NOSYMFOLLOW),
    "rbind": (False, MS_BIND | MS_REC),
    "relatime": (False, MS_RELATIME),
    "remount": (False, MS_REMOUNT),
    "ro": (False, MS_RDONLY),
    "rw": (True, MS_RDONLY),
    "silent": (False, MS_SILENT),
    "strictatime": (False, MS_STRICTATIME),
    "suid": (True, MS_NOSUID),
    "symfollow": (True, MS_NOSYMFOLLOW),
    "sync": (False, MS_SYNCHRONOUS),
}

PROPAGATION: dict[str, int] = {
    "private": MS_PRIVATE,
    "rprivate": MS_PRIVATE | MS_REC,
    "shared": MS_SHARED,
    "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE,
    "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE,
    "runbindable": MS_UNBINDABLE | MS_REC,
}

# Recursive attributes, applied with mount_setattr(AT_RECURSIVE): (set, clear).
RECURSIVE: dict[str, tuple[int, int]] = {
    "rro": (MOUNT_ATTR_RDONLY, 0),
    "rrw": (0, MOUNT_ATTR_RDONLY),
    "rnosuid": (MOUNT_ATTR_NOSUID, 0),
    "rsuid": (0, MOUNT_ATTR_NOSUID),
    "rnodev": (MOUNT_ATTR_NODEV, 0),
    "rdev": (0, MOUNT_ATTR_NODEV),
    "rnoexec": (MOUNT_ATTR_NOEXEC, 0),
    "rexec": (0, MOUNT_ATTR_NOEXEC),
    "rnodiratime": (MOUNT_ATTR_NODIRATIME, 0),
    "rdiratime": (0, MOUNT_ATTR_NODIRATIME),
    "rnoatime": (MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME),
    "rrelatime": (MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME),
    "rstrictatime": (MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME),
    # The kernel's atime is one of three modes: "atime" and "nostrictatime"
    # mean the default (relatime), "norelatime" means strictatime.
    "ratime": (MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME),
    "rnostrictatime": (MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME),
    "rnorelatime": (MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME),
    "rnosymfollow": (MOUNT_ATTR_NOSYMFOLLOW, 0),
    "rsymfollow": (0, MOUNT_ATTR_NOSYMFOLLOW),
}

# Options the spec defines that pyinit does not implement yet: refused with a
# clear error rather than passed to the filesystem as data.
UNSUPPORTED = {
    "idmap": "idmapped mounts are not supported by pyinit yet",
    "ridmap": "idmapped mounts are not supported by pyinit yet",
}


@record
class MountOptions:
    flags: int = 0  # MS_* to set
    cleared: int = 0  # MS_* explicitly cleared (rw, suid, ...)
    propagation: tuple[int, ...] = ()
    rec_set: int = 0
    rec_clr: int = 0
    data: tuple[str, ...] = ()
    tmpcopyup: bool = False

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & MS_BIND)


def parse_options(options: list[str] | tuple[str, ...]) -> MountOptions:
    """Split OCI mount options into flags, propagation, recursive attributes and data.

    Raises ValueError naming the option, for the options pyinit refuses.
    """
    mflags = cleared = rec_set = rec_clr = 0
    propagation: list[int] = []
    data: list[str] = []
    tmpcopyup = False
    for opt in options:
        if opt in OPTIONS:
            clear, flag = OPTIONS[opt]
            if clear:
                mflags &= ~flag
                cleared |= flag
            else:
                mflags |= flag
                cleared &= ~flag
        elif opt in PROPAGATION:
            propagation.append(PROPAGATION[opt])
        elif opt in RECURSIVE:
            attr_set, attr_clr = RECURSIVE[opt]
            rec_set = (rec_set & ~attr_clr) | attr_set
            rec_clr = (rec_clr & ~attr_set) | attr_clr
        elif opt == "tmpcopyup":
            tmpcopyup = True
        elif opt in UNSUPPORTED:
            raise ValueError(UNSUPPORTED[opt])
        else:
            data.append(opt)
    return MountOptions(mflags, cleared, tuple(propagation), rec_set, rec_clr, tuple(data),
                        tmpcopyup)


# MS_* flags that are per-mount attributes (mount_setattr / fsmount), and theirs.
_ATTR_OF_MS = ((MS_RDONLY, MOUNT_ATTR_RDONLY), (MS_NOSUID, MOUNT_ATTR_NOSUID),
               (MS_NODEV, MOUNT_ATTR_NODEV), (MS_NOEXEC, MOUNT_ATTR_NOEXEC),
               (MS_NODIRATIME, MOUNT_ATTR_NODIRATIME), (MS_NOSYMFOLLOW, MOUNT_ATTR_NOSYMFOLLOW))
# Superblock flags: for a new filesystem, fsconfig(FSCONFIG_SET_FLAG, name).
SB_FLAG_NAMES = {MS_SYNCHRONOUS: "sync", MS_DIRSYNC: "dirsync", MS_MANDLOCK: "mand",
                 MS_LAZYTIME: "lazytime"}


def mount_attr(ms_flags: int) -> tuple[int, int]:
    """The (attr_set, attr_clr) of mount_setattr for the MS_* flags to set.

    An atime mode replaces the current one (its clear is MOUNT_ATTR__ATIME);
    with no atime flag given the mount keeps its own, as a bind remount does.
    """
    attr_set = 0
    for ms, attr in _ATTR_OF_MS:
        if ms_flags & ms:
            attr_set |= attr
    attr_clr = 0
    if ms_flags & MS_NOATIME:
        attr_set |= MOUNT_ATTR_NOATIME
        attr_clr |= MOUNT_ATTR__ATIME
    elif ms_flags & MS_STRICTATIME:
        attr_set |= MOUNT_ATTR_STRICTATIME
        attr_clr |= MOUNT_ATTR__ATIME
    elif ms_flags & MS_RELATIME:
        attr_clr |= MOUNT_ATTR__ATIME
    return attr_set, attr_clr


def mount_attr_cleared(ms_cleared: int) -> int:
    """The MOUNT_ATTR_* bits the config explicitly turns off (rw, suid, dev, exec...)."""
    attr_clr = 0
    for ms, attr in _ATTR_OF_MS:
        if ms_cleared & ms:
            attr_clr |= attr
    return attr_clr


ATTR_NAMES = {MOUNT_ATTR_RDONLY: "MOUNT_ATTR_RDONLY", MOUNT_ATTR_NOSUID: "MOUNT_ATTR_NOSUID",
              MOUNT_ATTR_NODEV: "MOUNT_ATTR_NODEV", MOUNT_ATTR_NOEXEC: "MOUNT_ATTR_NOEXEC",
              MOUNT_ATTR_NOATIME: "MOUNT_ATTR_NOATIME",
              MOUNT_ATTR_STRICTATIME: "MOUNT_ATTR_STRICTATIME",
              MOUNT_ATTR_NODIRATIME: "MOUNT_ATTR_NODIRATIME",
              MOUNT_ATTR_NOSYMFOLLOW: "MOUNT_ATTR_NOSYMFOLLOW"}


def attr_names(attr: int) -> str:
    """``MOUNT_ATTR_RDONLY|MOUNT_ATTR_NODEV``; ``0`` when none is set."""
    return "|".join(name for bit, name in ATTR_NAMES.items() if attr & bit) or "0"


def names(flags: int) -> str:
    """``MS_NOSUID|MS_NODEV`` for logs; ``0`` when no flag is set."""
    parts = [name for value, name in sorted(MS_NAMES.items()) if value and flags & value]
    rest = flags & ~sum(v for v in MS_NAMES if v)
    if rest:
        parts.append(hex(rest))
    return "|".join(parts) or "0"


# statvfs f_flag bits that equal MS_* bits (ST_RELATIME and ST_NOSYMFOLLOW differ).
_ST_SAME_AS_MS = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME
ST_RELATIME = 4096


def locked_flags(st_flag: int) -> int:
    """The MS_* flags a bind remount must keep, from ``os.statvfs(...).f_flag``.

    In a user namespace, a mount inherited from outside has its nosuid,
    nodev, noexec, ro and atime flags locked: a remount that drops one gets
    EPERM.
    """
    flags = st_flag & _ST_SAME_AS_MS
    if st_flag & ST_RELATIME:
        flags |= MS_RELATIME
    return flags
