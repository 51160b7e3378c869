"""The executor against the recording fake kernel: order, flags and targets, without root.

Each test plans a small config, runs the real executor on
:class:`pyinit.linux.fake.FakeKernel`, and compares the calls it made, in
full. The integration tests prove the same steps on the real kernel.
"""

from __future__ import annotations

import copy
import errno
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from pyinit import diagnose
from pyinit.errors import SetupError
from pyinit.linux import flags
from pyinit.linux.fake import FakeKernel, Node
from pyinit.linux.host import Hierarchy, HostFacts
from pyinit.linux.mountinfo import MountEntry
from pyinit.oci.config import FileOp, RunOptions, parse
from pyinit.oci.spec import default_config
from pyinit.rootfs import hardening, plan
from pyinit.rootfs.executor import Executor

ROOT = "/b/rootfs"
ROOTFS_CALLS = [
    "mount_setattr / MS_SLAVE recursive",
    f"open_tree {ROOT} CLONE|RECURSIVE",
    f"mount_setattr tree:{ROOT} set=MOUNT_ATTR_NODEV clr=0 recursive",
    f"move_mount tree:{ROOT} -> {ROOT}",
]
# root.readonly: the tree private before it is attached (a clone of a slave mount
# is a slave too: attached, it would receive the host's mounts) and before its
# flags, then the rootfs's submounts read-only (the top stays writable until
# the end, for the mounts' destinations).
ROOTFS_CALLS_RO = [
    "mount_setattr / MS_SLAVE recursive",
    f"open_tree {ROOT} CLONE|RECURSIVE",
    f"mount_setattr tree:{ROOT} MS_PRIVATE recursive",
    f"mount_setattr tree:{ROOT} set=MOUNT_ATTR_RDONLY|MOUNT_ATTR_NODEV clr=0 recursive",
    f"mount_setattr tree:{ROOT} set=0 clr=MOUNT_ATTR_RDONLY",
    f"move_mount tree:{ROOT} -> {ROOT}",
]
PIVOT_CALLS = [
    f"fchdir tree:{ROOT}", "pivot_root . .", "mount_setattr . MS_SLAVE recursive", "umount2 .",
    "chdir /",
]


class Log:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Any:
        return lambda event, **kw: self.events.append((level, event, kw))

    def named(self, name: str) -> list[dict[str, Any]]:
        return [kw for _level, event, kw in self.events if event == name]


def _doc(**changes: Any) -> dict[str, Any]:
    """A bare config: no mounts, devices, masks or hooks unless given."""
    doc = copy.deepcopy(default_config())
    doc["mounts"] = []
    doc["linux"]["maskedPaths"] = []
    doc["linux"]["readonlyPaths"] = []
    doc["root"]["readonly"] = False
    doc.pop("hostname", None)
    doc["linux"].pop("resources", None)  # no device deny rule: `dev` may be asked for
    doc["linux"]["namespaces"] = [{"type": "mount"}]
    doc.update(changes)
    return doc


def _plan(doc: dict[str, Any], tmp_path: Path, run: RunOptions | None = None,
          host: HostFacts | None = None) -> plan.Plan:
    (tmp_path / "rootfs").mkdir(exist_ok=True)
    cfg = parse(doc, str(tmp_path))
    cfg = type(cfg)(**{**cfg.__dict__, "root_path": ROOT, "bundle": "/b"})
    return plan.build(cfg, run or RunOptions(dev_setup=False), host or HostFacts())


def _run(k: FakeKernel, setup: plan.Plan, log: Log | None = None,
         user_ns: bool = False) -> tuple[Log, list[tuple[str, dict[str, Any]]]]:
    log = log or Log()
    commands: list[tuple[str, dict[str, Any]]] = []

    async def runner(cmd: Any, _log: Any, step: str, **kw: Any) -> None:
        commands.append((" ".join(cmd.argv), {"step": step, **kw}))

    ex = Executor(ROOT, log, "c1", "/b", user_ns=user_ns, kernel=k, run_command=runner)
    trio.run(ex.run, setup.steps)
    return log, commands


def _fails(k: FakeKernel, setup: plan.Plan, log: Log | None = None) -> SetupError:
    with pytest.raises(SetupError) as info:
        _run(k, setup, log)
    return info.value


def _world(**extra: Node) -> FakeKernel:
    return FakeKernel({f"{ROOT}/bin": Node("dir"), **{"/" + k: v for k, v in extra.items()}})


# ----- mounts ---------------------------------------------------------------------
def test_read_only_bind_is_made_read_only_before_it_is_attached(tmp_path: Path) -> None:
    k = _world()
    k.add("/srv/secret/file", Node("file"))
    doc = _doc(mounts=[{"destination": "/data", "source": "/srv/secret",
                        "options": ["rbind", "ro", "rro", "rslave"]}])
    log, _ = _run(k, _plan(doc, tmp_path))
    assert k.calls == [
        *ROOTFS_CALLS,
        "open_tree /srv/secret CLONE|RECURSIVE",
        "mount_setattr tree:/srv/secret set=MOUNT_ATTR_RDONLY|MOUNT_ATTR_NODEV clr=0 recursive",
        "mount_setattr tree:/srv/secret set=MOUNT_ATTR_RDONLY|MOUNT_ATTR_NODEV clr=0",
        f"mkdir {ROOT}/data",
        f"move_mount tree:/srv/secret -> {ROOT}/data",
        "mount_setattr tree:/srv/secret MS_SLAVE recursive",
        *PIVOT_CALLS,
    ]
    done = log.named("mount.done")[0]
    assert done["resolved"] == f"{ROOT}/data" and done["where"] == "mounts[0]"


@pytest.mark.parametrize(("options", "private"), [
    (["rbind", "ro"], "MS_PRIVATE recursive"), (["bind", "ro"], "MS_PRIVATE")])
