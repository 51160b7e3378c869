"""``pyinit sandbox``'s bubblewrap options, each with bubblewrap's meaning (issue 10)."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pyinit.linux import seccomp as linux_seccomp
from pyinit.oci.seccomp import parse_seccomp
from tests.conftest import PYINIT

pytestmark = pytest.mark.root

BASE = ["--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib",
        "/lib", "--symlink", "usr/lib64", "/lib64", "--proc", "/proc", "--dev", "/dev"]


def sandbox(*args: str, fds: dict[int, bytes] | None = None, keep: tuple[int, ...] = (),
            tmpdir: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``pyinit sandbox ARGS``; each ``fds`` entry is a pipe holding those bytes
    (numbers from 40 up: pytest's own descriptors are below)."""
    passed = list(keep)
    opened = []
    for number, data in (fds or {}).items():
        r, w = os.pipe()
        os.write(w, data)
        os.close(w)
        assert number >= 40
        os.dup2(r, number, inheritable=True)
        os.close(r)
        passed.append(number)
        opened.append(number)
    try:
        return subprocess.run([PYINIT, "sandbox", *args], capture_output=True, text=True,
                              timeout=60, check=False, stdin=subprocess.DEVNULL,
                              pass_fds=passed,
                              env={**os.environ, "TMPDIR": str(tmpdir or "/tmp")})
    finally:
        for number in opened:
            os.close(number)


def ok(res: subprocess.CompletedProcess[str]) -> list[str]:
    assert (res.returncode, res.stderr) == (0, ""), res
    return res.stdout.splitlines()


def usage(res: subprocess.CompletedProcess[str]) -> str:
    assert (res.returncode, res.stdout) == (2, "")
    return res.stderr


def test_chdir_is_entered_never_created() -> None:
    """--chdir DIR must exist inside, as in bubblewrap (pyinit run creates process.cwd)."""
    res = sandbox(*BASE, "--chdir", "/usr/nonexistent", "--", "true")
    assert (res.returncode, res.stdout) == (125, "")
    assert res.stderr == "pyinit: process.cwd /usr/nonexistent: No such file or directory\n"


def test_the_callers_directory_is_tried_as_the_programs_user(tmp_path: Path) -> None:
    """Root's program has no capability: a directory only uid 1234 may enter is bound
    where the caller stands, and the program falls back to / (HOME=/nonexistent)."""
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    os.chown(locked, 1234, 1234)
    args = [*BASE, "--bind", str(locked), str(locked), "--setenv", "HOME", "/nonexistent",
            "--", "sh", "-c", "pwd; echo $PWD"]

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([PYINIT, "sandbox", *extra, *args], capture_output=True,
                              text=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
                              cwd=locked, env={**os.environ, "PWD": str(locked)})

    assert ok(run()) == ["/", "/"]
    # With the capability to pass the mode, it stays where the caller is.
    assert ok(run("--cap-add", "CAP_DAC_OVERRIDE")) == [str(locked), str(locked)]


def test_later_mounts_go_on_top_in_the_order_given(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("host\n")
    out = ok(sandbox(*BASE, "--tmpfs", "/a", "--dir", "/a/b", "--bind", str(tmp_path), "/a/b",
                     "--tmpfs", "/a/b/c", "--remount-ro", "/a", "--",
                     "sh", "-c", "cat /a/b/f; touch /a/x 2>/dev/null || echo a-ro;"
                     " touch /a/b/c/y && echo c-rw;"
                     " grep -E ' /a(/b|/b/c)? ' /proc/self/mountinfo | cut -d' ' -f5,6"))
    assert out == ["host", "a-ro", "c-rw", "/a ro,nosuid,nodev,relatime",
                   "/a/b rw,nosuid,nodev,relatime", "/a/b/c rw,nosuid,nodev,relatime"]


def test_files_from_descriptors_with_perms() -> None:
    out = ok(sandbox(*BASE, "--perms", "0640", "--file", "45", "/etc/one", "--bind-data", "46",
                     "/etc/two", "--ro-bind-data", "47", "/etc/three", "--perms", "0700",
                     "--dir", "/d", "--chmod", "0751", "/etc", "--",
                     "sh", "-c", "cat /etc/one /etc/two /etc/three;"
                     " stat -c '%n %a' /etc/one /etc/two /etc/three /d /etc;"
                     " echo w >> /etc/two && echo two-rw;"
                     " (echo w >> /etc/three) 2>/dev/null || echo three-ro",
                     fds={45: b"one\n", 46: b"two\n", 47: b"three\n"}))
    assert out == ["one", "two", "three", "/etc/one 640", "/etc/two 600", "/etc/three 600",
                   "/d 700", "/etc 751", "two-rw", "three-ro"]


def test_args_from_a_descriptor_in_place() -> None:
    args = b"\0".join([b"--setenv", b"FROM", b"fd 3", b"--chdir", b"/usr", b""])
    out = ok(sandbox(*BASE, "--args", "43", "--", "sh", "-c", 'echo "$FROM"; pwd',
                     fds={43: args}))
    assert out == ["fd 3", "/usr"]


def test_environment_options_in_order() -> None:
    out = ok(sandbox(*BASE, "--setenv", "A", "1", "--clearenv", "--setenv", "B", "2",
                     "--setenv", "C", "3", "--unsetenv", "C", "--", "/usr/bin/env"))
    # PWD names the directory entered, as bubblewrap sets it after --clearenv too: here
    # /, since the caller's (the checkout) is not inside and there is no HOME.
    assert out == ["B=2", "PWD=/"]


def test_info_and_json_status() -> None:
    r_info, w_info = os.pipe()
    r_status, w_status = os.pipe()
    try:
        res = sandbox(*BASE, "--unshare-net", "--info-fd", str(w_info), "--json-status-fd",
                      str(w_status), "--", "sh", "-c", "exit 3", keep=(w_info, w_status))
    finally:
        os.close(w_info)
        os.close(w_status)
    with os.fdopen(r_info) as fh:
        info = json.loads(fh.read())
    with os.fdopen(r_status) as fh:
        lines = fh.read().splitlines()
    assert (res.returncode, res.stderr) == (3, "")
    # The namespaces it created (not cgroup here), each a new one.
    keys = ["child-pid", "ipc-namespace", "mnt-namespace", "net-namespace", "pid-namespace",
            "uts-namespace"]
    assert list(info) == keys
    for key, name in (("ipc", "ipc"), ("mnt", "mnt"), ("net", "net"), ("pid", "pid"),
                      ("uts", "uts")):
        assert info[f"{key}-namespace"] != os.stat(f"/proc/self/ns/{name}").st_ino
    assert [json.loads(line) for line in lines] == [info, {"exit-code": 3}]


def test_seccomp_program_from_a_descriptor() -> None:
    profile, problems = parse_seccomp({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                      "errnoRet": 1}]})
    assert problems == [] and profile is not None
    program = linux_seccomp.prepare(profile).program
    out = ok(sandbox(*BASE, "--tmpfs", "/tmp", "--seccomp", "49", "--", "sh", "-c",
                     "LC_ALL=C mkdir /tmp/d 2>&1; grep -E '^Seccomp(_filters)?:' /proc/self/status"
                     " | tr -d '\\t'", fds={49: program}))
    assert out == ["mkdir: cannot create directory '/tmp/d': Operation not permitted",
                   "Seccomp:2", "Seccomp_filters:1"]


