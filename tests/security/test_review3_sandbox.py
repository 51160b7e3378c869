"""issue 9 review 3: the sandbox's default filter now lets a program other than root's
make namespaces (docs/sandbox.md, "Seccomp"). The attack: from a user and mount
namespace of its own (where it holds every capability), undo what the sandbox set up.

The program is uid 999 in the sandbox's user namespace; it unshares a user and mount
namespace (and a PID or network one for a fresh proc or sysfs) and tries, with each
call's errno printed: remount its --ro-bind read-write and write there, unmount the
--ro-bind (to see what is under it), unmount a /proc mask and the read-only /proc/sys,
remount /proc/sys read-write, mount a fresh procfs and sysfs, and clone the /proc tree
without its locked submounts (open_tree without AT_RECURSIVE). Every mount it copied
from the sandbox is locked by the kernel (MNT_LOCKED, MNT_LOCK_READONLY): all fail.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.integration.test_rootless import runtime

pytestmark = pytest.mark.root

__all__ = ["runtime"]

NESTED = r"""
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

def err(rc):
    return "ok" if rc >= 0 else errno.errorcode[ctypes.get_errno()]

NEWNS, NEWUSER, NEWPID, NEWNET = 0x20000, 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_REMOUNT, MS_BIND = 1, 32, 4096
print("unshare", err(libc.unshare(NEWUSER | NEWNS | NEWPID | NEWNET)))
print("remount /usr rw", err(libc.mount(None, b"/usr", None, MS_REMOUNT | MS_BIND, None)))
try:
    open("/usr/pwned", "w")
    print("write /usr ok")
except OSError as exc:
    print("write /usr", errno.errorcode[exc.errno])
print("umount /usr", err(libc.umount2(b"/usr", 0)))
print("umount /proc/keys", err(libc.umount2(b"/proc/keys", 0)))
print("umount /proc/sys", err(libc.umount2(b"/proc/sys", 0)))
print("remount /proc/sys rw", err(libc.mount(None, b"/proc/sys", None,
                                             MS_REMOUNT | MS_BIND, None)))
print("open_tree /proc", err(libc.syscall(428, -100, b"/proc", 1)))  # OPEN_TREE_CLONE only
os.mkdir("/tmp/s")
print("mount sysfs", err(libc.mount(b"sysfs", b"/tmp/s", b"sysfs", 0, None)))
pid = os.fork()  # the first child in the new PID namespace
if pid == 0:
    os.mkdir("/tmp/p")
    print("mount proc", err(libc.mount(b"proc", b"/tmp/p", b"proc", 0, None)), flush=True)
    os._exit(0)
os.waitpid(pid, 0)
"""


def test_nested_namespaces_cannot_undo_the_sandbox(runtime: tuple[str, int, int],
                                                   tmp_path: Path) -> None:
    python, uid, gid = runtime
    res = subprocess.run(
        ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", python, "-m",
         "pyinit", "sandbox", "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin",
         "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
         "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--",
         "python3", "-I", "-u", "-c", NESTED],
        capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL)
    assert (res.returncode, res.stderr) == (0, "")
    assert res.stdout.splitlines() == [
        "unshare ok",
        "remount /usr rw EPERM",  # MNT_LOCK_READONLY
        "write /usr EROFS",
        "umount /usr EINVAL",  # MNT_LOCKED: what is under it stays hidden
        "umount /proc/keys EINVAL",
        "umount /proc/sys EINVAL",
        "remount /proc/sys rw EPERM",
        "open_tree /proc EINVAL",  # has locked children
        "mount sysfs EPERM",  # no fully visible sysfs: none at all here
        "mount proc EPERM",  # /proc has mounts on top of it
    ]
    assert not Path("/usr/pwned").exists()
