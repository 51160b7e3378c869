"""``pyinit sandbox`` against bubblewrap itself: the same command lines, what the program sees.

Each command line runs under Debian's ``bwrap`` and under ``pyinit sandbox``,
as root and as an unprivileged user, with a probe that reports what the
program inside sees: its ids and maps, CapEff/CapPrm/CapBnd/CapInh/CapAmb,
NoNewPrivs and Seccomp, which namespaces are new (compared by inode with the
host's), the mount table (mount point, type and per-mount flags, in order),
the environment, its working directory and session, what the filesystem
options made, its exit status and the ``--json-status-fd`` output.

What pyinit does differently on purpose is applied to bubblewrap's side by
:func:`expected`, one rule per row of the "Differences" section of
docs/sandbox.md (each rule names its row); everything else must be equal.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyinit import sandbox
from pyinit.linux import caps
from pyinit.linux import seccomp as linux_seccomp
from pyinit.oci.seccomp import parse_seccomp
from tests.conftest import PYINIT
from tests.integration.test_rootless import runtime

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(shutil.which("bwrap") is None,
                                 reason="bubblewrap is not installed (tools/install.sh)")]

__all__ = ["runtime"]

BWRAP = shutil.which("bwrap") or "/usr/bin/bwrap"
NAMESPACES = ("cgroup", "ipc", "mnt", "net", "pid", "uts", "user")
STATUS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")
BASE = ["--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib",
        "/lib", "--symlink", "usr/lib64", "/lib64", "--proc", "/proc", "--dev", "/dev"]
PID = ["--unshare-pid"]
# The descriptors the command lines read: each a pipe with these bytes, at this number.
DATA = {40: b"hello\n", 41: b"data\n", 42: b"ro data\n",
        43: b"\0".join([b"--setenv", b"FROM_ARGS", b"yes", b"--chdir", b"/usr", b""])}
SECCOMP_FD = 44
PROBE = r"""
CODE=@CODE@; CHECK="@CHECK@"
echo "ids $(id -u) $(id -g)"
while read a b c; do echo "uidmap $a $b $c"; done < /proc/self/uid_map
while read a b c; do echo "gidmap $a $b $c"; done < /proc/self/gid_map
grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status \
  | while read k v; do echo "status ${k%:} $v"; done
