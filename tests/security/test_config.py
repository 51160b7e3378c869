"""Fields pyinit does not enforce are refused, never silently dropped (finding 3, config side).

A memory limit that does not hold is worse than none: the caller believes it.
``pyinit check`` lists every refused field with its JSON path; ``pyinit run``
refuses with one line, exit 125, before touching anything (conftest.py
checks the host's mount table after each test).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import PYINIT
from tests.integration.test_run import EXIT_SETUP_FAILED, edit, make_bundle, run_bundle

CGROUPS = "refused: pyinit does not manage cgroups yet, so this limit would not hold"


def _memory_limit(cfg: dict[str, Any]) -> None:
    cfg["linux"]["resources"]["memory"] = {"limit": 64 << 20}


def test_run_refuses_a_memory_limit(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "touch /ran; echo should-not-run")
    edit(bundle, lambda c: (_memory_limit(c), c["root"].update(readonly=False)))
    res = run_bundle(bundle)
    assert res.returncode == EXIT_SETUP_FAILED
    assert res.stdout == ""
    assert res.stderr == f"pyinit: config.json: linux.resources.memory: {CGROUPS}\n"
    assert not (bundle / "rootfs" / "ran").exists()


def test_check_lists_every_refused_field(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "true")

    def change(cfg: dict[str, Any]) -> None:
        _memory_limit(cfg)
        cfg["linux"]["resources"]["pids"] = {"limit": 10}
        cfg["linux"]["resources"]["devices"].append({"allow": True, "type": "b", "major": 8,
                                                     "minor": 0, "access": "rw"})
        cfg["process"]["apparmorProfile"] = "docker-default"
        cfg["process"]["user"] = {"uid": -1, "gid": 0}
        cfg["process"]["capabilities"]["bounding"].append("CAP_MKNOD")
    edit(bundle, change)
    res = subprocess.run([PYINIT, "check", "--bundle", str(bundle)], capture_output=True,
                         text=True, check=False, timeout=60)
    assert res.returncode == 1
    assert res.stdout.splitlines() == [
        "process.apparmorProfile: refused: pyinit does not apply AppArmor profiles yet, so "
        "the process would run unconfined by it",
        f"linux.resources.memory: {CGROUPS}",
        f"linux.resources.pids: {CGROUPS}",
        "linux.resources.devices[1]: allows b 8:0, but without a device cgroup (not in pyinit "
        "yet) only the nodes pyinit creates can be allowed: the default devices and those in "
        "linux.devices",
        "process.capabilities.bounding[3]: CAP_MKNOD with the device deny rule "
        "linux.resources.devices[0]: without a device cgroup (not in pyinit yet) a node the "
        "workload makes would be usable",
        "process.user.uid: must be an id from 0 to 4294967294, not -1",
    ]
    # and run stops at the first, saying there are more
    res = run_bundle(bundle)
    assert res.returncode == EXIT_SETUP_FAILED
    assert res.stderr == ("pyinit: config.json: process.apparmorProfile: refused: pyinit "
                          "does not apply AppArmor profiles yet, so the process would run "
                          "unconfined by it (and 5 more; see pyinit check)\n")


def test_uid_minus_one_no_longer_runs_as_root(tmp_path: Path) -> None:
    # -1 is (uid_t)-1 to setresuid: "leave it unchanged", i.e. root.
    bundle = make_bundle(tmp_path, "id -u")
    edit(bundle, lambda c: c["process"].update(user={"uid": -1, "gid": -1}))
    res = run_bundle(bundle)
    assert res.returncode == EXIT_SETUP_FAILED
    assert res.stdout == ""
    assert res.stderr == ("pyinit: config.json: process.user.uid: must be an id from 0 to "
                          "4294967294, not -1 (and 1 more; see pyinit check)\n")


def test_unlimited_rlimit_runs(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "ulimit -c; ulimit -Hc")
    edit(bundle, lambda c: c["process"]["rlimits"].append(
        {"type": "RLIMIT_CORE", "soft": 2**64 - 1, "hard": 2**64 - 1}))
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "unlimited\nunlimited\n"
