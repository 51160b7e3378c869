"""The pure parts of pyinit.cgroups: host detection, field -> file mapping, the BPF program."""

from __future__ import annotations

import os
import re

import pytest

from pyinit.cgroups import devicefilter, host, mapping
from pyinit.cgroups.devicefilter import Insn
from pyinit.cgroups.mapping import Write
from pyinit.linux import mountinfo
from pyinit.oci import resources
from pyinit.oci.resources import DevicePolicy, DeviceRule


def parse_resources(doc: dict[str, object]) -> resources.Resources:
    spec, problems = resources.parse({"resources": doc})
    assert problems == []
    return spec.resources


# ------------------------------------------------------------------ host
HYBRID = """\
30 25 0:26 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
32 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
33 30 0:29 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
34 30 0:30 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
"""
HYBRID_SELF = "3:name=systemd:/user.slice\n2:memory:/jobs/7\n1:cpu,cpuacct:/\n0::/user.slice\n"


def test_a_hybrid_host() -> None:
    found = host.parse(mountinfo.parse(HYBRID), HYBRID_SELF)
    assert found.mode == "hybrid"
    assert [(h.name, h.version, h.own) for h in found.hierarchies] == [
        ("unified", 2, "/user.slice"), ("cpu,cpuacct", 1, "/"), ("memory", 1, "/jobs/7"),
        ("name=systemd", 1, "/user.slice")]
    assert found.v1_controllers == ["cpu", "cpuacct", "memory"]
    memory = found.v1("memory")
    assert memory is not None
    assert memory.directory(memory.resolve("web")) == "/sys/fs/cgroup/memory/jobs/7/web"
    assert memory.directory(memory.resolve("/pyinit/web")) == "/sys/fs/cgroup/memory/pyinit/web"


def test_v2_and_v1_only_hosts_and_a_partly_mounted_hierarchy() -> None:
    v2 = host.parse(mountinfo.parse(
        "30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n"), "0::/a\n")
    assert (v2.mode, v2.unified is not None) == ("v2", True)
    v1 = host.parse(mountinfo.parse(
        "33 30 0:29 /docker/x /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n"), "1:pids:/\n")
    assert v1.mode == "v1"
    pids = v1.v1("pids")
    assert pids is not None
    assert pids.directory("/docker/x/c") == "/sys/fs/cgroup/pids/c"
    with pytest.raises(ValueError, match="outside the part of the pids hierarchy"):
        pids.directory("/other")
    assert host.parse([], "").mode == "none"


# --------------------------------------------------------------- mapping
FULL = {
    "memory": {"limit": 64 << 20, "reservation": 32 << 20, "swap": 96 << 20},
    "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0-1"},
    "pids": {"limit": 20},
    "blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": 8, "minor": 0,
                                                          "rate": 1000}]},
    "hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}],
    "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10}},
    "unified": {"memory.high": "50000000"},
}
R = "linux.resources"


def test_the_v1_files() -> None:
    writes, problems = mapping.plan(parse_resources(FULL), 1)
    assert problems == []
    assert writes == [
        Write("memory", (("memory.limit_in_bytes", "67108864"),), f"{R}.memory.limit", 1),
        Write("memory", (("memory.memsw.limit_in_bytes", "100663296"),), f"{R}.memory.swap",
              1),
        Write("memory", (("memory.soft_limit_in_bytes", "33554432"),),
              f"{R}.memory.reservation", 1),
        Write("cpu", (("cpu.shares", "1024"),), f"{R}.cpu.shares", 1),
        Write("cpu", (("cpu.cfs_period_us", "100000"),), f"{R}.cpu.period", 1),
        Write("cpu", (("cpu.cfs_quota_us", "50000"),), f"{R}.cpu.quota", 1),
        Write("cpuset", (("cpuset.cpus", "0-1"),), f"{R}.cpu.cpus", 1),
        Write("pids", (("pids.max", "20"),), f"{R}.pids.limit", 1),
        Write("blkio", (("blkio.weight", "500"), ("blkio.bfq.weight", "500")),
              f"{R}.blockIO.weight", 1),
        Write("blkio", (("blkio.throttle.read_bps_device", "8:0 1000"),),
              f"{R}.blockIO.throttleReadBpsDevice[0]", 1),
        Write("hugetlb", (("hugetlb.2MB.limit_in_bytes", "4194304"),),
              f"{R}.hugepageLimits[0]", 1),
        Write("rdma", (("rdma.max", "mlx5_1 hca_handle=3 hca_object=10"),),
              f"{R}.rdma.mlx5_1", 1),
        Write("memory", (("memory.high", "50000000"),), f"{R}.unified.memory.high", 2),
    ]