for n in cgroup ipc mnt net pid uts user; do echo "ns $n $(readlink /proc/self/ns/$n)"; done
while read line; do echo "mount $line"; done < /proc/self/mountinfo
env | sort | while read line; do echo "env $line"; done
echo "cwd $(pwd) $(readlink /proc/self/cwd)"
[ "$(cut -d' ' -f6 /proc/$$/stat)" = "$$" ] && echo "session own" || echo "session inherited"
for p in $CHECK; do echo "check $(stat -c '%n %a %F' $p 2>&1) $(head -c 20 $p 2>/dev/null)"; done
exit $CODE
"""

# (name, options, paths the probe stats, root only)
LINES: list[tuple[str, list[str], str, bool]] = [
    ("base-pid", BASE + PID, "", False),
    ("unshare-all", [*BASE, "--unshare-all"], "", False),
    ("unshare-all-share-net", [*BASE, "--unshare-all", "--share-net"], "", False),
    ("unshare-net", BASE + PID + ["--unshare-net"], "", False),
    ("unshare-ipc-uts-hostname", BASE + PID + ["--unshare-ipc", "--unshare-uts",
                                                "--hostname", "box"], "", False),
    ("unshare-cgroup", BASE + PID + ["--unshare-cgroup"], "", False),
    ("unshare-user", BASE + PID + ["--unshare-user"], "", False),
    ("uid-gid-0", BASE + PID + ["--unshare-user", "--uid", "0", "--gid", "0"], "", False),
    ("uid-gid-other", BASE + PID + ["--unshare-user", "--uid", "1234", "--gid", "4321"], "",
     False),
    ("tmpfs", BASE + PID + ["--tmpfs", "/tmp"], "/tmp", False),
    ("tmpfs-perms", BASE + PID + ["--perms", "0700", "--tmpfs", "/tmp"], "/tmp", False),
    ("tmpfs-size", BASE + PID + ["--size", "1048576", "--tmpfs", "/tmp"], "/tmp", False),
    ("dir", BASE + PID + ["--dir", "/a/b/c"], "/a /a/b /a/b/c", False),
    ("dir-perms", BASE + PID + ["--perms", "0711", "--dir", "/a"], "/a", False),
    ("remount-ro", BASE + PID + ["--tmpfs", "/a", "--remount-ro", "/a"], "/a", False),
    ("ro-bind-etc", BASE + PID + ["--ro-bind", "/etc", "/etc"], "/etc/hostname", False),
    ("bind", BASE + PID + ["--bind", "{tmp}", "/data"], "/data", False),
    ("bind-on-tmpfs", BASE + PID + ["--tmpfs", "/m", "--bind", "{tmp}", "/m/data"],
     "/m /m/data", False),
    ("dev-bind", BASE[:-2] + PID + ["--dev-bind", "/dev", "/dev"], "/dev/null", False),
    ("ro-bind-try-missing", BASE + PID + ["--ro-bind-try", "/nonexistent", "/x"], "/x", False),
    ("bind-try", BASE + PID + ["--bind-try", "{tmp}", "/y"], "/y", False),
    ("mqueue", BASE + PID + ["--unshare-ipc", "--mqueue", "/dev/mqueue"], "/dev/mqueue",
     False),
    ("file", BASE + PID + ["--file", "40", "/etc/hello"], "/etc/hello", False),
    ("file-perms", BASE + PID + ["--perms", "0600", "--file", "40", "/f"], "/f", False),
    ("bind-data", BASE + PID + ["--bind-data", "41", "/etc/data"], "/etc/data", False),
    ("ro-bind-data", BASE + PID + ["--ro-bind-data", "42", "/etc/rodata"], "/etc/rodata",
     False),
    ("chmod", BASE + PID + ["--dir", "/d", "--chmod", "0750", "/d"], "/d", False),
    ("symlink", BASE + PID + ["--symlink", "/usr/bin/env", "/e"], "/e", False),
    ("setenv-unsetenv", BASE + PID + ["--setenv", "A", "1", "--unsetenv", "HOME"], "", False),
    ("clearenv", BASE + PID + ["--clearenv", "--setenv", "PATH", "/usr/bin"], "", False),
    ("chdir", BASE + PID + ["--chdir", "/usr"], "", False),
    ("cwd-kept", BASE + PID, "", False),
    ("cwd-kept-as-pwd-names-it", BASE + PID, "", False),
    ("cwd-missing-home", BASE + PID + ["--setenv", "HOME", "/usr/lib"], "", False),
    ("cwd-missing-no-home", BASE + PID + ["--setenv", "HOME", "/nonexistent"], "", False),
    ("cwd-missing-clearenv", BASE + PID + ["--clearenv"], "", False),
    ("new-session", BASE + PID + ["--new-session"], "", False),
    ("die-with-parent", BASE + PID + ["--die-with-parent"], "", False),
    ("args-fd", BASE + PID + ["--args", "43"], "", False),
    ("seccomp-fd", BASE + PID + ["--seccomp", str(SECCOMP_FD)], "", False),
    ("ro-bind-root", ["--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--tmpfs",
                      "/tmp", *PID], "/usr /tmp", False),
    ("cap-drop-all", BASE + PID + ["--cap-drop", "ALL"], "", True),
    ("cap-add", BASE + PID + ["--cap-drop", "ALL", "--cap-add", "CAP_NET_RAW"], "", True),
]


# The caller's working directory and $PWD, where it is not (/, /): bubblewrap keeps the
# directory when it exists inside (under the name $PWD gives it, when $PWD is that
# directory), else goes to the sandbox's $HOME if that exists, else to /, and sets $PWD.
CWD = {"cwd-kept": ("/usr/share", "/usr/share"),
       "cwd-kept-as-pwd-names-it": ("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu"),
       "cwd-missing-home": ("{tmp}", "{tmp}"), "cwd-missing-no-home": ("{tmp}", "{tmp}"),
       "cwd-missing-clearenv": ("{tmp}", "{tmp}")}


def _seccomp_program() -> bytes:
    profile, problems = parse_seccomp({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["swapon"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]})
    assert problems == [] and profile is not None
    return linux_seccomp.prepare(profile).program


def _host_namespaces() -> dict[str, str]:
    return {n: os.readlink(f"/proc/self/ns/{n}") for n in NAMESPACES}


def _run(argv: list[str], user: tuple[int, int] | None, cwd: tuple[str, str] = ("/", "/")
         ) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    """Run one sandbox command line; its result and its --json-status-fd documents."""
    fds: list[int] = []
    for number, data in [*DATA.items(), (SECCOMP_FD, _seccomp_program())]:
        r, w = os.pipe()
        os.write(w, data)
        os.close(w)
        assert number >= 40  # pytest's own descriptors are below
        os.dup2(r, number, inheritable=True)
        os.close(r)
        fds.append(number)
    status_r, status_w = os.pipe()
    os.dup2(status_w, 45, inheritable=True)
    os.close(status_w)
    fds.append(45)
    prefix = [] if user is None else ["setpriv", f"--reuid={user[0]}", f"--regid={user[1]}",
                                      "--clear-groups"]
    env = {**os.environ, "LC_ALL": "C", "PWD": cwd[1]}
    try:
        res = subprocess.run([*prefix, *argv],
                             capture_output=True, text=True, timeout=60, check=False, cwd=cwd[0],
                             stdin=subprocess.DEVNULL, pass_fds=fds, env=env)
    finally:
        for fd in fds:
            os.close(fd)
    with os.fdopen(status_r) as fh:
        docs = [json.loads(line) for line in fh.read().splitlines()]
    return res, docs


def observe(res: subprocess.CompletedProcess[str], docs: list[dict[str, Any]],
            host: dict[str, str]) -> dict[str, Any]:
    """What the program saw, with what must differ between runs (inodes, PIDs) as facts."""
    seen: dict[str, Any] = {"exit": res.returncode, "uidmap": [], "gidmap": [], "status": {},
                            "ns": {}, "mounts": [], "env": {}, "check": []}
    for line in res.stdout.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "ids":
            seen["ids"] = rest
        elif kind in ("uidmap", "gidmap"):
            seen[kind].append(" ".join(rest.split()))
        elif kind == "status":
            key, value = rest.split()
            seen["status"][key] = value
        elif kind == "ns":
            name, link = rest.split()
            seen["ns"][name] = "host" if link == host[name] else "new"
        elif kind == "mount":
            fields = rest.split()
            sep = fields.index("-")
            seen["mounts"].append([fields[4], fields[5], fields[sep + 1]])
        elif kind == "env":
            key, _, value = rest.partition("=")
            seen["env"][key] = value
        elif kind in ("cwd", "session"):
            seen[kind] = rest
        elif kind == "check":
            seen["check"].append(rest)
    inodes = {str(os.stat(f"/proc/self/ns/{n}").st_ino): n for n in NAMESPACES}
    seen["json"] = [{k: ("host" if str(v) in inodes else "new") if k.endswith("-namespace")
                     else "pid" if k == "child-pid" and isinstance(v, int) else v
                     for k, v in doc.items()} for doc in docs]
    return seen


def expected(bwrap: dict[str, Any], options: list[str],
             user: tuple[int, int] | None) -> dict[str, Any]:
    """bubblewrap's observations changed as docs/sandbox.md says pyinit differs."""
    want = json.loads(json.dumps(bwrap))
    # docs/sandbox.md, "Differences", row "Namespaces": pyinit always has its own PID,
    # ipc and uts namespaces.
    for name in ("pid", "ipc", "uts"):
        want["ns"][name] = "new"
    for doc in want["json"]:
        if "child-pid" in doc:
            doc.update({f"{name}-namespace": "new" for name in ("pid", "ipc", "uts")})
    # "User namespace, unprivileged": one, mapping the caller's ids; for an unprivileged caller
    # bubblewrap nests a second one, whose map reads "ID 0 1" from inside.
    if user is not None:
        for key, host_id in (("uidmap", user[0]), ("gidmap", user[1])):
            want[key] = [" ".join([line.split()[0], str(host_id), "1"]) for line in want[key]]
    # "Session": the program always runs in a session of its own.
    want["session"] = "own"
    # "Seccomp": without --seccomp FD, the default container filter (mode 2).
    if "--seccomp" not in options:
        want["status"]["Seccomp"] = "2"
    # "Capabilities as root": as root, bubblewrap keeps the caller's capabilities for uid 0 in the
    # sandbox; pyinit keeps only --cap-add's (there is nothing to keep unprivileged).
    if user is None:
        kept = caps.mask([caps.CAPS[v] for o, v in itertools.pairwise(options)
                          if o == "--cap-add"])
        for key in ("CapPrm", "CapEff", "CapBnd"):
            want["status"][key] = f"{kept:016x}"
    # "/dev/shm": pyinit's /dev/shm is a tmpfs of its own (bubblewrap: a directory).
    if "--dev" in options:
        dev = max(i for i, m in enumerate(want["mounts"]) if m[0] == "/dev/pts")
        want["mounts"].insert(dev + 1, ["/dev/shm", "rw,nosuid,nodev,noexec,relatime", "tmpfs"])
    # "/proc": pyinit makes sys, sysrq-trigger, irq, bus and fs read-only in every fresh
    # /proc (bubblewrap only those that access(W_OK) says are writable), and masks what
    # pyinit spec's maskedPaths mask (bubblewrap nothing).
    want["mounts"] = [m for m in want["mounts"] if not m[0].startswith("/proc/")]
    # "Environment": pyinit's own PYINIT_* variables are not passed on.
    want["env"] = {k: v for k, v in want["env"].items() if not k.startswith("PYINIT_")}
    return want


