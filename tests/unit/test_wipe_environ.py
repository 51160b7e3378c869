"""task.environ_block and task.wipe_environ, in a forked child of the test."""

from __future__ import annotations

import os

from pyinit.linux import task


def test_a_wiped_environ_block_reads_as_nuls_and_os_environ_is_kept() -> None:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            os.environ["PYINIT_TEST_KEPT"] = "yes"
            task.wipe_environ(task.environ_block())
            with open(f"/proc/{os.getpid()}/environ", "rb") as fh:
                block = fh.read()
            ok = (len(block) > 0 and block.strip(b"\0") == b""
                  and os.environ["PYINIT_TEST_KEPT"] == "yes")
            os.write(w, b"ok" if ok else repr(block[:80]).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as fh:
        said = fh.read()
    os.waitpid(pid, 0)
    assert said == b"ok"
    with open(f"/proc/{os.getpid()}/environ", "rb") as fh:
        assert fh.read().strip(b"\0") != b""  # the test's own block is untouched
