"""pyinit/linux/prctl.py (``_ctypes`` alone) against syscalls' ctypes wrappers of the same calls.

Each setting is made through one module and read back through the other, in
a forked child, so the test process keeps its own settings. No root needed.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys

import pytest

from pyinit.linux import prctl, syscalls


def in_child(code: str) -> str:
    res = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True,
                         timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_the_numbers_are_the_same() -> None:
    assert [prctl.PR_SET_PDEATHSIG, prctl.PR_GET_PDEATHSIG, prctl.PR_SET_CHILD_SUBREAPER,
            prctl.PR_GET_CHILD_SUBREAPER] == [syscalls.PR_SET_PDEATHSIG,
                                              syscalls.PR_GET_PDEATHSIG,
                                              syscalls.PR_SET_CHILD_SUBREAPER,
                                              syscalls.PR_GET_CHILD_SUBREAPER]


def test_each_reads_what_the_other_set() -> None:
    out = in_child(
        "from pyinit.linux import prctl, syscalls\n"
        "print(prctl.is_child_subreaper(), syscalls.is_child_subreaper())\n"
        "prctl.set_child_subreaper()\n"
        "print(prctl.is_child_subreaper(), syscalls.is_child_subreaper())\n"
        "syscalls.set_child_subreaper(False)\n"
        "print(prctl.is_child_subreaper(), syscalls.is_child_subreaper())\n"
        "prctl.set_pdeathsig(10)\n"
        "print(prctl.get_pdeathsig(), syscalls.get_pdeathsig())\n"
        "syscalls.set_pdeathsig(12)\n"
        "print(prctl.get_pdeathsig(), syscalls.get_pdeathsig())\n")
    assert out.splitlines() == ["False False", "True True", "False False", "10 10", "12 12"]


def test_a_refused_call_is_an_oserror_naming_it() -> None:
    with pytest.raises(OSError) as caught:
        prctl.set_pdeathsig(99)  # not a signal: EINVAL, and nothing changes
    assert (caught.value.errno, caught.value.strerror) == (
        errno.EINVAL, f"prctl(PR_SET_PDEATHSIG): {os.strerror(errno.EINVAL)}")
    assert prctl.get_pdeathsig() == syscalls.get_pdeathsig()


def test_it_needs_no_ctypes() -> None:
    out = in_child("import sys\nfrom pyinit.linux import prctl\n"
                   "prctl.set_pdeathsig(15)\n"
                   "print('ctypes' in sys.modules, prctl.get_pdeathsig())\n")
    assert out.split() == ["False", str(int(signal.SIGTERM))]
