"""``pyinit run --cgroup-manager systemd`` against a stand-in systemd on a real bus.

This machine has no systemd. What runs here: a private ``dbus-daemon`` (the real
bus, which checks every message pyinit sends), a stand-in for systemd's
``org.freedesktop.systemd1`` on it (tests/helpers/fake_systemd.py, GLib's D-Bus
under the system's python3) that records each call and, as systemd does on a
hybrid host, makes the scope's cgroup in the unified and ``name=systemd``
hierarchies with the PIDs in it, and the real pyinit, pointed at the bus by
``DBUS_SYSTEM_BUS_ADDRESS`` (as any D-Bus client is) in a private mount
namespace whose ``/run/systemd/system`` exists (sd_booted). The limits must
hold in the container, and nothing may be left in any hierarchy afterwards.
tests/integration/test_systemd_real.py runs the same against systemd itself.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pyinit import cgroups
from tests.conftest import PYINIT, event
from tests.integration.test_run import edit, make_bundle

pytestmark = pytest.mark.root
HELPER = Path(__file__).parent.parent / "helpers" / "fake_systemd.py"
SYSTEM_PYTHON = "/usr/bin/python3"  # with python3-gi (tools/install.sh)
MiB = 1 << 20
BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>custom</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="root"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""


@dataclass
class FakeSystemd:
    address: str
    record: Path
    slice: str  # a slice of its own per test: /<slice>/ in every hierarchy

    def calls(self) -> list[dict[str, Any]]:
        text = self.record.read_text() if self.record.exists() else ""
        return [json.loads(line) for line in text.splitlines()]


def _roots() -> str:
    host = cgroups.detect()
    named = [h.mount_point for h in host.hierarchies
             if h.version == 2 or h.name == "name=systemd"]
    return ":".join(named)


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[FakeSystemd]:
    if shutil.which("dbus-daemon") is None:
        pytest.fail("dbus-daemon is not installed (tools/install.sh installs it)")
    home = tmp_path / "bus"
    home.mkdir()
    config = home / "bus.conf"
    config.write_text(BUS_CONFIG.format(socket=home / "socket"))
    daemon = subprocess.Popen(["dbus-daemon", "--nofork", f"--config-file={config}",
                               "--print-address=1"], stdout=subprocess.PIPE, text=True,
                              stdin=subprocess.DEVNULL)
    fake = None
    name = f"pyinittest{uuid.uuid4().hex[:10]}.slice"
    try:
        assert daemon.stdout is not None
        address = daemon.stdout.readline().strip()  # printed once it listens
        record = home / "calls.jsonl"
        fake = subprocess.Popen([SYSTEM_PYTHON, str(HELPER), address, str(record), _roots()],
                                stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        assert fake.stdout is not None
        assert fake.stdout.readline() == "ready\n"
        yield FakeSystemd(address, record, name)
    finally:
        for proc in (fake, daemon):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=10)
                if proc.stdout is not None:
                    proc.stdout.close()
    host = cgroups.detect()
    left = [h.directory(f"/{name}") for h in host.hierarchies
            if os.path.exists(h.directory(f"/{name}"))]
    for directory in sorted(left, reverse=True):
        for sub, _dirs, _files in sorted(os.walk(directory), reverse=True):
            os.rmdir(sub)
    assert left == [], f"cgroup directories left behind: {left}"


def run_with_systemd(bundle: Path, tmp_path: Path, address: str | None,
                     booted: bool = True) -> subprocess.CompletedProcess[str]:
    """pyinit run --cgroup-manager systemd in a private mount namespace where
    /run/systemd/system exists (``booted``) or not; the bus at ``address``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBUS_")}
    env["PYINIT_CGROUP_STATE_DIR"] = str(tmp_path / "state")
    if address is not None:
        env["DBUS_SYSTEM_BUS_ADDRESS"] = address
    booted_cmd = "mkdir /run/systemd/system && " if booted else ""
    script = (f"mount -t tmpfs -o mode=755 tmpfs /run/systemd && {booted_cmd}"
              'exec "$0" run --cgroup-manager systemd --id sd-test --bundle "$1"')
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                           script, PYINIT, str(bundle)], capture_output=True, text=True,
                          timeout=60, check=False, stdin=subprocess.DEVNULL, env=env)


