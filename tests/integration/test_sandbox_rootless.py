"""``pyinit sandbox`` unprivileged by default, and its user namespace as root (issue 10).

As a user other than root, the sandbox makes a user namespace by itself that
maps the caller's uid and gid to themselves (or to ``--uid``/``--gid``), as
bubblewrap does; as root, ``--unshare-user`` asks for one. In every case the
program runs as PID 1's child with no capabilities, no_new_privs, a seccomp
filter and a session of its own.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyinit.sandbox import SUBGID, SUBUID
from tests.conftest import PYINIT, PYTHON, ROOT
from tests.integration.test_rootless import as_user, runtime
from tests.integration.test_sandbox import sigkilled_sandbox

pytestmark = pytest.mark.root

__all__ = ["runtime"]

# What the program reports about itself: ids, the uid map, PID 1's and its own
# place, its session, and its privileges.
PROBE = ("id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map | tr -s ' ' | sed 's/^ //';"
         " ps -o pid=,comm= | head -1 | tr -s ' ' | sed 's/^ //';"
         " [ \"$(cut -d' ' -f6 /proc/$$/stat)\" = $$ ] && echo own-session;"
         " grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status"
         " | tr -d '\\t'")
LOCKED = ["CapInh:0000000000000000", "CapPrm:0000000000000000", "CapEff:0000000000000000",
          "CapBnd:0000000000000000", "CapAmb:0000000000000000", "NoNewPrivs:1", "Seccomp:2"]


def as_root(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYINIT, "sandbox", *args], capture_output=True, text=True,
                          timeout=60, check=False, stdin=subprocess.DEVNULL)


def test_unprivileged_default_sandbox_maps_the_caller(runtime: tuple[str, int, int]) -> None:
    _python, uid, gid = runtime
    res = as_user(runtime, "sandbox", "--", "sh", "-c", PROBE)
    assert (res.returncode, res.stderr) == (0, "")
    assert res.stdout.splitlines() == [
        str(uid), str(gid), f"{uid} {uid} 1", f"{gid} {gid} 1", "1 python", "own-session",
        *LOCKED]


def test_unprivileged_uid_and_gid_inside(runtime: tuple[str, int, int]) -> None:
    _python, uid, gid = runtime
    res = as_user(runtime, "sandbox", "--uid", "0", "--gid", "100", "--hostname", "box",
                  "--", "sh", "-c", f"hostname; {PROBE}")
    assert (res.returncode, res.stderr) == (0, "")
    assert res.stdout.splitlines() == [
        "box", "0", "100", f"0 {uid} 1", f"100 {gid} 1", "1 python", "own-session", *LOCKED]


def test_unprivileged_sees_only_its_binds(runtime: tuple[str, int, int]) -> None:
    python, _uid, _gid = runtime
    res = as_user(runtime, "sandbox", "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin",
                  "/bin", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
                  "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--",
                  "sh", "-c", f"ls -A /; ls {python} 2>&1 >/dev/null | wc -l;"
                  " echo x > /tmp/f && cat /tmp/f; touch /usr/f 2>/dev/null || echo usr-ro")
    assert (res.returncode, res.stderr) == (0, "")
    assert res.stdout.splitlines() == [
        "bin", "dev", "lib", "lib64", "proc", "tmp", "usr", "1", "x", "usr-ro"]


def test_unprivileged_cap_add_is_refused(runtime: tuple[str, int, int]) -> None:
    res = as_user(runtime, "sandbox", "--cap-add", "CAP_NET_RAW", "--", "true")
    assert (res.returncode, res.stdout) == (2, "")
    assert res.stderr == (
        "pyinit sandbox: error: --cap-add CAP_NET_RAW: pyinit does not have CAP_NET_RAW itself "
        "(CapEff of /proc/self/status), so the program cannot keep it "
        "(see 'pyinit sandbox --help')\n")


def test_root_without_and_with_a_user_namespace() -> None:
    res = as_root("--", "sh", "-c", PROBE)
    assert (res.returncode, res.stderr) == (0, "")
    assert res.stdout.splitlines() == [
        "0", "0", "0 0 4294967295", "0 0 4294967295", "1 pyinit", "own-session", *LOCKED]
    res = as_root("--unshare-user", "--uid", "1000", "--", "sh", "-c", PROBE)
    assert (res.returncode, res.stderr) == (0, "")
    assert res.stdout.splitlines() == [
        "1000", "0", "1000 0 1", "0 0 1", "1 pyinit", "own-session", *LOCKED]


def test_root_cap_add_keeps_exactly_that_one() -> None:
    res = as_root("--cap-add", "NET_RAW", "--cap-add", "CAP_CHOWN", "--cap-drop", "chown",
                  "--", "sh", "-c", "grep -E '^Cap(Eff|Bnd):' /proc/self/status | tr -d '\\t'")
    assert (res.returncode, res.stderr) == (0, "")
    assert res.stdout.splitlines() == ["CapEff:0000000000002000", "CapBnd:0000000000002000"]


def test_uid_without_a_user_namespace_is_refused_as_root() -> None:
    res = as_root("--uid", "5", "--", "true")
    assert (res.returncode, res.stdout) == (2, "")
    assert res.stderr == ("pyinit sandbox: error: --uid 5: needs a user namespace "
                          "(--unshare-user) (see 'pyinit sandbox --help')\n")


# ------------------------------------------------------------------ nested
# The outer sandbox's mounts on top of its /proc, sorted, on one line.
ON_TOP = "cut -d' ' -f5 /proc/self/mountinfo | grep '^/proc/' | sort | tr '\\n' ' '; echo"
def _outer(python: str, *extra: str) -> list[str]:
    """An outer sandbox with what the inner pyinit needs: /usr, /etc, the tree that holds
    pyinit (the venv; as root the checkout, which pyinit is installed from), a /tmp."""
    tree = str(Path(python).parents[1]) if python != PYTHON else str(ROOT)
    return ["sandbox", *extra, "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin",
            "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
            "--ro-bind", "/etc", "/etc", "--tmpfs", "/tmp", "--ro-bind", tree, tree,
            "--proc", "/proc", "--dev", "/dev", "--"]


# What the inner sandbox's program reports: its ids and uid map, its /proc mount, its
# privileges, its own PID and session, and (the fallback /proc counts PIDs in the caller's
# PID namespace) the line of its status there that lists its PID in every namespace.
INNER = ("id -u; cat /proc/self/uid_map | tr -s \" \" | sed \"s/^ //\";"
         " grep \" /proc \" /proc/self/mountinfo | cut -d\" \" -f5,6,9;"
         " grep -E \"^(CapEff|NoNewPrivs|Seccomp|Seccomp_filters):\" /proc/self/status"
         " | tr -d \"\\t\"; echo pid=$$;"
         " read p comm state ppid pgrp sid rest < /proc/self/stat;"
         " [ \"$p\" = \"$sid\" ] && echo own-session;"
         " grep NSpid /proc/$p/status | tr \"\\t\" \" \" | sed \"s/ [0-9]* / X /\"")


def _inner_lines(uid: int, filters: int = 4) -> list[str]:
    """INNER's output in a sandbox two levels down (two seccomp filters per level that
    has one)."""
    return [str(uid), f"{uid} {uid} 1", "/proc ro,nosuid,nodev,noexec,relatime proc",
            "CapEff:0000000000000000", "NoNewPrivs:1", "Seccomp:2",
            f"Seccomp_filters:{filters}", "pid=2", "own-session", "NSpid: X 2"]


def _fallback_warning(stderr: str, on_top: list[str]) -> None:
    warnings = [json.loads(line) for line in stderr.splitlines()]
    assert [(w["event"], w["level"], w["destination"]) for w in warnings] == [
        ("mount.proc_fallback", "warning", "/proc")]
    assert warnings[0]["detail"] == (
        "a fresh /proc is refused in a user namespace while every proc mount here has "
        f"mounts on top of it ({', '.join(on_top[:4])}{' …' if len(on_top) > 4 else ''}); "
        "the caller's /proc is bound read-only instead (recursively, with its masks; it shows "
        "the caller's PID namespace)")
    assert on_top[:4] == ["/proc/acpi", "/proc/bus", "/proc/fs", "/proc/irq"]


def test_nested_twice_unprivileged(runtime: tuple[str, int, int]) -> None:
    """A sandbox in a sandbox with the default filters (which allow namespaces, as
    bubblewrap does). The outer /proc has read-only parts on top of it, so the kernel
    refuses the inner one a fresh /proc; the default layout binds the outer one
    read-only instead and says so in one warning. There the inner program's PID (2, as
    PID 1's child) is not /proc/self's: NSpid lists it in both PID namespaces."""
    python, uid, _gid = runtime
    inner = f"{python} -m pyinit sandbox -- sh -c '{INNER}'"
    res = as_user(runtime, *_outer(python), "sh", "-c", f"{ON_TOP}; {inner}")
    assert res.returncode == 0, res.stderr
    covered, *rest = res.stdout.splitlines()
    assert rest == _inner_lines(uid)
    _fallback_warning(res.stderr, covered.split())


def _root(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYINIT, *args], capture_output=True, text=True, timeout=60,
                          check=False, stdin=subprocess.DEVNULL)


def test_nested_twice_as_root() -> None:
    """As root the default filter refuses namespaces (docs/sandbox.md, "Seccomp"). With
    --no-seccomp, mapping uid 0 into a user namespace still needs CAP_SETFCAP (Linux
    5.12), which the root's program lacks: the inner sandbox fails with the hint. With
    --unshare-user --uid 1000 --gid 1000 too, the outer program is uid 1000 (root
    outside), and the inner sandbox maps that."""
    outer = _outer(PYTHON)
    res = _root(*outer, "sh", "-c", f"{PYINIT} sandbox -- true")
    assert res.returncode == 125, res.stderr
    assert [x for x in res.stderr.splitlines() if x.startswith("pyinit:")] == [
        "pyinit: namespace: unshare user: Operation not permitted; pyinit runs without "
        "CAP_SYS_ADMIN (it is not in CapEff of /proc/self/status), as in an ordinary "
        "unprivileged container; a seccomp filter is active too (Seccomp: filter): give it "
        "the capability (podman/docker --cap-add SYS_ADMIN), run it in a user namespace it "
        "owns, or use a privileged container"]
    res = _root(outer[0], "--no-seccomp", *outer[1:], "sh", "-c", f"{PYINIT} sandbox -- true")
    assert res.returncode == 125, res.stderr
    assert [x for x in res.stderr.splitlines() if x.startswith("pyinit:")] == [
        "pyinit: linux.uidMappings: namespace: write uid_map: Operation not permitted; "
        "mapping uid 0 into a new user namespace needs CAP_SETFCAP (Linux 5.12 and later), "
        "even for root mapping only itself; run as another uid (the program of a root's "
        "pyinit sandbox: give that sandbox --unshare-user --uid N --gid N)"]
    inner = f"{PYINIT} sandbox -- sh -c '{INNER}'"
    res = _root(outer[0], "--no-seccomp", "--unshare-user", "--uid", "1000", "--gid", "1000",
                *outer[1:], "sh", "-c", f"{ON_TOP}; {inner}")
    assert res.returncode == 0, res.stderr
    covered, *rest = res.stdout.splitlines()
    assert rest == _inner_lines(1000, filters=2)
    _fallback_warning(res.stderr, covered.split())


# A root's program (the host's uid 0, no capability) in a user and cgroup namespace of its
# own would mount the memory hierarchy and raise the limit it runs under: the files are uid
# 0's. The default filter refuses it the namespaces, so it stops at the first step. Only
# with --memory, so that if it ever got further it would touch the sandbox's own cgroup
# (removed afterwards), never the caller's.
CGROUP_ESCAPE = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
if libc.unshare(0x10000000 | 0x20000 | 0x02000000) != 0:
    raise SystemExit(f"unshare {os.strerror(ctypes.get_errno())}")
os.mkdir("/tmp/cg")
for fstype, data, name in ((b"cgroup", b"memory", "memory.limit_in_bytes"),
                           (b"cgroup2", None, "memory.max")):
    if libc.mount(b"none", b"/tmp/cg", fstype, 0, data) == 0:
        if os.path.exists(f"/tmp/cg/{name}"):
            with open(f"/tmp/cg/{name}", "w") as fh:
                fh.write("1073741824")
            print("raised", name)
        libc.umount2(b"/tmp/cg", 2)
"""


