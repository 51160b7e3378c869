"""Fields pyinit does not enforce are refused, never silently dropped (finding 3, config side).

A memory limit that does not hold is worse than none: the caller believes it.
``pyinit check`` lists every refused field with its JSON path; ``pyinit run``
refuses with one line, exit 125, before touching anything (conftest.py
checks the host's mount table after each test). linux.resources is enforced
now (issue 11): its limit holds instead (tests/integration/test_cgroups_run.py
has the rest).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import PYINIT
from tests.integration.test_run import EXIT_SETUP_FAILED, edit, make_bundle, run_bundle


def _memory_limit(cfg: dict[str, Any]) -> None:
    cfg["linux"]["resources"]["memory"] = {"limit": 64 << 20}


def test_a_memory_limit_holds(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "cat /sys/fs/cgroup/memory/memory.limit_in_bytes")
    edit(bundle, _memory_limit)
    res = run_bundle(bundle)
    assert (res.returncode, res.stdout) == (0, f"{64 << 20}\n"), res.stderr


def test_check_lists_every_refused_field(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "true")

    def change(cfg: dict[str, Any]) -> None:
        _memory_limit(cfg)  # enforced: not listed
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
        "process.user.uid: must be an id from 0 to 4294967294, not -1",
    ]
    # and run stops at the first, saying there are more
    res = run_bundle(bundle)
    assert res.returncode == EXIT_SETUP_FAILED
    assert res.stderr == ("pyinit: config.json: process.apparmorProfile: refused: pyinit "
                          "does not apply AppArmor profiles yet, so the process would run "
                          "unconfined by it (and 1 more; see pyinit check)\n")


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
