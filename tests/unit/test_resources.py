"""linux.resources and linux.cgroupsPath: parsing, JSON-path problems, device rule merging."""

from __future__ import annotations

from typing import Any

from pyinit.oci import resources
from pyinit.oci.resources import (
    DEFAULT_DEVICE_RULES,
    BlockIO,
    Cpu,
    DeviceRule,
    HugepageLimit,
    LinuxDevice,
    Memory,
    Rdma,
    ThrottleDevice,
    WeightDevice,
)


def parse(linux: Any) -> tuple[resources.CgroupSpec, list[tuple[str, str]]]:
    return resources.parse(linux)


def test_a_full_resources_object() -> None:
    spec, problems = parse({
        "cgroupsPath": "/pyinit/web",
        "resources": {
            "memory": {"limit": 67108864, "reservation": 33554432, "swap": 134217728,
                       "swappiness": 10, "disableOOMKiller": False, "kernelTCP": 1048576},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0-1",
                    "mems": "0", "idle": 0, "burst": 1000},
            "pids": {"limit": 20},
            "blockIO": {"weight": 500,
                        "weightDevice": [{"major": 254, "minor": 0, "weight": 300}],
                        "throttleReadBpsDevice": [{"major": 254, "minor": 0, "rate": 1000}]},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
            "rdma": {"mlx5_1": {"hcaHandles": 3}},
            "unified": {"memory.high": "50000000"},
        },
    })
    assert problems == []
    assert spec.path == "/pyinit/web"
    res = spec.resources
    assert res.memory == Memory(limit=67108864, reservation=33554432, swap=134217728,
                                kernel_tcp=1048576, swappiness=10, disable_oom_killer=False)
    assert res.cpu == Cpu(shares=512, quota=50000, burst=1000, period=100000, cpus="0-1",
                          mems="0", idle=0)
    assert res.pids_limit == 20
    assert res.block_io == BlockIO(
        weight=500, weight_device=(WeightDevice(254, 0, 300, None),),
        throttle=(("throttleReadBpsDevice", (ThrottleDevice(254, 0, 1000),)),))
    assert res.hugepage_limits == (HugepageLimit("2MB", 4194304),)
    assert res.rdma == (Rdma("mlx5_1", 3, None),)
    assert res.unified == (("memory.high", "50000000"),)
    assert res.limits_anything is True
    assert spec.warnings == ()


def test_problems_name_their_json_path() -> None:
    _spec, problems = parse({"resources": {
        "memory": {"limit": "64m", "swap": 1000, "swappiness": 101},
        "cpu": {"shares": 1, "period": 10, "cpus": "a-b"},
        "pids": {},
        "blockIO": {"weight": 5},
        "hugepageLimits": [{"pageSize": "2M", "limit": 1}],
        "devices": [{"allow": True, "type": "x"}, {"allow": False, "access": "rwx"},
                    {"type": "c"}],
        "unified": {"cgroup.procs": "1", "../etc": "x", "memory.max": 5},
        "memroy": {},
    }})
    assert problems == [
        ("linux.resources.memroy", "unknown field (known: blockIO, cpu, devices, "
         "hugepageLimits, memory, network, pids, rdma, unified)"),
        ("linux.resources.pids.limit", "is required"),
        ("linux.resources.hugepageLimits[0].pageSize", "must be a size like 2MB or 1GB, not '2M'"),
        ("linux.resources.unified.../etc", "is not a cgroup v2 interface file name "
         "(like memory.high)"),
        ("linux.resources.unified.cgroup.procs", "moves or kills processes; it is not a "
         "resource limit"),
        ("linux.resources.unified.memory.max", "must be a string, not an integer"),
        ("linux.resources.memory.limit", "must be an integer, not a string"),
        ("linux.resources.memory.swappiness", "101 is out of range (0 to 100)"),
        ("linux.resources.memory.swap", "a swap limit needs a memory limit (memory.limit)"),
        ("linux.resources.cpu.shares", "1 is out of range (2 to 262144)"),
        ("linux.resources.cpu.period", "10 is out of range (1000 to 1000000 µs)"),
        ("linux.resources.cpu.cpus", "'a-b' is not a list like 0-3,5"),
        ("linux.resources.blockIO.weight", "5 is out of range (10 to 1000)"),
        ("linux.resources.devices[0].type", "must be a, b or c, not 'x'"),
        ("linux.resources.devices[1].access", "must be letters from rwm, not 'rwx'"),
        ("linux.resources.devices[2].allow", "is required"),
    ]