def test_roots_program_cannot_reach_its_cgroup_through_namespaces() -> None:
    res = _root("sandbox", "--memory", "64m", "--", "python3", "-I", "-c", CGROUP_ESCAPE)
    assert (res.returncode, res.stdout, res.stderr) == (1, "", "unshare Operation not permitted\n")
    # Without a limit of its own, the same first step (and nothing more is tried).
    res = _root("sandbox", "--", "unshare", "--user", "true")
    assert (res.returncode, res.stdout, res.stderr) == (
        1, "", "unshare: unshare failed: Operation not permitted\n")


def test_bubblewrap_in_the_sandbox(runtime: tuple[str, int, int]) -> None:
    """bubblewrap itself in an unprivileged sandbox: it makes its user and network
    namespaces under the default filter."""
    python, uid, _gid = runtime
    net = "readlink /proc/self/ns/net"
    res = as_user(runtime, *_outer(python), "sh", "-c",
                  f"{net}; bwrap --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib "
                  f"/lib --symlink usr/lib64 /lib64 --ro-bind /proc /proc --unshare-net -- "
                  f"sh -c 'id -u; {net}'")
    assert (res.returncode, res.stderr) == (0, "")
    outer_net, inner_uid, inner_net = res.stdout.splitlines()
    assert inner_uid == str(uid)
    assert (outer_net.startswith("net:["), inner_net.startswith("net:["),
            outer_net != inner_net) == (True, True, True)


