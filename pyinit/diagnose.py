"""Why did that mount fail? Hints with their evidence.

Each function looks at what the kernel said (the errno), at what pyinit was
doing, and at what it can read about the environment (/proc), and returns a
sentence with three parts: the likely cause, the evidence, and what to
change. They only read; they never change anything, so they are safe to call
on the way out of a failure. Hints are attached to :class:`SetupError` and
so reach both the ``…failed`` log event and the one-line error.
"""

from __future__ import annotations

import errno
import os
import stat

from pyinit.errors import SetupError
from pyinit.linux import mountinfo
from pyinit.record import record

TYPE_CHECKING = False  # typing costs 6 ms at start-up; mypy reads the name
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from pyinit.linux.kernel import Kernel

CAP_SYS_ADMIN = 21
RAMFS_MAGIC = 0x858458F6
TMPFS_MAGIC = 0x01021994


# ----- evidence -------------------------------------------------------------
def _mounts() -> list[mountinfo.MountEntry]:
    try:
        return mountinfo.read()
    except OSError:
        return []


def filesystems() -> list[str]:
    """The filesystem types this kernel knows (nodev ones included)."""
    try:
        with open("/proc/filesystems") as fh:
            return sorted({line.split()[-1] for line in fh if line.strip()})
    except OSError:
        return []


