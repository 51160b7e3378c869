"""Real cgroups on this host: limits, the pids limit, OOM kills, device rules, cleanup.

Every test uses a cgroup path of its own (``/pyinit-test-<token>/c``) and a
lock directory under tmp_path, and checks that nothing is left in any
hierarchy afterwards. The processes put into cgroups are Python children that
wait on a pipe until the test has moved them, so what they do happens inside.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from pyinit import cgroups, diagnose
from pyinit.cgroups.host import Host
from pyinit.cgroups.manager import Cgroup
from pyinit.errors import SetupError
from pyinit.linux import bpf, cgroupfs
from pyinit.oci import resources
from tests.conftest import ROOT
from tests.integration.test_rootless import runtime

pytestmark = pytest.mark.root
__all__ = ["runtime"]  # the fixture, for test_rootless_without_a_writable_cgroup
MiB = 1 << 20


@pytest.fixture
def host() -> Host:
    found = cgroups.detect()
    assert found.mode == "hybrid", "these tests are written for this project's hybrid host"
    return found


@pytest.fixture
def top(host: Host) -> Iterator[str]:
    """A unique top-level cgroup name; asserts that no directory of it is left."""
    name = f"/pyinit-test-{uuid.uuid4().hex[:12]}"
    yield name
    left = [h.directory(name) for h in host.hierarchies if os.path.exists(h.directory(name))]
    for directory in sorted(left, reverse=True):
        for sub, _dirs, _files in sorted(os.walk(directory), reverse=True):
            os.rmdir(sub)
    assert left == [], f"cgroup directories left behind: {left}"


def spec_of(path: str, res: dict[str, Any], devices: list[Any] | None = None
            ) -> resources.CgroupSpec:
    linux: dict[str, Any] = {"cgroupsPath": path, "resources": res}
    if devices is not None:
        linux["devices"] = devices
    spec, problems = resources.parse(linux)
    assert problems == []
    return spec


def run_inside(cg: Cgroup, code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a Python child that joins ``cg`` before it starts."""
    r, w = os.pipe()
    prelude = f"import os, sys\nos.read({r}, 1)\n"
    child = subprocess.Popen([sys.executable, "-c", prelude + code], pass_fds=(r,),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    os.close(r)
    try:
        cg.add(child.pid)
    finally:
        os.write(w, b"go")
        os.close(w)
    out, err = child.communicate(timeout=timeout)
    return subprocess.CompletedProcess(child.args, child.returncode, out, err)


def test_limits_read_back_from_the_files(host: Host, top: str, tmp_path: Path) -> None:
    spec = spec_of(f"{top}/c", {
        "memory": {"limit": 64 * MiB, "reservation": 32 * MiB, "swap": 128 * MiB,
                   "swappiness": 10},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 20},
        "blockIO": {"weight": 500},
    })
    cg = cgroups.create(host, spec, "ignored", state_dir=str(tmp_path / "state"))
    try:
        expected_dirs = {h.name: f"{h.mount_point}{top}/c" for h in host.hierarchies}
        assert cg.dirs == expected_dirs
        done = run_inside(cg, "print(open('/proc/self/cgroup').read(), end='')")
        assert done.returncode == 0, done.stderr
        ours = Path("/proc/self/cgroup").read_text().splitlines()
        assert sorted(done.stdout.splitlines()) == sorted(
            f"{line.split(':')[0]}:{line.split(':')[1]}:{top}/c" for line in ours)
        assert [cg.read("memory", f) for f in ("memory.limit_in_bytes",
                                               "memory.soft_limit_in_bytes",
                                               "memory.memsw.limit_in_bytes",
                                               "memory.swappiness")] == \
            [str(64 * MiB), str(32 * MiB), str(128 * MiB), "10"]
        assert [cg.read("cpu", f) for f in ("cpu.shares", "cpu.cfs_quota_us",
                                            "cpu.cfs_period_us")] == ["512", "50000", "100000"]
        assert [cg.read("cpuset", f) for f in ("cpuset.cpus", "cpuset.mems")] == ["0", "0"]
        assert cg.read("pids", "pids.max") == "20"
        assert cg.read("blkio", "blkio.bfq.weight") == "500"
    finally:
        cg.remove()
    assert [d for d in cg.dirs.values() if os.path.exists(d)] == []
    assert sorted(p.name for p in (tmp_path / "state").rglob("*")) == ["LOCK", "parents"]