def test_nested_explicit_proc_fails_with_the_hint(runtime: tuple[str, int, int]) -> None:
    python, _uid, _gid = runtime
    inner = (f"{python} -m pyinit sandbox --ro-bind /usr /usr --proc /proc -- /usr/bin/true;"
             " echo inner=$?")
    res = as_user(runtime, *_outer(python), "sh", "-c", f"{ON_TOP}; {inner}")
    assert res.returncode == 0, res.stderr
    covered, result = res.stdout.splitlines()
    on_top = covered.split()
    assert result == "inner=125"
    lines = [x for x in res.stderr.splitlines() if x.startswith("pyinit:")]
    assert lines == [
        "pyinit: mounts[1]: mount (/proc): proc proc on /proc MS_NOSUID|MS_NODEV|MS_NOEXEC: "
        "Operation not permitted; a new proc needs a fully visible /proc in the mount "
        f"namespace, and the visible one has mounts on top of it: {', '.join(on_top[:8])}"
        f"{' …' if len(on_top) > 8 else ''}; unmount them, or give the container a PID "
        "namespace it owns"]
    assert on_top[:4] == ["/proc/acpi", "/proc/bus", "/proc/fs", "/proc/irq"]


def test_disable_userns_refuses_a_nested_sandbox(runtime: tuple[str, int, int]) -> None:
    """--disable-userns: the default filter without namespaces (`pyinit spec`'s)."""
    python, _uid, _gid = runtime
    res = as_user(runtime, *_outer(python, "--disable-userns"), "sh", "-c",
                  f"{python} -m pyinit sandbox -- /usr/bin/true 2>&1 | grep '^pyinit:';"
                  " unshare -U /usr/bin/true")
    assert res.returncode == 1, res.stderr
    assert res.stdout.splitlines() == [
        "pyinit: namespace: unshare user: Operation not permitted; pyinit runs without "
        "CAP_SYS_ADMIN (it is not in CapEff of /proc/self/status), as in an ordinary "
        "unprivileged container; a seccomp filter is active too (Seccomp: filter): give it "
        "the capability (podman/docker --cap-add SYS_ADMIN), run it in a user namespace it "
        "owns, or use a privileged container"]
    assert res.stderr == "unshare: unshare failed: Operation not permitted\n"


