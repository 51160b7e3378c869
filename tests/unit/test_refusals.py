"""pyinit/oci/refusals.py: every field pyinit does not enforce is refused, with its path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pyinit.oci import refusals
from pyinit.oci.config import ConfigError, parse
from pyinit.oci.spec import default_config, rootless


def refused(change: Any) -> list[tuple[str, str]]:
    doc = default_config()
    change(doc)
    return refusals.problems(doc)


def test_the_default_and_rootless_specs_are_accepted() -> None:
    assert refusals.problems(default_config()) == []
    assert refusals.problems(rootless(default_config(), 1000, 1000)) == []


def test_the_module_is_pure() -> None:
    code = ("import sys; import pyinit.oci.refusals; "
            "print(sorted({'ctypes', 'trio', 'structlog'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out == "[]\n"


@pytest.mark.parametrize(("path", "value", "reason"), [
    ("process.apparmorProfile", "docker-default", "refused: pyinit does not apply AppArmor "
     "profiles yet, so the process would run unconfined by it"),
    ("process.selinuxLabel", "system_u:system_r:container_t:s0", "refused: pyinit does not "
     "apply SELinux labels yet, so the process would run unconfined by it"),
    ("process.ioPriority", {"class": "IOPRIO_CLASS_IDLE"},
     "refused: pyinit does not set I/O priorities yet"),
    ("process.scheduler", {"policy": "SCHED_IDLE"},
     "refused: pyinit does not set scheduling policies yet"),
    ("process.execCPUAffinity", {"initial": "0"},
     "refused: pyinit does not set CPU affinities yet"),
    ("linux.mountLabel", "system_u:object_r:container_file_t:s0",
     "refused: pyinit does not apply SELinux labels to mounts yet"),
    ("linux.intelRdt", {"closID": "x"}, "refused: pyinit does not support Intel RDT"),
    ("linux.personality", {"domain": "LINUX32"},
     "refused: pyinit does not set the execution domain (personality) yet"),
    ("linux.timeOffsets", {"monotonic": {"secs": 1}},
     "refused: pyinit does not support time namespaces yet"),
    ("linux.memoryPolicy", {"mode": "MPOL_BIND", "nodes": "0"},
     "refused: pyinit does not set NUMA memory policies yet"),
    ("linux.netDevices", {"eth1": {}},
     "refused: pyinit does not move network devices into containers yet"),
    ("vm", {"kernel": {"path": "/k"}},
     "refused: pyinit does not run containers in virtual machines"),
    ("windows", {"layerFolders": ["x"]}, "refused: this section is for another platform; pyinit "
     "runs Linux containers"),
])
def test_unenforced_fields_are_refused(path: str, value: Any, reason: str) -> None:
    def change(doc: dict[str, Any]) -> None:
        *parents, key = path.split(".")
        for name in parents:
            doc = doc[name]
        doc[key] = value
    assert refused(change) == [(path, reason)]


def test_seccomp_is_not_refused_here() -> None:  # implemented elsewhere (issue 9 finding 3)
    assert refused(lambda d: d["linux"].update(seccomp={"defaultAction": "SCMP_ACT_ALLOW"})) \
        == []


def test_cgroups_are_not_refused_here() -> None:  # enforced (issue 11, docs/cgroups.md)
    def change(doc: dict[str, Any]) -> None:
        doc["linux"]["cgroupsPath"] = "/pyinit/web"
        doc["linux"]["resources"].update(memory={"limit": 1 << 26}, pids={"limit": 20})
        doc["linux"]["resources"]["devices"].append({"allow": True, "type": "b", "major": 8})
        doc["process"]["capabilities"]["bounding"].append("CAP_MKNOD")
        doc["mounts"].append({"destination": "/d", "type": "bind", "source": "/dev",
                              "options": ["rbind", "dev"]})
    assert refused(change) == []


@pytest.mark.parametrize(("kind", "is_bind", "nodev"), [
    ("tmpfs", False, False), ("devpts", False, False), ("tmpfs", True, True),
    ("ext4", False, True), ("proc", False, True), ("bind", True, True),
])
def test_which_mounts_pyinit_makes_nodev(kind: str, is_bind: bool, nodev: bool) -> None:
    class M:
        type = kind

        class parsed:
            pass
    M.parsed.is_bind = is_bind  # type: ignore[attr-defined]
    assert refusals.mounted_nodev(M) is nodev


# ---------------------------------------------------------------- process
def test_capability_names_are_checked_in_every_set() -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["process"]["capabilities"]["inheritable"] = ["CAP_KILL", "CAP_NOPE", 7]
        doc["process"]["capabilities"]["ambient"] = ["CAP_KILL", "CAP_CHOWN", "CAP_FOWNER",
                                                     "KILL"]
    assert refused(change) == [
        ("process.capabilities.inheritable[1]", "unknown capability 'CAP_NOPE'"),
        ("process.capabilities.inheritable[2]", "unknown capability 7"),
        ("process.capabilities.ambient[3]", "unknown capability 'KILL'")]


@pytest.mark.parametrize(("limit", "path", "reason"), [
    ({"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}, "process.rlimits[1].type",
     "unknown resource limit 'RLIMIT_BOGUS'"),
    ({"type": "getrlimit", "soft": 1, "hard": 1}, "process.rlimits[1].type",
     "unknown resource limit 'getrlimit'"),
    ({"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1}, "process.rlimits[1].type",
     "RLIMIT_NOFILE is given twice"),
    ({"type": "RLIMIT_CORE", "soft": 10, "hard": 5}, "process.rlimits[1].soft",
     "10 is above the hard limit 5"),
    ({"type": "RLIMIT_CORE", "soft": -1, "hard": 5}, "process.rlimits[1].soft",
     "must be an integer from 0 to 18446744073709551615 (unlimited), not -1"),
    ({"type": "RLIMIT_CORE", "soft": 1, "hard": 2**64}, "process.rlimits[1].hard",
     "must be an integer from 0 to 18446744073709551615 (unlimited), not 18446744073709551616"),
    ({"type": "RLIMIT_CORE", "soft": 1}, "process.rlimits[1].hard",
     "must be an integer from 0 to 18446744073709551615 (unlimited), not None"),
])
def test_rlimits(limit: dict[str, Any], path: str, reason: str) -> None:
    assert refused(lambda d: d["process"]["rlimits"].append(limit)) == [(path, reason)]


def test_unlimited_rlimit_is_accepted() -> None:
    assert refused(lambda d: d["process"]["rlimits"].append(
        {"type": "RLIMIT_CORE", "soft": 2**64 - 1, "hard": 2**64 - 1})) == []


@pytest.mark.parametrize(("user", "path", "value"), [
    ({"uid": -1, "gid": 0}, "process.user.uid", "-1"),
    ({"uid": 0, "gid": 2**32 - 1}, "process.user.gid", "4294967295"),
    ({"uid": 0, "gid": 0, "additionalGids": [5, -1]}, "process.user.additionalGids[1]", "-1"),
    ({"uid": 0, "gid": 0, "additionalGids": ["5"]}, "process.user.additionalGids[0]", "'5'"),
    ({"uid": True, "gid": 0}, "process.user.uid", "True"),
])
def test_user_ids_outside_the_range_are_refused(user: dict[str, Any], path: str,
                                                value: str) -> None:
    assert refused(lambda d: d["process"].update(user=user)) == [
        (path, f"must be an id from 0 to 4294967294, not {value}")]


def test_the_highest_id_is_accepted() -> None:
    assert refused(lambda d: d["process"].update(
        user={"uid": 2**32 - 2, "gid": 2**32 - 2, "additionalGids": [0, 2**32 - 2]})) == []


# ---------------------------------------------------------------- through config.parse
def test_config_parse_reports_refusals_once_each(tmp_path: Path) -> None:
    (tmp_path / "rootfs").mkdir()
    doc = default_config()
    doc["process"]["apparmorProfile"] = "docker-default"
    doc["process"]["user"] = {"uid": -1, "gid": 0}
    doc["process"]["capabilities"]["bounding"].append("CAP_NOPE")  # config.py reports it too
    with pytest.raises(ConfigError) as info:
        parse(doc, str(tmp_path))
    assert info.value.problems == [
        ("process.capabilities.bounding[3]", "unknown capability 'CAP_NOPE'"),
        ("process.apparmorProfile", "refused: pyinit does not apply AppArmor profiles yet, "
         "so the process would run unconfined by it"),
        ("process.user.uid", "must be an id from 0 to 4294967294, not -1")]
    assert info.value.first_line() == ("process.capabilities.bounding[3]: unknown capability "
                                       "'CAP_NOPE' (and 2 more; see pyinit check)")


def test_resources_must_be_an_object(tmp_path: Path) -> None:  # now oci/resources.py's
    (tmp_path / "rootfs").mkdir()
    doc = default_config()
    doc["linux"]["resources"] = []
    assert refusals.problems(doc) == []
    with pytest.raises(ConfigError) as info:
        parse(doc, str(tmp_path))
    assert info.value.problems == [("linux.resources", "must be an object, not an array")]