def test_the_scope_is_asked_of_systemd_and_the_limits_hold(tmp_path: Path,
                                                           systemd: FakeSystemd) -> None:
    bundle = make_bundle(tmp_path / "b", "cat /proc/self/cgroup; cat "
                         "/sys/fs/cgroup/memory/memory.limit_in_bytes "
                         "/sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/cpu/cpu.shares "
                         "/sys/fs/cgroup/cpu/cpu.cfs_quota_us")

    def change(cfg: dict[str, Any]) -> None:
        cfg["linux"]["cgroupsPath"] = f"{systemd.slice}:pyinit:web"
        cfg["linux"]["resources"] = {"memory": {"limit": 96 * MiB}, "pids": {"limit": 20},
                                     "cpu": {"shares": 512, "quota": 25000,
                                             "period": 100000}}
    edit(bundle, change)
    res = run_with_systemd(bundle, tmp_path, systemd.address)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[-4:] == [str(96 * MiB), "20", "512", "25000"]
    # in the scope in every hierarchy, as the cgroup namespace's root
    assert sorted(lines[:-4]) == sorted(
        f"{line.rsplit(':', 1)[0]}:/" for line in Path("/proc/self/cgroup").read_text().split())
    started = event(res.stderr, "cgroup.scope_started")
    calls = systemd.calls()
    middle = calls[0]["properties"][3][2][0]  # the middle process: gone, not ours
    assert isinstance(middle, int) and middle not in (0, os.getpid())
    assert calls == [
        {"method": "StartTransientUnit", "unit": "pyinit-web.scope", "mode": "fail", "aux": [],
         "properties": [
             ["Description", "s", "pyinit container sd-test"],
             ["Slice", "s", systemd.slice],
             ["Delegate", "b", True],
             ["PIDs", "au", [middle]],
             ["DefaultDependencies", "b", False],
             ["MemoryAccounting", "b", True],
             ["CPUAccounting", "b", True],
             ["BlockIOAccounting", "b", True],  # hybrid host: systemd's v1 names
             ["TasksAccounting", "b", True],
             ["MemoryLimit", "t", 96 * MiB],
             ["CPUShares", "t", 512],
             ["CPUQuotaPerSecUSec", "t", 250000],
             ["CPUQuotaPeriodUSec", "t", 100000],
             ["TasksMax", "t", 20]]},
        {"method": "GetUnit", "unit": "pyinit-web.scope"},
        {"method": "Get", "interface": "org.freedesktop.systemd1.Scope",
         "property": "ControlGroup"},
        {"method": "StopUnit", "unit": "pyinit-web.scope", "mode": "replace"},
    ]
    assert (started["unit"], started["control_group"], started["job"]) == (
        "pyinit-web.scope", f"/{systemd.slice}/pyinit-web.scope",
        "/org/freedesktop/systemd1/job/1")


def test_a_second_container_in_the_same_scope_is_refused(tmp_path: Path,
                                                         systemd: FakeSystemd) -> None:
    """systemd says UnitExists: one line naming cgroupsPath, exit 125, the first's scope
    untouched (it is not pyinit's to stop)."""
    bundle = make_bundle(tmp_path / "b", "echo unreachable")
    edit(bundle, lambda cfg: cfg["linux"].update(cgroupsPath=f"{systemd.slice}:pyinit:dup"))
    # the first "container": a scope the stand-in already holds, with a process of ours
    holder = subprocess.Popen(["sleep", "1000"])
    try:
        from pyinit.cgroups import dbus
        with dbus.Connection(systemd.address) as bus:
            bus.call("org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                     "org.freedesktop.systemd1.Manager", "StartTransientUnit",
                     "ssa(sv)a(sa(sv))", ["pyinit-dup.scope", "fail", [
                         ("Slice", ("s", systemd.slice)), ("PIDs", ("au", [holder.pid]))], []])
        res = run_with_systemd(bundle, tmp_path, systemd.address)
        assert (res.returncode, res.stdout) == (125, "")
        assert res.stderr.splitlines()[-1] == (
            "pyinit: linux.cgroupsPath: cgroup: systemd already has a unit pyinit-dup.scope: "
            f"another container runs with cgroupsPath {systemd.slice}:pyinit:dup")
        assert [c["method"] for c in systemd.calls()] == ["StartTransientUnit"] * 2
        with dbus.Connection(systemd.address) as bus:  # the stand-in removes its cgroup
            bus.call("org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                     "org.freedesktop.systemd1.Manager", "StopUnit", "ss",
                     ["pyinit-dup.scope", "replace"])
    finally:
        holder.kill()
        holder.wait()