# ------------------------------------------------------------------ --map-subids
SUBIDS_USER = "pyinit-subids"  # its own user: no other test sees its ranges
SUB_START = 1_500_000_000
SUB_COUNT = 65536


@pytest.fixture
def subids_user() -> Iterator[tuple[int, int]]:
    """(uid, gid) of a dedicated user with a range in /etc/subuid and /etc/subgid, which
    this fixture appends and takes back: both files end byte-identical (same inode)."""
    try:
        pwd.getpwnam(SUBIDS_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", SUBIDS_USER], check=True)
    entry = pwd.getpwnam(SUBIDS_USER)
    saved = {path: Path(path).read_bytes() for path in (SUBUID, SUBGID)}
    line = f"{SUBIDS_USER}:{SUB_START}:{SUB_COUNT}\n".encode()
    try:
        for path, data in saved.items():
            with open(path, "ab") as fh:
                fh.write(b"\n" + line if data and not data.endswith(b"\n") else line)
        yield entry.pw_uid, entry.pw_gid
    finally:
        for path, data in saved.items():
            with open(path, "wb") as fh:
                fh.write(data)
    assert {path: Path(path).read_bytes() for path in saved} == saved


def test_map_subids_unprivileged(runtime: tuple[str, int, int],
                                 subids_user: tuple[int, int]) -> None:
    """The caller's ids and its subordinate ranges, through newuidmap and newgidmap: with
    --uid 0 --gid 0, ids 0 to 65536 inside; a file of a subordinate id shows inside as
    that id's place in the range, one of an id outside every range as the overflow id."""
    python = runtime[0]
    uid, gid = subids_user
    top = Path(tempfile.mkdtemp(prefix="pyinit-subids-"))
    try:
        top.chmod(0o755)
        os.chown(top, uid, gid)
        (top / "sub").write_text("x")
        os.chown(top / "sub", SUB_START + 5, SUB_START + 7)
        (top / "root").write_text("x")
        res = subprocess.run(
            ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", python, "-m",
             "pyinit", "sandbox", "--map-subids", "--uid", "0", "--gid", "0",
             "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink",
             "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64", "--proc", "/proc",
             "--ro-bind", str(top), "/data", "--", "sh", "-c",
             "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map | tr -s ' '"
             " | sed 's/^ //'; stat -c '%n %u %g' /data /data/sub /data/root"],
            capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL)
    finally:
        shutil.rmtree(top)
    assert (res.returncode, res.stderr) == (0, "")
    assert res.stdout.splitlines() == [
        "0", "0", f"0 {uid} 1", f"1 {SUB_START} {SUB_COUNT}", f"0 {gid} 1",
        f"1 {SUB_START} {SUB_COUNT}", "/data 0 0", "/data/sub 6 8", "/data/root 65534 65534"]