def test_read_only_bind_is_made_private_before_its_flags_and_its_attach(
        tmp_path: Path, options: list[str], private: str) -> None:
    # Attached as a slave, it would receive the host's mounts (writable) until made
    # private; so private on the detached tree first, and again once attached (a
    # shared parent would have made it shared).
    k = _world()
    k.add("/srv/secret/file", Node("file"))
    doc = _doc(mounts=[{"destination": "/data", "source": "/srv/secret", "options": options}])
    _run(k, _plan(doc, tmp_path))
    recursive = options[0] == "rbind"
    attrs = ["mount_setattr tree:/srv/secret set=MOUNT_ATTR_RDONLY|MOUNT_ATTR_NODEV clr=0"
             " recursive"] if recursive else []
    assert k.calls == [
        *ROOTFS_CALLS,
        f"open_tree /srv/secret CLONE{'|RECURSIVE' if recursive else ''}",
        f"mount_setattr tree:/srv/secret {private}",
        *attrs,
        "mount_setattr tree:/srv/secret set=MOUNT_ATTR_RDONLY|MOUNT_ATTR_NODEV clr=0",
        f"mkdir {ROOT}/data",
        f"move_mount tree:/srv/secret -> {ROOT}/data",
        f"mount_setattr tree:/srv/secret {private}",
        *PIVOT_CALLS,
    ]


def test_bind_with_dev_keeps_device_nodes(tmp_path: Path) -> None:
    k = _world()
    k.add("/srv/devs", Node("dir"))
    doc = _doc(mounts=[{"destination": "/d", "source": "/srv/devs", "options": ["bind", "dev"]}])
    _run(k, _plan(doc, tmp_path))
    assert k.calls[4:7] == [
        "open_tree /srv/devs CLONE",
        "mount_setattr tree:/srv/devs set=0 clr=MOUNT_ATTR_NODEV",
        f"mkdir {ROOT}/d",
    ]


def test_a_file_bind_lands_on_a_file_through_an_in_root_symlink(tmp_path: Path) -> None:
    k = _world(**{"b/rootfs/etc": Node("dir"), "b/rootfs/outside/conf": Node("file"),
                  "b/rootfs/etc/conf": Node("link", target="/../../outside/conf")})
    k.add("/srv/conf", Node("file"))
    k.add("/outside/conf", Node("file"))  # on the host: never the target
    doc = _doc(mounts=[{"destination": "/etc/conf", "source": "/srv/conf", "options": ["bind"]},
                       {"destination": "/etc/new", "source": "/srv/conf", "options": ["bind"]}])
    _run(k, _plan(doc, tmp_path))
    # The absolute symlink with .. resolves inside the root: /b/rootfs/outside.
    assert k.calls[4:] == [
        "open_tree /srv/conf CLONE",
        "mount_setattr tree:/srv/conf set=MOUNT_ATTR_NODEV clr=0",
        f"move_mount tree:/srv/conf -> {ROOT}/outside/conf",
        "open_tree /srv/conf CLONE",
        "mount_setattr tree:/srv/conf set=MOUNT_ATTR_NODEV clr=0",
        f"create {ROOT}/etc/new",
        f"move_mount tree:/srv/conf -> {ROOT}/etc/new",
        *PIVOT_CALLS,
    ]


def test_a_volume_behind_a_symlink_to_proc_is_refused(tmp_path: Path) -> None:
    # /data -> /proc in the image, a volume on /data: caught on the resolved fd.
    k = _world(**{"b/rootfs/proc": Node("dir"), "b/rootfs/data": Node("link", target="/proc")})
    k.add("/srv/vol", Node("dir"))
    doc = _doc(mounts=[{"destination": "/proc", "type": "proc", "source": "proc"},
                       {"destination": "/data", "source": "/srv/vol", "options": ["rbind"]}])
    log = Log()
    exc = _fails(k, _plan(doc, tmp_path), log)
    assert exc.line() == (
        "mounts[1]: mount (/data): the destination resolves into /proc (a procfs mount is "
        "there); only /proc's and /sys's own mounts may be made there; " + (exc.hint or ""))
    assert exc.hint == (
        "a mount inside /proc or /sys could replace what the kernel shows the container "
        "there (runc's checkProcMount, CVE-2019-19921 and CVE-2025-52881): mount "
        "elsewhere, or use the filesystem's own type")
    assert not any(c.startswith("move_mount tree:/srv/vol") for c in k.calls)
    assert log.named("mount.failed")[0]["where"] == "mounts[1]"


def test_a_symlink_to_proc_is_refused_before_proc_is_mounted_too(tmp_path: Path) -> None:
    k = _world(**{"b/rootfs/proc": Node("dir"), "b/rootfs/data": Node("link", target="/proc")})
    k.add("/srv/vol", Node("dir"))
    doc = _doc(mounts=[{"destination": "/data", "source": "/srv/vol", "options": ["rbind"]}])
    exc = _fails(k, _plan(doc, tmp_path))
    assert exc.reason == ("the destination resolves into /proc; only /proc's own mounts may "
                          "be made there")


@pytest.mark.parametrize(("dest", "kind", "reason"), [
    ("/proc/sys/kernel", "tmpfs", "mounts under /proc are refused (only runc's lxcfs "
                                  "allowlist is accepted)"),
    ("/proc/../proc", "tmpfs", "only a fresh proc may be mounted on /proc"),
    ("/sys/kernel/security", "securityfs", "mounts under /sys are refused (only cgroup on "
                                           "/sys/fs/cgroup is accepted)"),
    ("/sys", "tmpfs", "only a fresh sysfs, or a bind of the host's /sys, may be mounted on "
                      "/sys"),
])
def test_plan_refuses_mounts_in_proc_and_sys(tmp_path: Path, dest: str, kind: str,
                                             reason: str) -> None:
    doc = _doc(mounts=[{"destination": dest, "type": kind, "source": kind}])
    with pytest.raises(SetupError) as info:
        _plan(doc, tmp_path)
    assert info.value.reason == reason and info.value.where == "mounts[0]"


def test_lxcfs_binds_under_proc_are_allowed(tmp_path: Path) -> None:
    k = _world(**{"b/rootfs/proc": Node("dir")})
    k.add("/var/lib/lxcfs/proc/meminfo", Node("file"))
    doc = _doc(mounts=[{"destination": "/proc", "type": "proc", "source": "proc"},
                       {"destination": "/proc/meminfo", "source": "/var/lib/lxcfs/proc/meminfo",
                        "options": ["bind"]}])
    k.add(f"{ROOT}/proc", Node("dir"))
    _run(k, _plan(doc, tmp_path))
    assert f"move_mount tree:/var/lib/lxcfs/proc/meminfo -> {ROOT}/proc/meminfo" in k.calls


