"""issue 9 review 5: the workload makes PID 1's log socket blocking, and PID 1 blocks.

pyinit/runtime/logpipe.py: "Neither side can block the other. PID 1's end is
non-blocking and its Sink drops (and counts) a line that does not fit". The
non-blocking flag lives on the open file description, and a copy of PID 1's
end taken with ``pidfd_getfd`` (a workload granted ``CAP_SYS_PTRACE``, as in
review 3's tests) shares it: the workload fills the socket while the parent
is not reading and clears ``O_NONBLOCK`` on its copy (helpers/blocklog.c).
PID 1's next line then blocks in ``write`` until the parent reads again, and
PID 1 forwards no signal and reaps nobody meanwhile. The parent does not read
while it runs poststart hooks (container.py ``_parent_hooks``, synchronous),
and not at all when the caller stops it.

Here a poststart hook meets the workload on a FIFO (so the parent is in the
hook), then waits until the test releases it. The workload fills the socket,
clears the flag and exits; PID 1 logs ``workload.exited``. The verdict is
what PID 1 does next, before the release: exit (a zombie, the parent being
in the hook), or sleep in ``write`` (syscall 1 in ``/proc/PID/syscall``).
A hang guard (never the verdict) releases the hook after HANG_S.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PYINIT
from tests.integration.test_run import edit
from tests.security.conftest import attack_bundle
from tests.security.test_review3_logpipe import _ptrace
from tests.security.test_review3_pid1 import _pid1

HANG_S = 30
POSTSTART = 'echo > "$1/ready"; cat "$1/release"'


def _state(pid: int) -> str:
    """'exited', 'blocked in write', or '' (anything else, for now)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        call = Path(f"/proc/{pid}/syscall").read_text().split()[0]
    except (OSError, IndexError):
        return ""
    if state == "Z":
        return "exited"
    if state in ("S", "D") and call == "1":  # write, on x86_64
        return "blocked in write"
    return ""


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="syscall number of write")
def test_pid1_never_blocks_on_its_log_socket(tmp_path: Path,
                                             helpers: dict[str, Path]) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.mkfifo(shared / "ready")
    os.mkfifo(shared / "release")
    release = os.open(shared / "release", os.O_RDWR)  # the hook's cat ends when it closes
    bundle = attack_bundle(tmp_path / "b", "read x < /shared/ready; blocklog > /shared/out",
                           helpers)

    def change(cfg: dict[str, Any]) -> None:
        _ptrace(cfg)
        cfg["mounts"].append({"destination": "/shared", "type": "bind",
                              "source": str(shared), "options": ["rbind", "rw"]})
        cfg["hooks"] = {"poststart": [{"path": "/bin/sh",
                                       "args": ["sh", "-c", POSTSTART, "sh", str(shared)]}]}
    edit(bundle, change)
    run = subprocess.Popen([PYINIT, "run", "--bundle", str(bundle), "--log-format", "json"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           stdin=subprocess.DEVNULL)
    verdict = ""
    pid1 = None
    try:
        deadline = time.monotonic() + HANG_S
        while not verdict and run.poll() is None and time.monotonic() < deadline:
            pid1 = pid1 or _pid1(run.pid)
            if pid1 is not None and (shared / "out").exists():
                verdict = _state(pid1)
            time.sleep(0.05)  # a poll interval; nothing depends on how long
    finally:
        os.close(release)
        _out, err = run.communicate(timeout=60)
    logged = "\n".join(line for line in err.splitlines() if not line.startswith("xxx"))
    assert (shared / "out").read_text() == "filled: 1\nblocking: ok\n", logged
    assert run.returncode == 0, logged
    assert verdict == "exited", logged