def test_the_v2_files_and_conversions() -> None:
    writes, problems = mapping.plan(parse_resources(FULL), 2)
    assert problems == []
    assert [(w.file, w.value) for w in writes] == [
        ("memory.max", "67108864"),
        ("memory.swap.max", "33554432"),  # swap counts memory + swap; v2 counts swap alone
        ("memory.low", "33554432"),
        ("cpu.weight", "39"),  # 1 + (1024 - 2) * 9999 / 262142
        ("cpu.max", "50000 100000"),
        ("cpuset.cpus", "0-1"),
        ("pids.max", "20"),
        ("io.bfq.weight", "500"),
        ("io.max", "8:0 rbps=1000"),
        ("hugetlb.2MB.max", "4194304"),
        ("rdma.max", "mlx5_1 hca_handle=3 hca_object=10"),
        ("memory.high", "50000000"),
    ]
    assert writes[7].choices == (("io.bfq.weight", "500"), ("io.weight", "4950"))


def test_conversions_at_their_ends() -> None:
    assert [mapping.cpu_weight(s) for s in (2, 1024, 262144)] == [1, 39, 10000]
    assert [mapping.io_weight(w) for w in (10, 500, 1000)] == [1, 4950, 10000]
    assert [mapping.swap_v2(-1, 100), mapping.swap_v2(300, 100)] == ["max", "200"]


def test_unlimited_values() -> None:
    res = parse_resources({"memory": {"limit": -1}, "pids": {"limit": -1},
                           "cpu": {"quota": -1, "period": 50000}})
    assert [(w.file, w.value) for w in mapping.plan(res, 2)[0]] == [
        ("memory.max", "max"), ("cpu.max", "max 50000"), ("pids.max", "max")]
    assert [(w.file, w.value) for w in mapping.plan(res, 1)[0]] == [
        ("memory.limit_in_bytes", "-1"), ("cpu.cfs_period_us", "50000"),
        ("cpu.cfs_quota_us", "-1"), ("pids.max", "max")]


def test_fields_v2_has_no_file_for_are_problems() -> None:
    res = parse_resources({"memory": {"limit": 1 << 20, "swappiness": 5,
                                      "disableOOMKiller": True},
                           "cpu": {"realtimeRuntime": 950000}})
    writes, problems = mapping.plan(res, 2)
    assert [(w.file, w.value) for w in writes] == [("memory.max", "1048576")]
    assert problems == [
        (f"{R}.memory.swappiness", "cgroup v2 has no per-cgroup swappiness; remove it"),
        (f"{R}.memory.disableOOMKiller", "cgroup v2 has no switch to disable the OOM "
         "killer; remove it"),
        (f"{R}.cpu.realtimeRuntime", "cgroup v2 has no real-time scheduling budget; "
         "remove it"),
    ]
    v1_writes, v1_problems = mapping.plan(res, 1)
    assert v1_problems == []
    assert [(w.file, w.value) for w in v1_writes] == [
        ("memory.limit_in_bytes", "1048576"), ("memory.swappiness", "5"),
        ("memory.oom_control", "1"), ("cpu.rt_runtime_us", "950000")]


# ------------------------------------------------------------ devicefilter
def test_instruction_encoding() -> None:
    assert devicefilter.ldx_w(2, 1, 4).encode() == bytes.fromhex("6112040000000000")
    assert devicefilter.and32(2, 0xFFFF).encode() == bytes.fromhex("54020000ffff0000")
    assert devicefilter.jne_imm(4, 7, 3).encode() == bytes.fromhex("5504030007000000")
    assert devicefilter.mov32_reg(1, 3).encode() == bytes.fromhex("bc31000000000000")
    assert devicefilter.mov64_imm(0, 1).encode() == bytes.fromhex("b700000001000000")
    assert devicefilter.exit_insn().encode() == bytes.fromhex("9500000000000000")


def test_the_program_for_one_rule() -> None:
    policy = DevicePolicy(False, (DeviceRule(True, "b", 7, 0, "r"),))
    assert devicefilter.program(policy) == [
        Insn(0x61, 2, 1, 0), Insn(0x54, 2, imm=0xFFFF),  # r2 = type
        Insn(0x61, 3, 1, 0), Insn(0x74, 3, imm=16),  # r3 = access
        Insn(0x61, 4, 1, 4), Insn(0x61, 5, 1, 8),  # r4 = major, r5 = minor
        Insn(0x55, 2, off=7, imm=1),  # type != block -> next
        Insn(0xBC, 1, 3), Insn(0x54, 1, imm=0b101), Insn(0x55, 1, off=4),  # asks for w or m
        Insn(0x55, 4, off=3, imm=7), Insn(0x55, 5, off=2, imm=0),  # not 7:0 -> next
        Insn(0xB7, 0, imm=1), Insn(0x95),  # allow
        Insn(0xB7, 0, imm=0), Insn(0x95),  # default: deny
    ]
    assert len(devicefilter.assemble(policy)) == 16 * 8


