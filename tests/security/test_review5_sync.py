"""issue 9 review 5: PID 1's sync channel still lets a hook send "started" early.

Review 3 made the channel between the parent and PID 1 a unix socket pair
(pyinit/runtime/sync.py), so ``/proc/1/fd/N`` no longer opens, and PID 1 shuts
its reading once it has "go". docs/security.md rule 5 says a copy "can only
write what PID 1 can, and the parent acts on each message once". But *when*
it is written is the point of "started": the parent runs the poststart hooks
(on the host, as the caller) on the first "S" it reads. PID 1 holds its end
while the startContainer hooks run, and a hook granted ``CAP_SYS_PTRACE``
(without a user namespace, as in review 3's tests) copies it with
``pidfd_getfd`` and writes "S" itself (helpers/forgesync.c): the parent runs
the poststart hooks while the startContainer hook still runs, before the
workload exists. The runtime spec wants them after the workload started.

The verdict is what the poststart hook saw on the host: whether the
startContainer hook had finished (a file it writes last, in a volume). To
make the early poststart visible, the startContainer hook waits, after
forging, for the poststart hook to write a FIFO in that volume (``timeout``
bounds the wait: when poststart comes only after the workload's exec, as it
must, nothing writes the FIFO, the hook goes on after 5 s and the poststart
hook sees "after"; the verdict never depends on that bound).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_run import edit, run_bundle
from tests.security.conftest import attack_bundle
from tests.security.test_review3_logpipe import _ptrace

START_HOOK = "forgesync S > /shared/forged; timeout 5 cat /shared/fifo > /dev/null; " \
             "touch /shared/hook-done"
POSTSTART = 'if [ -e "$1/hook-done" ]; then echo after; else echo before; fi > "$1/order"; ' \
            'echo go > "$1/fifo" &'


@pytest.mark.xfail(strict=True, reason="issue 9 review 5: a startContainer hook with "
                   "CAP_SYS_PTRACE copies PID 1's sync socket with pidfd_getfd and sends "
                   "\"started\": poststart hooks run before the workload exists")
def test_a_forged_started_does_not_run_poststart_hooks_early(
        tmp_path: Path, helpers: dict[str, Path]) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.mkfifo(shared / "fifo")
    bundle = attack_bundle(tmp_path / "b", "true", helpers)

    def change(cfg: dict[str, Any]) -> None:
        _ptrace(cfg)
        cfg["mounts"].append({"destination": "/shared", "type": "bind",
                              "source": str(shared), "options": ["rbind", "rw"]})
        cfg["hooks"] = {
            "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", START_HOOK]}],
            "poststart": [{"path": "/bin/sh", "args": ["sh", "-c", POSTSTART, "sh",
                                                      str(shared)]}],
        }
    edit(bundle, change)
    res = run_bundle(bundle, "--log-format", "json")
    assert res.returncode == 0, res.stderr
    assert (shared / "forged").read_text() == "sync: 1\n"  # the forgery was sent
    assert (shared / "order").read_text() == "after\n", res.stderr