def test_a_fork_loop_stops_at_the_pids_limit(host: Host, top: str, tmp_path: Path) -> None:
    cg = cgroups.create(host, spec_of(f"{top}/c", {"pids": {"limit": 10}}), "x",
                        state_dir=str(tmp_path))
    try:
        done = run_inside(cg, """
import errno
r, w = os.pipe()
n = 0
while True:
    try:
        pid = os.fork()
    except OSError as exc:
        print(n, errno.errorcode[exc.errno])
        break
    if pid == 0:
        os.close(w)
        os.read(r, 1)
        os._exit(0)
    n += 1
os.close(w)
for _ in range(n):
    os.wait()
""")
        assert (done.returncode, done.stdout, done.stderr) == (0, "9 EAGAIN\n", "")
        assert cg.read("pids", "pids.events") == "max 1"
    finally:
        cg.remove()


def test_a_memory_hog_is_oom_killed_and_explained(host: Host, top: str,
                                                   tmp_path: Path) -> None:
    cg = cgroups.create(host, spec_of(f"{top}/c", {"memory": {"limit": 32 * MiB}}), "x",
                        state_dir=str(tmp_path))
    try:
        assert cg.oom() is None
        done = run_inside(cg, "hog = b'x' * (256 << 20)\nprint('survived')")
        assert (done.returncode, done.stdout) == (-signal.SIGKILL, "")
        evidence = cg.oom()
        peak = int(cg.read("memory", "memory.max_usage_in_bytes"))
        assert evidence == cgroups.OomEvidence(f"/sys/fs/cgroup/memory{top}/c", 1, 32 * MiB,
                                               peak)
        assert 24 * MiB <= peak <= 32 * MiB
        assert diagnose.explain("oom-killed", None, evidence.log_fields()) == (
            f"the kernel's OOM killer killed 1 process in cgroup /sys/fs/cgroup/memory{top}/c:"
            f" the container reached the memory limit of 32 MiB (peak usage "
            f"{diagnose._size(peak)}); raise linux.resources.memory.limit")
    finally:
        cg.remove()


DEFAULT_LIST = ["c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm",
                "c 1:9 rwm", "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm"]
OPEN = """
import errno, sys
for path, flags in (("/dev/null", os.O_RDWR), (sys.argv[1], os.O_RDONLY),
                    (sys.argv[1], os.O_WRONLY)):
    try:
        os.close(os.open(path, flags))
        print("ok")
    except OSError as exc:
        print(errno.errorcode[exc.errno])
"""


@pytest.mark.parametrize("mechanism", ["v1", "ebpf"])
def test_device_rules_deny_then_allow_a_block_device(host: Host, top: str, tmp_path: Path,
                                                     mechanism: str) -> None:
    """A node for loop0 (7:0) in a tmp dir: refused under the defaults, readable (and
    only readable) once a rule allows ``r``; through one mechanism at a time."""
    node = tmp_path / "loop"
    os.mknod(node, stat.S_IFBLK | 0o600, os.makedev(7, 0))
    only = {"v1_devices": mechanism == "v1", "bpf_devices": mechanism == "ebpf"}
    results = []
    for i, rules in enumerate([
        [{"allow": False, "access": "rwm"}],
        [{"allow": False, "access": "rwm"},
         {"allow": True, "type": "b", "major": 7, "minor": 0, "access": "r"}],
    ]):
        spec = spec_of(f"{top}/c{i}", {"devices": rules})
        cg = cgroups.create(host, spec, "x", state_dir=str(tmp_path / "state"),
                            v1_devices=only["v1_devices"], bpf_devices=only["bpf_devices"])
        try:
            if mechanism == "ebpf":
                fd = bpf.open_cgroup(cg.dirs["unified"])
                try:
                    assert len(bpf.attached_device_programs(fd)) == 1
                finally:
                    os.close(fd)
            else:
                assert cg.read("devices", "devices.list").splitlines() == (
                    ["b 7:0 r"] if i else []) + DEFAULT_LIST
            done = run_inside(cg, f"sys.argv.append({str(node)!r})\n{OPEN}")
            results.append(done.stdout.split())
        finally:
            cg.remove()
    assert results == [["ok", "EPERM", "EPERM"], ["ok", "ok", "EPERM"]]


