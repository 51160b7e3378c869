"""issue 9 review 4: processes PID 1's shutdown never signals.

Review 3's fix (pyinit/proc.py, container.py ``_own_proc``): the shutdown
lists who is left only through a directory fd on the procfs the setup
mounted, and opens each ``N/stat`` with ``openat2`` (beneath, no symlinks,
no mount crossing). The fd cannot be redirected, but what it shows still
belongs to the container: the procfs is mounted in the container's mount
namespace and owned by its user namespace. A process PID 1 does not list, or
lists as dead, is a process it never signals, and the shutdown then waits
for it for ever:

* a process whose main thread exited while another thread runs on reads
  ``Z`` in ``N/stat``, and the supervisor skips ``Z``: no capability needed;
* a workload granted ``CAP_SYS_ADMIN`` in its user namespace mounts a
  tmpfs on ``/proc/N``: ``openat2`` refuses to cross it (EXDEV), and N is
  skipped, with its whole subtree (the table is built from ppid);
* or it remounts the procfs ``hidepid=invisible`` (the options belong to
  the superblock, the fd's too): PID 1 keeps only CAP_KILL, so a process
  holding a capability PID 1 lacks fails PID 1's ptrace check and is not
  even listed. No mount crossing is involved;
* a config that mounts ``/proc`` with ``hidepid=invisible`` does the same
  with no capability granted at all: the workload's own default
  capabilities (CAP_AUDIT_WRITE, CAP_NET_BIND_SERVICE) are more than PID 1
  keeps. In a user namespace the procfs's ``gid`` (the host's root group by
  default) is not the container's root either.

In each case the workload leaves a process and exits. PID 1 finds nobody
left, sends nothing, and loops after the grace period (SIGKILL to an empty
list every 50 ms) until the process ends by itself; ``pyinit run`` drops the
caller's SIGTERM ("the workload has exited"), and a caller that SIGKILLs it
leaves PID 1 and the process running on the host.

The verdict is how the process ended: by PID 1's SIGTERM at the start of the
shutdown (code 143 in ``orphans.reaped``), as any visible one does. A hang
guard (never the verdict) ends it from the host with SIGUSR1 (138) after
HANG_S, so the xfail ends too. A fix that does not depend on what the
container's procfs lists (PID 1 of its own namespace can ``kill(-1)``, with
SIGTERM first: see the last test) and does not skip a ``Z`` leader makes all
of them pass.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import PYINIT
from tests.integration.test_run import edit, make_bundle
from tests.security.conftest import attack_bundle
from tests.security.test_review3_pid1 import _no_proc_mount, _pid1

HOST = 100000  # the host id of the container's root
HANG_S = 30  # the hang guard; --grace is 1 s
REASON = "issue 9 review 4: "


def _userns(cfg: dict[str, Any]) -> None:
    cfg["linux"]["namespaces"].append({"type": "user"})
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": HOST, "size": 65536}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": HOST, "size": 65536}]


def _sys_admin(cfg: dict[str, Any]) -> None:
    _userns(cfg)
    for kind in ("bounding", "effective", "permitted"):
        cfg["process"]["capabilities"][kind].append("CAP_SYS_ADMIN")
    cfg["linux"].pop("seccomp")  # pyinit spec's profile refuses mount (as docker's does)


def _hidepid(cfg: dict[str, Any]) -> None:
    _userns(cfg)
    (mount,) = [m for m in cfg["mounts"] if m["destination"] == "/proc"]
    mount["options"] = [*mount.get("options", []), "hidepid=invisible"]


def _bundle(top: Path, script: str, change: Any) -> Path:
    bundle = make_bundle(top / "b", script)
    edit(bundle, change)
    for p in [bundle / "rootfs", *(bundle / "rootfs").rglob("*")]:
        os.lchown(p, HOST, HOST)
    return bundle


def _children(pid: int) -> list[int]:
    found = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(c) for c in children.read_text().split()]
        except OSError:
            pass
    return found


def _run(bundle: Path, find_pid1: Callable[[int], int | None] = _pid1,
         ) -> tuple[int, str, list[dict[str, Any]]]:
    """Run it; if it has not ended after HANG_S, end PID 1's children with SIGUSR1 from
    the host (the hang guard) and let it finish. (exit code, stdout, events).
    ``find_pid1``: PID 1's host pid from ``pyinit run``'s, or None (not there yet)."""
    run = subprocess.Popen([PYINIT, "run", "--bundle", str(bundle), "--log-format", "json",
                            "--grace", "1"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + HANG_S
    pid1 = None
    while run.poll() is None and time.monotonic() < deadline:
        pid1 = find_pid1(run.pid) or pid1
        time.sleep(0.05)  # a poll interval; nothing depends on how long
    if run.poll() is None:
        assert pid1 is not None, "no PID 1 found"
        for child in _children(pid1):
            os.kill(child, signal.SIGUSR1)
    out, err = run.communicate(timeout=60)
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    return run.returncode, out, events


def _orphans(events: list[dict[str, Any]]) -> dict[str, int]:
    """Exit codes of the orphans PID 1 reaped, summed over its orphans.reaped events."""
    codes: dict[str, int] = {}
    for ev in events:
        if ev["event"] == "orphans.reaped":
            for code, n in ev["codes"].items():
                codes[code] = codes.get(code, 0) + n
    return codes


def test_a_mount_on_its_proc_dir_does_not_hide_a_process(reachable: Path) -> None:
    bundle = _bundle(reachable, "sleep 1000 >/dev/null 2>&1 & mount -t tmpfs none /proc/$! "
                     "&& echo hidden", _sys_admin)
    code, out, events = _run(bundle)
    assert (code, out) == (0, "hidden\n")
    assert _orphans(events) == {"143": 1}


def test_remounting_proc_hidepid_does_not_hide_a_process(reachable: Path) -> None:
    bundle = _bundle(reachable, "sleep 1000 >/dev/null 2>&1 & "
                     "mount -o remount,hidepid=invisible /proc && echo hidden", _sys_admin)
    code, out, events = _run(bundle)
    assert (code, out) == (0, "hidden\n")
    assert _orphans(events) == {"143": 1}


def test_a_hidepid_proc_does_not_hang_the_shutdown(reachable: Path) -> None:
    bundle = _bundle(reachable, "sleep 1000 >/dev/null 2>&1 & echo started", _hidepid)
    code, out, events = _run(bundle)
    assert (code, out) == (0, "started\n")
    assert _orphans(events) == {"143": 1}


# ... and one that ignores SIGTERM (inherited SIG_IGN) is SIGKILLed when the grace
# period ends, though the procfs still hides it: PID 1 kills with kill(-1). (Its pid
# is 3: PID 1, the workload's shell, then what it started.)
def test_a_hidden_process_that_ignores_sigterm_is_killed_after_the_grace(
        reachable: Path) -> None:
    bundle = _bundle(reachable, "(trap '' TERM; exec sleep 1000) >/dev/null 2>&1 & "
                     "echo started", _hidepid)
    code, out, events = _run(bundle)
    assert (code, out) == (0, "started\n")
    assert _orphans(events) == {"137": 1}
    (killed,) = [e for e in events if e["event"] == "shutdown.killed"]
    # Named too: hidepid hides it from PID 1's listing, not from its children (review 5).
    assert (killed["pids"], killed["commands"], killed["reason"]) == (
        [3], ["?"], "still running 1s after the shutdown began")


# No capability, pyinit spec's config as it is: a process whose main thread exits
# (pthread_exit) while another thread runs on is a live thread group whose leader is
# a zombie, and its /proc/N/stat says "Z". The supervisor skips "Z" as already dead
# (supervisor.py ``remaining``: ``p.state != "Z"``), so it is never signalled, and
# the shutdown waits for ever, as above. ``pyinit -- CMD`` and ``pyinit sandbox``
# share that code.
def test_a_process_with_a_zombie_leader_is_still_killed(tmp_path: Path,
                                                        helpers: dict[str, Path]) -> None:
    bundle = attack_bundle(tmp_path / "b", "zleader &", helpers)
    code, out, events = _run(bundle)
    assert (code, out) == (0, "leader exits\n")
    assert _orphans(events) == {"143": 1}


# Without a procfs of its own PID 1 "signals everyone with kill(-1)" (docs/security.md
# rule 4), but only SIGKILL, after the grace period: the blind path sends no SIGTERM at
# the start (supervisor.py: ``if others:`` is false for None), so nobody left gets the
# graceful end a listed process gets. Found while checking the fix for the tests above
# (kill(-1) instead of the listing ended the hidden process with 137, not 143).
def test_without_a_procfs_the_shutdown_still_begins_with_sigterm(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "b", "sleep 1000 >/dev/null 2>&1 & echo started")
    edit(bundle, _no_proc_mount)
    code, out, events = _run(bundle)
    assert (code, out) == (0, "started\n")
    assert _orphans(events) == {"143": 1}


# The same thread group under ``pyinit -- CMD`` as a subreaper, not PID 1 of a
# namespace: there kill(-1) would reach the whole host, so the shutdown signals
# only whom /proc lists, and a "Z" with live threads must count as alive. (As
# PID 1 above, kill(-1) reaches it whatever its state reads.)
def test_a_subreaper_kills_a_process_with_a_zombie_leader(helpers: dict[str, Path]) -> None:
    run = subprocess.Popen([PYINIT, "--log-format", "json", "--grace", "1", "--", "sh", "-c",
                            f"{helpers['zleader']} &"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           stdin=subprocess.DEVNULL)
    try:
        out, err = run.communicate(timeout=HANG_S)
    except subprocess.TimeoutExpired:  # the hang guard: end the thread group from here
        for child in _children(run.pid):
            os.kill(child, signal.SIGUSR1)
        out, err = run.communicate(timeout=60)
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert (run.returncode, out) == (0, "leader exits\n")
    (grace,) = [e for e in events if e["event"] == "shutdown.grace_started"]
    assert (grace["reason"], grace["workload_running"], len(grace["pids"])) == (
        "workload exited", False, 1)
    assert _orphans(events) == {"143": 1}
