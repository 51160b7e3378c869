"""Each ``linux.resources`` field as the cgroup files runc writes for it. Pure.

A :class:`Write` names the controller whose hierarchy (v1) or whose presence
in ``cgroup.controllers`` (v2) it needs, the file and value, and the JSON
path it comes from, so any failure to apply it names that path. Where runc
picks a file by what the kernel offers (``blkio.weight`` or, with the BFQ
scheduler, ``blkio.bfq.weight``), ``choices`` lists them in order of
preference and the first file that exists is written.

A field a cgroup version has no file for is a problem with its JSON path,
never silently dropped.

| field | cgroup v1 | cgroup v2 |
|---|---|---|
| memory.limit | memory.limit_in_bytes | memory.max |
| memory.swap | memory.memsw.limit_in_bytes | memory.swap.max = swap - limit |
| memory.reservation | memory.soft_limit_in_bytes | memory.low |
| memory.disableOOMKiller | memory.oom_control = 1 | (none: a problem) |
| cpu.shares | cpu.shares | cpu.weight = 1 + (shares-2)*9999/262142 |
| cpu.quota, cpu.period | cpu.cfs_period_us, cpu.cfs_quota_us | cpu.max = "quota period" |
| cpu.cpus, cpu.mems | cpuset.cpus, cpuset.mems | the same |
| pids.limit | pids.max | pids.max |
| blockIO.weight | blkio.weight or blkio.bfq.weight | io.bfq.weight or io.weight (converted) |
| hugepageLimits | hugetlb.SIZE.limit_in_bytes | hugetlb.SIZE.max |
| rdma | rdma.max | rdma.max |
| unified | (needs v2) | the key, as a file |
"""

from __future__ import annotations

from pyinit.oci.resources import Problem, Resources
from pyinit.record import record

UNIFIED = "unified"  # Write.target for v2 files


@record
class Write:
    controller: str  # "memory", "cpu", ...; "cgroup" for v2 core files (no controller)
    choices: tuple[tuple[str, str], ...]  # (file, value): the first file that exists
    where: str
    version: int  # the hierarchy version it is written to

    @property
    def file(self) -> str:
        return self.choices[0][0]

    @property
    def value(self) -> str:
        return self.choices[0][1]


def cpu_weight(shares: int) -> int:
    """runc's cpu.shares (2..262144) -> cpu.weight (1..10000)."""
    return 1 + ((shares - 2) * 9999) // 262142


def io_weight(blkio_weight: int) -> int:
    """runc's blkio.weight (10..1000) -> io.weight (1..10000)."""
    return 1 + ((blkio_weight - 10) * 9999) // 990


def swap_v2(swap: int, limit: int | None) -> str:
    """The spec's swap (memory + swap) as memory.swap.max (swap alone), as runc converts it."""
    if swap == -1:
        return "max"
    if limit is None or limit == -1:  # resources.parse refuses this; keep the function total
        raise ValueError("a swap limit needs a memory limit")
    return str(swap - limit)


def _max(value: int) -> str:
    return "max" if value == -1 else str(value)


