"""The config ``pyinit sandbox`` builds: what the plan gets from its options."""

from __future__ import annotations

import argparse

from pyinit import sandbox
from pyinit.oci.config import Config
from pyinit.rootfs.plan import ReadonlyPath, build


def _config(*argv: str) -> Config:
    args = sandbox.parser(argparse.ArgumentParser).parse_args([*argv, "--", "true"])
    args.program = ["true"]
    cfg, _ = sandbox.build(args, "/nonexistent-root")
    return cfg


def test_every_fresh_proc_gets_bubblewraps_read_only_paths() -> None:
    cfg = _config("--proc", "/proc", "--tmpfs", "/tmp", "--proc", "/other/proc/")
    assert cfg.readonly_paths == (
        "/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs",
        "/other/proc/sys", "/other/proc/sysrq-trigger", "/other/proc/irq", "/other/proc/bus",
        "/other/proc/fs")
    steps = [s for s in build(cfg).steps if isinstance(s, ReadonlyPath)]
    assert steps == [ReadonlyPath(p) for p in cfg.readonly_paths]


def test_the_default_layout_has_them_too_and_no_proc_none() -> None:
    assert _config().readonly_paths == (
        "/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs")
    assert _config("--tmpfs", "/tmp").readonly_paths == ()


def test_every_fresh_proc_gets_pyinit_specs_masks() -> None:
    dirs = ("acpi", "asound", "scsi")
    files = ("kcore", "keys", "latency_stats", "timer_list", "timer_stats", "sched_debug")
    # With a /dev, its null covers the files; without one, only the directories are masked.
    assert _config("--proc", "/proc", "--dev", "/dev").masked_paths == tuple(
        f"/proc/{name}" for name in dirs + files)
    assert _config("--proc", "/proc", "--tmpfs", "/dev").masked_paths == tuple(
        f"/proc/{name}" for name in dirs)
    assert _config("--proc", "/p").masked_paths == tuple(f"/p/{name}" for name in dirs)
    assert _config().masked_paths == tuple(f"/proc/{name}" for name in dirs + files)


def test_a_bind_of_the_hosts_sys_gets_firmware_and_powercap_masked() -> None:
    assert _config("--ro-bind", "/sys", "/sys", "--bind", "/", "/host").masked_paths == (
        "/sys/firmware", "/sys/devices/virtual/powercap",
        "/host/sys/firmware", "/host/sys/devices/virtual/powercap")
    assert _config("--ro-bind", "/usr", "/usr").masked_paths == ()
