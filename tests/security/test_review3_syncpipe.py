"""issue 9 review 3, leftovers: PID 1's sync channel to the parent.

PID 1 tells the parent "namespaces ready" and "started" and hears "go" back
(pyinit/runtime/sync.py) over a channel it holds until just after the
workload's exec, and while startContainer hooks run. It was two pipes. A
process granted ``CAP_SYS_PTRACE`` (a hook, or the workload in that window)
can open ``/proc/1/fd/N`` of PID 1's write end *for reading* and take
"started" before the parent reads it (the parent then never runs poststart
hooks), or open it for writing and send the parent a "started" of its own
while the workload has not even been exec'd (poststart hooks too early). Fixed: the channel is a
unix socket pair, whose ``/proc/PID/fd/N`` cannot be opened (ENXIO).
docs/security.md rule 5.

A startContainer hook runs while PID 1 waits for the workload's exec, so
it sees PID 1 holding the channel every time: no race to win.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import events
from tests.integration.test_run import edit, run_bundle
from tests.security.conftest import attack_bundle
from tests.security.test_review3_logpipe import _ptrace

# For each pipe or socket PID 1 holds: its kind, its open flags (fdinfo, octal:
# the last digit is 0 for a read end, 1 for a write end, 2 for a socket), what
# reopening it through /proc for reading gives (openr), and whether it reopens
# for writing (nothing is written).
PROBE = r"""
for f in /proc/1/fd/*; do
    n=${f##*/}
    t=$(readlink "$f") || continue
    case $t in pipe:*|socket:*) ;; *) continue ;; esac
    if ( : > "$f" ) 2>/dev/null; then w=ok; else w=refused; fi
    r=$(openr "$f")
    echo "${t%%:*} $(sed -n 's/^flags:[[:space:]]*//p' /proc/1/fdinfo/$n) read=${r#*: } write=$w"
done
"""


def _hooked(probe: str) -> Any:
    def change(cfg: dict[str, Any]) -> None:
        _ptrace(cfg)
        cfg["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", probe]}]}
    return change


def _hook_lines(stderr: str) -> list[str]:
    return [ev["line"] for ev in events(stderr)
            if ev.get("event") == "command.output" and ev.get("kind") == "startContainer"]


def test_pid1s_channels_to_the_parent_cannot_be_reopened(tmp_path: Path,
                                                         helpers: dict[str, Path]) -> None:
    bundle = attack_bundle(tmp_path / "b", "true", helpers)
    edit(bundle, _hooked(PROBE))
    res = run_bundle(bundle, "--log-format", "json")
    assert res.returncode == 0, res.stderr
    assert sorted(_hook_lines(res.stderr)) == [
        # spawn's exec report from the workload's own process (the hook's
        # parent) to PID 1: closed by the time the workload runs.
        "pipe 02000000 read=ok write=ok",
        "socket 02000002 read=ENXIO write=refused",  # the sync channel to the parent
        "socket 02004002 read=ENXIO write=refused",  # the log channel (non-blocking)
    ], res.stderr