MASKABLE = {f"/proc/{name}" for name in sandbox.PROC_MASKED_DIRS + sandbox.PROC_MASKED_FILES}


def _without_proc_submounts(seen: dict[str, Any]) -> dict[str, Any]:
    """pyinit's mounts without those under /proc ("/proc" row), once they are checked:
    its read-only parts are read-only, and the rest are pyinit spec's masks."""
    out = dict(seen)
    under = [m for m in seen["mounts"] if m[0].startswith("/proc/")]
    ro = [m for m in under if m[2] == "proc"]
    assert all(m[1].startswith("ro,") for m in ro), ro
    masks = {m[0] for m in under if m[2] != "proc"}
    assert masks <= MASKABLE, masks
    # "/sys": a bind of the host's / masks what pyinit spec masks under /sys.
    sys_masks = {f"/sys/{name}" for name in sandbox.SYS_MASKED}
    out["mounts"] = [m for m in seen["mounts"]
                     if not m[0].startswith("/proc/") and m[0] not in sys_masks]
    return out


def visible(mounts: list[list[str]]) -> list[list[str]]:
    """Without the mounts covered by a later one on the same mount point.

    docs/sandbox.md, "Binds": pyinit sets a bind's flags on every mount of the
    bound tree, covered ones included; bubblewrap only on the visible ones.
    What the program can reach is the same.
    """
    return [m for i, m in enumerate(mounts) if all(n[0] != m[0] for n in mounts[i + 1:])]