def test_proc_on_a_symlink_is_refused_naming_the_target(tmp_path: Path) -> None:
    k = _world(**{"b/rootfs/proc": Node("link", target="/etc/fake-proc")})
    doc = _doc(mounts=[{"destination": "/proc", "type": "proc", "source": "proc"}])
    exc = _fails(k, _plan(doc, tmp_path))
    assert exc.reason == ("proc must be mounted on an ordinary directory, and /proc is a "
                          "symlink that points to /etc/fake-proc in the image")
    assert exc.hint == ("a symlinked /proc or /sys could send the mount outside the container "
                        "(CVE-2019-19921); fix the image")


def test_tmpcopyup_fills_the_detached_tmpfs_then_attaches_it(tmp_path: Path) -> None:
    k = _world(**{"b/rootfs/app/conf": Node("file"), "b/rootfs/app/lib/x": Node("file")})
    doc = _doc(mounts=[{"destination": "/app", "type": "tmpfs", "source": "tmpfs",
                        "options": ["tmpcopyup", "ro", "mode=700"]}])
    log, _ = _run(k, _plan(doc, tmp_path))
    assert k.calls[4:] == [
        "fsopen tmpfs", "fsconfig tmpfs source=tmpfs", "fsconfig tmpfs mode=700",
        "fsconfig tmpfs create", "fsmount tmpfs 0",
        f"copy {ROOT}/app -> mnt:tmpfs (3 entries)",
        "mount_setattr mnt:tmpfs set=MOUNT_ATTR_RDONLY clr=0",
        f"move_mount mnt:tmpfs -> {ROOT}/app",
        *PIVOT_CALLS,
    ]
    assert log.named("mount.tmpcopyup") == [{"where": "mounts[0]", "destination": "/app",
                                             "entries": 3}]