def test_without_device_rules_the_node_opens(host: Host, top: str, tmp_path: Path) -> None:
    """The control for the test above: the same node, no mechanism, opens."""
    node = tmp_path / "loop"
    os.mknod(node, stat.S_IFBLK | 0o600, os.makedev(7, 0))
    cg = cgroups.create(host, spec_of(f"{top}/c", {}), "x", state_dir=str(tmp_path / "s"),
                        v1_devices=False, bpf_devices=False)
    try:
        done = run_inside(cg, f"sys.argv.append({str(node)!r})\n{OPEN}")
        assert done.stdout.split() == ["ok", "ok", "ok"]
    finally:
        cg.remove()


def test_a_field_the_host_cannot_apply_names_its_path_and_leaves_nothing(
        host: Host, top: str, tmp_path: Path) -> None:
    spec = spec_of(f"{top}/c", {"hugepageLimits": [{"pageSize": "2MB", "limit": 2 * MiB}]})
    with pytest.raises(SetupError) as info:
        cgroups.create(host, spec, "x", state_dir=str(tmp_path))
    assert str(info.value) == (
        "linux.resources.hugepageLimits[0]: cgroup: the hugetlb controller is not mounted on "
        "this host (cgroup v1 controllers: blkio, cpu, cpuacct, cpuset, devices, freezer, "
        "memory, pids)")
    assert os.listdir(tmp_path) == []


def test_a_failed_write_removes_what_was_created(host: Host, top: str, tmp_path: Path) -> None:
    spec = spec_of(f"{top}/c", {"pids": {"limit": 5}, "cpu": {"cpus": "63"}})
    with pytest.raises(SetupError) as info:
        cgroups.create(host, spec, "x", state_dir=str(tmp_path))
    assert str(info.value) == (
        f"linux.resources.cpu.cpus: cgroup: write '63' to /sys/fs/cgroup/cpuset{top}/c/"
        "cpuset.cpus: Numerical result out of range")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["LOCK", "parents"]
    # the top fixture asserts that no directory is left in any hierarchy


def test_remove_kills_and_drains_what_is_still_inside(host: Host, top: str,
                                                       tmp_path: Path) -> None:
    cg = cgroups.create(host, spec_of(f"{top}/c", {}), "x", state_dir=str(tmp_path))
    r, w = os.pipe()
    child = subprocess.Popen([sys.executable, "-c", f"import os; os.read({r}, 1)"],
                             pass_fds=(r,))
    os.close(r)
    cg.add(child.pid)
    cg.remove()
    assert child.wait(timeout=30) == -signal.SIGKILL
    os.close(w)