def test_try_binds_skip_a_missing_source(tmp_path: Path) -> None:
    out = ok(sandbox(*BASE, "--ro-bind-try", str(tmp_path / "missing"), "/m", "--bind-try",
                     str(tmp_path), "/t", "--", "sh", "-c", "ls -d /m /t 2>&1; true"))
    assert out == ["ls: cannot access '/m': No such file or directory", "/t"]


@pytest.mark.parametrize(("args", "message"), [
    (["--bind", "/nonexistent-src", "/x"],
     "--bind /nonexistent-src /x: /nonexistent-src does not exist"),
    (["--perms", "0700", "--proc", "/proc"],
     "--perms must come right before one of --dir, --file, --tmpfs, --bind-data, "
     "--ro-bind-data, not --proc"),
    (["--perms", "999", "--dir", "/x"], "--perms 999: not an octal mode (0 to 7777)"),
    (["--tmpfs", "/x", "--perms", "0700"],
     "--perms and --size must be followed by the option they apply to"),
    (["--share-net"], "--share-net: only with --unshare-all"),
    (["--tmpfs", "/x", "--ro-bind", "/", "/"],
     "--ro-bind / /: a bind on / must be the first filesystem option (it becomes the root)"),
    (["--dev", "/other"], "--dev /other: pyinit makes its minimal /dev only on /dev"),
    (["--file", "42", "/x"], "--file 42: cannot read it: Bad file descriptor"),
    (["--seccomp", "0", "--no-seccomp"],
     "--seccomp: not together with --no-seccomp or --seccomp-profile"),
    (["--disable-userns", "--no-seccomp"],
     "--disable-userns: it is the default seccomp filter without namespaces; not together "
     "with --seccomp, --seccomp-profile or --no-seccomp"),
    (["--map-subids"], "--map-subids: needs a user namespace (--unshare-user)"),
    (["--cap-add", "CAP_BOGUS"], "--cap-add CAP_BOGUS: unknown capability"),
    (["--userns", "3"], "--userns: not supported: joining a user namespace by fd is not "
     "supported"),
    (["--as-pid-1"], "--as-pid-1: not supported: pyinit is always the sandbox's PID 1 (that "
     "is its job)"),
    (["--info-fd", "42"], "argument --info-fd: 42 is not an open file descriptor (Bad file "
     "descriptor)"),
])
def test_bad_options_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    assert usage(sandbox(*args, "--", "true", tmpdir=tmp_path)) == \
        f"pyinit sandbox: error: {message} (see 'pyinit sandbox --help')\n"
    assert list(tmp_path.iterdir()) == []  # the root's mount point is gone again


def test_die_with_parent() -> None:
    """The caller is SIGKILLed: the whole sandbox goes with it (its stdout reaches EOF)."""
    code = ("import subprocess, sys; subprocess.Popen(sys.argv[1:]).wait()")
    proc = subprocess.Popen(
        [sys.executable, "-c", code, PYINIT, "sandbox", *BASE, "--die-with-parent", "--",
         "sh", "-c", "echo ready; exec sleep 1000"], stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # EOF: every writer, the sleep included, is gone. (The bound only keeps a broken
    # build from hanging the suite; nothing is timed.)
    readable, _, _ = select.select([proc.stdout], [], [], 60)
    assert readable == [proc.stdout]
    assert proc.stdout.read() == ""
