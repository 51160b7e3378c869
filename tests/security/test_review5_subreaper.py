"""issue 9 review 5: without a PID namespace, a hidepid procfs still hides a process.

Review 4 found that a procfs mounted ``hidepid=invisible`` hides from PID 1's
listing every process holding a capability PID 1 lacks, so the shutdown never
signals it and waits for it for ever. The fix (supervisor.py, ``kill(-1)``)
holds only for PID 1 of its own PID namespace. A config without a ``pid``
namespace that mounts such a procfs (a new procfs instance: the host's
``/proc`` is not touched) still has its PID 1 trust the listing. PID 1 is a
child subreaper: it adopts the workload's leftover, lists nobody, sends no
SIGTERM (not even ``shutdown.grace_started``), then SIGKILLs an empty list
every 50 ms for ever; ``pyinit run`` drops the caller's SIGTERM ("the
workload has exited"). The cgroup listing of review 3 is not used, since
there is a procfs (container.py ``_own_cgroup_procs``).

No capability beyond what a non-root workload is commonly given: user 1000
with CAP_NET_BIND_SERVICE as an ambient capability (as a web server gets).
PID 1 takes uid 1000 and keeps no capability without a PID namespace
(docs/security.md rule 6), so the leftover's permitted set is not a subset of
PID 1's and hidepid hides it; PID 1's gid is not the procfs's ``gid`` (0).

The verdict and the hang guard are review 4's (test_review4_pid1.py): the
leftover must end by PID 1's SIGTERM at the start of the shutdown (143), not
by the guard's SIGUSR1 (138) after HANG_S.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.integration.test_run import edit, make_bundle
from tests.security.test_review4_pid1 import _children, _orphans, _run


def _hidepid_without_pid_namespace(cfg: dict[str, Any]) -> None:
    cfg["linux"]["namespaces"] = [ns for ns in cfg["linux"]["namespaces"]
                                  if ns["type"] != "pid"]
    (mount,) = [m for m in cfg["mounts"] if m["destination"] == "/proc"]
    mount["options"] = [*mount.get("options", []), "hidepid=invisible"]
    cfg["process"]["user"] = {"uid": 1000, "gid": 1000}
    cfg["process"]["capabilities"] = {
        kind: ["CAP_NET_BIND_SERVICE"]
        for kind in ("bounding", "effective", "permitted", "inheritable", "ambient")}


def _parents_child(pid: int) -> int | None:
    """Without a PID namespace, PID 1 is the parent's one child."""
    return next(iter(_children(pid)), None)


def test_a_hidepid_proc_without_pid_namespace_does_not_hang_the_shutdown(
        tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "b", "sleep 1000 >/dev/null 2>&1 & echo started")
    edit(bundle, _hidepid_without_pid_namespace)
    code, out, events = _run(bundle, _parents_child)
    assert (code, out) == (0, "started\n"), events
    assert _orphans(events) == {"143": 1}, events
