"""``pyinit sandbox`` as root: a --ro-bind must stay read-only (finding 5).

bubblewrap drops every capability and sets no_new_privs; a sandbox that
leaves the program CAP_SYS_ADMIN lets it remount its read-only view of a
host directory read-write and change the host. Today the sandbox's default
seccomp profile refuses mount(2) and mount_setattr (EPERM), so the remount
attacks fail; the capabilities themselves are still there.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.integration.test_sandbox import sandbox


def _host_dir(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "file").write_text("original\n")
    return src


def _unchanged(src: Path) -> None:
    assert sorted(p.name for p in src.iterdir()) == ["file"]
    assert (src / "file").read_text() == "original\n"


def test_ro_bind_cannot_be_made_writable(tmp_path: Path, helpers: dict[str, Path]) -> None:
    src = _host_dir(tmp_path)
    res = sandbox("--ro-bind", str(src), "/data", "--ro-bind", str(helpers["remount"].parent),
                  "/h", "--proc", "/proc", "--", "/h/remount", "/data", "file")
    assert res.returncode == 0, res.stderr
    assert res.stdout == ("remount: EPERM\nwrite: EROFS\nmount_setattr: EPERM\n"
                          "write: EROFS\n")
    _unchanged(src)


def _system() -> list[str]:
    """Options that show the host's programs read-only (the sandbox's defaults)."""
    ops = []
    for path in ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc"):
        if os.path.islink(path):
            ops += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            ops += ["--ro-bind", path, path]
    return ops


def test_mount_remount_rw_fails(tmp_path: Path) -> None:
    src = _host_dir(tmp_path)
    res = sandbox(*_system(), "--ro-bind", str(src), "/data", "--proc", "/proc", "--",
                  "sh", "-c", "mount -o remount,rw /data; echo mount=$?;"  # no /dev/null here
                  " echo owned > /data/file; echo write=$?")
    assert res.returncode == 0, res.stderr
    mount, write = res.stdout.splitlines()
    assert mount != "mount=0"  # util-linux's exit code for the refusal is its own business
    assert write == "write=2"  # sh: can't create /data/file: Read-only file system
    _unchanged(src)


def test_sandbox_program_has_no_capabilities() -> None:
    res = sandbox("--", "sh", "-c", "grep -E '^(Cap(Prm|Eff|Bnd|Amb)|NoNewPrivs)' "
                  "/proc/self/status")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["CapPrm:\t0000000000000000", "CapEff:\t0000000000000000",
                                       "CapBnd:\t0000000000000000", "CapAmb:\t0000000000000000",
                                       "NoNewPrivs:\t1"]
