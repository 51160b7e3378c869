"""``pyinit diagnose``: the environment report and the bundle predictions."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.conftest import PYINIT, ROOT
from tests.integration.test_run import _known_filesystems, edit, make_bundle

pytestmark = pytest.mark.root
SCHEMA = json.loads((ROOT / "docs" / "diagnose.schema.json").read_text())


def diagnose(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, PYINIT, "diagnose", *args], capture_output=True, text=True,
                          timeout=60, check=False)


def _host_cgroup_version() -> str:
    fstypes = {line.split(" - ")[1].split()[0]: line.split()[4]
               for line in Path("/proc/self/mountinfo").read_text().splitlines()
               if line.split()[4].startswith("/sys/fs/cgroup")}
    if fstypes.get("cgroup2") == "/sys/fs/cgroup":
        return "v2"
    return "hybrid" if "cgroup2" in fstypes else "v1"


def _own_capabilities() -> int:
    """How many capabilities this test has (pyinit inherits them), not all there are."""
    status = Path("/proc/self/status").read_text()
    return bin(int(status.split("CapEff:")[1].split()[0], 16)).count("1")


def test_json_report_matches_the_schema() -> None:
    res = diagnose("--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    jsonschema.validate(report, SCHEMA)
    assert report["pid1"] is False
    caps = report["capabilities"]
    assert caps["effective"] == caps["bounding"]  # root: the same sets
    assert len(set(caps["effective"])) == _own_capabilities()
    assert "CAP_SYS_ADMIN" in caps["effective"]
    assert set(report["mountable"].values()) == {"ok"}, report["mountable"]
    assert {"proc", "tmpfs", "sysfs"} <= set(report["mountable"])
    assert report["cgroup"]["version"] == _host_cgroup_version()
    assert report["cgroup"]["limits"] == {
        "enforced": True, "delegated": False,
        "reason": f"cgroup /pyinit/ID in every hierarchy ({_host_cgroup_version()} host), "
                  "as root"}
    assert report["mounts"]["max"] == int(Path("/proc/sys/fs/mount-max").read_text())
    assert report["mounts"]["count"] > 0  # the host's, which other programs may change


def test_table_on_a_terminal_style() -> None:
    res = diagnose()
    assert res.returncode == 0, res.stderr
    report = json.loads(diagnose("--json").stdout)
    lines = res.stdout.splitlines()
    # One unindented line per key of the JSON report, in its order; a
    # section's entries are indented below it.
    assert [x.split()[0] for x in lines if not x.startswith(" ")] == [
        f"{key}:" if isinstance(value, dict) else key for key, value in report.items()]
    mountable = lines.index("mountable:")
    assert [x.split() for x in lines[mountable + 1:]] == [
        [fs, state] for fs, state in report["mountable"].items()]


def test_without_cap_sys_admin() -> None:
    res = diagnose("--json", prefix=("setpriv", "--bounding-set=-sys_admin",
                                     "--inh-caps=-sys_admin"))
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    jsonschema.validate(report, SCHEMA)
    effective = report["capabilities"]["effective"]
    assert len(set(effective)) == _own_capabilities() - 1 and "CAP_SYS_ADMIN" not in effective
    assert set(report["mountable"].values()) == {"untested (no mount namespace: EPERM)"}


def test_bundle_predictions(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "true")
    (bundle / "rootfs" / "proc").symlink_to("/elsewhere")
    edit(bundle, lambda c: c["mounts"].extend([
        {"destination": "/a", "type": "nosuchfs", "source": "x"},
        {"destination": "/b", "source": "/no/such/dir", "options": ["bind"]},
    ]))
    res = diagnose("--bundle", str(bundle), "--json")
    assert res.returncode == 1, res.stderr
    report = json.loads(res.stdout)
    jsonschema.validate(report, SCHEMA)
    assert report["bundle"] == {"path": str(bundle), "predicted_failures": [
        {"where": "mounts[0]", "destination": "/proc",
         "problem": "/proc is a symlink in the image (-> /elsewhere)",
         "hint": "proc and sysfs must be mounted on ordinary directories; fix the image"},
        {"where": "mounts[7]", "destination": "/a",
         "problem": "unknown filesystem type 'nosuchfs'",
         "hint": "the kernel does not know the filesystem type 'nosuchfs'; it offers: "
                 + _known_filesystems()},
        {"where": "mounts[8]", "destination": "/b",
         "problem": "the bind source /no/such/dir does not exist",
         "hint": "the source is missing: /no does not exist"},
    ]}


def test_bundle_that_will_work_predicts_nothing(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "true")
    res = diagnose("--bundle", str(bundle), "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["bundle"]["predicted_failures"] == []


def test_bundle_predictions_of_a_user_namespace(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "true")
    (bundle / "rootfs" / "opt").write_text("a file where a directory is needed")

    def change(cfg: dict[str, Any]) -> None:
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"]
                                      if n["type"] != "network"] + [{"type": "user"}]
        cfg["linux"]["uidMappings"] = cfg["linux"]["gidMappings"] = [
            {"containerID": 0, "hostID": 100000, "size": 65536}]
        cfg["mounts"].append({"destination": "/opt/data", "type": "tmpfs", "source": "tmpfs"})
    edit(bundle, change)
    mounts = json.loads((bundle / "config.json").read_text())["mounts"]
    sysfs = next(i for i, m in enumerate(mounts) if m["type"] == "sysfs")
    res = diagnose("--bundle", str(bundle), "--json")
    assert res.returncode == 1, res.stderr
    assert json.loads(res.stdout)["bundle"]["predicted_failures"] == [
        {"where": f"mounts[{sysfs}]", "destination": "/sys",
         "problem": "sysfs in a new user namespace needs a new network namespace, not the "
                    "host's: the kernel mounts sysfs only for a network namespace that user "
                    "namespace owns",
         "hint": "add {\"type\": \"network\"} to linux.namespaces, bind /sys read-only, or "
                 "run with --sysfs-fallback"},
        {"where": f"mounts[{len(mounts) - 1}]", "destination": "/opt/data",
         "problem": "/opt is a file", "hint": "a directory is needed there"},
    ]


def test_bundle_prediction_of_an_invalid_config(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "true")
    edit(bundle, lambda c: c.update(hostname=7))
    res = diagnose("--bundle", str(bundle), "--json")
    assert res.returncode == 1, res.stderr
    assert json.loads(res.stdout)["bundle"]["predicted_failures"] == [
        {"where": "hostname", "problem": "must be a string, not int", "hint": "fix config.json"}]