def plan(res: Resources, version: int, where: str = "linux.resources"
         ) -> tuple[list[Write], list[Problem]]:
    """The writes for cgroup ``version`` (1 covers hybrid hosts: the unified map goes to
    their v2 hierarchy), in the order the kernel needs them, and what cannot be applied."""
    v1 = version == 1
    writes: list[Write] = []
    problems: list[Problem] = []

    def put(controller: str, field: str, *choices: tuple[str, str], at: int = 0) -> None:
        writes.append(Write(controller, tuple(choices), f"{where}.{field}", at or version))

    def none(field: str, what: str) -> None:
        problems.append((f"{where}.{field}", f"cgroup v{version} has no {what}; remove it"))

    mem = res.memory
    if mem is not None:
        if mem.limit is not None:
            put("memory", "memory.limit", ("memory.limit_in_bytes" if v1 else "memory.max",
                                           str(mem.limit) if v1 else _max(mem.limit)))
        if mem.swap is not None:
            if v1:
                put("memory", "memory.swap", ("memory.memsw.limit_in_bytes", str(mem.swap)))
            else:
                put("memory", "memory.swap", ("memory.swap.max", swap_v2(mem.swap, mem.limit)))
        if mem.reservation is not None:
            put("memory", "memory.reservation",
                ("memory.soft_limit_in_bytes", str(mem.reservation)) if v1
                else ("memory.low", _max(mem.reservation)))
        if mem.kernel_tcp is not None:
            if v1:
                put("memory", "memory.kernelTCP",
                    ("memory.kmem.tcp.limit_in_bytes", str(mem.kernel_tcp)))
            else:
                none("memory.kernelTCP", "separate TCP buffer limit")
        if mem.swappiness is not None:
            if v1:
                put("memory", "memory.swappiness", ("memory.swappiness", str(mem.swappiness)))
            else:
                none("memory.swappiness", "per-cgroup swappiness")
        if mem.disable_oom_killer:
            if v1:
                put("memory", "memory.disableOOMKiller", ("memory.oom_control", "1"))
            else:
                none("memory.disableOOMKiller", "switch to disable the OOM killer")
        if mem.use_hierarchy is not None:
            if v1:
                put("memory", "memory.useHierarchy",
                    ("memory.use_hierarchy", "1" if mem.use_hierarchy else "0"))
            elif not mem.use_hierarchy:
                none("memory.useHierarchy", "non-hierarchical accounting")
    cpu = res.cpu
    if cpu is not None:
        if cpu.shares is not None:
            put("cpu", "cpu.shares", ("cpu.shares", str(cpu.shares)) if v1
                else ("cpu.weight", str(cpu_weight(cpu.shares))))
        if v1:
            if cpu.period is not None:
                put("cpu", "cpu.period", ("cpu.cfs_period_us", str(cpu.period)))
            if cpu.quota is not None:
                put("cpu", "cpu.quota", ("cpu.cfs_quota_us", str(cpu.quota)))
        elif cpu.quota is not None or cpu.period is not None:
            value = str(cpu.quota) if cpu.quota is not None and cpu.quota > 0 else "max"
            if cpu.period is not None:
                value += f" {cpu.period}"
            put("cpu", "cpu.quota" if cpu.quota is not None else "cpu.period",
                ("cpu.max", value))
        if cpu.burst is not None:
            put("cpu", "cpu.burst", ("cpu.cfs_burst_us" if v1 else "cpu.max.burst",
                                     str(cpu.burst)))
        for field, v1_file, budget in (("realtimePeriod", "cpu.rt_period_us",
                                        cpu.realtime_period),
                                       ("realtimeRuntime", "cpu.rt_runtime_us",
                                        cpu.realtime_runtime)):
            if budget is None:
                continue
            if v1:
                put("cpu", f"cpu.{field}", (v1_file, str(budget)))
            else:
                none(f"cpu.{field}", "real-time scheduling budget")
        if cpu.idle is not None:
            put("cpu", "cpu.idle", ("cpu.idle", str(cpu.idle)))
        if cpu.cpus:
            put("cpuset", "cpu.cpus", ("cpuset.cpus", cpu.cpus))
        if cpu.mems:
            put("cpuset", "cpu.mems", ("cpuset.mems", cpu.mems))
    if res.pids_limit is not None:
        put("pids", "pids.limit", ("pids.max", _max(res.pids_limit)))
    bio = res.block_io
    if bio is not None:
        ctl = "blkio" if v1 else "io"
        if bio.weight is not None:
            if v1:
                put(ctl, "blockIO.weight", ("blkio.weight", str(bio.weight)),
                    ("blkio.bfq.weight", str(bio.weight)))
            else:
                put(ctl, "blockIO.weight", ("io.bfq.weight", str(bio.weight)),
                    ("io.weight", str(io_weight(bio.weight))))
        if bio.leaf_weight is not None:
            if v1:
                put(ctl, "blockIO.leafWeight", ("blkio.leaf_weight", str(bio.leaf_weight)))
            else:
                none("blockIO.leafWeight", "leaf weight")
        for i, dev in enumerate(bio.weight_device):
            at = f"blockIO.weightDevice[{i}]"
            node = f"{dev.major}:{dev.minor}"
            if dev.weight is not None:
                if v1:
                    put(ctl, at, ("blkio.weight_device", f"{node} {dev.weight}"),
                        ("blkio.bfq.weight_device", f"{node} {dev.weight}"))
                else:
                    put(ctl, at, ("io.bfq.weight", f"{node} {dev.weight}"),
                        ("io.weight", f"{node} {io_weight(dev.weight)}"))
            if dev.leaf_weight is not None:
                if v1:
                    put(ctl, f"{at}.leafWeight",
                        ("blkio.leaf_weight_device", f"{node} {dev.leaf_weight}"))
                else:
                    none(f"{at}.leafWeight", "leaf weight")
        v1_files = {"throttleReadBpsDevice": "blkio.throttle.read_bps_device",
                    "throttleWriteBpsDevice": "blkio.throttle.write_bps_device",
                    "throttleReadIOPSDevice": "blkio.throttle.read_iops_device",
                    "throttleWriteIOPSDevice": "blkio.throttle.write_iops_device"}
        v2_keys = {"throttleReadBpsDevice": "rbps", "throttleWriteBpsDevice": "wbps",
                   "throttleReadIOPSDevice": "riops", "throttleWriteIOPSDevice": "wiops"}
        for key, devices in bio.throttle:
            for i, tdev in enumerate(devices):
                node = f"{tdev.major}:{tdev.minor}"
                put(ctl, f"blockIO.{key}[{i}]",
                    (v1_files[key], f"{node} {tdev.rate}") if v1
                    else ("io.max", f"{node} {v2_keys[key]}={tdev.rate}"))
    for i, page in enumerate(res.hugepage_limits):
        put("hugetlb", f"hugepageLimits[{i}]",
            (f"hugetlb.{page.page_size}.limit_in_bytes" if v1
             else f"hugetlb.{page.page_size}.max", str(page.limit)))
    net = res.network
    if net is not None:
        if net.class_id is not None:
            if v1:
                put("net_cls", "network.classID", ("net_cls.classid", str(net.class_id)))
            else:
                none("network.classID", "net_cls controller (use an eBPF program)")
        for i, (name, prio) in enumerate(net.priorities):
            if v1:
                put("net_prio", f"network.priorities[{i}]", ("net_prio.ifpriomap",
                                                             f"{name} {prio}"))
            else:
                none(f"network.priorities[{i}]", "net_prio controller")
    for rdma in res.rdma:
        value = rdma.device
        if rdma.hca_handles is not None:
            value += f" hca_handle={rdma.hca_handles}"
        if rdma.hca_objects is not None:
            value += f" hca_object={rdma.hca_objects}"
        put("rdma", f"rdma.{rdma.device}", ("rdma.max", value))
    for key, value in res.unified:
        put(key.split(".", 1)[0], f"unified.{key}", (key, value), at=2)
    return writes, problems
