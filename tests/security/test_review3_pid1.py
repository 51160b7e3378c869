"""issue 9 review 3: PID 1 reads the container's /proc by path after the pivot.

The supervisor's shutdown lists who is left from ``/proc`` (pyinit/proc.py:
``snapshot`` opens ``/proc/N/stat`` for every numeric name, after
``proc_is_ours`` checked that ``/proc/self`` reads as its PID). After the pivot
that path is the container's: with no ``/proc`` mount in the config (valid
OCI) it is the image's own directory, and a workload granted ``CAP_SYS_ADMIN``
can mount over a real one. The image here ships ``/proc/self -> 1`` and
``/proc/2/stat``, a FIFO; the workload leaves a child behind and exits, so the
shutdown lists ``/proc``. PID 1 opens the FIFO and blocks for ever: no
grace-period SIGKILL, ``pyinit run`` ignores SIGTERM, and a caller that
SIGKILLs it leaves the container running. (Without the FIFO, a fake ``/proc``
that lists nobody makes the shutdown kill nobody and wait for ever.)

The test sees PID 1 open the FIFO without waiting for anything: a writer's
non-blocking open succeeds only while a reader has it open. Then it feeds it
empty reads (end of file: the entry is skipped) until ``pyinit run`` exits, once
the child it left (``sleep 2``) has exited by itself.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PYINIT
from tests.integration.test_run import edit, make_bundle


def _no_proc_mount(cfg: dict[str, Any]) -> None:
    cfg["mounts"] = [m for m in cfg["mounts"] if m["destination"] != "/proc"]
    cfg["linux"].pop("maskedPaths", None)  # they are under /proc
    cfg["linux"].pop("readonlyPaths", None)


def _feed(fifo: Path) -> bool:
    """Open the FIFO for writing if a reader has it open, and close it (EOF for the
    reader); False when nobody reads it."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        assert exc.errno == errno.ENXIO, exc
        return False
    os.close(fd)
    return True


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="issue 9 review3: PID 1 reads the image's /proc by path after the "
                   "pivot (supervisor shutdown, pyinit/proc.py) and blocks on its FIFO")
def test_pid1_does_not_read_the_images_proc(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "b", "sleep 2 & echo started")
    edit(bundle, _no_proc_mount)
    proc = bundle / "rootfs" / "proc"
    (proc / "2").mkdir(parents=True)
    (proc / "self").symlink_to("1")
    fifo = proc / "2" / "stat"
    os.mkfifo(fifo)
    run = subprocess.Popen([PYINIT, "run", "--bundle", str(bundle), "--log-format", "json"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           stdin=subprocess.DEVNULL)
    opened = 0
    while run.poll() is None:
        if _feed(fifo):
            opened += 1
        else:
            time.sleep(0.01)  # a poll interval; nothing depends on how long
    out, err = run.communicate()
    assert (run.returncode, out) == (0, "started\n"), err
    exited = [json.loads(line)["event"] for line in err.splitlines()
              if line.startswith("{")]
    assert "workload.exited" in exited
    assert opened == 0, f"PID 1 opened the image's /proc/2/stat {opened} times"
