"""The cgroup v2 code paths this hybrid host cannot run for real (its unified
hierarchy has no controllers): enabling controllers down the tree, the files
written, the OOM evidence of memory.events, and the refusals, on a fake tree of
plain files shaped like cgroup2 (docs/cgroups.md, "Not run here")."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from pyinit import diagnose
from pyinit.cgroups import manager, mapping
from pyinit.cgroups.host import Hierarchy, Host
from pyinit.errors import SetupError
from pyinit.linux import cgroupfs
from pyinit.oci import resources

MiB = 1 << 20


def v2_tree(root: Path, leaf: str, controllers: str, mode: str = "v2") -> manager.Cgroup:
    """A fake unified hierarchy at ``root`` with cgroup ``leaf``; every level offers
    ``controllers`` and has none enabled for its children."""
    directory = root
    for part in ["", *leaf.strip("/").split("/")]:
        directory = directory / part if part else directory
        directory.mkdir(exist_ok=True)
        (directory / "cgroup.controllers").write_text(controllers + "\n")
        (directory / "cgroup.subtree_control").write_text("\n")
    host = Host(mode, (Hierarchy("unified", 2, frozenset(), str(root), "/", "/"),))
    return manager.Cgroup(leaf, {"unified": str(directory)}, host)


def spec_of(res: dict[str, object]) -> resources.CgroupSpec:
    spec, problems = resources.parse({"resources": res})
    assert problems == []
    return spec


def test_controllers_are_enabled_from_the_root_down(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    cg = v2_tree(tmp_path, "/a/b/c", "cpu memory pids")
    written: list[tuple[str, str, str]] = []
    monkeypatch.setattr(manager.cgroupfs, "write",
                        lambda d, n, v: written.append((d, n, v)))
    manager._enable_controllers(cg, {"pids": "linux.resources.pids.limit",
                                     "memory": "linux.resources.memory.limit"})
    assert written == [(str(d), "cgroup.subtree_control", f"+{c}")
                       for d in (tmp_path, tmp_path / "a", tmp_path / "a" / "b")
                       for c in ("memory", "pids")]


def test_a_controller_already_enabled_is_not_written_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cg = v2_tree(tmp_path, "/a/c", "memory pids")
    for d in (tmp_path, tmp_path / "a"):
        (d / "cgroup.subtree_control").write_text("memory pids\n")
    monkeypatch.setattr(manager.cgroupfs, "write", lambda *a: pytest.fail(f"wrote {a}"))
    manager._enable_controllers(cg, {"pids": "linux.resources.pids.limit"})


def test_a_controller_the_tree_does_not_offer(tmp_path: Path) -> None:
    cg = v2_tree(tmp_path, "/a/c", "cpu")
    with pytest.raises(SetupError) as info:
        manager._enable_controllers(cg, {"pids": "linux.resources.unified.pids.max"})
    assert str(info.value) == (
        f"linux.resources.unified.pids.max: cgroup: the pids controller is not available in "
        f"{tmp_path} (cgroup.controllers: cpu)")


def test_no_internal_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A delegated cgroup that holds pyinit itself cannot enable controllers for the
    container's cgroup below it (EBUSY): the line says what to do."""
    cg = v2_tree(tmp_path, "/user/c", "pids")
    (tmp_path / "cgroup.subtree_control").write_text("pids\n")

    def busy(directory: str, name: str, value: str) -> None:
        raise OSError(errno.EBUSY, "busy")
    monkeypatch.setattr(manager.cgroupfs, "write", busy)
    with pytest.raises(SetupError) as info:
        manager._enable_controllers(cg, {"pids": "linux.resources.pids.limit"})
    assert str(info.value) == (
        f"linux.resources.pids.limit: cgroup: enable pids in {tmp_path}/user: Device or "
        "resource busy; cgroup v2 lets no cgroup that has processes of its own enable "
        "controllers for its children: run pyinit from a leaf below the delegated cgroup, "
        "or enable the controller there beforehand")


def test_the_v2_writes_land_in_the_unified_cgroup(tmp_path: Path) -> None:
    cg = v2_tree(tmp_path, "/c", "cpu io memory pids")
    leaf = Path(cg.dirs["unified"])
    for name in ("memory.max", "memory.swap.max", "memory.low", "cpu.weight", "cpu.max",
                 "pids.max", "io.weight"):
        (leaf / name).write_text("")
    spec = spec_of({"memory": {"limit": 64 * MiB, "swap": 96 * MiB, "reservation": 32 * MiB},
                    "cpu": {"shares": 1024, "quota": 50000, "period": 100000},
                    "pids": {"limit": 20}, "blockIO": {"weight": 500}})
    for write in manager.planned(cg.host, spec):
        manager._apply(cg, write)
    assert {p.name: p.read_text() for p in leaf.iterdir()
            if not p.name.startswith("cgroup.")} == {
        "memory.max": str(64 * MiB), "memory.swap.max": str(32 * MiB),
        "memory.low": str(32 * MiB), "cpu.weight": "39", "cpu.max": "50000 100000",
        "pids.max": "20", "io.weight": "4950"}


def test_a_missing_v2_file_names_the_field(tmp_path: Path) -> None:
    cg = v2_tree(tmp_path, "/c", "memory")
    spec = spec_of({"memory": {"limit": 64 * MiB}})
    [write] = manager.planned(cg.host, spec)
    with pytest.raises(SetupError) as info:
        manager._apply(cg, write)
    assert str(info.value) == (
        f"linux.resources.memory.limit: cgroup: {tmp_path}/c has no memory.max: is the memory "
        "controller enabled in the unified hierarchy?")


