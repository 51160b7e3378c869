"""issue 9 review: config values that pass validation but act on the host.

``domainname`` without a uts namespace: config.py refuses ``hostname``
without one (the sethostname would rename the host), but not
``domainname``, so ``setdomainname`` runs in the caller's UTS namespace and
renames the host's NIS domain. runc refuses both ("unable to set domainname
without a private UTS namespace"); ``pyinit check`` calls the config valid.

The test runs pyinit inside ``unshare --uts``: that namespace stands for
the host, and the real host's domainname is never at risk.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from tests.integration.test_run import EXIT_SETUP_FAILED, PYINIT, edit
from tests.security.conftest import attack_bundle


def _no_uts(cfg: dict[str, Any]) -> None:
    cfg["domainname"] = "pwned.example"
    cfg.pop("hostname", None)
    cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "uts"]


def _in_own_uts(*argv: str) -> subprocess.CompletedProcess[str]:
    """``argv`` in a new UTS namespace (domainname "(none)"), then that namespace's domainname."""
    script = ('"$@" </dev/null; echo "rc=$?"; echo "host-domainname=$(cat '
              '/proc/sys/kernel/domainname)"')
    return subprocess.run(["unshare", "--uts", "sh", "-c", script, "sh", *argv],
                          capture_output=True, text=True, timeout=60, check=False)


def test_the_uts_stand_in_starts_without_a_domainname() -> None:
    res = _in_own_uts("true")
    assert res.stdout == "rc=0\nhost-domainname=(none)\n"


def test_domainname_without_a_uts_namespace_is_refused(tmp_path: Path,
                                                       helpers: dict[str, Path]) -> None:
    bundle = attack_bundle(tmp_path, "echo should-not-run", helpers)
    edit(bundle, _no_uts)
    res = _in_own_uts(PYINIT, "run", "--bundle", str(bundle))
    assert res.stdout == f"rc={EXIT_SETUP_FAILED}\nhost-domainname=(none)\n"
    assert [x for x in res.stderr.splitlines() if x.startswith("pyinit:")] == [
        "pyinit: config.json: domainname: needs a uts namespace in linux.namespaces"]
