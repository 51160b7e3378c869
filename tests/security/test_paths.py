"""runc's published path CVEs (2019-2025) that are not mount races, against ``pyinit run``.

The image (its files and symlinks) and the volumes are the attacker's. Each
test asserts that the attack fails and that the host file or directory it
aimed at is unchanged; conftest.py checks the host's mount table too. The
mount races (CVE-2021-30465, a volume behind ``/data -> /proc``) are in
test_mounts.py.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_run import _dev_from_the_image, _one_line, edit, run_bundle
from tests.security.conftest import attack_bundle

CORE_PATTERN = "/proc/sys/kernel/core_pattern"


def _read(path: str) -> str:
    with open(path) as fh:
        return fh.read()


# ---------------------------------------------------------------- CVE-2019-16884
def test_a_volume_over_proc_is_refused(tmp_path: Path, helpers: dict[str, Path]) -> None:
    # CVE-2019-16884: a volume at /proc with a fake self/attr/exec, so the
    # runtime's LSM label write lands in a plain file and the process runs
    # unconfined.
    fake = tmp_path / "fake-proc"
    (fake / "self" / "attr").mkdir(parents=True)
    (fake / "self" / "attr" / "exec").write_text("unconfined\n")
    bundle = attack_bundle(tmp_path, "echo should-not-run", helpers)
    edit(bundle, lambda c: c["mounts"].__setitem__(
        0, {"destination": "/proc", "type": "bind", "source": str(fake), "options": ["rbind"]}))
    res = run_bundle(bundle)
    assert _one_line(res) == ("pyinit: mounts[0]: mount (/proc): only a fresh proc may be "
                              "mounted on /proc; use type proc, or drop this mount")
    assert res.stdout == ""
    assert (fake / "self" / "attr" / "exec").read_text() == "unconfined\n"
    assert sorted(str(p.relative_to(fake)) for p in fake.rglob("*")) == [
        "self", "self/attr", "self/attr/exec"]


# ------------------------------------------- CVE-2019-19921, CVE-2023-27561, CVE-2023-28642
@pytest.mark.parametrize("name", ["proc", "sys"])
@pytest.mark.parametrize("target", ["relative", "absolute"])
def test_symlinked_proc_or_sys_is_refused(tmp_path: Path, helpers: dict[str, Path], name: str,
                                          target: str) -> None:
    # The image's /proc (or /sys) is a symlink: mounted through it, procfs
    # lands where the attacker wants, and maskedPaths/readonlyPaths protect
    # a decoy while the real files stay open (CVE-2023-28642's AppArmor
    # bypass). The regression CVE-2023-27561 resolved the link before the check.
    decoy = tmp_path / "decoy"
    decoy.mkdir()
    bundle = attack_bundle(tmp_path, "echo should-not-run", helpers)
    inside = bundle / "rootfs" / "decoy"
    inside.mkdir()
    link = bundle / "rootfs" / name
    link.symlink_to("decoy" if target == "relative" else str(decoy))
    res = run_bundle(bundle)
    points_to = "decoy" if target == "relative" else str(decoy)
    fstype = "proc" if name == "proc" else "sysfs"
    assert _one_line(res) == (
        f"pyinit: mounts[{0 if name == 'proc' else 5}]: mount (/{name}): {fstype} must be "
        f"mounted on an ordinary directory, and /{name} is a symlink that points to "
        f"{points_to} in the image; a symlinked /proc or /sys could send the mount outside "
        "the container (CVE-2019-19921); fix the image")
    assert res.stdout == ""
    assert list(decoy.iterdir()) == [] and list(inside.iterdir()) == []


# ---------------------------------------------------------------- CVE-2024-45310
def _host_target(tmp_path: Path) -> Path:
    host = tmp_path / "host-target"
    host.mkdir()
    return host


def test_nothing_is_created_on_the_host_through_symlinks(tmp_path: Path,
                                                         helpers: dict[str, Path]) -> None:
    # CVE-2024-45310: the runtime creates mount points and device nodes;
    # symlinks in the image aim each at a host directory, absolute or
    # climbing out with "..". Both must be created inside the root.
    host = _host_target(tmp_path)
    src = tmp_path / "volume"
    src.mkdir()
    bundle = attack_bundle(tmp_path, "ls -d /m/a/b /dv/node", helpers)
    rootfs = bundle / "rootfs"
    (rootfs / "m").symlink_to(str(host))
    (rootfs / "dv").symlink_to("../" * 12 + str(host).lstrip("/"))

    def change(cfg: dict[str, Any]) -> None:
        cfg["mounts"].append({"destination": "/m/a/b", "type": "bind", "source": str(src),
                              "options": ["bind"]})
        cfg["linux"]["devices"] = [{"type": "c", "path": "/dv/node", "major": 1, "minor": 3}]
    edit(bundle, change)
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["/dv/node", "/m/a/b"]  # ls sorts
    assert list(host.iterdir()) == []  # the host directory is untouched
    inside = rootfs / str(host).lstrip("/")
    assert sorted(str(p.relative_to(inside)) for p in inside.rglob("*")) == ["a", "a/b", "node"]


def test_the_working_directory_is_not_created_on_the_host(tmp_path: Path,
                                                          helpers: dict[str, Path]) -> None:
    host = _host_target(tmp_path)
    bundle = attack_bundle(tmp_path, "echo should-not-run", helpers)
    (bundle / "rootfs" / "w").symlink_to("../" * 12 + str(host).lstrip("/"))
    edit(bundle, lambda c: c["process"].update(cwd="/w/x/y"))
    res = run_bundle(bundle)
    # Created inside the root, then refused: a working directory reached
    # through a symlink is not the one the config names.
    assert _one_line(res) == (f"pyinit: process.cwd: the working directory is {host}/x/y, "
                              "not /w/x/y")
    assert res.stdout == ""
    assert list(host.iterdir()) == []
    inside = bundle / "rootfs" / str(host).lstrip("/")
    assert sorted(str(p.relative_to(inside)) for p in inside.rglob("*")) == ["x", "x/y"]


# ---------------------------------------------------------------- CVE-2025-31133
def test_dev_null_symlinked_to_a_procfs_file_is_refused(tmp_path: Path,
                                                        helpers: dict[str, Path]) -> None:
    # The runtime masks files by binding /dev/null over them; the image's
    # /dev/null points at core_pattern, so the mask would make that file
    # writable at every masked path.
    before = _read(CORE_PATTERN)
    bundle = attack_bundle(tmp_path, "echo should-not-run", helpers)
    (_dev_from_the_image(bundle) / "null").symlink_to(CORE_PATTERN)
    res = run_bundle(bundle)
    assert _one_line(res) == ("pyinit: device: /dev/null exists and is not the device c 1:3")
    assert res.stdout == ""
    assert _read(CORE_PATTERN) == before


def test_masks_hold_when_the_image_has_no_dev_null(tmp_path: Path,
                                                   helpers: dict[str, Path]) -> None:
    # The other half of CVE-2025-31133: with /dev/null deleted, runc skipped
    # the masks silently. Every masked file must read empty.
    masked = [p for p in ("/proc/keys", "/proc/timer_list", "/proc/kcore", "/proc/sched_debug",
                          "/proc/latency_stats", "/proc/timer_stats")
              if os.path.isfile(p)]
    assert masked, "this kernel has none of the masked /proc files"
    script = "; ".join(f"echo {p} $(head -c 64 {p} | wc -c)" for p in masked)
    bundle = attack_bundle(tmp_path, script, helpers)
    _dev_from_the_image(bundle)  # an empty /dev: no null at all
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [f"{p} 0" for p in masked]


# ---------------------------------------------------------------- CVE-2025-52565
def test_dev_console_symlinked_to_a_procfs_file(tmp_path: Path,
                                                helpers: dict[str, Path]) -> None:
    # The image's /dev/console points at core_pattern: writing "the console"
    # must not reach the host's kernel setting.
    before = _read(CORE_PATTERN)
    bundle = attack_bundle(tmp_path, "echo '|/tmp/pwn' > /dev/console; echo rc=$?", helpers)
    (_dev_from_the_image(bundle) / "console").symlink_to(CORE_PATTERN)
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "rc=1\n"
    # busybox writes "sh: " apart, and pyinit's log lines share the pipe: one
    # may land in between, so the JSON lines are taken out before matching.
    workload = re.sub(r'\{"[^\n]*\}\n', "", res.stderr)
    assert "sh: can't create /dev/console: Read-only file system\n" in workload
    assert _read(CORE_PATTERN) == before


# ---------------------------------------------------------------- CVE-2025-52881
def test_sysctl_write_is_not_redirected_by_a_volume(tmp_path: Path,
                                                    helpers: dict[str, Path]) -> None:
    # A volume laid over the sysctl's /proc/sys file would receive the
    # runtime's write (or hand it a harmless-looking file instead of the
    # real setting). Refused before anything is written.
    decoy = tmp_path / "decoy-domainname"
    decoy.write_text("untouched\n")
    bundle = attack_bundle(tmp_path, "echo should-not-run", helpers)

    def change(cfg: dict[str, Any]) -> None:
        cfg["linux"]["sysctl"] = {"kernel.domainname": "evil"}
        cfg["mounts"].append({"destination": "/proc/sys/kernel/domainname", "type": "bind",
                              "source": str(decoy), "options": ["bind"]})
    edit(bundle, change)
    res = run_bundle(bundle)
    assert _one_line(res) == ("pyinit: mounts[7]: mount (/proc/sys/kernel/domainname): mounts "
                              "under /proc are refused (only runc's lxcfs allowlist is accepted)")
    assert decoy.read_text() == "untouched\n"