def test_fields_v2_cannot_apply_are_refused_before_anything_is_made() -> None:
    host = Host("v2", (Hierarchy("unified", 2, frozenset(), "/nonexistent", "/", "/"),))
    spec = spec_of({"memory": {"limit": 64 * MiB, "disableOOMKiller": True}})
    with pytest.raises(SetupError) as info:
        manager.planned(host, spec)
    assert str(info.value) == (
        "linux.resources.memory.disableOOMKiller: cgroup: cgroup v2 has no switch to disable "
        "the OOM killer; remove it")


def test_oom_evidence_from_memory_events(tmp_path: Path) -> None:
    cg = v2_tree(tmp_path, "/c", "memory")
    leaf = Path(cg.dirs["unified"])
    (leaf / "memory.events").write_text("low 0\nhigh 0\nmax 31\noom 1\noom_kill 1\n"
                                        "oom_group_kill 0\n")
    (leaf / "memory.max").write_text(f"{64 * MiB}\n")
    (leaf / "memory.peak").write_text(f"{64 * MiB - 4096}\n")
    evidence = cg.oom()
    assert evidence == manager.OomEvidence(str(leaf), 1, 64 * MiB, 64 * MiB - 4096)
    assert evidence is not None
    assert diagnose.explain("oom-killed", None, evidence.log_fields()) == (
        f"the kernel's OOM killer killed 1 process in cgroup {leaf}: the container reached "
        "the memory limit of 64 MiB (peak usage 64.0 MiB); raise linux.resources.memory.limit")
    (leaf / "memory.events").write_text("oom 0\noom_kill 0\n")
    assert cg.oom() is None
    (leaf / "memory.events").write_text("oom_kill 2\n")
    (leaf / "memory.max").write_text("max\n")
    (leaf / "memory.peak").unlink()
    assert cg.oom() == manager.OomEvidence(str(leaf), 2, None, None)


def test_the_write_of_each_field_per_version() -> None:
    """The issue's list, each field to its v1 and v2 file (docs/cgroups.md's table)."""
    spec = spec_of({
        "memory": {"limit": 64 * MiB, "reservation": 32 * MiB, "swap": 96 * MiB},
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0"},
        "pids": {"limit": 20}, "blockIO": {"weight": 500},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4 * MiB}],
        "rdma": {"mlx5_0": {"hcaHandles": 3, "hcaObjects": 100}},
        "unified": {"memory.high": "50000000"}})
    table = {version: [(w.where.removeprefix("linux.resources."), w.version,
                        [f for f, _ in w.choices])
                       for w in mapping.plan(spec.resources, version)[0]]
             for version in (1, 2)}
    assert table[1] == [
        ("memory.limit", 1, ["memory.limit_in_bytes"]),
        ("memory.swap", 1, ["memory.memsw.limit_in_bytes"]),
        ("memory.reservation", 1, ["memory.soft_limit_in_bytes"]),
        ("cpu.shares", 1, ["cpu.shares"]), ("cpu.period", 1, ["cpu.cfs_period_us"]),
        ("cpu.quota", 1, ["cpu.cfs_quota_us"]), ("cpu.cpus", 1, ["cpuset.cpus"]),
        ("cpu.mems", 1, ["cpuset.mems"]), ("pids.limit", 1, ["pids.max"]),
        ("blockIO.weight", 1, ["blkio.weight", "blkio.bfq.weight"]),
        ("hugepageLimits[0]", 1, ["hugetlb.2MB.limit_in_bytes"]),
        ("rdma.mlx5_0", 1, ["rdma.max"]),
        ("unified.memory.high", 2, ["memory.high"])]
    assert table[2] == [
        ("memory.limit", 2, ["memory.max"]), ("memory.swap", 2, ["memory.swap.max"]),
        ("memory.reservation", 2, ["memory.low"]), ("cpu.shares", 2, ["cpu.weight"]),
        ("cpu.quota", 2, ["cpu.max"]), ("cpu.cpus", 2, ["cpuset.cpus"]),
        ("cpu.mems", 2, ["cpuset.mems"]), ("pids.limit", 2, ["pids.max"]),
        ("blockIO.weight", 2, ["io.bfq.weight", "io.weight"]),
        ("hugepageLimits[0]", 2, ["hugetlb.2MB.max"]), ("rdma.mlx5_0", 2, ["rdma.max"]),
        ("unified.memory.high", 2, ["memory.high"])]


def test_the_shutdown_lists_only_a_cgroup_pyinit_made(tmp_path: Path) -> None:
    # PID 1 without a PID namespace or procfs lists who is left from cgroup.procs
    # (docs/security.md rule 4); a cgroup that was there before may hold others'.
    cg = v2_tree(tmp_path, "/pyinit/c1", "memory")
    procs = tmp_path / "pyinit" / "c1" / "cgroup.procs"
    procs.write_text("12\n34\n")
    assert cg.procs_fd() is None
    cg.created.append(str(tmp_path / "pyinit" / "c1"))
    fd = cg.procs_fd()
    assert fd is not None
    try:
        assert cgroupfs.pids_of(fd) == [12, 34]
        procs.write_text("56\n")  # read afresh each time, from the same descriptor
        assert cgroupfs.pids_of(fd) == [56]
    finally:
        os.close(fd)
