"""Attacks on pyinit's mount path (issue 9, findings 1, 3, 6 and 7), run for real.

- CVE-2021-30465 (runc): a symlink exchanged with a mount's destination
  between the bind and its read-only remount; here the race runs 200 times.
- CVE-2019-19921 / finding 1: an image symlink that sends a volume into /proc.
- Finding 3: device nodes on the image or on a volume (nodev).
- Finding 7: a post-mount command that writes by name through an image symlink.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PYINIT
from tests.integration.test_run import edit, make_bundle, run_bundle

pytestmark = pytest.mark.root

EXIT_SETUP_FAILED = 125
RUNS = int(os.environ.get("PYINIT_RACE_RUNS", "200"))
HINT = ("a mount inside /proc or /sys could replace what the kernel shows the container "
        "there (runc's checkProcMount, CVE-2019-19921 and CVE-2025-52881): mount elsewhere, "
        "or use the filesystem's own type")

# Keeps exchanging two names with renameat2(RENAME_EXCHANGE) until killed;
# writes "ready" once it has swapped, and the number of swaps when it stops.
RACER = textwrap.dedent("""
    import ctypes, os, signal, sys
    libc = ctypes.CDLL(None, use_errno=True)
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    a, b = (p.encode() for p in sys.argv[1:3])
    count = 0
    def stop(*_):
        print(count, flush=True)
        os._exit(0)
    signal.signal(signal.SIGTERM, stop)
    os.nice(10)  # share the machine: pyinit and other tests first
    while True:
        if libc.renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) == 0:
            count += 1
            if count == 1:
                print("ready", flush=True)
