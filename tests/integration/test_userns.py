"""Every ``process`` and ``linux`` field with a user namespace in the config (issue 14).

As root: container ids 0..65535 map to host 100000..165535 and the rootfs is
chowned to match, as a user following runc's rootless guide would do. As an
unprivileged user: ``spec --rootless`` maps only the caller's own ids. A field
either works there or ``pyinit check`` refuses it with its JSON path.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PYINIT, events
from tests.integration.test_rootless import as_user, rootless_bundle, runtime
from tests.integration.test_run import edit, make_bundle, mountinfo_of, run_bundle

pytestmark = pytest.mark.root

__all__ = ["runtime"]  # the module-scoped fixture, shared with test_rootless

HOST = 100000  # the host id of the container's root


@pytest.fixture
def top(reachable: Path) -> Path:
    return reachable


def _userns(cfg: dict[str, Any]) -> None:
    cfg["linux"]["namespaces"].append({"type": "user"})
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": HOST, "size": 65536}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": HOST, "size": 65536}]


def userns_bundle(top: Path, script: str, change: Any = None) -> Path:
    bundle = make_bundle(top / "b", script)

    def both(cfg: dict[str, Any]) -> None:
        _userns(cfg)
        if change is not None:
            change(cfg)
    edit(bundle, both)
    return bundle


def chown_rootfs(bundle: Path) -> None:
    for p in [bundle / "rootfs", *(bundle / "rootfs").rglob("*")]:
        os.lchown(p, HOST, HOST)


def one_line(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 125, (res.returncode, res.stdout, res.stderr)
    lines = [x for x in res.stderr.splitlines() if x.startswith("pyinit:")]
    assert len(lines) == 1, res.stderr
    return lines[0]


def own_oom_score_adj() -> str:
    with open("/proc/self/oom_score_adj") as fh:
        return fh.read().strip()


# ------------------------------------------------------------------ oomScoreAdj

def test_the_issue_bundle_with_oom_score_adj_runs(top: Path) -> None:
    """Issue 14: a runc spec bundle, a mapped user namespace, oomScoreAdj 200."""
    bundle = userns_bundle(top, "cat /proc/self/oom_score_adj /proc/1/oom_score_adj; id -u",
                           lambda c: c["process"].update(oomScoreAdj=200))
    chown_rootfs(bundle)
    before = own_oom_score_adj()
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["200", "200", "0"]  # the workload, and PID 1 like runc's
    assert own_oom_score_adj() == before


def test_oom_score_adj_is_never_written_through_the_containers_proc(top: Path) -> None:
    """The image ships proc/self/oom_score_adj as a file and no proc is mounted there."""
    def no_proc(cfg: dict[str, Any]) -> None:
        cfg["process"]["oomScoreAdj"] = 300
        cfg["root"]["readonly"] = False
        cfg["mounts"] = [m for m in cfg["mounts"] if m["destination"] != "/proc"]
        cfg["linux"]["maskedPaths"] = []
        cfg["linux"]["readonlyPaths"] = []
    bundle = userns_bundle(top, "echo ran", no_proc)
    decoy = bundle / "rootfs" / "proc" / "self" / "oom_score_adj"
    decoy.parent.mkdir(parents=True)
    decoy.write_text("decoy\n")
    decoy.chmod(0o666)
    chown_rootfs(bundle)
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "ran\n"
    assert decoy.read_text() == "decoy\n"


def test_lowering_oom_score_adj_without_cap_sys_resource_names_the_field(top: Path) -> None:
    bundle = userns_bundle(top, "echo should-not-run",
                           lambda c: c["process"].update(oomScoreAdj=-500))
    chown_rootfs(bundle)
    res = subprocess.run(["setpriv", "--bounding-set=-sys_resource", "--inh-caps=-sys_resource",
                          PYINIT, "run", "--bundle", str(bundle)], capture_output=True,
                         text=True, timeout=60, check=False, stdin=subprocess.DEVNULL)
    assert one_line(res) == (
        "pyinit: process.oomScoreAdj: process: cannot set it to -500: Permission denied; "
        "lowering oom_score_adj below its current value needs CAP_SYS_RESOURCE on the host")
    assert "should-not-run" not in res.stdout


def test_lowering_oom_score_adj_in_a_user_namespace(top: Path) -> None:
    """pyinit starts at 500; the config asks for 100: lower, which a process inside a
    user namespace may do only through a /proc file it can write."""
    def at_500() -> None:
        with open("/proc/self/oom_score_adj", "w") as fh:
            fh.write("500")
    bundle = userns_bundle(top, "cat /proc/self/oom_score_adj",
                           lambda c: c["process"].update(oomScoreAdj=100))
    chown_rootfs(bundle)
    res = subprocess.run([PYINIT, "run", "--bundle", str(bundle)], capture_output=True,
                         text=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
                         preexec_fn=at_500)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "100\n"


def test_raising_a_hard_limit_without_cap_sys_resource_names_the_field(top: Path) -> None:
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    bundle = userns_bundle(top, "echo should-not-run", lambda c: c["process"].update(
        rlimits=[{"type": "RLIMIT_NOFILE", "soft": 10, "hard": hard + 1}]))
    chown_rootfs(bundle)
    res = subprocess.run(["setpriv", "--bounding-set=-sys_resource", "--inh-caps=-sys_resource",
                          PYINIT, "run", "--bundle", str(bundle)], capture_output=True,
                         text=True, timeout=60, check=False, stdin=subprocess.DEVNULL)
    assert one_line(res) == (
        f"pyinit: process.rlimits[0].hard: process: cannot raise the hard RLIMIT_NOFILE to "
        f"{hard + 1}: Operation not permitted; pyinit's own hard limit is {hard}; raising it "
        "needs CAP_SYS_RESOURCE on the host")


# ------------------------------------------------------------------ the process fields

PROBE = (
    "cat /proc/self/oom_score_adj; id; pwd; echo FOO=$FOO; ulimit -n; ulimit -Hn; umask;"
    " grep -E '^(Cap|NoNewPrivs)' /proc/self/status; hostname; cat /proc/sys/kernel/domainname;"
    " cat /proc/sys/kernel/shmmax /proc/sys/net/ipv4/ip_forward; ls -ldn /work/dir"
)
CAPS3 = ["CAP_CHOWN", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW"]
CAPS3_MASK = f"{(1 << 0) | (1 << 10) | (1 << 13):016x}"


def _process_fields(cfg: dict[str, Any], uid: int = 1000, gid: int = 1001,
                    groups: tuple[int, ...] = (5, 7)) -> None:
    proc = cfg["process"]
    proc["oomScoreAdj"] = 300
    proc["user"] = {"uid": uid, "gid": gid, "additionalGids": list(groups), "umask": 0o027}
    proc["cwd"] = "/work/dir"
    proc["env"].append("FOO=bar baz")
    proc["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 300, "hard": 400}]
    proc["capabilities"] = {k: CAPS3 for k in ("bounding", "effective", "permitted",
                                               "inheritable", "ambient")}
    proc["noNewPrivileges"] = True
    cfg["hostname"] = "inside"
    cfg["domainname"] = "example.org"
    cfg["linux"]["sysctl"] = {"kernel.shmmax": "12345678", "net.ipv4.ip_forward": "1"}


def _expected(uid_gid_groups: str) -> list[str]:
    return ["300", uid_gid_groups, "/work/dir", "FOO=bar baz", "300", "400", "0027",
            f"CapInh:\t{CAPS3_MASK}", f"CapPrm:\t{CAPS3_MASK}", f"CapEff:\t{CAPS3_MASK}",
            f"CapBnd:\t{CAPS3_MASK}", f"CapAmb:\t{CAPS3_MASK}", "NoNewPrivs:\t1", "inside",
            "example.org", "12345678", "1"]


def test_every_process_field_in_a_user_namespace(top: Path) -> None:
    bundle = userns_bundle(top, PROBE, _process_fields)
    chown_rootfs(bundle)
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[:-1] == _expected("uid=1000 gid=1001 groups=5,7")
    assert lines[-1].split()[:4] == ["drwxr-xr-x", "2", "0", "0"]  # made by the mapped root
    # The host sees the mapped root's ids on what the container created.
    assert (bundle / "rootfs" / "work" / "dir").stat().st_uid == HOST


def test_every_linux_field_in_a_user_namespace(top: Path) -> None:
    """seccomp loaded without noNewPrivileges (CAP_SYS_ADMIN in the user namespace),
    maskedPaths, readonlyPaths, root.readonly, rootfsPropagation, a cgroup limit and
    a createContainer hook (as the mapped root, in the container's namespaces)."""
    pids_max = ("/sys/fs/cgroup/pids/pids.max" if os.path.isdir("/sys/fs/cgroup/pids")
                else "/sys/fs/cgroup/pids.max")  # a v1 pids hierarchy, or cgroup2's file
    script = ("grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status;"
              " awk '$5 ~ /^\\/proc\\/(keys|sys|acpi)$/ {print $5, $6}' /proc/self/mountinfo;"
              " touch /new 2>/dev/null || echo root-ro;"
              " awk '$5 == \"/\" {print $7}' /proc/self/mountinfo | cut -d: -f1;"
              f" cat {pids_max} /hook-out")

    def fields(cfg: dict[str, Any]) -> None:
        cfg["process"]["noNewPrivileges"] = False
        cfg["root"]["readonly"] = True
        cfg["linux"]["rootfsPropagation"] = "shared"
        cfg["linux"]["resources"] = {"pids": {"limit": 77}}
        cfg["hooks"] = {"createContainer": [{"path": "/bin/sh", "args": [
            "sh", "-c", f"id -u > {top}/b/rootfs/hook-out"]}]}
    bundle = userns_bundle(top, script, fields)
    assert "/proc/keys" in json.loads((bundle / "config.json").read_text())[
        "linux"]["maskedPaths"]
    chown_rootfs(bundle)
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    # /proc/sys read-only (readonlyPaths); /proc/acpi an empty read-only tmpfs and
    # /proc/keys the container's /dev/null, bound (maskedPaths), in mount order.
    assert res.stdout.splitlines() == [
        "NoNewPrivs:\t0", "Seccomp:\t2", "/proc/sys ro,nosuid,nodev,noexec,relatime",
        "/proc/acpi ro,relatime", "/proc/keys rw,nosuid,relatime", "root-ro", "shared", "77",
        "0"]
    assert (bundle / "rootfs" / "hook-out").stat().st_uid == HOST  # the mapped root wrote it


def test_terminal_in_a_user_namespace(top: Path) -> None:
    """The pty comes from the container's devpts, owned by the mapped root, group tty (5)."""
    bundle = userns_bundle(top, "tty; stat -c '%u %g %a' $(tty)",
                           lambda c: c["process"].update(terminal=True))
    chown_rootfs(bundle)
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "/dev/pts/0\n0 5 620\n"  # the pty's \r\n, read as text


def test_every_mount_type_in_a_user_namespace(top: Path) -> None:
    volume = top / "volume"
    volume.mkdir()
    (volume / "f").write_text("from the host\n")

    def mounts(cfg: dict[str, Any]) -> None:
        cfg["mounts"] += [
            {"destination": "/ro", "type": "bind", "source": str(volume),
             "options": ["rbind", "ro"]},
            {"destination": "/rw", "type": "bind", "source": str(volume),
             "options": ["bind", "nosuid", "nodev"]},
            {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
             "options": ["size=1m", "mode=1777"]},
            {"destination": "/copy", "type": "tmpfs", "source": "tmpfs",
             "options": ["tmpcopyup"]},
            {"destination": "/ram", "type": "ramfs", "source": "ramfs"},
        ]
    script = ("cat /proc/self/mountinfo; echo ---; cat /ro/f; touch /ro/x 2>/dev/null"
              " || echo ro-refused; cat /copy/from-image; echo hi > /scratch/y && cat /scratch/y")
    bundle = userns_bundle(top, script, mounts)
    (bundle / "rootfs" / "copy").mkdir()
    (bundle / "rootfs" / "copy" / "from-image").write_text("image\n")
    chown_rootfs(bundle)
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    table, rest = res.stdout.split("---\n")
    found = mountinfo_of(table)
    want = {"/proc": "proc", "/dev": "tmpfs", "/dev/pts": "devpts", "/dev/shm": "tmpfs",
            "/dev/mqueue": "mqueue", "/sys": "sysfs", "/scratch": "tmpfs", "/copy": "tmpfs",
            "/ram": "ramfs"}
    for dest, fstype in want.items():
        assert found[dest].endswith(f"- {fstype}"), (dest, found[dest])
    assert found["/ro"].startswith("ro,") and found["/rw"].startswith("rw,nosuid,nodev")
    # cgroup: the same hierarchies as the host's, whichever version it runs.
    with open("/proc/self/mountinfo") as fh:
        host = {k: v.split(" - ")[1] for k, v in mountinfo_of(fh.read()).items()
                if k.startswith("/sys/fs/cgroup")}
    inside = {k: v.split(" - ")[1] for k, v in found.items() if k.startswith("/sys/fs/cgroup")}
    assert inside == host
    assert rest.splitlines() == ["from the host", "ro-refused", "image", "hi"]


def _without(cfg: dict[str, Any], kind: str, path: str | None = None) -> None:
    """Namespace ``kind`` left out (the host's), or joined by ``path``."""
    spaces = [n for n in cfg["linux"]["namespaces"] if n["type"] != kind]
    cfg["linux"]["namespaces"] = spaces + ([{"type": kind, "path": path}] if path else [])


@pytest.mark.parametrize(("change", "line"), [
    (lambda c: c["mounts"].append({"destination": "/disk", "type": "ext4",
                                   "source": "/dev/vda"}),
     "mounts[7].type: ext4 cannot be mounted in a user namespace (the kernel allows only "
     "proc, sysfs, tmpfs, ramfs, devpts, mqueue, cgroup, cgroup2, overlay, fuse there); "
     "mount it on the host and bind it"),
    (lambda c: c["process"]["user"].update(uid=70000),
     "process.user.uid: 70000 is not mapped by linux.uidMappings"),
    (lambda c: c["process"]["user"].update(gid=65536),
     "process.user.gid: 65536 is not mapped by linux.gidMappings"),
    (lambda c: c["process"]["user"].update(additionalGids=[5, 100000]),
     "process.user.additionalGids[1]: 100000 is not mapped by linux.gidMappings"),
    (lambda c: c["mounts"].append({"destination": "/t", "type": "tmpfs", "source": "tmpfs",
                                   "options": ["size=1m", "uid=70000"]}),
     "mounts[7].options[1]: uid 70000 is not mapped by linux.uidMappings"),
    (lambda c: _without(c, "pid"),
     "mounts[0].type: proc in a new user namespace needs a new PID namespace, not the host's: "
     "the kernel mounts proc only for a PID namespace that user namespace owns; add "
     '{"type": "pid"} without a path to linux.namespaces'),
    (lambda c: _without(c, "ipc"),
     "mounts[4].type: mqueue in a new user namespace needs a new IPC namespace, not the "
     "host's: the kernel mounts mqueue only for an IPC namespace that user namespace owns; "
     'add {"type": "ipc"} without a path to linux.namespaces'),
    (lambda c: _without(c, "uts", "/proc/self/ns/uts"),
     "hostname: a new user namespace cannot set it in a uts namespace joined by path (the "
     "kernel allows it only in one that user namespace owns): remove the uts namespace's "
     "path, or the field"),
])
def test_check_refuses_what_a_user_namespace_rules_out(top: Path, change: Any,
                                                       line: str) -> None:
    bundle = userns_bundle(top, "echo should-not-run", change)
    check = subprocess.run([PYINIT, "check", "--bundle", str(bundle)], capture_output=True,
                           text=True, timeout=60, check=False)
    assert check.returncode == 1, check.stderr
    assert check.stdout.strip() == line, check.stdout
    res = run_bundle(bundle)
    assert one_line(res) == f"pyinit: config.json: {line}"


def test_a_sysctl_with_an_unmapped_id_names_the_key(top: Path) -> None:
    """Without a user namespace root may allow every group to ping; with one the
    kernel takes only gids the maps map (0..65535 here)."""
    def ping(cfg: dict[str, Any]) -> None:
        cfg["linux"]["sysctl"] = {"net.ipv4.ping_group_range": "0 70000"}
    bundle = userns_bundle(top, "echo should-not-run", ping)
    chown_rootfs(bundle)
    assert one_line(run_bundle(bundle)) == (
        "pyinit: sysctl: net.ipv4.ping_group_range = 0 70000: Invalid argument; in a user "
        "namespace, ids in a value (net.ipv4.ping_group_range) must be ids the container's "
        "maps map")
    edit(bundle, lambda c: c["linux"].update(sysctl={"net.ipv4.ping_group_range": "0 65535"}))
    edit(bundle, lambda c: c["process"].update(args=[
        "cat", "/proc/sys/net/ipv4/ping_group_range"]))
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "0\t65535\n"


# /dev/kmsg (1:11) is no default device: in a user namespace it is the host's node, bound.
KMSG = {"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11, "uid": 0, "gid": 0}


def test_a_device_is_the_hosts_node_with_the_hosts_mode(top: Path) -> None:
    mode = stat.S_IMODE(os.stat("/dev/kmsg").st_mode)
    bundle = userns_bundle(top, "stat -c '%a %u %g %t:%T' /dev/kmsg", lambda c: c[
        "linux"].update(devices=[{**KMSG, "fileMode": mode}]))
    chown_rootfs(bundle)
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    # Owned by the host's root, which the maps leave unmapped: nobody (65534) inside.
    assert res.stdout == f"{mode:o} 65534 65534 1:b\n"


def test_a_device_mode_the_hosts_node_lacks_is_refused(top: Path) -> None:
    """Without a user namespace pyinit makes the node with fileMode; with one, mknod is
    not allowed and the host's node is bound as it is: another mode is refused."""
    mode = stat.S_IMODE(os.stat("/dev/kmsg").st_mode)
    wanted = mode ^ 0o002  # the host's mode with world-write flipped
    bundle = userns_bundle(top, "echo should-not-run", lambda c: c["linux"].update(
        devices=[{**KMSG, "fileMode": wanted}]))
    chown_rootfs(bundle)
    line = ("linux.devices[0].fileMode: device (/dev/kmsg): in a user namespace the host's "
            f"/dev/kmsg is bound (mknod is not allowed there), and its mode is {mode:04o}, not "
            f"{wanted:04o}; give the host's mode as fileMode, or chmod the host's node")
    check = subprocess.run([PYINIT, "check", "--bundle", str(bundle)], capture_output=True,
                           text=True, timeout=60, check=False)
    assert (check.returncode, check.stdout) == (1, line + "\n")
    res = run_bundle(bundle)
    assert one_line(res) == f"pyinit: {line}"
    assert "should-not-run" not in res.stdout


# ------------------------------------------------------------------ unprivileged

def test_rootless_process_fields(runtime: tuple[str, int, int], top: Path) -> None:
    bundle = rootless_bundle(runtime, PROBE)
    try:
        def change(cfg: dict[str, Any]) -> None:
            _process_fields(cfg, uid=0, gid=0, groups=())
            cfg["root"]["readonly"] = False
            cfg["linux"]["namespaces"].append({"type": "network"})  # for net.ipv4.ip_forward
            cfg["mounts"] += [
                {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                 "options": ["size=1m"]},
                {"destination": "/ram", "type": "ramfs", "source": "ramfs"},
            ]
        edit(bundle, change)
        res = as_user(runtime, "run", "--bundle", str(bundle))
        assert res.returncode == 0, res.stderr
        lines = res.stdout.splitlines()
        assert lines[:-1] == _expected("uid=0 gid=0")
        assert lines[-1].split()[:4] == ["drwxr-xr-x", "2", "0", "0"]
    finally:
        shutil.rmtree(bundle)


def test_rootless_mount_types(runtime: tuple[str, int, int]) -> None:
    """As an unprivileged user with a map of only its own ids: every mount type the
    rootless spec has, plus binds (ro rbind, nosuid bind), tmpfs and ramfs."""
    _python, uid, gid = runtime
    bundle = rootless_bundle(runtime, "cat /proc/self/mountinfo; echo ---; cat /ro/f;"
                             " touch /ro/x 2>/dev/null || echo ro-refused;"
                             " echo hi > /rw/y && cat /rw/y; stat -c '%u %g' /rw/f")
    try:
        volume = bundle / "volume"
        volume.mkdir()
        (volume / "f").write_text("from the host\n")
        for p in (volume, volume / "f"):
            os.chown(p, uid, gid)

        def mounts(cfg: dict[str, Any]) -> None:
            cfg["root"]["readonly"] = False
            cfg["mounts"] += [
                {"destination": "/ro", "type": "bind", "source": str(volume),
                 "options": ["rbind", "ro"]},
                {"destination": "/rw", "type": "bind", "source": str(volume),
                 "options": ["bind", "nosuid"]},
                {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                 "options": ["size=1m"]},
                {"destination": "/ram", "type": "ramfs", "source": "ramfs"},
            ]
        edit(bundle, mounts)
        res = as_user(runtime, "run", "--bundle", str(bundle))
        assert res.returncode == 0, res.stderr
        table, rest = res.stdout.split("---\n")
        found = {k: v.split(" - ")[1] for k, v in mountinfo_of(table).items()}
        assert {k: found[k] for k in ("/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue",
                                      "/sys", "/scratch", "/ram")} == {
            "/proc": "proc", "/dev": "tmpfs", "/dev/pts": "devpts", "/dev/shm": "tmpfs",
            "/dev/mqueue": "mqueue", "/sys": "sysfs", "/scratch": "tmpfs", "/ram": "ramfs"}
        # The binds show the volume's filesystem: the root's, next to it in the bundle.
        assert [found["/ro"], found["/rw"]] == [found["/"], found["/"]]
        assert mountinfo_of(table)["/ro"].startswith("ro,")
        assert mountinfo_of(table)["/rw"].startswith("rw,nosuid,")
        # The caller's own ids are root inside: its file is 0:0, the new one too.
        assert rest.splitlines() == ["from the host", "ro-refused", "hi", "0 0"]
    finally:
        shutil.rmtree(bundle)


@pytest.mark.parametrize(("change", "line"), [
    (lambda c: c["process"].update(oomScoreAdj=-1),
     "pyinit: process.oomScoreAdj: process: cannot set it to -1: Permission denied; lowering "
     "oom_score_adj below its current value needs CAP_SYS_RESOURCE on the host"),
    (lambda c: c["process"]["user"].update(additionalGids=[0]),
     "pyinit: process.user.additionalGids: this user namespace denies setgroups (an "
     "unprivileged map of only your own gid); map the groups with newgidmap "
     "(linux.gidMappings) or leave additionalGids out"),
])
def test_rootless_what_needs_privilege_names_the_field(runtime: tuple[str, int, int],
                                                      change: Any, line: str) -> None:
    bundle = rootless_bundle(runtime, "echo should-not-run")
    ran = bundle / "poststart-ran"
    try:
        edit(bundle, change)
        # A workload that never started gets no poststart hook: the
        # additionalGids case fails in the workload's own process, after
        # PID 1 has done its part.
        edit(bundle, lambda c: c.update(hooks={"poststart": [
            {"path": "/bin/sh", "args": ["sh", "-c", f"echo > {ran}"]}]}))
        res = as_user(runtime, "run", "--bundle", str(bundle))
        assert one_line(res) == line
        assert res.returncode == 125
        assert "should-not-run" not in res.stdout
        assert not ran.exists()
    finally:
        shutil.rmtree(bundle)


def test_rootless_raised_hard_limit_names_the_field(runtime: tuple[str, int, int]) -> None:
    bundle = rootless_bundle(runtime, "echo should-not-run")
    try:
        cfg = json.loads((bundle / "config.json").read_text())
        cfg["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 2**20 + 7}]
        (bundle / "config.json").write_text(json.dumps(cfg))
        import resource
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        res = as_user(runtime, "run", "--bundle", str(bundle))
        assert one_line(res) == (
            f"pyinit: process.rlimits[0].hard: process: cannot raise the hard RLIMIT_NOFILE to "
            f"{2**20 + 7}: Operation not permitted; pyinit's own hard limit is {hard}; raising "
            "it needs CAP_SYS_RESOURCE on the host")
    finally:
        shutil.rmtree(bundle)


def test_rootless_terminal(runtime: tuple[str, int, int]) -> None:
    """process.terminal as an unprivileged user: the pty comes from the container's devpts."""
    bundle = rootless_bundle(runtime, "tty; echo rootless-tty")
    try:
        edit(bundle, lambda c: c["process"].update(terminal=True))
        res = as_user(runtime, "run", "--bundle", str(bundle))
        assert res.returncode == 0, res.stderr
        assert res.stdout == "/dev/pts/0\nrootless-tty\n"  # the pty's \r\n, read as text
    finally:
        shutil.rmtree(bundle)


# ------------------------------------------------------------------ the same bundle under runc

RUNC = shutil.which("runc")
needs_runc = pytest.mark.skipif(RUNC is None, reason="runc is not installed")


def run_runc(bundle: Path, **kw: Any) -> subprocess.CompletedProcess[str]:
    """``runc run`` of the bundle, with a state directory of its own next to it."""
    state = bundle.parent / "runc-state"
    state.mkdir(exist_ok=True)
    return subprocess.run([str(RUNC), "--root", str(state), "run", "--bundle", str(bundle),
                           f"pyinit-diff-{uuid.uuid4().hex[:12]}"], capture_output=True,
                          text=True, timeout=60, check=False, stdin=subprocess.DEVNULL, **kw)


ISSUE_PROBE = ("cat /proc/self/oom_score_adj /proc/1/oom_score_adj; id; umask; pwd; hostname;"
               " ulimit -n; ulimit -Hn; grep -E '^(Cap|NoNewPrivs)' /proc/self/status")


@needs_runc
def test_the_issue_bundle_runs_as_under_runc(top: Path) -> None:
    """Issue 14 as reported: ``runc spec``'s config.json, a busybox root chowned to
    the mapped range, and oomScoreAdj 200: pyinit and runc print the same."""
    bundle = make_bundle(top / "b", "true")
    (bundle / "config.json").unlink()
    subprocess.run([str(RUNC), "spec", "--bundle", str(bundle)], check=True)

    def issue(cfg: dict[str, Any]) -> None:
        _userns(cfg)
        cfg["process"].update(terminal=False, args=["sh", "-c", ISSUE_PROBE], oomScoreAdj=200)
    edit(bundle, issue)
    chown_rootfs(bundle)
    before = own_oom_score_adj()
    ours, theirs = run_bundle(bundle), run_runc(bundle)
    assert (ours.returncode, theirs.returncode) == (0, 0), (ours.stderr, theirs.stderr)
    # runc spec's ambient set has no inheritable set behind it: both skip it.
    caps = f"{(1 << 5) | (1 << 10) | (1 << 29):016x}"  # KILL, NET_BIND_SERVICE, AUDIT_WRITE
    assert ours.stdout.splitlines() == [
        "200", "200", "uid=0 gid=0", "0022", "/", "runc", "1024", "1024",
        "CapInh:\t0000000000000000", f"CapPrm:\t{caps}", f"CapEff:\t{caps}",
        f"CapBnd:\t{caps}", "CapAmb:\t0000000000000000", "NoNewPrivs:\t1"]
    assert ours.stdout == theirs.stdout
    assert own_oom_score_adj() == before


# The PROBE without the domainname (runc 1.1 does not set it) and with the
# directory's owner and mode only (its time differs).
DIFF_PROBE = PROBE.replace(" cat /proc/sys/kernel/domainname;", "").replace(
    "ls -ldn /work/dir", "stat -c '%A %u %g' /work/dir")


@needs_runc
def test_every_process_field_as_under_runc(top: Path) -> None:
    bundle = userns_bundle(top, DIFF_PROBE, _process_fields)
    chown_rootfs(bundle)
    ours, theirs = run_bundle(bundle), run_runc(bundle)
    assert (ours.returncode, theirs.returncode) == (0, 0), (ours.stderr, theirs.stderr)
    expected = _expected("uid=1000 gid=1001 groups=5,7")
    expected.remove("example.org")
    assert ours.stdout.splitlines() == [*expected, "drwxr-xr-x 0 0"]
    assert ours.stdout == theirs.stdout


@needs_runc
def test_negative_oom_score_adj_as_under_runc(top: Path) -> None:
    """Below 0 needs CAP_SYS_RESOURCE on the host: where root has it, both runtimes
    run the workload at -500; where it lacks it (this test machine's root does), both
    refuse. pyinit's refusal is one line (the setpriv test above); here, the same
    outcome as runc's, and the caller's own value untouched either way."""
    bundle = userns_bundle(top, "cat /proc/self/oom_score_adj /proc/1/oom_score_adj",
                           lambda c: c["process"].update(oomScoreAdj=-500))
    chown_rootfs(bundle)
    before = own_oom_score_adj()
    ours, theirs = run_bundle(bundle), run_runc(bundle)
    assert (ours.returncode == 0, ours.stdout) == (theirs.returncode == 0, theirs.stdout), \
        (ours.stderr, theirs.stderr)
    assert own_oom_score_adj() == before


@needs_runc
def test_raising_a_hard_limit_as_under_runc(top: Path) -> None:
    """Both runtimes start with a hard RLIMIT_NOFILE of 4096 and the config wants 8192:
    raising needs CAP_SYS_RESOURCE on the host, which pyinit uses before the user
    namespace exists. Where root has it both run with 8192, where it lacks it both
    refuse: the same outcome either way."""
    import resource

    def at_4096() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 4096))
    bundle = userns_bundle(top, "ulimit -n; ulimit -Hn", lambda c: c["process"].update(
        rlimits=[{"type": "RLIMIT_NOFILE", "soft": 8192, "hard": 8192}]))
    chown_rootfs(bundle)
    ours = subprocess.run([PYINIT, "run", "--bundle", str(bundle)], capture_output=True,
                          text=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
                          preexec_fn=at_4096)
    theirs = run_runc(bundle, preexec_fn=at_4096)
    assert (ours.returncode == 0, ours.stdout) == (theirs.returncode == 0, theirs.stdout), \
        (ours.stderr, theirs.stderr)


SYSFS_LINE = (
    "mounts[5]: mount (/sys): sysfs in a new user namespace needs a new network namespace, "
    "not the host's: the kernel mounts sysfs only for a network namespace that user namespace "
    'owns; add {"type": "network"} to linux.namespaces, bind /sys read-only, or run with '
    "--sysfs-fallback")


def test_check_and_run_refuse_sysfs_without_a_network_namespace(top: Path) -> None:
    """One decision (the plan's): check says what run refuses, and with --sysfs-fallback
    both take the host's /sys instead."""
    bundle = userns_bundle(top, "cat /proc/self/mountinfo", lambda c: _without(c, "network"))
    chown_rootfs(bundle)
    check = subprocess.run([PYINIT, "check", "--bundle", str(bundle)], capture_output=True,
                           text=True, timeout=60, check=False)
    assert (check.returncode, check.stdout, check.stderr) == (1, SYSFS_LINE + "\n", "")
    assert one_line(run_bundle(bundle)) == f"pyinit: {SYSFS_LINE}"
    check = subprocess.run([PYINIT, "check", "--sysfs-fallback", "--bundle", str(bundle)],
                           capture_output=True, text=True, timeout=60, check=False)
    assert check.returncode == 0, check.stdout
    assert check.stdout.splitlines()[8] == (
        "  8. mount       bind the host's /sys on /sys read-only, the mounts under it "
        "covered (sysfs fallback)")
    res = run_bundle(bundle, "--sysfs-fallback")
    assert res.returncode == 0, res.stderr
    assert mountinfo_of(res.stdout)["/sys"].startswith("ro,")


def test_check_prints_the_plan_run_carries_out(tmp_path: Path) -> None:
    """Step for step: check's listing is the plan run's executor logs, the recursively
    private read-only root included."""
    bundle = make_bundle(tmp_path, "true")
    check = subprocess.run([PYINIT, "check", "--bundle", str(bundle)], capture_output=True,
                           text=True, timeout=60, check=False)
    assert check.returncode == 0, check.stdout
    planned = [line[17:] for line in check.stdout.splitlines()[1:-1]]
    assert planned[1] == (f"bind {bundle}/rootfs onto itself, nodev, its submounts read-only, "
                          "recursively private")
    res = run_bundle(bundle, "--log-level", "debug", "--log-format", "json")
    assert res.returncode == 0, res.stderr
    assert [e["step"] for e in events(res.stderr)
            if e["event"].endswith(".started") and "step" in e] == planned
