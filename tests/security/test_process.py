"""Attacks on the process boundary: PID 1, its descriptors, the runtime's binary, devices.

Each test runs a real attack from inside a real ``pyinit run`` container and
asserts that it fails and that the host is unchanged (conftest.py also checks
the mount table and leftover processes after every test). An attack that
succeeds today is marked xfail(strict): the fix that stops it turns the test
into a failure, and then the marker goes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PYINIT
from tests.integration.test_run import _chown_tree, _userns, edit, run_bundle
from tests.security.conftest import attack_bundle

PTRACE_CAPS = ["CAP_SYS_PTRACE", "CAP_KILL"]


def _caps(cfg: dict[str, Any], caps: list[str]) -> None:
    cfg["process"]["capabilities"] = {k: list(caps) for k in ("bounding", "effective",
                                                              "permitted")}


def _status(text: str, field: str) -> int:
    line = next(x for x in text.splitlines() if x.startswith(field + ":"))
    return int(line.split(":", 1)[1].strip(), 16)


def _run_with_fd9(bundle: Path, directory: Path) -> subprocess.CompletedProcess[str]:
    """``pyinit run 9</host/dir``: the caller leaves a host directory open on fd 9."""
    return subprocess.run(["sh", "-c", 'exec "$0" run --bundle "$1" 9<"$2"', PYINIT,
                           str(bundle), str(directory)], capture_output=True, text=True,
                          timeout=60, check=False, stdin=subprocess.DEVNULL)


def _host_dir(tmp_path: Path) -> Path:
    secret = tmp_path / "host-secret"
    secret.mkdir()
    (secret / "passwords").write_text("hunter2\n")
    return secret


# ---------------------------------------------------------------- finding 2: ptrace
def test_ptrace_into_pid1_gains_nothing(tmp_path: Path, helpers: dict[str, Path]) -> None:
    # Without a user namespace CAP_SYS_PTRACE beats PR_SET_DUMPABLE, so the
    # attach itself cannot be refused: what PID 1 holds must be no more than
    # what the workload already has.
    bundle = attack_bundle(tmp_path, "ptrace 1; echo ---; cat /proc/1/status; echo ---;"
                           " cat /proc/self/status", helpers)
    edit(bundle, lambda c: _caps(c, PTRACE_CAPS))
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    attempts, pid1, mine = res.stdout.split("---\n")
    assert attempts == "attach: ok\nseize: ok\nmem: ok\n"  # the kernel allows this here
    assert _status(pid1, "CapPrm") & ~_status(mine, "CapPrm") == 0
    assert _status(pid1, "CapBnd") & ~_status(mine, "CapBnd") == 0
    assert "NoNewPrivs:\t1" in pid1


def test_ptrace_into_pid1_is_refused_in_a_user_namespace(reachable: Path,
                                                         helpers: dict[str, Path]) -> None:
    bundle = attack_bundle(reachable, "ptrace 1", helpers)

    def change(cfg: dict[str, Any]) -> None:
        _userns(cfg)
        _caps(cfg, PTRACE_CAPS)
    edit(bundle, change)
    _chown_tree(bundle / "rootfs", 100000, 100000)
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "attach: EPERM\nseize: EPERM\nmem: EACCES\n"


# ---------------------------------------------------------------- finding 2: descriptors
# /proc/1/fd needs ptrace read access to PID 1. With its default capabilities
# the workload has less than PID 1 today, so the kernel refuses; a workload
# with CAP_SYS_PTRACE (no user namespace) always passes, so only closing the
# descriptor protects it.
@pytest.mark.parametrize("caps", [None, PTRACE_CAPS],
                         ids=["default-caps", "cap-sys-ptrace"])
def test_cd_into_pid1s_inherited_host_directory(tmp_path: Path, helpers: dict[str, Path],
                                                caps: list[str] | None) -> None:
    secret = _host_dir(tmp_path)
    bundle = attack_bundle(tmp_path, "cd /proc/1/fd/9 2>/dev/null && cat passwords;"
                           " echo planted > /proc/1/fd/9/planted 2>/dev/null; echo done",
                           helpers)
    if caps is not None:
        edit(bundle, lambda c: _caps(c, caps))
    res = _run_with_fd9(bundle, secret)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "done\n"
    assert sorted(p.name for p in secret.iterdir()) == ["passwords"]


def test_pid1_holds_no_path_outside_the_container(tmp_path: Path,
                                                  helpers: dict[str, Path]) -> None:
    bundle = attack_bundle(tmp_path, "for f in /proc/1/fd/*; do readlink $f; done; exit 0",
                           helpers)
    edit(bundle, lambda c: _caps(c, PTRACE_CAPS))
    res = _run_with_fd9(bundle, _host_dir(tmp_path))
    assert res.returncode == 0, res.stderr
    paths = {x for x in res.stdout.splitlines() if x.startswith("/")}
    # Pipes, sockets and anon inodes are not paths; "/" is the container's root,
    # "/proc" the container's own procfs its shutdown reads (pyinit/proc.py).
    assert paths <= {"/", "/dev/null", "/proc"}, paths


def test_the_workload_inherits_only_its_stdio(tmp_path: Path, helpers: dict[str, Path]) -> None:
    # runc's "detect fd leak as comprehensively as possible": the exec'd
    # workload (busybox ls opens its own directory fd, 3) sees 0, 1, 2 only.
    bundle = attack_bundle(tmp_path, "ls /proc/self/fd", helpers)
    res = _run_with_fd9(bundle, _host_dir(tmp_path))
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["0", "1", "2", "3"]


def test_no_host_descriptor_is_reachable_during_setup(tmp_path: Path,
                                                      helpers: dict[str, Path]) -> None:
    # CVE-2016-9962: runc's init held a host directory fd while in the
    # container. A startContainer hook runs inside during setup: every
    # process it can see must hold no path outside the container.
    bundle = attack_bundle(tmp_path, "cat /fds", helpers)
    edit(bundle, lambda c: (c["root"].update(readonly=False), c.update(hooks={
        "startContainer": [{"path": "/bin/sh", "args": [
            "sh", "-c", "for f in /proc/[0-9]*/fd/*; do readlink $f; done > /fds; exit 0"]}]})))
    res = _run_with_fd9(bundle, _host_dir(tmp_path))
    assert res.returncode == 0, res.stderr
    paths = {x for x in res.stdout.splitlines() if x.startswith("/")}
    assert paths <= {"/", "/dev/null", "/fds"}, paths  # "/": the container's root


def test_short_lived_setup_process_cannot_be_seized(tmp_path: Path,
                                                    helpers: dict[str, Path]) -> None:
    # The processes between PID 1 and the workload's execve run pyinit's
    # code. startContainer hooks run from them (the workload's process, and
    # the runner it forks), so while a hook runs they are always there to
    # find: a hook's child looks for one (its comm is "pyinit") and
    # PTRACE_SEIZEs it. They hold the workload's identity already and are not
    # dumpable until the exec, so without CAP_SYS_PTRACE it is refused; what
    # a hook leaves behind in its group is killed before the exec.
    bundle = attack_bundle(tmp_path, "true", helpers)
    edit(bundle, lambda c: (c["root"].update(readonly=False), c.update(hooks={
        "startContainer": [{"path": "/bin/sh", "args": [
            "sh", "-c", "seize pyinit /report /ready </dev/null >/dev/null 2>&1"]}]})))
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    assert (bundle / "rootfs" / "report").read_text() == "refused pyinit: EPERM\n"


# ---------------------------------------------------------------- CVE-2019-5736
def _sha256(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


@pytest.mark.parametrize(("caps", "expected"), [
    (None, "handle: EACCES\nwrite-open: EACCES\n"),
    (PTRACE_CAPS, "handle: ok\nwrite-open: ETXTBSY\nreopen-write: ETXTBSY\n"),
], ids=["default-caps", "cap-sys-ptrace"])
def test_the_runtime_binary_cannot_be_overwritten(tmp_path: Path, helpers: dict[str, Path],
                                                  caps: list[str] | None, expected: str) -> None:
    # CVE-2019-5736: the container's root reopens the runtime's binary,
    # /proc/PID/exe, for writing. pyinit's PID 1 is the host's interpreter:
    # out of reach without CAP_SYS_PTRACE; with it, the running interpreter
    # cannot be opened for writing (ETXTBSY), and when PID 1 exits the whole
    # PID namespace, the attacker included, is gone. The helper never writes.
    interpreter = os.path.realpath(sys.executable)
    before = _sha256(interpreter)
    bundle = attack_bundle(tmp_path, "exe 1", helpers)
    if caps is not None:
        edit(bundle, lambda c: _caps(c, caps))
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    assert res.stdout == expected
    assert _sha256(interpreter) == before


# ---------------------------------------------------------------- finding 3: devices
@pytest.mark.parametrize("readonly", [True, False], ids=["ro-root", "rw-root"])
def test_image_device_node_is_unusable(tmp_path: Path, helpers: dict[str, Path],
                                       readonly: bool) -> None:
    # The image ships the host's disk as a world-readable block device; the
    # workload is uid 65534 with no capability. The default deny-all device
    # rule holds without a device cgroup because the root is nodev.
    disk = os.stat("/").st_dev
    bundle = attack_bundle(tmp_path, "head -c 512 /disk >/dev/null && echo read-the-disk;"
                           " head -c 1 /zero >/dev/null && echo read-zero; echo done", helpers)
    os.mknod(bundle / "rootfs" / "disk", 0o60666, disk)
    os.chmod(bundle / "rootfs" / "disk", 0o666)
    os.mknod(bundle / "rootfs" / "zero", 0o20666, os.makedev(1, 5))
    os.chmod(bundle / "rootfs" / "zero", 0o666)
    edit(bundle, lambda c: (c["process"].update(user={"uid": 65534, "gid": 65534}),
                            c["root"].update(readonly=readonly)))
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "done\n"
    assert res.stderr.count("Permission denied") == 2, res.stderr


def test_bound_host_dev_is_nodev(tmp_path: Path, helpers: dict[str, Path]) -> None:
    bundle = attack_bundle(tmp_path, "head -c 1 /hostdev/zero >/dev/null && echo read;"
                           " grep ' /hostdev ' /proc/self/mountinfo | cut -d' ' -f6", helpers)
    edit(bundle, lambda c: c["mounts"].append(
        {"destination": "/hostdev", "type": "bind", "source": "/dev", "options": ["rbind"]}))
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    assert "nodev" in res.stdout.strip().split(","), res.stdout
    assert "head: /hostdev/zero: Permission denied" in res.stderr.splitlines()