@pytest.fixture(scope="module")
def shared_dir() -> Iterator[Path]:
    """A directory both sandboxes bind, readable by the unprivileged user."""
    top = Path("/tmp") / f"pyinit-bwrap-diff-{os.getpid()}"
    top.mkdir(mode=0o755)
    (top / "file").write_text("x\n")
    yield top
    shutil.rmtree(top)


# Every line as root and as the unprivileged user, but --cap-add's: unprivileged, pyinit
# has no capability to keep (docs/sandbox.md, "--cap-add").
RUNS = [(*line, who) for line in LINES for who in ("root", "user")
        if who == "root" or not line[3]]


@pytest.mark.parametrize(("name", "options", "check", "root_only", "who"), RUNS,
                         ids=[f"{run[0]}-{run[4]}" for run in RUNS])
def test_same_view_as_bubblewrap(name: str, options: list[str], check: str, root_only: bool,
                                 who: str, runtime: tuple[str, int, int],
                                 shared_dir: Path) -> None:
    python, uid, gid = runtime
    user = (uid, gid) if who == "user" else None
    opts = [o.replace("{tmp}", str(shared_dir)) for o in options]
    code = 3 + LINES.index((name, options, check, root_only))
    program = ["--", "/usr/bin/sh", "-c",
               PROBE.replace("@CODE@", str(code)).replace("@CHECK@", check)]
    pyinit = [python, "-m", "pyinit", "sandbox"] if user else [PYINIT, "sandbox"]
    host = _host_namespaces()
    status = ["--json-status-fd", "45"]
    cwd = (CWD[name][0].replace("{tmp}", str(shared_dir)),
           CWD[name][1].replace("{tmp}", str(shared_dir))) if name in CWD else ("/", "/")
    b_res, b_docs = _run([BWRAP, *status, *opts, *program], user, cwd)
    assert b_res.stderr == "", b_res.stderr
    p_res, p_docs = _run([*pyinit, *status, *opts, *program], user, cwd)
    assert p_res.stderr == "", p_res.stderr
    ours = _without_proc_submounts(observe(p_res, p_docs, host))
    theirs = expected(observe(b_res, b_docs, host), opts, user)
    ours["mounts"] = visible(ours["mounts"])
    theirs["mounts"] = visible(theirs["mounts"])
    assert ours["exit"] == code
    for key in ("exit", "ids", "uidmap", "gidmap", "status", "ns", "mounts", "env", "cwd",
                "session", "check", "json"):
        assert (key, ours[key]) == (key, theirs[key])
