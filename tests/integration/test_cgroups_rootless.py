"""``pyinit run`` as an unprivileged user and cgroups (docs/cgroups.md, "Rootless").

On this hybrid host the v1 controllers belong to root; what a user can be given
is a v2 subtree (systemd's ``Delegate=yes``, here: a directory of the unified
hierarchy chowned to the user, with the user's process inside). The container's
cgroup is then made there, from inside the subtree; the limits asked for, all of
v1 controllers here, are not applied, and one warning names them and why.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyinit.cgroups.host import Host
from tests.conftest import event, events
from tests.integration.test_cgroups import (
    as_user,
    children,
    delegate,
    host,
    remove_tree,
    top,
    user_state,
)
from tests.integration.test_rootless import rootless_bundle, runtime
from tests.integration.test_run import edit

pytestmark = pytest.mark.root
__all__ = ["host", "runtime", "top"]  # fixtures
MiB = 1 << 20


@pytest.fixture
def unified(host: Host, top: str) -> Iterator[str]:
    """``top`` in the unified hierarchy, removed afterwards (with anything below it)."""
    assert host.unified is not None
    directory = host.unified.directory(top)
    yield directory
    if os.path.isdir(directory):
        remove_tree(directory)


def limited(path: str) -> Any:
    def change(cfg: dict[str, Any]) -> None:
        cfg["linux"]["cgroupsPath"] = path
        cfg["linux"]["resources"] = {"memory": {"limit": 64 * MiB}, "pids": {"limit": 10}}
    return change


def run_as_user(runtime: tuple[str, int, int], bundle: Path, state: Path,
                cgroup: str | None) -> Any:
    return as_user(runtime, ["-m", "pyinit", "run", "--bundle", str(bundle), "--log-format",
                             "json"], str(state), cgroup)


def not_applied(host: Host, uid: int) -> str:
    """The warning for memory.limit and pids.limit: the user owns no v1 cgroup here."""
    memory, pids = host.v1("memory"), host.v1("pids")
    assert memory is not None and pids is not None
    return (f"cgroups: not applied for uid {uid}, the container runs without them: "
            f"linux.resources.memory.limit ({memory.directory(memory.own)} is not writable by "
            f"uid {uid}); linux.resources.pids.limit ({pids.directory(pids.own)} is not "
            f"writable by uid {uid})")


def test_a_rootless_run_in_a_delegated_v2_subtree(runtime: tuple[str, int, int], host: Host,
                                                  top: str, unified: str) -> None:
    _python, uid, gid = runtime
    delegate(unified, uid, gid)
    state = user_state(uid, gid)
    bundle = rootless_bundle(runtime, "cat /proc/self/cgroup")
    try:
        edit(bundle, limited("c"))  # relative: under the caller's own cgroup, the subtree
        res = run_as_user(runtime, bundle, state, unified)
        left = children(host, top)
        report = as_user(runtime, ["-m", "pyinit", "diagnose", "--json"], str(state), unified)
        locks = sorted(p.name for p in state.rglob("*.lock"))
    finally:
        shutil.rmtree(bundle)
        shutil.rmtree(state)
    assert res.returncode == 0, res.stderr
    # no cgroup namespace in a rootless bundle: the container sees the host's path
    assert f"0::{top}/c" in res.stdout.splitlines()
    warned = [e for e in events(res.stderr) if e["event"] == "cgroup.no_limits"]
    assert [(e["detail"], e["skipped"]) for e in warned] == [
        (not_applied(host, uid), ["linux.resources.memory.limit", "linux.resources.pids.limit"])]
    ready = event(res.stderr, "cgroup.ready")
    assert (ready["path"], ready["delegated"], ready["directories"]) == \
        ("c", True, [f"{unified}/c"])
    assert (left, locks) == ([], [])  # removed after the run, with its lock
    assert report.returncode == 0, report.stderr
    others = ", ".join(h.name for h in host.hierarchies if h.version == 1)
    assert json.loads(report.stdout)["cgroup"]["limits"] == {
        "enforced": True, "delegated": True,
        "reason": f"delegated: cgroup pyinit/ID in the unified hierarchy "
                  f"(/sys/fs/cgroup/unified), writable by uid {uid}; not in {others} (not "
                  f"writable by uid {uid}: limits of their controllers are not applied)"}


def test_a_rootless_run_without_delegation(runtime: tuple[str, int, int], host: Host,
                                           top: str, unified: str) -> None:
    """In a cgroup of root's: no cgroup, no limits, one warning; the same in a subtree
    the user owns but runs outside of (moving a process needs cgroup.procs of the
    closest common ancestor, here the root's)."""
    _python, uid, gid = runtime
    os.mkdir(unified)
    state = user_state(uid, gid)
    bundle = rootless_bundle(runtime, "cat /proc/self/cgroup")
    try:
        edit(bundle, limited("c"))
        res = run_as_user(runtime, bundle, state, unified)
        report = as_user(runtime, ["-m", "pyinit", "diagnose", "--json"], str(state), unified)
        os.rmdir(unified)
        delegate(unified, uid, gid)
        edit(bundle, limited(f"{top}/c"))
        outside = run_as_user(runtime, bundle, state, None)
        left = children(host, top)
    finally:
        shutil.rmtree(bundle)
        shutil.rmtree(state)
    assert res.returncode == 0, res.stderr
    assert f"0::{top}" in res.stdout.splitlines()  # where it was started: no cgroup of its own
    [warned] = [e for e in events(res.stderr) if e["event"] == "cgroup.no_limits"]
    assert (warned["reason"], warned["detail"]) == (
        f"not delegated: no write access: {unified} is not writable by uid {uid} (nor to any "
        "other hierarchy)", not_applied(host, uid))
    assert [e for e in events(res.stderr) if e["event"] == "cgroup.ready"] == []
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["cgroup"]["limits"] == {
        "enforced": False, "delegated": False,
        "reason": f"not delegated: no write access: {unified} is not writable by uid {uid} "
                  "(nor to any other hierarchy)"}
    assert outside.returncode == 0, outside.stderr
    [warned] = [e for e in events(outside.stderr) if e["event"] == "cgroup.no_limits"]
    assert warned["reason"] == (
        f"not delegated: no write access: /sys/fs/cgroup/unified/cgroup.procs is not writable "
        f"by uid {uid} (moving a process from /sys/fs/cgroup/unified needs it: the closest "
        "common ancestor) (nor to any other hierarchy)")
    assert left == []