def test_tmpcopyup_leaves_the_images_device_nodes_out(tmp_path: Path) -> None:
    k = _world(**{"b/rootfs/dev/conf": Node("file"), "b/rootfs/dev/sda": Node("blk", rdev=8),
                  "b/rootfs/dev/sub/mem": Node("chr", rdev=0x101)})
    doc = _doc(mounts=[{"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                        "options": ["tmpcopyup"]}])
    log, _ = _run(k, _plan(doc, tmp_path))
    assert f"copy {ROOT}/dev -> mnt:tmpfs (2 entries)" in k.calls
    assert log.named("mount.tmpcopyup_skipped") == [
        {"where": "mounts[0]", "destination": "/dev", "skipped": ["sda", "sub/mem"],
         "detail": "device nodes of the image are not copied onto a tmpfs; list them in "
                   "linux.devices to have them"}]


@pytest.mark.parametrize(("options", "rec_set", "rec_clr"), [
    (["rbind", "ro"], "MOUNT_ATTR_RDONLY|MOUNT_ATTR_NODEV", "0"),
    (["rbind", "ro", "rrw"], "MOUNT_ATTR_NODEV", "MOUNT_ATTR_RDONLY"),
    (["bind", "ro"], "0", "0"),
])
def test_ro_on_an_rbind_holds_for_its_submounts(tmp_path: Path, options: list[str],
                                                rec_set: str, rec_clr: str) -> None:
    doc = _doc(mounts=[{"destination": "/data", "source": "/srv/vol", "options": options}])
    step = next(s for s in _plan(doc, tmp_path).steps if isinstance(s, plan.BindMount))
    assert flags.attr_names(step.attr_set) == "MOUNT_ATTR_RDONLY|MOUNT_ATTR_NODEV"
    assert (flags.attr_names(step.rec_set), flags.attr_names(step.rec_clr)) == (rec_set,
                                                                                 rec_clr)


def test_tmpfs_keeps_the_mode_of_what_it_covers(tmp_path: Path) -> None:
    k = _world(**{"b/rootfs/tmp": Node("dir", mode=0o1777)})
    doc = _doc(mounts=[{"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}])
    _run(k, _plan(doc, tmp_path))
    assert k.calls[5:7] == ["fsconfig tmpfs source=tmpfs", "fsconfig tmpfs mode=1777"]


def test_unknown_filesystem_fails_at_fsopen_with_the_hint(tmp_path: Path) -> None:
    k = _world()
    k.fail("fsopen", errno.ENODEV)
    doc = _doc(mounts=[{"destination": "/x", "type": "nosuchfs", "source": "none",
                        "options": ["nosuid"]}])
    log = Log()
    exc = _fails(k, _plan(doc, tmp_path), log)
    failed = log.named("mount.failed")[0]
    assert failed["errno"] == "ENODEV" and failed["fstype"] == "nosuchfs"
    assert failed["flags"] == "MS_NOSUID"
    assert failed["reason"] == "nosuchfs none on /x MS_NOSUID: No such device"
    assert exc.op == "fsopen"
    assert exc.hint is not None and exc.hint.startswith(
        "the kernel does not know the filesystem type 'nosuchfs'")


def test_locked_flags_are_named(tmp_path: Path) -> None:
    k = _world()
    k.add("/srv/locked", Node("dir"))
    k.fail("mount_setattr", errno.EPERM, "tree:/srv/locked")
    k.fstatvfs_flags = lambda fd: os.ST_NOSUID | os.ST_NODEV  # type: ignore[method-assign]
    doc = _doc(mounts=[{"destination": "/data", "source": "/srv/locked",
                        "options": ["rbind", "suid"]}])
    log = Log()
    exc = _fails(k, _plan(doc, tmp_path), log)
    assert exc.fields["locked"] == "MS_NOSUID" and exc.op == "locked-flags"
    assert log.named("mount.failed")[0]["locked"] == "MS_NOSUID"
    assert exc.hint == diagnose.explain("locked-flags", errno.EPERM, {"locked": "MS_NOSUID"})


def _sysfs_fallback_plan(tmp_path: Path, fallback: bool = True) -> plan.Plan:
    """A read-only sysfs in a user namespace (no netns), run with --sysfs-fallback or not."""
    doc = _doc(mounts=[{"destination": "/sys", "type": "sysfs", "source": "sysfs",
                        "options": ["ro"]}])
    doc["linux"]["namespaces"] = [{"type": "mount"}, {"type": "user"}]
    doc["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    doc["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    return _plan(doc, tmp_path, RunOptions(dev_setup=False, sysfs_fallback=fallback))


def test_sysfs_fallback_covers_the_mounts_right_under_the_hosts_sys(tmp_path: Path) -> None:
    setup = _sysfs_fallback_plan(tmp_path)
    host = [MountEntry(20, 1, "/", "/sys", [], [], "sysfs", "sysfs", []),
            MountEntry(21, 20, "/", "/sys/kernel/security", [], [], "securityfs", "none", []),
            MountEntry(22, 20, "/", "/sys/fs/cgroup", [], [], "tmpfs", "tmpfs", []),
            MountEntry(23, 22, "/", "/sys/fs/cgroup/pids", [], [], "cgroup", "cgroup", []),
            MountEntry(24, 1, "/", "/sysroot", [], [], "ext4", "/dev/sda", [])]
    k = FakeKernel({f"{ROOT}/bin": Node("dir"), "/sys/kernel/security": Node("dir", fs="sysfs"),
                    "/sys/fs/cgroup/pids": Node("dir", fs="sysfs")}, mounts=host)
    log, _ = _run(k, setup, user_ns=True)
    cover = ["fsopen tmpfs", "fsconfig tmpfs source=tmpfs", "fsconfig tmpfs size=0",
             "fsconfig tmpfs nr_inodes=1", "fsconfig tmpfs mode=755", "fsconfig tmpfs create",
             "fsmount tmpfs MOUNT_ATTR_RDONLY|MOUNT_ATTR_NOSUID|MOUNT_ATTR_NODEV|"
             "MOUNT_ATTR_NOEXEC"]
    start = k.calls.index(f"move_mount tree:/sys -> {ROOT}/sys") + 1
    assert k.calls[start:start + 16] == [
        *cover, f"move_mount mnt:tmpfs -> {ROOT}/sys/fs/cgroup",
        *cover, f"move_mount mnt:tmpfs -> {ROOT}/sys/kernel/security"]
    assert log.named("mount.sysfs_fallback")[0]["covered"] == ["fs/cgroup", "kernel/security"]


def test_sysfs_fallback_is_decided_by_the_plan(tmp_path: Path) -> None:
    setup = _sysfs_fallback_plan(tmp_path)
    step = setup.steps[2]
    assert isinstance(step, plan.BindMount) and step.sysfs_fallback
    k = _world()
    k.add("/sys/kernel", Node("dir", fs="sysfs"))
    log, _ = _run(k, setup, user_ns=True)
    assert k.calls[4:9] == [
        "open_tree /sys CLONE|RECURSIVE",
        "mount_setattr tree:/sys set=MOUNT_ATTR_RDONLY|MOUNT_ATTR_NOSUID|MOUNT_ATTR_NODEV|"
        "MOUNT_ATTR_NOEXEC clr=0 recursive",
        "mount_setattr tree:/sys set=MOUNT_ATTR_RDONLY|MOUNT_ATTR_NOSUID|MOUNT_ATTR_NODEV|"
        "MOUNT_ATTR_NOEXEC clr=0",
        f"mkdir {ROOT}/sys",
        f"move_mount tree:/sys -> {ROOT}/sys",
    ]
    assert [e["destination"] for e in log.named("mount.sysfs_fallback")] == ["/sys"]
    with pytest.raises(SetupError) as refused:
        _sysfs_fallback_plan(tmp_path, fallback=False)
    assert (refused.value.op, refused.value.where) == ("sysfs-without-netns", "mounts[0]")


def test_cgroup_v1_hierarchies_are_made_in_the_fresh_tmpfs(tmp_path: Path) -> None:
    host = HostFacts(cgroup_unified=False, cgroup_hierarchies=(
        Hierarchy("cpu,cpuacct", 1, ("cpu", "cpuacct"), "/sys/fs/cgroup/cpu,cpuacct", "/"),
        Hierarchy("systemd", 1, ("name=systemd",), "/sys/fs/cgroup/systemd", "/"),
        Hierarchy("unified", 2, (), "/sys/fs/cgroup/unified", "/")))
    doc = _doc(mounts=[{"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                        "options": ["nosuid", "ro"]}])
    doc["linux"]["namespaces"].append({"type": "cgroup"})
    k = _world()
    _run(k, _plan(doc, tmp_path, host=host))
    assert k.calls[4:-5] == [
        f"mkdir {ROOT}/sys", f"mkdir {ROOT}/sys/fs", f"mkdir {ROOT}/sys/fs/cgroup",
        "fsopen tmpfs", "fsconfig tmpfs source=tmpfs", "fsconfig tmpfs mode=755",
        "fsconfig tmpfs create", "fsmount tmpfs MOUNT_ATTR_NOSUID|MOUNT_ATTR_NODEV",
        f"move_mount mnt:tmpfs -> {ROOT}/sys/fs/cgroup",
        f"mkdir {ROOT}/sys/fs/cgroup/cpu,cpuacct",
        "fsopen cgroup", "fsconfig cgroup source=cgroup", "fsconfig cgroup cpu",
        "fsconfig cgroup cpuacct",
        "fsconfig cgroup create", "fsmount cgroup MOUNT_ATTR_NOSUID|MOUNT_ATTR_NODEV",
        f"move_mount mnt:cgroup -> {ROOT}/sys/fs/cgroup/cpu,cpuacct",
        f"mkdir {ROOT}/sys/fs/cgroup/systemd",
        "fsopen cgroup", "fsconfig cgroup source=cgroup", "fsconfig cgroup name=systemd",
        "fsconfig cgroup create",
        "fsmount cgroup MOUNT_ATTR_NOSUID|MOUNT_ATTR_NODEV",
        f"move_mount mnt:cgroup -> {ROOT}/sys/fs/cgroup/systemd",
        f"mkdir {ROOT}/sys/fs/cgroup/unified",
        "fsopen cgroup2", "fsconfig cgroup2 create",
        "fsmount cgroup2 MOUNT_ATTR_NOSUID|MOUNT_ATTR_NODEV",
        f"move_mount mnt:cgroup2 -> {ROOT}/sys/fs/cgroup/unified",
        f"symlink {ROOT}/sys/fs/cgroup/cpu -> cpu,cpuacct",
        f"symlink {ROOT}/sys/fs/cgroup/cpuacct -> cpu,cpuacct",
        "mount_setattr mnt:tmpfs set=MOUNT_ATTR_RDONLY|MOUNT_ATTR_NOSUID|MOUNT_ATTR_NODEV|"
        "MOUNT_ATTR_NOEXEC clr=0 recursive",
    ]


def test_cgroup2_without_a_cgroup_namespace_binds_our_own_cgroup(tmp_path: Path) -> None:
    host = HostFacts(cgroup_unified=True, cgroup_hierarchies=(
        Hierarchy("", 2, (), "/sys/fs/cgroup", "/pyinit/c1"),))
    doc = _doc(mounts=[{"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                        "options": ["nosuid", "ro"]}])
    k = _world()
    k.add("/sys/fs/cgroup/pyinit/c1", Node("dir"))
    _run(k, _plan(doc, tmp_path, host=host))
    assert k.calls[7:10] == [
        "open_tree /sys/fs/cgroup/pyinit/c1 CLONE|RECURSIVE",
        "mount_setattr tree:/sys/fs/cgroup/pyinit/c1 set=MOUNT_ATTR_NOSUID|MOUNT_ATTR_NODEV "
        "clr=0 recursive",
        "mount_setattr tree:/sys/fs/cgroup/pyinit/c1 set=MOUNT_ATTR_RDONLY clr=0 recursive",
    ]


def test_cgroup2_bind_fallback_in_a_cgroup_namespace_binds_the_recorded_cgroup(
        tmp_path: Path) -> None:
    # The kernel refuses a fresh cgroup2: the bind is of the cgroup PID 1 read
    # before its cgroup namespace (own_cgroups), not of what the plan saw in
    # the parent ("/" here: the host's root) nor of anything read inside.
    host = HostFacts(cgroup_unified=True, cgroup_hierarchies=(
        Hierarchy("", 2, (), "/sys/fs/cgroup", "/"),))
    doc = _doc(mounts=[{"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                        "options": ["nosuid"]}])
    doc["linux"]["namespaces"].append({"type": "cgroup"})
    k = _world()
    k.add("/sys/fs/cgroup/pyinit/c1", Node("dir"))
    k.fail("fsmount", errno.EPERM, "cgroup2")
    log = Log()
    ex = Executor(ROOT, log, "c1", "/b", kernel=k, own_cgroups={"": "/pyinit/c1"})
    trio.run(ex.run, _plan(doc, tmp_path, host=host).steps)
    assert [c for c in k.calls if c.startswith("open_tree /sys")] == [
        "open_tree /sys/fs/cgroup/pyinit/c1 CLONE|RECURSIVE"]
    assert [e["errno"] for e in log.named("cgroup.bind_fallback")] == ["EPERM"]


# ----- commands and hooks ------------------------------------------------------------
def test_post_mount_commands_start_in_the_new_mount(tmp_path: Path) -> None:
    k = _world()
    sh = {"path": "/bin/sh", "args": ["sh", "-c", "cp -a /seed/. ."]}
    doc = _doc(mounts=[{"destination": "/data", "type": "tmpfs", "source": "tmpfs",
                        "io.pyinit.premount": [{"path": "/bin/true"}],
                        "io.pyinit.postmount": [sh]}],
               hooks={"createContainer": [{"path": "/bin/hook"}]})
    seen: list[str] = []

    async def runner(cmd: Any, _log: Any, step: str, cwd_fd: int | None = None,
                     **kw: Any) -> None:
        seen.append(f"{step} {' '.join(cmd.argv)} cwd={k.name(cwd_fd) if cwd_fd else None} "
                    f"{sorted(kw.items())}")

    ex = Executor(ROOT, Log(), "c1", "/b", kernel=k, run_command=runner)
    trio.run(ex.run, _plan(doc, tmp_path).steps)
    state = (b'{"ociVersion": "1.0.2", "id": "c1", "status": "created", "pid": 4242, '
             b'"bundle": "/b", "annotations": {}}')
    assert seen == [
        "command /bin/true cwd=None [('destination', '/data'), ('phase', 'before')]",
        "command sh -c cp -a /seed/. . cwd=mnt:tmpfs [('destination', '/data'), "
        "('phase', 'after')]",
        f"hook /bin/hook cwd=None [('kind', 'createContainer'), ('stdin', {state!r})]",
    ]
    assert sorted(k.fds) == [0, 1, 2]  # every fd the setup opened is closed again


# ----- devices -----------------------------------------------------------------------
def test_default_devices_are_made_and_checked(tmp_path: Path) -> None:
    k = _world()
    doc = _doc(mounts=[{"destination": "/dev", "type": "tmpfs", "source": "tmpfs"}])
    doc["linux"]["devices"] = [{"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229,
                                "fileMode": 0o600, "uid": 7, "gid": 8}]
    _run(k, _plan(doc, tmp_path, RunOptions(), HostFacts(has_kcore=False)))
    dev = f"{ROOT}/dev"
    assert k.calls[10:] == [
        f"mknod {dev}/null chr 1:3 0666", f"chown {dev}/null 0:0",
        f"mknod {dev}/zero chr 1:5 0666", f"chown {dev}/zero 0:0",
        f"mknod {dev}/full chr 1:7 0666", f"chown {dev}/full 0:0",
        f"mknod {dev}/random chr 1:8 0666", f"chown {dev}/random 0:0",
        f"mknod {dev}/urandom chr 1:9 0666", f"chown {dev}/urandom 0:0",
        f"mknod {dev}/tty chr 5:0 0666", f"chown {dev}/tty 0:0",
        f"mknod {dev}/fuse chr 10:229 0600", f"chown {dev}/fuse 7:8",
        f"symlink {dev}/ptmx -> pts/ptmx",
        f"symlink {dev}/fd -> /proc/self/fd", f"symlink {dev}/stdin -> /proc/self/fd/0",
        f"symlink {dev}/stdout -> /proc/self/fd/1", f"symlink {dev}/stderr -> /proc/self/fd/2",
        *PIVOT_CALLS,
        f"dup2 {dev}/null -> 0", f"dup2 {dev}/null -> 1", f"dup2 {dev}/null -> 2",
    ]


def test_an_image_dev_node_of_another_kind_is_refused(tmp_path: Path) -> None:
    k = _world(**{"b/rootfs/dev/null": Node("link", target="/proc/sysrq-trigger")})
    exc = _fails(k, _plan(_doc(), tmp_path, RunOptions(), HostFacts()))
    assert exc.reason == "/dev/null exists and is not the device c 1:3"
    assert k.calls[4:] == []


def test_on_the_image_dev_only_the_allowed_nodes_work(tmp_path: Path) -> None:
    # No mount on /dev: the nodes are made on the nodev root, and each one
    # alone gets a clone of its mount without nodev.
    k = _world(**{"b/rootfs/dev/sda": Node("blk", rdev=os.makedev(8, 0))})
    k.nodev_under = [ROOT]
    doc = _doc()
    doc["linux"]["devices"] = [{"type": "p", "path": "/dev/fifo"}]
    _run(k, _plan(doc, tmp_path, RunOptions(), HostFacts()))
    dev = f"{ROOT}/dev"
    assert k.calls[4:8] == [
        f"mknod {dev}/null chr 1:3 0666", f"chown {dev}/null 0:0",
        f"open_tree {dev}/null CLONE|EMPTY_PATH",
        f"mount_setattr tree:{dev}/null set=0 clr=MOUNT_ATTR_NODEV",
    ]
    assert f"move_mount tree:{dev}/null -> {dev}/null" in k.calls
    assert [c for c in k.calls if "fifo" in c] == [f"mknod {dev}/fifo fifo 0:0 0666",
                                                   f"chown {dev}/fifo 0:0"]
    assert not any("sda" in c for c in k.calls)


def test_user_namespace_binds_the_hosts_device_nodes(tmp_path: Path) -> None:
    k = _world()
    k.add("/dev/zero", Node("chr", rdev=os.makedev(1, 5)))
    doc = _doc(mounts=[{"destination": "/dev", "type": "tmpfs", "source": "tmpfs"}])
    doc["linux"]["namespaces"].append({"type": "user"})
    doc["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    doc["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    setup = _plan(doc, tmp_path, RunOptions(), HostFacts())
    assert [type(s).__name__ for s in setup.steps[3:5]] == ["BindDevice", "BindDevice"]
    k.fail("open_tree", errno.ENOENT, "/dev/full")
    log = Log()
    exc = _fails(k, setup, log)
    assert k.calls[10:] == [
        "open_tree /dev/null CLONE", "mount_setattr tree:/dev/null set=MOUNT_ATTR_NOSUID clr=0",
        f"create {ROOT}/dev/null", f"move_mount tree:/dev/null -> {ROOT}/dev/null",
        "open_tree /dev/zero CLONE", "mount_setattr tree:/dev/zero set=MOUNT_ATTR_NOSUID clr=0",
        f"create {ROOT}/dev/zero", f"move_mount tree:/dev/zero -> {ROOT}/dev/zero",
    ]
    assert exc.reason == "mknod is not allowed here and the host has no /dev/full to bind"
    assert [e["destination"] for e in log.named("device.bound")] == ["/dev/null", "/dev/zero"]


def test_an_existing_symlink_must_point_where_it_should(tmp_path: Path) -> None:
    k = _world(**{"b/rootfs/dev/fd": Node("link", target="/elsewhere")})
    exc = _fails(k, _plan(_doc(), tmp_path, RunOptions(), HostFacts()))
    assert exc.line() == "symlink: /dev/fd exists and is not a link to /proc/self/fd"


# ----- identity, pivot, hardening ----------------------------------------------------
def test_names_cwd_and_no_pivot(tmp_path: Path) -> None:
    host_proc = MountEntry(1, 0, "/", "/proc", [], [], "proc", "proc", [])
    inside = MountEntry(2, 0, "/", f"{ROOT}/proc", [], [], "proc", "proc", [])
    k = FakeKernel({f"{ROOT}/bin": Node("dir")}, mounts=[host_proc, inside])
    k.fail("umount2", errno.EINVAL, "/proc")
    doc = _doc(hostname="box", domainname="example")
    doc["linux"]["namespaces"].append({"type": "uts"})
    doc["process"]["cwd"] = "/work/here"
    log, _ = _run(k, _plan(doc, tmp_path, RunOptions(dev_setup=False, no_pivot=True)))
    assert k.calls[4:] == [
        "sethostname box", "setdomainname example",
        f"mkdir {ROOT}/work", f"mkdir {ROOT}/work/here",
        "fsopen tmpfs", "fsconfig tmpfs source=tmpfs", "fsconfig tmpfs size=0",
        "fsconfig tmpfs nr_inodes=1", "fsconfig tmpfs create",
        "fsmount tmpfs MOUNT_ATTR_RDONLY", "move_mount mnt:tmpfs -> /proc",
        f"fchdir tree:{ROOT}", f"move_mount tree:{ROOT} -> /", "chroot .", "chdir /",
    ]
    assert log.named("nopivot.hidden") == [{"mounts": ["/proc"]}]


def test_pivot_einval_gets_the_pivot_hint(tmp_path: Path) -> None:
    k = _world()
    k.fail("pivot_root", errno.EINVAL)
    log = Log()
    exc = _fails(k, _plan(_doc(), tmp_path), log)
    assert exc.step == "pivot" and exc.errno_name == "EINVAL" and exc.op == "pivot_root"
    assert exc.hint is not None and log.named("pivot.failed")[0]["hint"] == exc.hint


def test_after_the_pivot_paths_are_resolved_in_the_root_and_checked(tmp_path: Path) -> None:
    k = _world(**{"b/rootfs/proc/sys/net/ipv4/ip_forward": Node("file", fs="proc"),
                  "b/rootfs/proc/kcore": Node("file", fs="proc"),
                  "b/rootfs/proc/acpi": Node("dir", fs="proc"),
                  "b/rootfs/dev/null": Node("chr", rdev=os.makedev(1, 3), fs="tmpfs")})
    doc = _doc()
    doc["root"]["readonly"] = True
    doc["linux"]["namespaces"].append({"type": "network"})
    doc["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    doc["linux"]["readonlyPaths"] = ["/proc/sys", "/proc/missing"]
    doc["linux"]["maskedPaths"] = ["/proc/kcore", "/proc/acpi"]
    _run(k, _plan(doc, tmp_path))
    assert k.calls[:len(ROOTFS_CALLS_RO)] == ROOTFS_CALLS_RO
    assert k.calls[len(ROOTFS_CALLS_RO) + len(PIVOT_CALLS):] == [
        f"dup2 {ROOT}/dev/null -> 0", f"dup2 {ROOT}/dev/null -> 1", f"dup2 {ROOT}/dev/null -> 2",
        f"write {ROOT}/proc/sys/net/ipv4/ip_forward 1",
        f"mount_setattr tree:{ROOT} set=MOUNT_ATTR_RDONLY clr=0",
        f"open_tree {ROOT}/proc/sys CLONE|RECURSIVE|EMPTY_PATH",
        f"mount_setattr tree:{ROOT}/proc/sys set=MOUNT_ATTR_RDONLY|MOUNT_ATTR_NOSUID|"
        "MOUNT_ATTR_NODEV|MOUNT_ATTR_NOEXEC clr=0 recursive",
        f"move_mount tree:{ROOT}/proc/sys -> {ROOT}/proc/sys",
        f"open_tree {ROOT}/dev/null CLONE|EMPTY_PATH",
        f"move_mount tree:{ROOT}/dev/null -> {ROOT}/proc/kcore",
        "fsopen tmpfs", "fsconfig tmpfs source=tmpfs", "fsconfig tmpfs size=0",
        "fsconfig tmpfs nr_inodes=1", "fsconfig tmpfs create",
        "fsmount tmpfs MOUNT_ATTR_RDONLY", f"move_mount mnt:tmpfs -> {ROOT}/proc/acpi",
    ]


def test_a_sysctl_file_not_on_procfs_is_refused(tmp_path: Path) -> None:
    k = _world(**{"b/rootfs/proc/sys/net/ipv4/ip_forward": Node("file", fs="tmpfs")})
    doc = _doc()
    doc["linux"]["namespaces"].append({"type": "network"})
    doc["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    exc = _fails(k, _plan(doc, tmp_path))
    assert exc.line() == ("sysctl: /proc/sys/net/ipv4/ip_forward is not on a procfs; "
                          "something is mounted over /proc/sys; refusing to write there "
                          "(CVE-2025-52881)")
    assert not any(c.startswith("write") for c in k.calls)


def test_masking_a_file_needs_the_real_dev_null(tmp_path: Path) -> None:
    k = _world(**{"b/rootfs/proc/kcore": Node("file", fs="proc"),
                  "b/rootfs/dev/null": Node("link", target="/proc/kcore")})
    doc = _doc()
    doc["linux"]["maskedPaths"] = ["/proc/kcore"]
    for fd in (0, 1, 2):  # stdio is not on /dev/null here: no devnull step work
        k.fds[fd].path = "/"
    exc = _fails(k, _plan(doc, tmp_path))
    assert exc.line() == (
        "linux.maskedPaths[0]: mask (/proc/kcore): /dev/null is not the char device 1:3, so "
        "it cannot mask files; a /dev/null replaced by a symlink would expose what it points "
        "to (CVE-2025-31133)")


def test_root_readonly_retries_while_busy(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardening, "EBUSY_DELAY", 0.001)
    doc = _doc()
    doc["root"]["readonly"] = True
    k = _world()
    # The rootfs step's three mount_setattr calls on the tree (ROOTFS_CALLS_RO) pass.
    k.fail("mount_setattr", errno.EBUSY, f"tree:{ROOT}", times=2, skip=3)
    log, _ = _run(k, _plan(doc, tmp_path))
    assert [e["attempt"] for e in log.named("remount.busy")] == [1, 2]
    k = _world()
    k.fail("mount_setattr", errno.EBUSY, f"tree:{ROOT}", times=99, skip=3)
    log = Log()
    exc = _fails(k, _plan(doc, tmp_path), log)
    assert exc.fields["attempts"] == hardening.EBUSY_TRIES == 5
    assert exc.line() == ("readonly: remount / read-only: Device or resource busy; "
                          "something holds the mount busy (an open file or a process with "
                          "its cwd there)")
    assert log.named("readonly.failed")[0]["errno"] == "EBUSY"


# ----- the plan and its purity ----------------------------------------------------
def test_ambient_capabilities_are_decided_in_the_plan(tmp_path: Path) -> None:
    doc = _doc()
    doc["process"]["capabilities"] = {"bounding": ["CAP_KILL"], "permitted": ["CAP_KILL"],
                                      "inheritable": [], "effective": ["CAP_KILL"],
                                      "ambient": ["CAP_KILL"]}
    setup = _plan(doc, tmp_path)
    assert setup.process.capabilities is not None
    assert setup.process.capabilities["ambient"] == []
    assert setup.notes == (("capabilities.ambient_skipped", {
        "capabilities": ["CAP_KILL"],
        "detail": "an ambient capability must also be permitted and inheritable; the spec "
                  "says to warn, not fail"}),)


@pytest.mark.parametrize(("propagation", "private"), [
    (None, True), ("rprivate", True), ("runbindable", True), ("slave", False),
    ("rslave", False), ("shared", False), ("rshared", False)])
def test_a_readonly_root_is_private_unless_rootfs_propagation_asks_otherwise(
        tmp_path: Path, propagation: str | None, private: bool) -> None:
    doc = _doc()
    doc["root"]["readonly"] = True
    if propagation is not None:
        doc["linux"]["rootfsPropagation"] = propagation
    root = _plan(doc, tmp_path).steps[1]
    assert root == plan.Rootfs(ROOT, readonly=True, private=private)
    doc["root"]["readonly"] = False
    assert _plan(doc, tmp_path).steps[1] == plan.Rootfs(ROOT)


@pytest.mark.parametrize(("options", "propagation"), [
    (["rbind", "ro"], (flags.MS_REC | flags.MS_PRIVATE,)),
    (["bind", "ro"], (flags.MS_PRIVATE,)),
    (["rbind", "ro", "rslave"], (flags.MS_REC | flags.MS_SLAVE,)),
    (["bind", "ro", "shared"], (flags.MS_SHARED,)),
    (["rbind"], ()),
    (["rbind", "rw"], ())])
def test_a_readonly_bind_is_private_unless_its_options_ask_otherwise(
        tmp_path: Path, options: list[str], propagation: tuple[int, ...]) -> None:
    doc = _doc(mounts=[{"destination": "/vol", "type": "bind", "source": "/srv",
                        "options": options}])
    step = _plan(doc, tmp_path).steps[2]
    assert isinstance(step, plan.BindMount)
    assert step.propagation == propagation


def test_sandbox_symlinks_come_from_the_plan(tmp_path: Path) -> None:
    setup = _plan(_doc(), tmp_path, RunOptions(
        dev_setup=False, order=(FileOp("symlink", "/bin", "--symlink", target="usr/bin"),)))
    assert [s.summary for s in setup.steps if s.kind == "symlink"] == ["/bin -> usr/bin"]


def test_config_and_plan_import_without_trio_or_structlog() -> None:
    code = ("import sys, pyinit.oci.config, pyinit.rootfs.plan; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('trio', 'structlog')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out == "[]\n"


def test_no_magic_fd_paths_in_pyinit() -> None:
    source = Path(__file__).parents[2] / "pyinit"
    found = [str(p) for p in source.rglob("*.py")
             if "thread-self/fd" in p.read_text()]
    assert found == []


def test_ebusy_hint_names_the_process_holding_the_mount(tmp_path: Path) -> None:
    held = tmp_path / "held"
    held.mkdir()
    proc = subprocess.Popen(["sleep", "30"], cwd=held)
    try:
        hint = diagnose.explain("readonly", errno.EBUSY, {"destination": str(held)})
    finally:
        proc.kill()
        proc.wait()
    assert hint == f"busy because of: {proc.pid} (sleep) cwd -> {held}"


def test_after_the_pivot_hints_read_no_evidence() -> None:
    hint = diagnose.explain("mount", errno.ENOSPC, {}, evidence=False)
    assert hint is None
    assert flags.attr_names(flags.MOUNT_ATTR_RDONLY) == "MOUNT_ATTR_RDONLY"


def test_diagnose_probes_mountable_types_through_the_seam() -> None:
    """fsopen, create and fsmount, never attached; every fd closed again."""
    kernel = FakeKernel()
    kernel.fail("fsmount", errno.EPERM, "proc")  # "too revealing"
    kernel.fail("fsopen", errno.ENODEV, "nosuchfs")
    kernel.fail("fsconfig", errno.EPERM, "create", skip=2)  # the third type: sysfs
    before = dict(kernel.fds)
    assert diagnose.probe_mountable(("tmpfs", "proc", "sysfs", "nosuchfs"), kernel) == {
        "tmpfs": "ok", "proc": "EPERM", "sysfs": "EPERM", "nosuchfs": "ENODEV"}
    assert kernel.calls == [
        "unshare 0x20000",
        "fsopen tmpfs", "fsconfig tmpfs create", "fsmount tmpfs 0",
        "fsopen proc", "fsconfig proc create",
        "fsopen sysfs",
    ]
    assert kernel.fds == before


def test_diagnose_probe_without_a_mount_namespace() -> None:
    kernel = FakeKernel()
    kernel.fail("unshare", errno.EPERM)
    assert diagnose.probe_mountable(("tmpfs", "proc"), kernel) == {
        "tmpfs": "untested (no mount namespace: EPERM)",
        "proc": "untested (no mount namespace: EPERM)"}
    assert kernel.calls == []


@pytest.mark.root
def test_these_tests_pass_as_an_unprivileged_user() -> None:
    """Run as root, the suite re-runs this file as uid 65534: the fake needs no privilege."""
    import shutil
    import tempfile

    scratch = Path(tempfile.mkdtemp(prefix="pyinit-nobody-"))  # pytest's tmp is 0700
    scratch.chmod(0o777)
    try:
        res = subprocess.run(
            ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
             sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, "-k",
             "not unprivileged_user", f"--basetemp={scratch / 'bt'}"],
            capture_output=True, text=True, timeout=300, check=False,
            cwd=Path(__file__).parents[2])
    finally:
        shutil.rmtree(scratch)
    assert res.returncode == 0, res.stdout + res.stderr
    last = res.stdout.splitlines()[-1]
    assert re.fullmatch(r"\d+ passed, 1 deselected in [0-9.]+s", last), res.stdout


def test_a_bound_host_node_without_the_configs_mode_is_never_attached(tmp_path: Path) -> None:
    """The parent checks linux.devices against the host's nodes before anything runs
    (devices.check_host_nodes); the executor checks the mode again on the very clone
    it would bind, so a host node changed in between is refused, not attached."""
    k = _world()
    for name, minor in (("zero", 5), ("full", 7), ("random", 8), ("urandom", 9)):
        k.add(f"/dev/{name}", Node("chr", rdev=os.makedev(1, minor), mode=0o666))
    k.add("/dev/tty", Node("chr", rdev=os.makedev(5, 0), mode=0o666))
    k.add("/dev/mine", Node("chr", rdev=os.makedev(1, 11), mode=0o644))
    doc = _doc(mounts=[{"destination": "/dev", "type": "tmpfs", "source": "tmpfs"}])
    doc["linux"]["namespaces"].append({"type": "user"})
    doc["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    doc["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    doc["linux"]["devices"] = [{"path": "/dev/mine", "type": "c", "major": 1, "minor": 11,
                                "fileMode": 0o600, "uid": 0, "gid": 0}]
    exc = _fails(k, _plan(doc, tmp_path, RunOptions(), HostFacts()))
    assert exc.line() == (
        "linux.devices[0].fileMode: device (/dev/mine): in a user namespace the host's "
        "/dev/mine is bound (mknod is not allowed there), and its mode is 0644, not 0600; "
        "give the host's mode as fileMode, or chmod the host's node")
    assert "open_tree /dev/mine CLONE" in k.calls
    assert not [c for c in k.calls if c.startswith("move_mount tree:/dev/mine")]
    # The default devices, bound before it, are not checked against a config mode.
    assert f"move_mount tree:/dev/tty -> {ROOT}/dev/tty" in k.calls
