"""issue 9 review: the cgroup2 mount of a container without a cgroup namespace.

rootfs/cgroups.py mounts a *fresh* cgroup2 (on a cgroup2 host at
/sys/fs/cgroup, on a hybrid host at /sys/fs/cgroup/unified) whether or not
the container has its own cgroup namespace. Without one, a fresh cgroup2
mount's root is the host's root cgroup: the container sees every cgroup on
the host, and when the mount is not read-only (a config without "ro" on
/sys/fs/cgroup, as configs for systemd in a container have), uid 0 with no
capability at all can move itself to the host's root cgroup (out of the
container's cgroup: on a cgroup2 host that drops its memory and pids limits
and its device eBPF filter) and write any host cgroup's files (freeze a
host service). For v1 hierarchies the same code binds the container's own
cgroup instead, which is what runc does for cgroup2 too.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PYINIT, event, events, helper
from tests.integration.test_run import edit, fields, run_bundle
from tests.security.conftest import attack_bundle


def _v2_root() -> Path:
    """Where the host mounts its cgroup2 hierarchy."""
    kind = subprocess.run(["stat", "-f", "-c", "%T", "/sys/fs/cgroup"], capture_output=True,
                          text=True, check=True).stdout.strip()
    return Path("/sys/fs/cgroup" if kind == "cgroup2fs" else "/sys/fs/cgroup/unified")


@pytest.fixture
def victim() -> Iterator[Path]:
    """An empty cgroup of the host's, standing for a host service."""
    path = _v2_root() / f"pyinit-review-victim-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    try:
        yield path
    finally:
        (path / "cgroup.freeze").write_text("0\n")
        path.rmdir()


def _without_cgroupns(read_only: bool) -> Any:
    def change(cfg: dict[str, Any]) -> None:
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"]
                                      if n["type"] != "cgroup"]
        for m in cfg["mounts"]:
            if m["destination"] == "/sys/fs/cgroup":
                m["options"] = [o for o in m["options"] if o != "ro"] + (
                    ["ro"] if read_only else [])
    return change


def _inside(path: Path) -> str:
    """``path`` (under the host's cgroup2 root) as the container's mount shows it."""
    return str(Path("/sys/fs/cgroup") / path.relative_to(Path("/sys/fs/cgroup")))


def test_the_host_cgroup_tree_is_not_shown(tmp_path: Path, helpers: dict[str, Path],
                                           victim: Path) -> None:
    seen = _inside(victim)
    bundle = attack_bundle(tmp_path, f"test -d {seen} && echo seen || echo hidden", helpers)
    edit(bundle, _without_cgroupns(read_only=True))
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "hidden\n"


def test_no_capability_workload_cannot_touch_host_cgroups(tmp_path: Path,
                                                          helpers: dict[str, Path],
                                                          victim: Path) -> None:
    root = _inside(_v2_root())
    script = (f"echo 1 > {_inside(victim)}/cgroup.freeze 2>/dev/null; echo freeze=$?;"
              f" echo $$ > {root}/cgroup.procs 2>/dev/null; echo move=$?;"
              " grep '^0::' /proc/self/cgroup; grep CapEff /proc/self/status")
    bundle = attack_bundle(tmp_path, script, helpers)
    edit(bundle, _without_cgroupns(read_only=False))
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    # What a bind of the container's own cgroup gives: the victim is not
    # there (freeze=1), and moving into the mount's root is moving into its
    # own cgroup (move=0). CapEff: CAP_AUDIT_WRITE, CAP_KILL and
    # CAP_NET_BIND_SERVICE, the default spec's.
    own = event(res.stderr, "cgroup.ready")["path"]
    assert re.fullmatch(rf"/pyinit/{re.escape(bundle.name)}-[0-9]+-[0-9a-f]{{8}}", own), own
    assert res.stdout == (f"freeze=1\nmove=0\n0::{own}\n"
                          "CapEff:\t0000000020000420\n")
    assert (victim / "cgroup.freeze").read_text() == "0\n"


def test_ro_holds_on_every_cgroup_mount(tmp_path: Path, helpers: dict[str, Path]) -> None:
    """An explicit ro: no hierarchy's cgroup.procs (v1 sub-mounts included) takes a write."""
    script = ("for f in /sys/fs/cgroup/cgroup.procs /sys/fs/cgroup/*/cgroup.procs; do"
              " test -e $f || continue; echo $$ 2>/dev/null > $f && echo \"rw $f\"; done;"
              " echo done")
    bundle = attack_bundle(tmp_path, script, helpers)
    edit(bundle, _without_cgroupns(read_only=True))
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "done\n"


# ------------------------------------------------------------------------------------------
# With a cgroup namespace, a hierarchy the kernel will not mount afresh
# (EPERM: v1 in some user namespaces, or an outer runtime's policy; EBUSY)
# falls back to a bind of "our own cgroup". PID 1 read that from
# /proc/self/cgroup after it had unshared the cgroup namespace, where its
# own cgroup reads "/": the bind was of the host hierarchy's root, every
# sibling cgroup (other containers, the host's services) under the
# container's /sys/fs/cgroup. An outer seccomp filter makes the kernel's
# refusal happen here: fsconfig(FSCONFIG_SET_FLAG), which only the v1
# hierarchies' controller options use in this bundle, fails with EPERM.
_REFUSE_V1 = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
    {"names": ["fsconfig"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
     "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]}]}


def _host_v1_memory() -> Path:
    return Path("/sys/fs/cgroup/memory")


def test_a_cgroupns_bind_fallback_binds_the_containers_own_cgroup(
        tmp_path: Path, helpers: dict[str, Path]) -> None:
    if not (_host_v1_memory() / "cgroup.procs").exists():
        pytest.skip("needs a v1 memory hierarchy at /sys/fs/cgroup/memory (hybrid host)")
    profile = tmp_path / "refuse-v1.json"
    profile.write_text(json.dumps(_REFUSE_V1))
    # Directories in the container's memory hierarchy (its own cgroup has
    # none), and that the hierarchy is there at all.
    bundle = attack_bundle(tmp_path / "cgfallback", "find /sys/fs/cgroup/memory -mindepth 1 "
                           "-maxdepth 1 -type d; test -e /sys/fs/cgroup/memory/cgroup.procs "
                           "&& echo mounted", helpers)
    edit(bundle, lambda c: [m.update(options=[o for o in m.get("options", [])
                                              if o != "newinstance"])  # a flag; implied
                            for m in c["mounts"]])
    res = subprocess.run([*helper("seccomp_exec.py"), str(profile), "--no-nnp", "--",
                          PYINIT, "run", "--bundle", str(bundle), "--log-format", "json",
                          "--log-level", "debug"],
                         capture_output=True, text=True, timeout=60, check=False,
                         stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "mounted\n"
    memory = [fields(ev) for ev in events(res.stderr)
              if ev.get("event") == "cgroup.hierarchy" and ev.get("name") == "memory"]
    own = event(res.stderr, "cgroup.ready")["path"]  # /pyinit/<name>-<pid>-<random>
    assert re.fullmatch(rf"/pyinit/{re.escape(bundle.name)}-[0-9]+-[0-9a-f]{{8}}", own), own
    assert memory == [{"event": "cgroup.hierarchy", "level": "debug", "name": "memory",
                       "version": 1, "source": f"{_host_v1_memory()}{own}"}]