def run_program(insns: list[Insn], access_type: int, major: int, minor: int) -> int:
    """A tiny interpreter for the instructions the device filter uses."""
    mask = (1 << 64) - 1
    ctx = [access_type, major, minor]
    regs = [0] * 11
    pc = 0
    while True:
        i = insns[pc]
        pc += 1
        if i.code == 0x61:
            regs[i.dst] = ctx[i.off // 4]
        elif i.code == 0x54:
            regs[i.dst] = (regs[i.dst] & (i.imm & 0xFFFFFFFF)) & 0xFFFFFFFF
        elif i.code == 0x74:
            regs[i.dst] = (regs[i.dst] & 0xFFFFFFFF) >> i.imm
        elif i.code == 0xBC:
            regs[i.dst] = regs[i.src] & 0xFFFFFFFF
        elif i.code == 0xB7:
            regs[i.dst] = i.imm & mask
        elif i.code in (0x55, 0x15):
            equal = regs[i.dst] == i.imm & mask
            if equal == (i.code == 0x15):
                pc += i.off
        elif i.code == 0x95:
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {i.code:#x}")


def decide(policy: DevicePolicy, kind: str, major: int, minor: int, access: str) -> int:
    bits = sum({"m": 1, "r": 2, "w": 4}[c] for c in access)
    return run_program(devicefilter.program(policy),
                       (bits << 16) | {"b": 1, "c": 2}[kind], major, minor)


def test_the_default_rules_as_a_program() -> None:
    rules = resources.effective_device_rules([DeviceRule(False, "a", -1, -1, "rwm")])
    policy = resources.device_policy(rules)
    assert [decide(policy, *case) for case in [
        ("c", 1, 3, "rw"), ("c", 136, 9, "rw"), ("c", 5, 2, "r"),  # null, a pty, ptmx
        ("b", 7, 0, "m"), ("c", 10, 200, "m"),  # mknod of anything
        ("b", 7, 0, "r"), ("c", 10, 200, "r"), ("c", 1, 1, "w"), ("c", 4, 1, "rw"),
    ]] == [1, 1, 1, 1, 1, 0, 0, 0, 0]


def test_later_rules_win_and_deny_meets_any_access() -> None:
    policy = resources.device_policy([
        DeviceRule(True, "a", -1, -1, "rwm"),  # default allow
        DeviceRule(False, "b", 8, -1, "w"),  # no writes to sd*
        DeviceRule(True, "b", 8, 1, "rw"),  # except sda1
        DeviceRule(False, "c", -1, -1, "rwm"),  # no character devices at all
    ])
    assert policy.default_allow is True
    assert [decide(policy, *case) for case in [
        ("b", 8, 0, "r"), ("b", 8, 0, "rw"), ("b", 8, 0, "w"), ("b", 8, 1, "rw"),
        ("b", 7, 0, "rwm"), ("c", 1, 3, "r"),
    ]] == [1, 0, 0, 1, 1, 0]


def test_sandbox_options_as_a_cgroup_spec() -> None:
    import argparse

    from pyinit import sandbox

    args = sandbox.parser(argparse.ArgumentParser).parse_args(
        ["--memory", "64m", "--pids", "10", "--cpus", "0.5", "--", "true"])
    spec = sandbox.cgroup_spec(args)
    assert spec is not None and re.fullmatch(f"/pyinit/sandbox-{os.getpid()}-[0-9a-f]{{8}}",
                                             spec.path), spec
    assert spec == resources.CgroupSpec(spec.path, resources.Resources(
        memory=resources.Memory(limit=64 << 20), pids_limit=10,
        cpu=resources.Cpu(quota=50000, period=100000),
        devices=(DeviceRule(True, "a", -1, -1, "rwm"),)))
    assert resources.device_policy(spec.device_rules()).default_allow is True
    none = sandbox.parser(argparse.ArgumentParser).parse_args(["--", "true"])
    assert sandbox.cgroup_spec(none) is None
    with pytest.raises(SystemExit):
        sandbox.parser(argparse.ArgumentParser).parse_args(["--memory", "lots", "--", "true"])


def test_sizes_in_the_oom_hint() -> None:
    from pyinit import diagnose
    from pyinit.cgroups.manager import OomEvidence

    assert [diagnose._size(n) for n in (64 << 20, 67000000, 512 << 10, 100, 3 << 30)] == [
        "64 MiB", "63.9 MiB", "512 KiB", "100 bytes", "3 GiB"]
    evidence = OomEvidence("/sys/fs/cgroup/memory/pyinit/web", 2, None, 67000000)
    assert diagnose.explain("oom-killed", None, evidence.log_fields()) == (
        "the kernel's OOM killer killed 2 processes in cgroup /sys/fs/cgroup/memory/pyinit/web:"
        " the host ran out of memory, the container has no memory limit (peak usage 63.9 MiB);"
        " give the host more memory or set linux.resources.memory.limit")


@pytest.mark.parametrize("text", [
    "/pyinit/c1", "/user.slice/a b/ü~_.-", "%2F/..", "", "a+b=c&d?e#f", "\u2603/\U0001F600",
])
def test_lock_and_registry_names_are_urllib_quotes(text: str) -> None:
    # The names of lock files and registry entries already on disk must not change.
    from urllib.parse import quote

    from pyinit.cgroups import manager

    assert manager.quote(text) == quote(text, safe="")
