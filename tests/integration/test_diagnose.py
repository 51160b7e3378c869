"""``pyinit diagnose``: the environment report and the bundle predictions."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema
import pytest

from tests.conftest import PYINIT, ROOT
from tests.integration.test_run import edit, make_bundle

pytestmark = pytest.mark.root
SCHEMA = json.loads((ROOT / "docs" / "diagnose.schema.json").read_text())


def diagnose(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, PYINIT, "diagnose", *args], capture_output=True, text=True,
                          timeout=60, check=False)


def test_json_report_matches_the_schema() -> None:
    res = diagnose("--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    jsonschema.validate(report, SCHEMA)
    assert report["pid1"] is False and "CAP_SYS_ADMIN" in report["capabilities"]["effective"]
    assert report["mountable"]["tmpfs"] == "ok" and report["mountable"]["proc"] == "ok"
    assert report["cgroup"]["version"] in ("hybrid", "v1", "v2")
    assert report["mounts"]["count"] > 0


def test_table_on_a_terminal_style() -> None:
    res = diagnose()
    assert res.returncode == 0
    assert res.stdout.startswith("pid ") and "mountable:" in res.stdout


def test_without_cap_sys_admin() -> None:
    res = diagnose("--json", prefix=("setpriv", "--bounding-set=-sys_admin",
                                     "--inh-caps=-sys_admin"))
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    jsonschema.validate(report, SCHEMA)
    assert "CAP_SYS_ADMIN" not in report["capabilities"]["effective"]
    assert all(v.startswith("untested (no mount namespace: EPERM)")
               for v in report["mountable"].values())


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
    failures = {f["where"]: f for f in report["bundle"]["predicted_failures"]}
    assert "symlink" in failures["mounts[0]"]["problem"]
    assert "unknown filesystem type 'nosuchfs'" in failures["mounts[7]"]["problem"]
    assert "tmpfs" in failures["mounts[7]"]["hint"]
    assert "does not exist" in failures["mounts[8]"]["problem"]
    assert "the source is missing: /no does not exist" in failures["mounts[8]"]["hint"]


def test_bundle_that_will_work_predicts_nothing(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "true")
    res = diagnose("--bundle", str(bundle), "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["bundle"]["predicted_failures"] == []
