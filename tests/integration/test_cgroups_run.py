"""``pyinit run`` with linux.resources and cgroupsPath: limits in force, devices denied,
an OOM kill explained, and the cgroups gone afterwards (as runc does on this host)."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyinit import cgroups, diagnose
from pyinit.linux import cgroupfs
from tests.conftest import PYINIT, event, events, wait_for
from tests.integration.test_run import edit, make_bundle, run_bundle

pytestmark = pytest.mark.root
MiB = 1 << 20


@pytest.fixture
def top() -> Iterator[str]:
    """A unique top-level cgroup; no directory of it may be left in any hierarchy."""
    name = f"/pyinit-test-{uuid.uuid4().hex[:12]}"
    yield name
    host = cgroups.detect()
    left = [h.directory(name) for h in host.hierarchies if os.path.exists(h.directory(name))]
    for directory in sorted(left, reverse=True):
        for sub, _dirs, _files in sorted(os.walk(directory), reverse=True):
            os.rmdir(sub)
    assert left == [], f"cgroup directories left behind: {left}"


def with_resources(path: str, res: dict[str, Any]) -> Any:
    def change(cfg: dict[str, Any]) -> None:
        cfg["linux"]["cgroupsPath"] = path
        cfg["linux"]["resources"] = res
    return change


def test_limits_are_in_force_and_the_container_sees_its_own_cgroup(tmp_path: Path,
                                                                   top: str) -> None:
    bundle = make_bundle(tmp_path, "cat /proc/self/cgroup; cat /sys/fs/cgroup/pids/pids.max "
                         "/sys/fs/cgroup/memory/memory.limit_in_bytes")
    edit(bundle, with_resources(f"{top}/web", {
        "devices": [{"allow": False, "access": "rwm"}],
        "memory": {"limit": 96 * MiB}, "pids": {"limit": 20}}))
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    # the cgroup namespace makes the container's cgroup its root, in every hierarchy
    assert sorted(lines[:-2]) == sorted(
        f"{line.rsplit(':', 1)[0]}:/" for line in Path("/proc/self/cgroup").read_text().split())
    assert lines[-2:] == ["20", str(96 * MiB)]
    ready = event(res.stderr, "cgroup.ready")
    assert (ready["path"], ready["mode"]) == (f"{top}/web", "hybrid")


def test_a_fork_bomb_stops_at_the_pids_limit(tmp_path: Path, top: str) -> None:
    script = "i=0; while [ $i -lt 40 ]; do sleep 100 & i=$((i+1)); done; echo unreachable"
    bundle = make_bundle(tmp_path, script)
    edit(bundle, with_resources(f"{top}/c", {"pids": {"limit": 10}}))
    res = run_bundle(bundle)
    # busybox sh gives up at the first fork that fails (exit 2). pyinit (PID 1) and sh
    # take 2 of the 10 tasks, so exactly 8 sleeps started; pyinit reaps them at the end.
    assert (res.returncode, res.stdout) == (2, ""), res.stderr
    assert "sh: can't fork: Resource temporarily unavailable" in res.stderr.splitlines()
    assert event(res.stderr, "pyinit.exit")["orphans_reaped"] == 8


def test_an_oom_kill_exits_137_and_explains_itself(tmp_path: Path, top: str) -> None:
    bundle = make_bundle(tmp_path, "exec dd if=/dev/zero of=/dev/null bs=200M count=1")
    edit(bundle, with_resources(f"{top}/c", {"memory": {"limit": 64 * MiB}}))
    res = run_bundle(bundle)
    assert res.returncode == 137, res.stderr
    killed = event(res.stderr, "oom.killed")
    directory = f"/sys/fs/cgroup/memory{top}/c"
    assert (killed["cgroup"], killed["kills"], killed["limit"]) == (directory, 1, 64 * MiB)
    assert 32 * MiB <= killed["peak"] <= 64 * MiB
    hint = (f"pyinit: the kernel's OOM killer killed 1 process in cgroup {directory}: the "
            f"container reached the memory limit of 64 MiB (peak usage "
            f"{diagnose._size(killed['peak'])}); raise linux.resources.memory.limit")
    assert hint in res.stderr.splitlines()


def test_a_block_device_in_the_image(tmp_path: Path, top: str) -> None:
    """A loop0 node (7:0) shipped in the image, on a mount that asks for ``dev`` (the
    root is nodev): the device cgroup refuses it under the defaults, allows reading it
    (only reading) once linux.resources.devices says so. Both mechanisms of this hybrid
    host are in force."""
    results = []
    for allowed in (False, True):
        bundle = make_bundle(tmp_path / str(allowed), "head -c 0 /data/loop && echo read; "
                             "echo x > /data/loop")
        data = bundle / "data"
        data.mkdir()
        os.mknod(data / "loop", stat.S_IFBLK | 0o600, os.makedev(7, 0))
        rules: list[dict[str, Any]] = [{"allow": False, "access": "rwm"}]
        if allowed:
            rules.append({"allow": True, "type": "b", "major": 7, "minor": 0, "access": "r"})
        edit(bundle, with_resources(f"{top}/c", {"devices": rules}))
        edit(bundle, lambda c, d=data: c["mounts"].append(
            {"destination": "/data", "type": "bind", "source": str(d),
             "options": ["rbind", "dev"]}))
        res = run_bundle(bundle)
        results.append((res.returncode, res.stdout, [
            line for line in res.stderr.splitlines() if line.endswith("/data/loop: Operation "
                                                                      "not permitted")]))
    assert results == [
        (1, "", ["head: /data/loop: Operation not permitted",
                 "sh: can't create /data/loop: Operation not permitted"]),
        (1, "read\n", ["sh: can't create /data/loop: Operation not permitted"]),
    ]


def test_a_field_this_host_cannot_apply(tmp_path: Path, top: str) -> None:
    bundle = make_bundle(tmp_path, "echo ran")
    edit(bundle, with_resources(f"{top}/c", {"hugepageLimits": [{"pageSize": "2MB",
                                                                 "limit": 2 * MiB}]}))
    res = run_bundle(bundle)
    assert (res.returncode, res.stdout) == (125, "")
    assert ("pyinit: linux.resources.hugepageLimits[0]: cgroup: the hugetlb controller is not "
            "mounted on this host (cgroup v1 controllers: blkio, cpu, cpuacct, cpuset, "
            "devices, freezer, memory, pids)") in res.stderr.splitlines()


def test_bad_resources_are_config_errors(tmp_path: Path, top: str) -> None:
    bundle = make_bundle(tmp_path, "echo ran")
    edit(bundle, with_resources(f"{top}/c", {"memory": {"limit": "64m"}}))
    res = run_bundle(bundle)
    assert (res.returncode, res.stdout) == (125, "")
    assert res.stderr.splitlines()[-1] == ("pyinit: config.json: linux.resources.memory.limit: "
                                           "must be an integer, not a string")


def test_the_next_run_sweeps_the_cgroup_of_a_killed_pyinit(
        tmp_path: Path, top: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGKILL of pyinit's parent side leaves the cgroup; once its processes are gone,
    the next run as root removes it (docs/cgroups.md, "Cleanup"). Both runs keep their
    locks in a directory of this test's: another pyinit running meanwhile (a parallel
    test run) neither sweeps this test's cgroup first nor adds its own to the sweep."""
    state = tmp_path / "state"
    monkeypatch.setenv("PYINIT_CGROUP_STATE_DIR", str(state))
    first = make_bundle(tmp_path / "first", "echo up; exec sleep 1000")
    edit(first, with_resources(f"{top}/c", {"pids": {"limit": 20}}))
    proc = subprocess.Popen([PYINIT, "run", "--bundle", str(first)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "up\n"
    proc.kill()
    proc.wait()
    host = cgroups.detect()
    unified = host.unified
    assert unified is not None
    left = unified.directory(f"{top}/c")
    assert cgroupfs.procs(left) != []  # the container outlived its pyinit
    cgroupfs.write(left, "cgroup.kill", "1")
    wait_for(lambda: cgroupfs.procs(left) == [], what="the orphaned container to die")
    second = make_bundle(tmp_path / "second", "echo second")
    edit(second, with_resources(f"{top}/d", {"pids": {"limit": 20}}))
    res = run_bundle(second)
    assert (res.returncode, res.stdout) == (0, "second\n"), res.stderr
    swept = event(res.stderr, "cgroup.swept")
    assert sorted(swept["removed"]) == sorted(
        [h.directory(top) for h in host.hierarchies]
        + [h.directory(f"{top}/c") for h in host.hierarchies])
    assert swept["kept"] == []
    assert sorted(p.relative_to(state).as_posix() for p in state.rglob("*")) == \
        ["parents", "parents/LOCK"]


def test_sandbox_limits(top: str) -> None:
    """pyinit sandbox --pids/--memory: the same machinery, in /pyinit/sandbox-<pid>-<random>."""
    proc = subprocess.Popen(
        [PYINIT, "sandbox", "--pids", "10", "--log-format", "json", "--log-level", "info",
         "--", "sh", "-c", "cat /proc/self/cgroup; i=0; while [ $i -lt 40 ]; do "
         "sleep 100 & i=$((i+1)); done"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err  # sh gives up at the first failed fork
    path = event(err, "cgroup.ready")["path"]
    assert re.fullmatch(f"/pyinit/sandbox-{proc.pid}-[0-9a-f]{{8}}", path), path
    assert sorted(out.splitlines()) == sorted(
        f"{line.rsplit(':', 1)[0]}:{path}" for line in Path("/proc/self/cgroup").read_text()
        .split())
    assert event(err, "pyinit.exit")["orphans_reaped"] == 8
    assert [h.directory(path) for h in cgroups.detect().hierarchies
            if os.path.exists(h.directory(path))] == []
    hog = subprocess.run([PYINIT, "sandbox", "--memory", "64m", "--", "dd", "if=/dev/zero",
                          "of=/dev/null", "bs=200M", "count=1"], capture_output=True, text=True,
                         timeout=60, check=False, stdin=subprocess.DEVNULL)
    assert hog.returncode == 137, hog.stderr
    assert "killed 1 process in cgroup /sys/fs/cgroup/memory/pyinit/sandbox-" in hog.stderr


def _setup_failure(res: Any) -> str:
    assert (res.returncode, res.stdout) == (125, ""), res.stderr
    lines = [x for x in res.stderr.splitlines() if x.startswith("pyinit:")]
    assert len(lines) == 1, res.stderr
    return str(lines[0])


def test_a_refused_write_leaves_no_cgroup(tmp_path: Path, top: str) -> None:
    """Exit 125, one line; the top fixture checks that no directory is left anywhere."""
    bundle = make_bundle(tmp_path, "echo ran")
    edit(bundle, with_resources(f"{top}/c", {"pids": {"limit": 5}, "cpu": {"cpus": "63"}}))
    assert _setup_failure(run_bundle(bundle)) == (
        f"pyinit: linux.resources.cpu.cpus: cgroup: write '63' to "
        f"/sys/fs/cgroup/cpuset{top}/c/cpuset.cpus: Numerical result out of range")


def test_a_mount_failure_after_placement_leaves_no_cgroup(tmp_path: Path, top: str) -> None:
    bundle = make_bundle(tmp_path, "echo ran")
    edit(bundle, with_resources(f"{top}/c", {"pids": {"limit": 5}}))
    edit(bundle, lambda c: c["mounts"].append(
        {"destination": "/x", "type": "nosuchfs", "source": "none"}))
    assert _setup_failure(run_bundle(bundle)).startswith(
        "pyinit: mounts[7]: mount (/x): nosuchfs none on /x: No such device; the kernel does "
        "not know the filesystem type 'nosuchfs'")


def test_root_with_a_read_only_cgroup_filesystem(tmp_path: Path, top: str) -> None:
    """pyinit as root in an ordinary container, where /sys/fs/cgroup is read-only: no
    cgroup, the one warning naming the limit and why, and the container runs (a
    private mount namespace with the hierarchies bound read-only plays the container)."""
    bundle = make_bundle(tmp_path, "echo ran")
    edit(bundle, with_resources(f"{top}/c", {"pids": {"limit": 5}}))
    remounts = "; ".join(f"mount -o remount,bind,ro {h.mount_point}"
                         for h in cgroups.detect().hierarchies)
    res = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                          f'{remounts} && exec "$@"', "sh", PYINIT, "run", "--bundle",
                          str(bundle)], capture_output=True, text=True, timeout=60,
                         check=False, stdin=subprocess.DEVNULL)
    assert (res.returncode, res.stdout) == (0, "ran\n"), res.stderr
    warned = event(res.stderr, "cgroup.no_limits")
    assert (warned["reason"], warned["detail"], warned["skipped"]) == (
        "no write access: /sys/fs/cgroup/unified is not writable by uid 0 (nor to any other "
        "hierarchy)",
        "cgroups: not applied for uid 0, the container runs without them: "
        "linux.resources.pids.limit (/sys/fs/cgroup/pids is not writable by uid 0)",
        ["linux.resources.pids.limit"])
    assert "cgroup.ready" not in [e["event"] for e in events(res.stderr)]


def test_two_runs_of_bundles_with_the_same_name_get_a_cgroup_each(tmp_path: Path) -> None:
    """Without --id the default cgroup is /pyinit/<bundle's name>-<unique>: two runs of
    .../one/web and .../two/web at once, each pyinit PID 1 of a PID namespace of its
    own (the same pid, 1, in both), must not meet in one cgroup."""
    runs = []
    try:
        for parent in ("one", "two"):
            bundle = make_bundle(tmp_path / parent / "web", "echo up; read x")
            runs.append(subprocess.Popen(
                ["unshare", "--pid", "--fork", "--mount-proc", PYINIT, "run", "--bundle",
                 str(bundle), "--log-format", "json"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
            assert runs[-1].stdout is not None
            assert runs[-1].stdout.readline() == "up\n"  # both run at once from here
        paths = []
        for proc in runs:
            out, err = proc.communicate("\n", timeout=60)
            assert (proc.returncode, out) == (0, ""), err
            paths.append(event(err, "cgroup.ready")["path"])
    finally:
        for proc in runs:
            proc.kill()
            proc.communicate()
    assert paths[0] != paths[1]
    assert [p.rsplit("-", 2)[0] for p in paths] == ["/pyinit/web", "/pyinit/web"]
