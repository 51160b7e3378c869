"""Issue 12 review 7: what the default seccomp cache's key leaves out.

A compiled program is served again for as long as its key is the same:
the profile, libseccomp's *version*, the kernel's release and the identity of
pyinit's compiler (pyinit/linux/seccomp_cache.py ``key``). Since issue 12 the
cache is on by default, in pyinit's package directory, kept for as long as
the package is (up to 64 programs). libseccomp itself is named only by its
version string: a distribution's fix to libseccomp's compiler keeps the
upstream version (this host's is Debian's ``2.5.4-1+deb12u1``, which reports
``2.5.4``), so every start after the update keeps loading the program the old
library compiled, until pyinit itself changes. A fix that matters for
security (libseccomp has had filter-generation bugs, CVE-2019-9893) would not
reach a single workload of a machine that ran pyinit before the update.

The test stands for the update with a copy of the host's libseccomp (same
bytes, another file) found first through ``LD_LIBRARY_PATH``: another
library file must get a program of its own compiling.
"""

from __future__ import annotations

import ctypes.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pyinit.linux import seccomp
from tests.security.test_review6_cache_written_by_the_sandbox import (
    MKDIR,
    cached,
    fill,
    install,
    start,
)

pytestmark = pytest.mark.root


def _loaded_libseccomp() -> str:
    """The file this process's dlopen of libseccomp found (as the parent's will)."""
    seccomp.library()
    for line in Path("/proc/self/maps").read_text().splitlines():
        path = line.split()[-1]
        if os.path.basename(path).startswith("libseccomp.so"):
            return os.path.realpath(path)
    raise AssertionError(f"libseccomp is not mapped ({ctypes.util.find_library('seccomp')})")


def test_another_libseccomp_of_the_same_version_compiles_afresh(tmp_path: Path) -> None:
    package = install(tmp_path)
    program, _ = fill(package)
    updated = tmp_path / "lib"
    updated.mkdir()
    shutil.copy(_loaded_libseccomp(), updated / seccomp.LIBRARY)
    # The copy is the library a pyinit started so loads.
    probe = subprocess.run(
        [sys.executable, "-c", "from tests.security.test_review7_cache_key import "
         "_loaded_libseccomp; print(_loaded_libseccomp())"], capture_output=True, text=True,
        check=True, timeout=60, env=dict(os.environ, LD_LIBRARY_PATH=str(updated)))
    assert probe.stdout == f"{updated / seccomp.LIBRARY}\n"
    res = start(package, MKDIR, environ={"LD_LIBRARY_PATH": str(updated)})
    assert cached(res) == ("rc=1\n", False, "cache")  # HEAD: ("rc=1\n", True, "cache")
    assert len(list(program.parent.iterdir())) == 2  # one program per library