def test_swap_below_the_memory_limit() -> None:
    _spec, problems = parse({"resources": {"memory": {"limit": 2000, "swap": 1000}}})
    assert problems == [("linux.resources.memory.swap", "1000 is below memory.limit 2000: the "
                         "swap limit counts memory plus swap")]


def test_zero_means_unset_and_pids_zero_means_unlimited() -> None:
    spec, problems = parse({"resources": {"memory": {"limit": 0}, "cpu": {"shares": 0,
                                                                          "quota": 0},
                                          "pids": {"limit": 0}}})
    assert problems == []
    assert spec.resources.memory == Memory()
    assert spec.resources.cpu == Cpu()
    assert spec.resources.pids_limit == -1


def test_kernel_memory_is_ignored_with_a_warning() -> None:
    spec, problems = parse({"resources": {"memory": {"kernel": 1048576}}})
    assert problems == []
    assert spec.warnings == ("linux.resources.memory.kernel: ignored, as runc does (the kernel "
                             "no longer limits kernel memory on its own)",)


def test_cgroups_path_forms() -> None:
    assert resources.parse_cgroups_path("/a//b/./c/") == ("/a/b/c", [])
    assert resources.parse_cgroups_path("a/b") == ("a/b", [])
    assert resources.parse_cgroups_path(None) == (None, [])
    assert resources.parse_cgroups_path("/a/../b") == (
        None, [("linux.cgroupsPath", "'/a/../b' must not contain '..'")])
    assert resources.parse_cgroups_path("/") == (
        None, [("linux.cgroupsPath", "'/' names the root cgroup; give a cgroup of its own")])
    assert resources.parse_cgroups_path("system.slice:pyinit:web") == (
        None, [("linux.cgroupsPath", "'system.slice:pyinit:web' is systemd's form "
                "(slice:prefix:name), not a cgroup path")])
    assert resources.default_path("web") == "/pyinit/web"


def test_device_rules_parse_with_wildcards_and_canonical_access() -> None:
    spec, problems = parse({"resources": {"devices": [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "b", "major": 7, "access": "wr"},
    ]}})
    assert problems == []
    assert spec.resources.devices == (DeviceRule(False, "a", -1, -1, "rwm"),
                                      DeviceRule(True, "b", 7, -1, "rw"))
    assert [r.v1_line() for r in spec.resources.devices] == ["a", "b 7:* rw"]


def test_merge_order_is_runcs_config_then_defaults_then_linux_devices() -> None:
    spec, problems = parse({
        "devices": [{"path": "/dev/loop0", "type": "b", "major": 7, "minor": 0},
                    {"path": "/dev/fifo", "type": "p"},
                    {"path": "/dev/kmsg", "type": "u", "major": 1, "minor": 11}],
        "resources": {"devices": [{"allow": False, "access": "rwm"},
                                  {"allow": False, "type": "c", "major": 1, "minor": 3}]},
    })
    assert problems == []
    merged = spec.device_rules()
    assert merged == (
        DeviceRule(False, "a", -1, -1, "rwm"),
        DeviceRule(False, "c", 1, 3, "rwm"),
        *DEFAULT_DEVICE_RULES,
        DeviceRule(True, "b", 7, 0, "rwm"),
        DeviceRule(True, "c", 1, 11, "rwm"),
    )
    assert [r.where for r in merged[-2:]] == ["linux.devices[0]", "linux.devices[2]"]


def test_the_default_allow_list() -> None:
    assert [r.v1_line() for r in DEFAULT_DEVICE_RULES] == [
        "c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",
        "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm"]


def test_policy_reduction() -> None:
    rules = resources.effective_device_rules(
        [DeviceRule(True, "c", 4, 1, "r"), DeviceRule(False, "a", -1, -1, "rwm"),
         DeviceRule(True, "a", 8, -1, "r")],
        [LinuxDevice("b", 7, 0)])
    policy = resources.device_policy(rules)
    assert policy.default_allow is False
    assert policy.rules == (DeviceRule(True, "b", 8, -1, "r"), DeviceRule(True, "c", 8, -1, "r"),
                            *DEFAULT_DEVICE_RULES, DeviceRule(True, "b", 7, 0, "rwm"))
    assert policy.v1_writes()[:3] == [("devices.deny", "a"), ("devices.allow", "b 8:* r"),
                                      ("devices.allow", "c 8:* r")]
    everything = resources.device_policy([DeviceRule(True, "a", -1, -1, "rwm"),
                                          DeviceRule(False, "c", 1, 3, "w")])
    assert everything.v1_writes() == [("devices.allow", "a"), ("devices.deny", "c 1:3 w")]
    assert resources.device_policy([]).v1_writes() == [("devices.deny", "a")]
