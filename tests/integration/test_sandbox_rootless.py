"""``pyinit sandbox`` unprivileged by default, and its user namespace as root (issue 10).

As a user other than root, the sandbox makes a user namespace by itself that
maps the caller's uid and gid to themselves (or to ``--uid``/``--gid``), as
bubblewrap does; as root, ``--unshare-user`` asks for one. In every case the
program runs as PID 1's child with no capabilities, no_new_privs, a seccomp
filter and a session of its own.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import PYINIT
from tests.integration.test_rootless import as_user, runtime

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
    """An outer sandbox with what the inner pyinit needs: /usr, /etc, the venv, a /tmp."""
    venv = str(Path(python).parents[1])
    return ["sandbox", *extra, "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin",
            "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
            "--ro-bind", "/etc", "/etc", "--tmpfs", "/tmp", "--ro-bind", venv, venv,
            "--proc", "/proc", "--dev", "/dev", "--"]


def test_nested_twice_unprivileged(runtime: tuple[str, int, int]) -> None:
    """A sandbox in a sandbox: the outer /proc has read-only parts on top of it, so the
    kernel refuses the inner one a fresh /proc; the default layout binds the outer one
    read-only instead and says so in one warning."""
    python, uid, gid = runtime
    inner = (f"{python} -m pyinit sandbox -- sh -c 'id -u; cat /proc/self/uid_map"
             " | tr -s \" \" | sed \"s/^ //\"; grep \" /proc \" /proc/self/mountinfo"
             " | cut -d\" \" -f5,6,9; grep -E \"^(CapEff|NoNewPrivs|Seccomp):\" /proc/self/status"
             " | tr -d \"\\t\"'")
    res = as_user(runtime, *_outer(python, "--no-seccomp"), "sh", "-c", f"{ON_TOP}; {inner}")
    assert res.returncode == 0, res.stderr
    covered, *rest = res.stdout.splitlines()
    on_top = covered.split()
    assert rest == [
        str(uid), f"{uid} {uid} 1", "/proc ro,nosuid,nodev,noexec,relatime proc",
        "CapEff:0000000000000000", "NoNewPrivs:1", "Seccomp:2"]
    warnings = [json.loads(line) for line in res.stderr.splitlines()]
    assert [(w["event"], w["level"], w["destination"]) for w in warnings] == [
        ("mount.proc_fallback", "warning", "/proc")]
    assert warnings[0]["detail"] == (
        "a fresh /proc is refused in a user namespace while every proc mount here has "
        f"mounts on top of it ({', '.join(on_top[:4])}{' …' if len(on_top) > 4 else ''}); "
        "the caller's /proc is bound read-only instead (recursively, with its masks; it shows "
        "the caller's PID namespace)")
    assert on_top[:4] == ["/proc/acpi", "/proc/bus", "/proc/fs", "/proc/irq"]
    _ = gid


def test_nested_explicit_proc_fails_with_the_hint(runtime: tuple[str, int, int]) -> None:
    python, _uid, _gid = runtime
    inner = (f"{python} -m pyinit sandbox --ro-bind /usr /usr --proc /proc -- /usr/bin/true;"
             " echo inner=$?")
    res = as_user(runtime, *_outer(python, "--no-seccomp"), "sh", "-c", f"{ON_TOP}; {inner}")
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


def test_nested_needs_the_outer_filter_to_allow_namespaces(
        runtime: tuple[str, int, int]) -> None:
    """The default seccomp filter refuses unshare to a program without capabilities, as
    the usual container default does (docs/sandbox.md, "Nested")."""
    python, _uid, _gid = runtime
    res = as_user(runtime, *_outer(python), "sh", "-c",
                  f"{python} -m pyinit sandbox -- /usr/bin/true 2>&1 | grep '^pyinit:'")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("pyinit: namespace: unshare user: Operation not permitted")
