"""``pyinit run --cgroup-manager systemd`` under a real systemd (252, Debian 12).

This machine has no systemd, so one is booted in a container: the image
``localhost/systemd-base:bookworm`` (tools/build-base-images.sh --only systemd:
debootstrap with systemd, dbus and python3; built once, then cached in podman's
store) runs ``/sbin/init`` under podman with no network. pyinit comes in
read-only by bind mounts (this checkout, and the venv's site-packages for trio
and structlog: pure Python, and the image's Python is 3.11 too) and runs as root
inside, where it talks to that systemd over the container's system bus.

podman's ``--systemd=always`` is not used: on this hybrid host it mounts the
host's whole ``name=systemd`` hierarchy into the container, and the container's
systemd then makes its units (init.scope, system.slice, ...) at the root of the
host's hierarchy. Instead the container gets a cgroup namespace of its own
(``--cgroupns=private``) and its cgroup hierarchies writable
(``--privileged``; otherwise podman mounts the v1 controllers read-only and
systemd can make its cgroups only in ``name=systemd``); what it makes stays
below the container's own cgroup, which podman removes with it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sysconfig
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, wait_for
from tests.integration.test_image import podman, podman_env
from tests.integration.test_run import edit, make_bundle

pytestmark = pytest.mark.root
IMAGE = "localhost/systemd-base:bookworm"
MiB = 1 << 20


@pytest.fixture(scope="session")
def image() -> str:
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed (tools/install.sh installs it)")
    res = subprocess.run([str(ROOT / "tools" / "build-base-images.sh"), "--only", "systemd"],
                         capture_output=True, text=True, timeout=1200, env=podman_env(),
                         stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr[-3000:]
    return IMAGE


@pytest.fixture
def booted(image: str, tmp_path: Path) -> Iterator[str]:
    """A container whose PID 1 is systemd, up and running; tmp_path is its /work."""
    name = f"pyinit-systemd-{uuid.uuid4().hex[:12]}"
    site = sysconfig.get_paths()["purelib"]
    res = podman("run", "-d", "--name", name, "--systemd=false", "-e", "container=podman",
                 "--stop-signal", "SIGRTMIN+3", "--privileged", "--cgroupns=private",
                 "-v", f"{ROOT}:/pyinit:ro", "-v", f"{site}:/site:ro",
                 "-v", f"{tmp_path}:/work", image, "/sbin/init")
    try:
        assert res.returncode == 0, res.stderr
        # systemctl fails at once while systemd's socket is not there yet, then --wait
        # blocks until the boot is over.
        state = wait_for(lambda: podman("exec", name, "systemctl", "is-system-running",
                                        "--wait").stdout.strip() or None,
                         timeout=120, what="systemd in the container")
        assert state == "running"
        yield name
    finally:
        podman("rm", "-f", "-t", "0", name)


def show(name: str, unit: str, *props: str) -> dict[str, str]:
    res = podman("exec", name, "systemctl", "show", unit, *(f"-p{p}" for p in props))
    assert res.returncode == 0, res.stderr
    return dict(line.split("=", 1) for line in res.stdout.splitlines())


def test_a_real_systemd_starts_the_scope_the_limits_hold_and_it_is_gone_after(
        booted: str, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    # the limits as the container sees them; ready; then more memory than allowed
    bundle = make_bundle(tmp_path / "b", (
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max "
        "/sys/fs/cgroup/cpu/cpu.cfs_quota_us > /shared/limits; touch /shared/ready; "
        "while [ ! -e /shared/go ]; do sleep 0.05; done; "
        "exec dd if=/dev/zero of=/dev/null bs=200M count=1"))

    def change(cfg: dict[str, object]) -> None:
        linux = cfg["linux"]
        assert isinstance(linux, dict)
        linux["cgroupsPath"] = "system.slice:pyinit:real"
        linux["resources"] = {"memory": {"limit": 64 * MiB}, "pids": {"limit": 20},
                              "cpu": {"quota": 50000, "period": 100000}}
        mounts = cfg["mounts"]
        assert isinstance(mounts, list)
        mounts.append({"destination": "/shared", "type": "bind", "source": "/work/shared",
                       "options": ["rbind", "rw"]})
    edit(bundle, change)
    proc = subprocess.Popen(
        ["podman", "exec", "-e", "PYTHONPATH=/pyinit:/site", booted, "python3",
         "/pyinit/scripts/pyinit-py", "run", "--cgroup-manager", "systemd", "--log-format", "json",
         "--id", "real", "--bundle", "/work/b"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=podman_env(),
        stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: (shared / "ready").exists() or proc.poll() is not None, timeout=120,
                 what="the workload in its scope")
        assert proc.poll() is None, proc.communicate()
        assert show(booted, "pyinit-real.scope", "ActiveState", "Slice", "Delegate",
                    "ControlGroup", "MemoryLimit", "TasksMax", "CPUQuotaPerSecUSec",
                    "Description") == {
            "ActiveState": "active", "Slice": "system.slice", "Delegate": "yes",
            "ControlGroup": "/system.slice/pyinit-real.scope",
            "MemoryLimit": str(64 * MiB), "TasksMax": "20", "CPUQuotaPerSecUSec": "500ms",
            "Description": "pyinit container real"}
        assert (shared / "limits").read_text() == f"{64 * MiB}\n20\n50000\n"
        (shared / "go").touch()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    # dd was OOM-killed at the scope's limit: SIGKILL, 137
    assert (proc.returncode, out) == (137, ""), err
    log = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    started = next(e for e in log if e["event"] == "cgroup.scope_started")
    assert (started["unit"], started["slice"], started["control_group"]) == (
        "pyinit-real.scope", "system.slice", "/system.slice/pyinit-real.scope")
    assert show(booted, "pyinit-real.scope", "LoadState") == {"LoadState": "not-found"}
    left = podman("exec", booted, "find", "/sys/fs/cgroup", "-name", "pyinit-real.scope")
    assert (left.returncode, left.stdout) == (0, "")