def test_map_subids_without_a_range_is_refused(runtime: tuple[str, int, int]) -> None:
    _python, uid, _gid = runtime
    res = as_user(runtime, "sandbox", "--map-subids", "--", "true")
    assert (res.returncode, res.stdout) == (2, "")
    assert res.stderr == (
        f"pyinit sandbox: error: --map-subids: /etc/subuid has no range for {uid} or "
        "pyinit-rootless (see 'pyinit sandbox --help')\n")


def test_unprivileged_sigkilled_sandbox_leaves_nothing_on_the_host(
        runtime: tuple[str, int, int]) -> None:
    python, uid, gid = runtime
    top = Path(tempfile.mkdtemp(prefix="pyinit-rootless-tmpdir-"))
    try:
        os.chown(top, uid, gid)  # a TMPDIR the user could make its scratch directory in
        assert sigkilled_sandbox(
            ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", python, "-m",
             "pyinit", "sandbox", "--", "sh", "-c", "echo ready; read x"], top) == []
    finally:
        shutil.rmtree(top)


def test_unprivileged_ro_bind_of_the_hosts_root_alone(runtime: tuple[str, int, int]) -> None:
    """As root's (test_sandbox.py): the nodev /dev/null is left alone, stdio stays."""
    res = as_user(runtime, "sandbox", "--ro-bind", "/", "/", "--", "sh", "-c",
                  "echo ok; cat /dev/null")
    assert (res.returncode, res.stdout, res.stderr) == (
        1, "ok\n", "cat: /dev/null: Permission denied\n")