""")


def test_cve_2021_30465_exchanging_the_destination_never_leaves_a_writable_bind(
        tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "marker").write_text("secret\n")
    # Whatever name the bind has at the moment, the workload tries to write
    # into it; a win is a new file in the secret directory on the host.
    # The names flip while it runs too, so it tries 50 times.
    bundle = make_bundle(tmp_path, "i=0; while [ $i -lt 50 ]; do i=$((i+1));"
                         " touch /vol/ro/pwned /vol/link/pwned 2>/dev/null; done; true")
    # The volume is shared with an attacker on the host, who keeps exchanging
    # the ro bind's destination with a symlink to /.
    vol = tmp_path / "volume"
    vol.mkdir()
    (vol / "ro").mkdir()
    (vol / "link").symlink_to("/")

    def change(cfg: dict[str, Any]) -> None:
        # Only what the race needs, so that 200 runs stay short.
        cfg["root"] = {"path": "rootfs", "readonly": False}
        cfg["mounts"] = [
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs"},
            {"destination": "/vol", "source": str(vol), "options": ["rbind"]},
            {"destination": "/vol/ro", "source": str(secret), "options": ["bind", "ro"]}]
        cfg["linux"] = {"namespaces": [{"type": "mount"}, {"type": "pid"}]}
        cfg.pop("hostname", None)
    edit(bundle, change)
    racer = subprocess.Popen([sys.executable, "-c", RACER, str(vol / "ro"), str(vol / "link")],
                             stdout=subprocess.PIPE, text=True)
    assert racer.stdout is not None
    assert racer.stdout.readline() == "ready\n"
    wins = 0
    outcomes = {"ran": 0, "refused": 0}
    try:
        for _ in range(RUNS):
            res = run_bundle(bundle, "--log-level", "error")
            if res.returncode == 0:
                outcomes["ran"] += 1
            else:  # the lookup went through the symlink: refused, never mounted there
                assert res.stderr.splitlines()[-1] == (
                    "pyinit: mounts[2]: mount (/vol/ro): the destination resolves to the "
                    "container's root itself; a symlink in the image or a volume (or a rename "
                    "racing the lookup) led there; pyinit never mounts over the root: fix "
                    "the path or the volume"), res.stderr
                outcomes["refused"] += 1
            if (secret / "pwned").exists():
                wins += 1
                (secret / "pwned").unlink()
    finally:
        racer.terminate()
        swaps = int(racer.communicate(timeout=30)[0])
    assert wins == 0, outcomes
    assert sorted(p.name for p in secret.iterdir()) == ["marker"]
    assert swaps > RUNS  # the race really ran during the runs
    assert outcomes["ran"] > 0, outcomes


def test_a_volume_behind_an_image_symlink_to_proc_is_refused(tmp_path: Path) -> None:
    volume = tmp_path / "volume"
    (volume / "sys" / "kernel").mkdir(parents=True)
    (volume / "sys" / "kernel" / "cap_last_cap").write_text("-1\n")
    bundle = make_bundle(tmp_path, "echo should-not-run")
    (bundle / "rootfs" / "data").symlink_to("/proc")
    edit(bundle, lambda c: c["mounts"].append(
        {"destination": "/data", "source": str(volume), "options": ["rbind"]}))
    res = run_bundle(bundle)
    assert res.returncode == EXIT_SETUP_FAILED, res.stderr
    assert res.stderr.splitlines()[-1] == (
        "pyinit: mounts[7]: mount (/data): the destination resolves into /proc (a procfs "
        "mount is there); only /proc's and /sys's own mounts may be made there; a mount "
        "inside /proc or /sys could replace what the kernel shows the container there "
        "(runc's checkProcMount, CVE-2019-19921 and CVE-2025-52881): mount elsewhere, or "
        "use the filesystem's own type")
    assert "should-not-run" not in res.stdout


@pytest.mark.parametrize(("dest", "reason"), [
    ("/proc/sys/kernel", "mounts under /proc are refused (only runc's lxcfs allowlist is "
                         "accepted)"),
    ("/sys/kernel/debug", "mounts under /sys are refused (only cgroup on /sys/fs/cgroup is "
                          f"accepted); {HINT}"),
])
def test_check_refuses_exactly_what_run_refuses(tmp_path: Path, dest: str, reason: str) -> None:
    bundle = make_bundle(tmp_path, "echo should-not-run")
    edit(bundle, lambda c: c["mounts"].append({"destination": dest, "type": "tmpfs",
                                              "source": "tmpfs"}))
    res = run_bundle(bundle)
    check = subprocess.run([PYINIT, "check", "--bundle", str(bundle)], capture_output=True,
                           text=True, check=False)
    line = f"mounts[7]: mount ({dest}): {reason}"
    assert res.returncode == EXIT_SETUP_FAILED
    assert res.stderr.splitlines()[-1] == f"pyinit: {line}"
    assert check.returncode == 1
    assert check.stdout == f"{line}\n"


def test_device_nodes_on_the_image_and_on_volumes_do_not_work(tmp_path: Path) -> None:
    volume = tmp_path / "volume"
    volume.mkdir()
    os.mknod(volume / "zero", stat.S_IFCHR | 0o666, os.makedev(1, 5))
    bundle = make_bundle(tmp_path, "head -c1 /opt/zero >/dev/null 2>&1 && echo image-dev-works;"
                         " head -c1 /vol/zero >/dev/null 2>&1 && echo volume-dev-works;"
                         " head -c1 /devvol/zero >/dev/null 2>&1 && echo dev-option-works;"
                         " head -c1 /dev/zero >/dev/null && echo dev-zero-works")
    (bundle / "rootfs" / "opt").mkdir()
    os.mknod(bundle / "rootfs" / "opt" / "zero", stat.S_IFCHR | 0o666, os.makedev(1, 5))

    def change(cfg: dict[str, Any]) -> None:
        # No device deny rule (it would refuse `dev`, refusals.py): nodev alone.
        cfg["linux"].pop("resources", None)
        cfg["mounts"] += [{"destination": "/vol", "source": str(volume), "options": ["rbind"]},
                          {"destination": "/devvol", "source": str(volume),
                           "options": ["rbind", "dev"]}]
    edit(bundle, change)
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["dev-option-works", "dev-zero-works"]


def test_post_mount_command_writes_into_the_new_mount_not_through_the_image(
        tmp_path: Path) -> None:
    host_dir = tmp_path / "host-dir"
    host_dir.mkdir()
    bundle = make_bundle(tmp_path, "cat /data/seeded; ls /data")
    # The image's /data points at a host path: by name it would lead out.
    (bundle / "rootfs" / "data").symlink_to(host_dir)
    edit(bundle, lambda c: c["mounts"].append({
        "destination": "/data", "type": "tmpfs", "source": "tmpfs",
        "io.pyinit.postmount": [{"path": "/bin/sh",
                                 "args": ["sh", "-c", "echo seeded > seeded; pwd -P >&2"]}]}))
    res = run_bundle(bundle, "--log-format", "json")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["seeded", "seeded"]
    assert list(host_dir.iterdir()) == []
