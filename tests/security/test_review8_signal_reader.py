"""Issue 12 review 8: the main thread reads the signals, trio runs in a second thread.

Two consequences of that layout, each attacked with the real thing:

* the thread that reads the signalfd also writes pyinit's first log lines; a
  write past ``RLIMIT_FSIZE`` (a config's rlimit, ``ulimit -f``) makes the
  kernel send that thread SIGXFSZ, with pyinit as the sender. It is pyinit's
  own, like the SIGPIPE of a write to a pipe nobody reads, and must not be
  forwarded (it killed the workload: exit 153);
* a seccomp filter whose action is SCMP_ACT_KILL (KILL_THREAD) on a system
  call only trio makes ends the trio thread without any Python running after
  it. The main thread must notice, not wait for ever.
"""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

PYINIT = [sys.executable, "-m", "pyinit"]


def test_pyinits_own_sigxfsz_is_not_forwarded(tmp_path: Path) -> None:
    """stderr is a file already at RLIMIT_FSIZE: every log line fails with EFBIG, and
    the workload runs to its end, untouched by the kernel's SIGXFSZ to pyinit."""
    err = tmp_path / "err.log"
    err.write_bytes(b"\0" * 1024)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))

    with err.open("ab") as stderr:
        res = subprocess.run(
            [*PYINIT, "--", "sh", "-c", "trap 'echo got-xfsz' XFSZ; sleep 1; echo done"],
            stdout=subprocess.PIPE, stderr=stderr, preexec_fn=limit, timeout=60, check=False)
    assert (res.returncode, res.stdout) == (0, b"done\n")  # review 8: 153, or got-xfsz
    assert err.stat().st_size == 1024


KILL_TRIO = r"""
import ctypes, struct, sys, threading
from pyinit import supervisor

libc = ctypes.CDLL(None, use_errno=True)


def kill_this_thread_on_clock_nanosleep() -> None:
    prog = b"".join([struct.pack("HBBI", 0x20, 0, 0, 0),            # A = nr
                     struct.pack("HBBI", 0x15, 0, 1, 230),          # clock_nanosleep?
                     struct.pack("HBBI", 0x06, 0, 0, 0),            # KILL_THREAD
                     struct.pack("HBBI", 0x06, 0, 0, 0x7fff0000)])  # ALLOW
    buf = ctypes.create_string_buffer(prog)

    class Fprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = Fprog(4, ctypes.cast(buf, ctypes.c_void_p))
    assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
    assert libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) == 0  # this thread only


class Sup:
    async def main(self) -> int:
        kill_this_thread_on_clock_nanosleep()
        import time
        time.sleep(0.01)  # the kernel ends the trio thread here
        return 0


supervisor.WATCH_S = 0.05
try:
    supervisor.MainThread().run_trio(Sup())
except supervisor.TrioThreadKilled as exc:
    print("noticed:", exc)
    sys.stdout.flush()
    import os
    os._exit(0)
print("returned")
"""


@pytest.mark.skipif(platform.machine() != "x86_64",
                    reason="the filter names clock_nanosleep by its x86_64 number")
def test_a_trio_thread_the_kernel_ends_is_noticed() -> None:
    """The trio thread is ended by a KILL_THREAD filter of its own: the main thread
    raises TrioThreadKilled (run() then logs pyinit.crashed and kills everyone)."""
    res = subprocess.run([sys.executable, "-c", KILL_TRIO], capture_output=True, text=True,
                         timeout=60, cwd=ROOT, check=False,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert (res.returncode, res.stdout) == (0, "noticed: the kernel ended pyinit's trio "
                                               "thread (a seccomp filter whose action is "
                                               "SCMP_ACT_KILL_THREAD?)\n"), res.stderr