def test_the_sweep_removes_the_cgroup_of_a_killed_owner(host: Host, top: str,
                                                        tmp_path: Path) -> None:
    state = tmp_path / "state"
    owner = subprocess.Popen([sys.executable, "-c", f"""
import sys
from pyinit import cgroups, diagnose
from pyinit.oci import resources
spec, _ = resources.parse({{"cgroupsPath": "{top}/c", "resources": {{"pids": {{"limit": 5}}}}}})
cg = cgroups.create(cgroups.detect(), spec, "x", state_dir="{state}")
print("ready", flush=True)
sys.stdin.read()
"""], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert owner.stdout is not None
    assert owner.stdout.readline() == "ready\n"
    live = cgroups.sweep(str(state))
    assert live == cgroups.SweepResult((), ())
    owner.kill()
    owner.wait()
    [lock] = [p for p in state.iterdir() if p.name.endswith(".lock")]
    created = json.loads(lock.read_text())["created"]
    assert created == [f"{h.mount_point}{top}/c" for h in host.hierarchies]
    assert sorted(p.name for p in (state / "parents").iterdir()) == sorted(
        ["LOCK"] + [quote(f"{h.mount_point}{top}", safe="") for h in host.hierarchies])
    swept = cgroups.sweep(str(state))
    assert swept == cgroups.SweepResult(
        (*created, *(f"{h.mount_point}{top}" for h in host.hierarchies)), ())
    assert sorted(p.name for p in state.rglob("*")) == ["LOCK", "parents"]


def delegate(directory: str, uid: int, gid: int) -> None:
    """Create ``directory`` and hand it to ``uid`` as systemd's ``Delegate=yes`` does:
    the directory (to create children) and the files that move processes and enable
    controllers below it."""
    os.mkdir(directory)
    for name in ("cpuset.cpus", "cpuset.mems"):  # a v1 cpuset starts empty: no one can join
        if os.path.exists(os.path.join(directory, name)):
            parent = Path(directory).parent / name
            Path(directory, name).write_text(parent.read_text())
    for name in ("", "cgroup.procs", "cgroup.threads", "cgroup.subtree_control"):
        path = os.path.join(directory, name)
        if name == "" or os.path.exists(path):  # v1 has no cgroup.threads/subtree_control
            os.chown(path, uid, gid)


def children(host: Host, top: str) -> list[str]:
    """The cgroups below ``top`` in any hierarchy."""
    return [os.path.join(h.directory(top), d) for h in host.hierarchies
            if os.path.isdir(h.directory(top)) for d in os.listdir(h.directory(top))
            if os.path.isdir(os.path.join(h.directory(top), d))]


def remove_tree(directory: str) -> None:
    for sub, _dirs, _files in sorted(os.walk(directory), reverse=True):
        cgroupfs.remove(sub, kill=True)


def in_cgroup(directory: str, argv: list[str]) -> list[str]:
    """``argv``, exec'd by a root shell that has first moved itself into ``directory``
    (an unprivileged user cannot move itself out of a cgroup it does not own)."""
    return ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', directory, *argv]


def as_user(runtime: tuple[str, int, int], argv: list[str], state: str | None = None,
            cgroup: str | None = None) -> subprocess.CompletedProcess[str]:
    """``argv`` (after the runtime's python) as the unprivileged user, in ``cgroup``."""
    python, uid, gid = runtime
    cmd = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", python, *argv]
    env = {**os.environ, "XDG_RUNTIME_DIR": state} if state else None
    return subprocess.run(in_cgroup(cgroup, cmd) if cgroup else cmd, capture_output=True,
                          text=True, timeout=60, check=False, cwd="/", env=env,
                          stdin=subprocess.DEVNULL)


def user_state(uid: int, gid: int) -> Path:
    state = Path(tempfile.mkdtemp(prefix="pyinit-cgroups-run-"))  # tmp_path is 0700
    os.chown(state, uid, gid)
    return state


def test_placement_as_root(host: Host, top: str) -> None:
    spec = spec_of(f"{top}/c", {"pids": {"limit": 5}})
    assert cgroups.placement(host, spec, "x") == cgroups.Placement(
        True, f"cgroup {top}/c in every hierarchy (hybrid host), as root", None, f"{top}/c",
        tuple(h.name for h in host.hierarchies))
    assert cgroups.placement(host, spec_of("", {}), "x").path == "/pyinit/x"


def test_rootless_without_a_writable_cgroup(runtime: tuple[str, int, int], top: str) -> None:
    """As an unprivileged user: no limits, and the one warning that names them and why."""
    _python, uid, _gid = runtime
    code = f"""
from pyinit import cgroups, diagnose
from pyinit.oci import resources
spec, _ = resources.parse({{"cgroupsPath": "{top}/c", "resources": {{"pids": {{"limit": 5}},
    "devices": [{{"allow": False, "access": "rwm"}}]}}}})
decision = cgroups.placement(cgroups.detect(), spec, "x")
print(decision.enforce, decision.delegated, decision.skipped, sep="\\n")
print(decision.reason)
print(decision.warning)
"""
    done = as_user(runtime, ["-c", code])
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "False", "False", "('linux.resources.pids.limit', 'linux.resources.devices')",
        f"not delegated: no write access: /sys/fs/cgroup/unified is not writable by uid {uid} "
        "(nor to any other hierarchy)",
        f"cgroups: not applied for uid {uid}, the container runs without them: "
        f"linux.resources.pids.limit (/sys/fs/cgroup/pids is not writable by uid {uid}); "
        f"linux.resources.devices (device rules need CAP_SYS_ADMIN, which uid {uid} does not "
        "have)",
    ]


