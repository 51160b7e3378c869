"""The config ``pyinit sandbox`` builds: what the plan gets from its options."""

from __future__ import annotations

import argparse
import os

import pytest

from pyinit import sandbox
from pyinit.oci.config import Config
from pyinit.rootfs.plan import MaskPath, ReadonlyPath, build


def _config(*argv: str) -> Config:
    args = sandbox.parser(argparse.ArgumentParser).parse_args([*argv, "--", "true"])
    args.program = ["true"]
    cfg, _ = sandbox.build(args)
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
    # Files and directories, with or without a /dev: the sandbox masks files with an
    # empty read-only file, never its /dev/null.
    for dev in (("--dev", "/dev"), ("--tmpfs", "/dev"), ()):
        assert _config("--proc", "/proc", *dev).masked_paths == tuple(
            f"/proc/{name}" for name in dirs + files)
    assert _config("--proc", "/p").masked_paths == tuple(f"/p/{name}" for name in dirs + files)
    assert _config().masked_paths == tuple(f"/proc/{name}" for name in dirs + files)
    args = sandbox.parser(argparse.ArgumentParser).parse_args(["--proc", "/proc", "--", "true"])
    args.program = ["true"]
    cfg, run = sandbox.build(args)
    steps = [s for s in build(cfg, run).steps if isinstance(s, MaskPath)]
    assert steps == [MaskPath(p, empty_file=True) for p in cfg.masked_paths]
    # pyinit run (no private root tmpfs) keeps the container's /dev/null.
    assert [s for s in build(cfg).steps if isinstance(s, MaskPath)] == [
        MaskPath(p, where=f"linux.maskedPaths[{i}]") for i, p in enumerate(cfg.masked_paths)]


def test_a_bind_of_the_hosts_sys_gets_firmware_and_powercap_masked() -> None:
    assert _config("--ro-bind", "/sys", "/sys", "--bind", "/", "/host").masked_paths == (
        "/sys/firmware", "/sys/devices/virtual/powercap",
        "/host/sys/firmware", "/host/sys/devices/virtual/powercap")
    assert _config("--ro-bind", "/usr", "/usr").masked_paths == ()
    # The host's directories by identity, however spelled.
    assert _config("--ro-bind", "//sys", "/s", "--ro-bind", "/sys/devices/.", "/d",
                   "--ro-bind", "/sys/firmware", "/f").masked_paths == (
        "/s/firmware", "/s/devices/virtual/powercap", "/d/virtual/powercap", "/f")


def _allowed(cfg: Config) -> set[str]:
    assert cfg.seccomp is not None
    return {name for rule in cfg.seccomp.syscalls if rule.action.name == "SCMP_ACT_ALLOW"
            and not rule.args for name in rule.names}


def test_the_default_filter_lets_only_a_users_unlimited_program_nest(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/sandbox.md, "Seccomp": not for root's program (the host's uid 0), not under
    the sandbox's own cgroup limits, not with --disable-userns."""
    nesting = {"unshare", "setns", "mount", "pivot_root", "clone", "clone3"}
    for euid, options, nests in ((1000, (), True), (1000, ("--pids", "10"), False),
                                 (1000, ("--memory", "64m"), False),
                                 (1000, ("--disable-userns",), False), (0, (), False)):
        monkeypatch.setattr(os, "geteuid", lambda euid=euid: euid)
        cfg = _config(*options)
        assert (euid, options, nesting <= _allowed(cfg)) == (euid, options, nests)
        assert (euid, options, "keyctl" in _allowed(cfg), "bpf" in _allowed(cfg)) == (
            euid, options, False, False)