def test_without_systemd_it_is_refused_with_a_hint(tmp_path: Path) -> None:
    """No /run/systemd/system: one line and the hint row, exit 125, nothing asked or
    made (no bus is even given)."""
    bundle = make_bundle(tmp_path / "b", "echo unreachable")
    edit(bundle, lambda cfg: cfg["linux"].update(cgroupsPath="system.slice:pyinit:nosd"))
    res = run_with_systemd(bundle, tmp_path, None, booted=False)
    assert (res.returncode, res.stdout) == (125, "")
    assert res.stderr.splitlines()[-1] == (
        "pyinit: cgroup: --cgroup-manager systemd: systemd is not running on this host "
        "(/run/systemd/system does not exist); use --cgroup-manager cgroupfs (the default), "
        "or run pyinit where systemd is PID 1")
    assert not os.path.exists(tmp_path / "state")


def test_no_bus_is_one_line_with_the_bus_named(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "b", "echo unreachable")
    edit(bundle, lambda cfg: cfg["linux"].update(cgroupsPath="system.slice:pyinit:nobus"))
    address = f"unix:path={tmp_path}/no-such-socket"
    res = run_with_systemd(bundle, tmp_path, address)
    assert (res.returncode, res.stdout) == (125, "")
    assert res.stderr.splitlines()[-1] == (
        f"pyinit: cgroup: --cgroup-manager systemd: cannot reach systemd's D-Bus at {address}: "
        "No such file or directory; is dbus running (systemctl status dbus.socket)? As root "
        "pyinit uses the system bus ($DBUS_SYSTEM_BUS_ADDRESS), a user their own "
        "($DBUS_SESSION_BUS_ADDRESS, else $XDG_RUNTIME_DIR/bus; loginctl enable-linger USER "
        "starts it); or use --cgroup-manager cgroupfs")


@pytest.mark.parametrize(("path", "reason"), [
    ("/pyinit/web", "linux.cgroupsPath: cgroup: '/pyinit/web' is a cgroupfs path; "
     "--cgroup-manager systemd needs systemd's form slice:prefix:name (e.g. "
     "system.slice:pyinit:sd-test)"),
    ("system.slice:web", "config.json: linux.cgroupsPath: 'system.slice:web' has 2 "
     "':'-separated parts; the systemd form is slice:prefix:name (e.g. system.slice:pyinit:web)"),
])
def test_a_bad_cgroups_path_is_one_line_naming_it(tmp_path: Path, path: str,
                                                  reason: str) -> None:
    bundle = make_bundle(tmp_path / "b", "echo unreachable")
    edit(bundle, lambda cfg: cfg["linux"].update(cgroupsPath=path))
    res = run_with_systemd(bundle, tmp_path, None, booted=False)
    assert (res.returncode, res.stdout) == (125, "")
    assert res.stderr.splitlines()[-1] == f"pyinit: {reason}"


def test_the_systemd_form_needs_the_systemd_manager(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "b", "echo unreachable")
    edit(bundle, lambda cfg: cfg["linux"].update(cgroupsPath="system.slice:pyinit:web"))
    res = subprocess.run([PYINIT, "run", "--bundle", str(bundle)], capture_output=True,
                         text=True, timeout=60, check=False, stdin=subprocess.DEVNULL)
    assert (res.returncode, res.stdout) == (125, "")
    assert res.stderr.splitlines()[-1] == (
        "pyinit: linux.cgroupsPath: cgroup: 'system.slice:pyinit:web' is systemd's form "
        "(slice:prefix:name): run with --cgroup-manager systemd, or give a path like "
        "/pyinit/NAME")