def status_field(name: str, pid: str = "self") -> str | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(name + ":"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def has_cap(cap: int, which: str = "CapEff") -> bool:
    value = status_field(which)
    return value is not None and bool(int(value, 16) & (1 << cap))


def seccomp_mode() -> str:
    return {"0": "off", "1": "strict", "2": "filter"}.get(status_field("Seccomp") or "", "unknown")


def in_user_namespace() -> bool:
    """True unless the uid map is the identity of the whole range (the initial namespace)."""
    try:
        with open("/proc/self/uid_map") as fh:
            lines = fh.read().split()
    except OSError:
        return False
    return lines != ["0", "0", "4294967295"]


def mount_limit() -> tuple[int | None, int]:
    try:
        with open("/proc/sys/fs/mount-max") as fh:
            limit: int | None = int(fh.read())
    except (OSError, ValueError):
        limit = None
    return limit, len(_mounts())


def mounts_on_top_of(base: str) -> list[str]:
    """Mount points below ``base`` (e.g. /proc): what makes it 'too revealing' to copy."""
    prefix = base.rstrip("/") + "/"
    return sorted(e.mount_point for e in _mounts() if e.mount_point.startswith(prefix))


def _walk(path: str) -> list[str]:
    """/a/b/c as /a, /a/b, /a/b/c: each element of an absolute path, from the top."""
    parts = [p for p in path.split("/") if p]
    return ["/" + "/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def first_file_in_path(path: str) -> str | None:
    """The first element of ``path`` that exists and is not a directory (ENOTDIR's cause)."""
    for current in _walk(path):
        try:
            st = os.stat(current)
        except OSError:
            return None
        if not stat.S_ISDIR(st.st_mode):
            return current
    return None


def first_missing_in_path(path: str) -> str | None:
    return next((current for current in _walk(path) if not os.path.lexists(current)), None)


def unreachable_element(path: str, uid: int, gid: int) -> str | None:
    """The first directory on ``path`` that ``uid``/``gid`` may not search (no x bit)."""
    for current in ["/", *_walk(path)[:-1]]:
        try:
            st = os.stat(current)
        except OSError:
            return None
        if st.st_uid == uid:
            ok = st.st_mode & stat.S_IXUSR
        elif st.st_gid == gid:
            ok = st.st_mode & stat.S_IXGRP
        else:
            ok = st.st_mode & stat.S_IXOTH
        if not ok:
            return f"{current} (mode {stat.S_IMODE(st.st_mode):o}, owner {st.st_uid}:{st.st_gid})"
    return None


def host_id_of_root() -> tuple[int, int]:
    """The host uid and gid that are root in our user namespace."""
    ids = []
    for name in ("uid_map", "gid_map"):
        try:
            with open(f"/proc/self/{name}") as fh:
                first = fh.read().split()
            ids.append(int(first[1]) if first and first[0] == "0" else 0)
        except (OSError, ValueError, IndexError):
            ids.append(0)
    return ids[0], ids[1]


def mount_entry_for(path: str) -> mountinfo.MountEntry | None:
    """The mount that contains ``path`` (the longest mount point prefix)."""
    best = None
    for e in _mounts():
        mp = e.mount_point.rstrip("/") + "/"
        if (path.rstrip("/") + "/").startswith(mp) and (
                best is None or len(e.mount_point) >= len(best.mount_point)):
            best = e
    return best


def busy_users(path: str) -> list[str]:
    """Processes whose cwd, root or an open file is under ``path``."""
    found = []
    prefix = path.rstrip("/") + "/"
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        links = [f"/proc/{pid}/cwd", f"/proc/{pid}/root"]
        try:
            links += [f"/proc/{pid}/fd/{fd}" for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            pass
        for link in links:
            try:
                target = os.readlink(link)
            except OSError:
                continue
            if target == path or target.startswith(prefix):
                comm = status_field("Name", pid) or "?"
                found.append(f"{pid} ({comm}) {link.rsplit('/', 1)[-1]} -> {target}")
                break
    return found


# ----- hints ------------------------------------------------------------------
def no_capability() -> str | None:
    if has_cap(CAP_SYS_ADMIN):
        return None
    seccomp = seccomp_mode()
    extra = f"; a seccomp filter is active too (Seccomp: {seccomp})" if seccomp == "filter" else ""
    return ("pyinit runs without CAP_SYS_ADMIN (it is not in CapEff of /proc/self/status), "
            "as in an ordinary unprivileged container" + extra + ": give it the capability "
            "(podman/docker --cap-add SYS_ADMIN), run it in a user namespace it owns, or "
            "use a privileged container")


def _host_dest(ctx: dict[str, Any]) -> str:
    dest = ctx.get("destination") or ""
    root = ctx.get("root_path") or ""
    return root.rstrip("/") + dest if root and dest.startswith("/") else dest


def _sysfs(ctx: dict[str, Any]) -> str | None:
    if not in_user_namespace():
        return None
    return ("sysfs can only be mounted in a user namespace that owns the network "
            "namespace, and this one does not: add {\"type\": \"network\"} to "
            "linux.namespaces, bind /sys read-only instead, or run with "
            "--sysfs-fallback to do that automatically (it keeps ro)")


def _proc(ctx: dict[str, Any]) -> str | None:
    if not in_user_namespace():
        return None
    covered = mounts_on_top_of("/proc")
    if covered:
        return ("a new proc needs a fully visible /proc in the mount namespace, and "
                f"the visible one has mounts on top of it: {', '.join(covered[:8])}"
                f"{' …' if len(covered) > 8 else ''}; unmount them, or give the "
                "container a PID namespace it owns")
    return ("proc in a user namespace needs a PID namespace owned by it: add "
            "{\"type\": \"pid\"} to linux.namespaces")


def _owned_ns(ctx: dict[str, Any]) -> str | None:
    fstype = ctx.get("fstype") or ""
    if not in_user_namespace():
        return None
    need = {"mqueue": "ipc", "cgroup": "cgroup", "cgroup2": "cgroup"}[fstype]
    return (f"{fstype} in a user namespace needs a {need} namespace owned by it: add "
            f"{{\"type\": \"{need}\"}} to linux.namespaces")


def _locked(ctx: dict[str, Any]) -> str:
    names = ctx.get("locked") or "some flags"
    return (f"the source is mounted {names} outside this user namespace, and such flags "
            f"are locked here: the config's options clear {names}, which the kernel "
            "refuses; drop those options (suid, dev, exec, ...) or remount the source on "
            "the host")


def _unknown_fs(ctx: dict[str, Any]) -> str | None:
    fstype = ctx.get("fstype")
    if not fstype:
        return None
    if fstype == "bind":
        return "type bind needs the bind or rbind option"
    known = filesystems()
    return (f"the kernel does not know the filesystem type {fstype!r}; it offers: "
            f"{', '.join(known)}" if known else f"the kernel does not know {fstype!r}")


def _not_a_dir(ctx: dict[str, Any]) -> str | None:
    dest = ctx.get("destination") or ""
    root = ctx.get("root_path") or ""
    source = ctx.get("source") or ""
    host_dest = _host_dest(ctx)
    element = first_file_in_path(host_dest) if host_dest else None
    if element:
        if element.rstrip("/") == host_dest.rstrip("/") and source and os.path.isdir(source):
            return (f"the source {source} is a directory and the destination {dest} is a "
                    "file: mount a directory onto a directory")
        inside = element[len(root.rstrip("/")):] if root and element.startswith(root) \
            else element
        return f"{inside} is a file where the path needs a directory"
    if source and os.path.exists(source) and not os.path.isdir(source):
        return (f"the source {source} is a file and the destination {dest} a directory: "
                "mount a file onto a file, or a directory onto a directory")
    if source and os.path.isdir(source):
        return _is_a_dir(ctx)
    return None


def _is_a_dir(ctx: dict[str, Any]) -> str:
    return (f"the source {ctx.get('source') or ''} is a directory and the destination "
            f"{ctx.get('destination') or ''} is not: mount a directory onto a directory")


def _missing(ctx: dict[str, Any]) -> str | None:
    source = ctx.get("source") or ""
    if source and source.startswith("/") and not os.path.exists(source):
        where = first_missing_in_path(source)
        return f"the source is missing: {where or source} does not exist"
    host_dest = _host_dest(ctx)
    where = first_missing_in_path(host_dest) if host_dest else None
    if where:
        return f"the destination is missing: {where} does not exist"
    return None


def _mount_limit(ctx: dict[str, Any]) -> str:
    limit, count = mount_limit()
    return (f"the mount table is full: {count} mounts here, and /proc/sys/fs/mount-max "
            f"is {limit}; raise it (sysctl fs.mount-max) or mount less")


def _unreachable(ctx: dict[str, Any]) -> str | None:
    uid, gid = host_id_of_root()
    for path in (ctx.get("source") or "", _host_dest(ctx)):
        if path and path.startswith("/"):
            element = unreachable_element(path, uid, gid)
            if element:
                return (f"host uid {uid} (the container's root) cannot search {element}: "
                        "give that directory the x bit for it, or move the files")
    if ctx.get("user_ns"):
        return ("in a user namespace the container's root is a host user: it must be "
                "able to reach the rootfs (check the parent directories' permissions)")
    return None


def _busy(ctx: dict[str, Any]) -> str | None:
    host_dest = _host_dest(ctx)
    users = busy_users(host_dest) if host_dest else []
    return f"busy because of: {'; '.join(users[:5])}" if users else None


def _pivot(ctx: dict[str, Any]) -> str:
    return pivot_einval(ctx.get("root_path") or ctx.get("destination") or "/")


def _text(text: str) -> Callable[[dict[str, Any]], str]:
    return lambda ctx: text


def _id_map(ctx: dict[str, Any]) -> str:
    if ctx.get("root_needs_setfcap"):
        return ("mapping uid 0 into a new user namespace needs CAP_SETFCAP (Linux 5.12 and "
                "later), even for root mapping only itself; run as another uid (the program "
                "of a root's pyinit sandbox: give that sandbox --unshare-user --uid N --gid N)")
    if ctx.get("rootless"):
        return ("unprivileged, pyinit can map only your own uid and gid itself; larger maps "
                "need newuidmap/newgidmap and ranges in /etc/subuid and /etc/subgid")
    return "host IDs must exist and ranges must not overlap"


def _size(n: int) -> str:
    """64 MiB, 63.9 MiB, 512 KiB, 100 bytes: exact where it is, one decimal where not."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n // scale} {unit}" if n % scale == 0 else f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _oom(ctx: dict[str, Any]) -> str:
    """The fields of cgroups.OomEvidence: who was killed, against which limit."""
    kills, limit, peak = ctx["kills"], ctx["limit"], ctx["peak"]
    shown = "" if peak is None else f" (peak usage {_size(peak)})"
    head = (f"the kernel's OOM killer killed {kills} process{'es' if kills != 1 else ''} "
            f"in cgroup {ctx['cgroup']}: ")
    if limit is None:
        return (head + f"the host ran out of memory, the container has no memory limit"
                f"{shown}; give the host more memory or set linux.resources.memory.limit")
    return (head + f"the container reached the memory limit of {_size(limit)}{shown}; "
            "raise linux.resources.memory.limit")


def _hard_limit(ctx: dict[str, Any]) -> str:
    return (f"pyinit's own hard limit is {ctx.get('own_hard')}; raising it needs "
            "CAP_SYS_RESOURCE on the host")


@record
class Hint:
    """One row of the table: when it applies, and what it says.

    ``op`` is the failed operation or the step's kind (None: any), ``err``
    the errno or errnos (None: any, e.g. for pyinit's own refusals), ``fstype`` the
    filesystem type (None: any). ``evidence`` rows read the host's /proc and
    are skipped after the pivot, where /proc is the container's.
    """

    op: str | None
    err: int | tuple[int, ...] | None
    fstype: str | tuple[str, ...] | None
    say: Callable[[dict[str, Any]], str | None]
    evidence: bool = True


HINTS: tuple[Hint, ...] = (
    Hint("locked-flags", errno.EPERM, None, _locked, evidence=False),
    # The process model (runtime/): what only the host grants, namespaces, id maps.
    Hint("oom_score_adj", (errno.EACCES, errno.EPERM), None, _text(
        "lowering oom_score_adj below its current value needs CAP_SYS_RESOURCE on the "
        "host"), evidence=False),
    Hint("setrlimit", None, None, _hard_limit, evidence=False),
    Hint("setns", None, None, _text("is it a namespace of that type?"), evidence=False),
    Hint("write_id_map", None, None, _id_map, evidence=False),
    Hint("setgroups-denied", None, None, _text(
        "map the groups with newgidmap (linux.gidMappings) or leave additionalGids out"),
        evidence=False),
    Hint("oom-killed", None, None, _oom, evidence=False),
    Hint("sysctl", errno.EINVAL, None, lambda ctx: (
        "in a user namespace, ids in a value (net.ipv4.ping_group_range) must be ids the "
        "container's maps map" if ctx.get("user_ns") else None), evidence=False),
    Hint("device-host-mode", None, None, _text(
        "give the host's mode as fileMode, or chmod the host's node"), evidence=False),
    Hint("device-host-owner", None, None, lambda ctx: (
        f"give {ctx.get('inside')} as {ctx.get('id_key')}, or chown the host's node"),
        evidence=False),
    # --cgroup-manager systemd (pyinit/cgroups/systemd.py): before any errno row, as the
    # bus's ENOENT or ECONNREFUSED is about D-Bus, not about a path of the bundle.
    Hint("systemd-not-running", None, None, _text(
        "use --cgroup-manager cgroupfs (the default), or run pyinit where systemd is PID 1"),
        evidence=False),
    Hint("systemd-bus", None, None, _text(
        "is dbus running (systemctl status dbus.socket)? As root pyinit uses the system bus "
        "($DBUS_SYSTEM_BUS_ADDRESS), a user their own ($DBUS_SESSION_BUS_ADDRESS, else "
        "$XDG_RUNTIME_DIR/bus; loginctl enable-linger USER starts it); or use "
        "--cgroup-manager cgroupfs"), evidence=False),
    Hint("systemd-refused", None, None, lambda ctx: (
        f"systemctl status {ctx['unit']} and journalctl -u {ctx['unit']} say why")
        if ctx.get("unit") else None, evidence=False),
    Hint("load-libseccomp", None, None, _text(
        "install libseccomp 2.5 or newer (Debian: libseccomp2)"), evidence=False),
    Hint(None, errno.EPERM, None, lambda ctx: no_capability()),
    Hint(None, errno.EPERM, "sysfs", _sysfs),
    Hint(None, errno.EPERM, "proc", _proc),
    Hint(None, errno.EPERM, ("mqueue", "cgroup", "cgroup2"), _owned_ns),
    Hint(None, errno.ENODEV, None, _unknown_fs),
    Hint(None, errno.ENOTDIR, None, _not_a_dir),
    Hint(None, errno.EISDIR, None, _is_a_dir),
    Hint(None, errno.ENOENT, None, _missing),
    Hint(None, errno.ENOSPC, None, _mount_limit),
    Hint(None, errno.EACCES, None, _unreachable),
    Hint(None, errno.EBUSY, None, _busy),
    Hint(None, errno.EBUSY, None, _text(
        "something holds the mount busy (an open file or a process with its cwd there)"),
        evidence=False),
    Hint("pivot_root", errno.EINVAL, None, _pivot),
    Hint("proc-on-symlink", None, None, _text(
        "a symlinked /proc or /sys could send the mount outside the container "
        "(CVE-2019-19921); fix the image"), evidence=False),
    Hint("mount-refused", None, None, _text(
        "a mount inside /proc or /sys could replace what the kernel shows the container "
        "there (runc's checkProcMount, CVE-2019-19921 and CVE-2025-52881): mount "
        "elsewhere, or use the filesystem's own type"), evidence=False),
    Hint("proc-only", None, None, _text("use type proc, or drop this mount"),
         evidence=False),
    Hint("mount-on-root", None, None, _text(
        "a symlink in the image or a volume (or a rename racing the lookup) led there; "
        "pyinit never mounts over the root: fix the path or the volume"), evidence=False),
    Hint("sysctl-not-procfs", None, None, _text(
        "something is mounted over /proc/sys; refusing to write there (CVE-2025-52881)"),
        evidence=False),
    Hint("sysfs-without-netns", None, None, _text(
        "add {\"type\": \"network\"} to linux.namespaces, bind /sys read-only, or run "
        "with --sysfs-fallback"), evidence=False),
    Hint("mask-no-devnull", None, None, _text(
        "mount a tmpfs on /dev (pyinit makes /dev/null there) or put the char device 1:3 "
        "at /dev/null in the image"), evidence=False),
    Hint("mask-devnull", None, None, _text(
        "a /dev/null replaced by a symlink would expose what it points to "
        "(CVE-2025-31133)"), evidence=False),
    # pyinit diagnose --bundle: what it predicts without setting anything up.
    Hint("config-invalid", None, None, _text("fix config.json"), evidence=False),
    Hint("proc-symlink-in-image", None, None, _text(
        "proc and sysfs must be mounted on ordinary directories; fix the image"),
        evidence=False),
    Hint("file-in-path", None, None, _text("a directory is needed there"), evidence=False),
    Hint("cwd", None, None, _text(
        "it must be a real directory path; magic links such as /proc/self/fd/N are "
        "refused"), evidence=False),
)


def _matches(row: Hint, ops: tuple[str | None, ...], err: int | None,
             fstype: str | None) -> bool:
    if row.op is not None and row.op not in ops:
        return False
    if row.err is not None and err not in ((row.err,) if isinstance(row.err, int)
                                           else row.err):
        return False
    if row.fstype is not None:
        wanted = (row.fstype,) if isinstance(row.fstype, str) else row.fstype
        if fstype not in wanted:
            return False
    return True


def explain(op: str | tuple[str | None, ...], err: int | None, ctx: dict[str, Any],
            evidence: bool = True) -> str | None:
    """The first hint of the table for this operation, errno and filesystem type.

    ``ctx`` holds the failure's fields (destination, source, fstype,
    root_path, locked, ...). Without ``evidence`` (after the pivot) only the
    rows that read nothing apply.
    """
    ops = (op,) if isinstance(op, str) else op
    fstype = ctx.get("fstype")
    for row in HINTS:
        if (evidence or not row.evidence) and _matches(row, ops, err, fstype):
            said = row.say(ctx)
            if said:
                return said
    return None


def explain_error(exc: SetupError, ctx: dict[str, Any], evidence: bool = True) -> str | None:
    """The hint for a SetupError: keyed by its operation and step, errno and fstype."""
    return explain((exc.op, exc.step), exc.errno, {**ctx, **exc.fields}, evidence)


def pivot_einval(root_path: str) -> str:
    """Which precondition of pivot_root does not hold."""
    from pyinit.linux import syscalls

    reasons = []
    try:
        fd = os.open(root_path, os.O_PATH | os.O_CLOEXEC)
        try:
            magic = syscalls.fstatfs_type(fd)
        finally:
            os.close(fd)
        if magic == RAMFS_MAGIC:
            reasons.append("the root filesystem is on rootfs/ramfs (an initramfs)")
    except OSError:
        pass
    entry = mount_entry_for(root_path)
    if entry is None or entry.mount_point != root_path.rstrip("/"):
        reasons.append(f"{root_path} is not a mount point")
    entries = {e.mount_id: e for e in _mounts()}
    if entry is not None:
        parent = entries.get(entry.parent_id)
        for e in (entry, parent, entries.get(next((x.mount_id for x in entries.values()
                                                  if x.mount_point == "/"), -1))):
            if e is not None and any(f.startswith("shared:") for f in e.optional):
                reasons.append(f"{e.mount_point} is a shared mount (pivot_root refuses shared "
                               "mounts; something made it shared after pyinit made / rslave)")
                break
    if not reasons:
        return "none of pivot_root's known conditions was found; try --no-pivot"
    fix = "; use --no-pivot" if any("ramfs" in r or "shared" in r for r in reasons) else ""
    return "; ".join(reasons) + fix


# ----- pyinit diagnose ----------------------------------------------------------
PROBE_TYPES = ("proc", "sysfs", "tmpfs", "devpts", "mqueue", "cgroup2", "securityfs")


def _cap_names(mask_hex: str | None) -> list[str]:
    from pyinit.linux.caps import CAPS

    if mask_hex is None:
        return []
    value = int(mask_hex, 16)
    return [name for name, n in sorted(CAPS.items(), key=lambda kv: kv[1]) if value & (1 << n)]


def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


def probe_mountable(types: tuple[str, ...] = PROBE_TYPES,
                    kernel: Kernel | None = None) -> dict[str, str]:
    """Try to mount each type for real, as pyinit run does, and attach it nowhere.

    A forked child unshares a mount namespace of its own (the same permission
    check as in ``pyinit run``) and, through the kernel seam, creates each
    filesystem with fsopen/fsconfig and makes it a mount with fsmount: every
    refusal of the kernel (capability, an owning namespace, "too revealing")
    happens there. The mounts are never attached and vanish with their fds,
    and the namespace with the child. "ok", or the errno name.
    """
    import json

    from pyinit.linux import syscalls
    from pyinit.linux.kernel import Kernel

    seam = kernel or Kernel()

    def mountable(fstype: str) -> str:
        try:
            fs = seam.fsopen(fstype)
        except SetupError as exc:
            return errno.errorcode.get(exc.errno or 0, "?")
        try:
            seam.fsconfig(fs, syscalls.FSCONFIG_CMD_CREATE)
            seam.close(seam.fsmount(fs, 0))
        except SetupError as exc:
            return errno.errorcode.get(exc.errno or 0, "?")
        finally:
            seam.close(fs)
        return "ok"

    def probe() -> dict[str, str]:
        try:
            seam.unshare(syscalls.CLONE_NEWNS)
        except SetupError as exc:
            why = errno.errorcode.get(exc.errno or 0, "?")
            return {t: f"untested (no mount namespace: {why})" for t in types}
        return {t: mountable(t) for t in types}

    if kernel is not None:  # a fake: nothing to protect this process from
        return probe()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.write(w, json.dumps(probe()).encode())
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 4096):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return dict(json.loads(data or b"{}"))


def _limits() -> dict[str, Any]:
    """Whether pyinit run, started like this, would enforce linux.resources, and why
    (docs/cgroups.md, "Rootless"), for a container with the default cgroup path:
    ``delegated`` says whether an unprivileged caller has a cgroup subtree of its own."""
    from pyinit import cgroups
    from pyinit.oci.resources import CgroupSpec, Resources

    try:
        decision = cgroups.placement(cgroups.detect(), CgroupSpec(None, Resources()), "ID")
    except (OSError, ValueError) as exc:
        return {"enforced": False, "delegated": False, "reason": f"cannot tell: {exc}"}
    return {"enforced": decision.enforce, "delegated": decision.delegated,
            "reason": decision.reason}


def report() -> dict[str, Any]:
    """The environment, as pyinit sees it (docs/diagnose.schema.json)."""
    from pyinit.linux import host as cgroups
    from pyinit.linux import syscalls

    try:
        subreaper = syscalls.is_child_subreaper()
    except OSError:
        subreaper = False
    hierarchies = []
    try:
        hierarchies = [{"name": h.name, "version": h.version, "own_cgroup": h.own_cgroup}
                       for h in cgroups.host_hierarchies()]
    except OSError:
        pass
    versions = {h["version"] for h in hierarchies}
    cgroup = ("v2" if cgroups.is_unified() else "hybrid" if versions == {1, 2}
              else "v1" if versions else "none")
    limits = _limits()
    root = next((e for e in _mounts() if e.mount_point == "/"), None)
    propagation = "private"
    if root is not None:
        tags = [f.split(":")[0] for f in root.optional]
        propagation = "shared" if "shared" in tags else "slave" if "master" in tags \
            else "unbindable" if "unbindable" in tags else "private"
    limit, count = mount_limit()
    return {
        "pid": os.getpid(),
        "pid1": os.getpid() == 1,
        "subreaper": subreaper,
        "capabilities": {"effective": _cap_names(status_field("CapEff")),
                         "bounding": _cap_names(status_field("CapBnd"))},
        "user_namespace": {"nested": in_user_namespace(),
                           "uid_map": (_read("/proc/self/uid_map") or "").split("\n"),
                           "gid_map": (_read("/proc/self/gid_map") or "").split("\n"),
                           "setgroups": _read("/proc/self/setgroups")},
        "seccomp": seccomp_mode(),
        "no_new_privs": status_field("NoNewPrivs") == "1",
        "cgroup": {"version": cgroup, "hierarchies": hierarchies, "limits": limits},
        "root_propagation": propagation,
        "covering_proc": mounts_on_top_of("/proc"),
        "covering_sys": mounts_on_top_of("/sys"),
        "mounts": {"count": count, "max": limit},
        "mountable": probe_mountable(),
    }


def predict(bundle: str, env: dict[str, Any]) -> list[dict[str, Any]]:
    """Which of the bundle's mounts will fail here, and why, without setting anything up."""
    from pyinit.oci.config import ConfigError, load

    try:
        cfg = load(bundle)
    except ConfigError as exc:
        hint = explain("config-invalid", None, {}, evidence=False)
        return [{"where": path, "problem": reason, "hint": hint} for path, reason in exc.problems]
    found = []
    from pyinit.linux import host
    from pyinit.oci.config import RunOptions
    from pyinit.rootfs import plan

    try:
        plan.build(cfg, RunOptions(), host.probe())
    except SetupError as exc:  # exactly what pyinit run and check refuse
        found.append({"where": exc.where, "destination": exc.fields.get("destination"),
                      "problem": exc.reason,
                      "hint": explain_error(exc, {}, evidence=False)})
    for m in cfg.mounts:
        problem = hint = None
        dest = cfg.root_path.rstrip("/") + m.destination
        if m.parsed.is_bind and not os.path.exists(m.source):
            problem = f"the bind source {m.source} does not exist"
            hint = explain("mount", errno.ENOENT, {"source": m.source})
        elif not m.parsed.is_bind and m.type not in ("bind", "cgroup") \
                and m.type not in filesystems():
            problem = f"unknown filesystem type {m.type!r}"
            hint = explain("mount", errno.ENODEV, {"fstype": m.type})
        elif m.type in env["mountable"] and env["mountable"][m.type] != "ok" \
                and not env["mountable"][m.type].startswith("untested"):
            problem = f"{m.type} cannot be mounted here ({env['mountable'][m.type]})"
            hint = explain("mount", errno.EPERM, {"fstype": m.type})
        elif m.type in ("proc", "sysfs") and os.path.islink(dest):
            problem = f"{m.destination} is a symlink in the image (-> {os.readlink(dest)})"
            hint = explain("proc-symlink-in-image", None, {}, evidence=False)
        else:
            element = first_file_in_path(dest)
            if element:
                problem = f"{element[len(cfg.root_path.rstrip('/')):]} is a file"
                hint = explain("file-in-path", None, {}, evidence=False)
        if problem:
            found.append({"where": m.where, "destination": m.destination, "problem": problem,
                          "hint": hint})
    return found