def test_rootless_with_a_delegated_cgroup(runtime: tuple[str, int, int], host: Host,
                                          top: str) -> None:
    """A subtree the user owns in every hierarchy, the user's process inside it on v2:
    the container's cgroup is made there, the limit applies, a process of the user
    moves in; the device rules do not apply (no CAP_SYS_ADMIN), and the warning says so."""
    _python, uid, gid = runtime
    for hier in host.hierarchies:
        delegate(hier.directory(top), uid, gid)
    code = f"""
import subprocess
from pyinit import cgroups
from pyinit.linux import cgroupfs
from pyinit.oci import resources
spec, _ = resources.parse({{"cgroupsPath": "{top}/c", "resources": {{
    "pids": {{"limit": 7}}, "devices": [{{"allow": False, "access": "rwm"}}]}}}})
host = cgroups.detect()
decision = cgroups.placement(host, spec, "x")
print(decision.enforce, decision.delegated, decision.reason, decision.warning, sep="\\n")
cg = cgroups.create(host, spec, "x", decision=decision)
child = subprocess.Popen(["cat"], stdin=subprocess.PIPE)
cg.add(child.pid)
print(cg.read("pids", "pids.max"), cg.read("devices", "devices.list"),
      [cgroupfs.procs(d) for d in cg.dirs.values()] == [[child.pid]] * len(cg.dirs))
child.stdin.close()
child.wait()
cg.remove()
"""
    state = user_state(uid, gid)
    try:
        done = as_user(runtime, ["-c", code], str(state), hier_dir(host, top))
        left = children(host, top)
    finally:
        for hier in host.hierarchies:
            remove_tree(hier.directory(top))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "True", "True", f"delegated: cgroup {top}/c in "
        f"{', '.join(h.name for h in host.hierarchies)}, writable by uid {uid}",
        f"cgroups: not applied for uid {uid}, the container runs without them: "
        f"linux.resources.devices (device rules need CAP_SYS_ADMIN, which uid {uid} does not "
        "have)",
        # the device cgroup is the parent's (allow all)
        "7 a *:* rwm True"]
    assert left == []
    found = sorted(p.name for p in state.rglob("*"))
    shutil.rmtree(state)
    assert found == ["LOCK", "cgroups", "parents", "pyinit"]


def hier_dir(host: Host, top: str) -> str:
    assert host.unified is not None
    return host.unified.directory(top)


def test_a_shared_parent_goes_with_the_last_container(host: Host, top: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Two containers under one parent pyinit created: the first removal leaves the
    parent (busy) without waiting for it, the second removes it."""
    waits: list[float] = []
    monkeypatch.setattr(cgroups.manager.cgroupfs.time, "sleep", waits.append)
    first = cgroups.create(host, spec_of(f"{top}/a", {}), "a", state_dir=str(tmp_path))
    second = cgroups.create(host, spec_of(f"{top}/b", {}), "b", state_dir=str(tmp_path))
    assert first.created == [h.directory(f"{top}/a") for h in host.hierarchies]
    assert second.created == [h.directory(f"{top}/b") for h in host.hierarchies]
    first.remove()
    assert (waits, [h.directory(top) for h in host.hierarchies
                    if os.path.isdir(h.directory(top))]) == \
        ([], [h.directory(top) for h in host.hierarchies])
    second.remove()
    assert [h.directory(top) for h in host.hierarchies if os.path.isdir(h.directory(top))] == []


def _hold(lock: Path, seconds: float | None) -> subprocess.Popen[str]:
    """Another process with an flock on ``lock``: for ``seconds`` (a sweep looking at
    it), or until killed (a live owner). Returns once the lock is held."""
    proc = subprocess.Popen([sys.executable, "-c", f"""
import fcntl, os, sys, time
fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep({seconds!r}) if {seconds!r} is not None else sys.stdin.read()
"""], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "held\n"
    return proc


def test_a_lock_held_for_a_moment_is_a_sweep_not_an_owner(host: Host, top: str,
                                                          tmp_path: Path) -> None:
    # Seen under load: another run's sweep had the new lock file locked at our flock.
    lock = tmp_path / (quote(f"{top}/c", safe="") + ".lock")
    sweep = _hold(lock, 0.2)
    try:
        cg = cgroups.create(host, spec_of(f"{top}/c", {}), "x", state_dir=str(tmp_path))
        cg.remove()
    finally:
        sweep.wait(timeout=30)


def test_a_lock_held_by_a_live_owner_is_refused(host: Host, top: str, tmp_path: Path) -> None:
    lock = tmp_path / (quote(f"{top}/c", safe="") + ".lock")
    owner = _hold(lock, None)
    try:
        with pytest.raises(SetupError) as info:
            cgroups.create(host, spec_of(f"{top}/c", {}), "x", state_dir=str(tmp_path))
        assert str(info.value) == (
            f"linux.cgroupsPath: cgroup: cgroup {top}/c belongs to another running container")
    finally:
        owner.kill()
        owner.wait()
