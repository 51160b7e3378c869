"""seccomp filters for real: pyinit's parser, libseccomp, and the kernel.

Each test runs ``tests/helpers/seccomp_exec.py``, which compiles a profile
with :func:`pyinit.linux.seccomp.prepare`, loads it with
:func:`pyinit.linux.seccomp.install` and execs a probe (busybox, Python, or a
small C helper), exactly as the workload gets it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pyinit.linux import seccomp as linux_seccomp
from pyinit.oci.seccomp import parse_seccomp
from pyinit.oci.seccomp_default import default_profile
from tests.conftest import HELPERS, PYINIT, PYTHON, event, helper
from tests.integration.test_run import edit, make_bundle, run_bundle

BUSYBOX = shutil.which("busybox") or "/bin/busybox"
EACCES, EPERM, ENOSYS, EINVAL = 13, 1, 38, 22
SIGSYS = -signal.SIGSYS  # subprocess's returncode for a death by SIGSYS


def apply(tmp_path: Path, profile: dict[str, Any], *program: str,
          options: tuple[str, ...] = (), **kw: Any) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    kw.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run([*helper("seccomp_exec.py"), str(path), *options, "--", *program],
                          capture_output=True, text=True, timeout=60, check=False, **kw)


def python(code: str) -> list[str]:
    return [PYTHON, "-I", "-c", code]


def deny(names: list[str], action: str, **extra: Any) -> dict[str, Any]:
    return {"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": names, "action": action, **extra}]}


def test_errno_with_errno_ret_fails_busybox_mkdir(tmp_path: Path) -> None:
    target = tmp_path / "made"
    res = apply(tmp_path, deny(["mkdir", "mkdirat"], "SCMP_ACT_ERRNO", errnoRet=EACCES),
                BUSYBOX, "sh", "-c", f"mkdir {target}; echo rc=$?; grep '^Seccomp:' "
                "/proc/self/status")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["rc=1", "Seccomp:\t2"]
    assert res.stderr.splitlines() == [
        "skipped: ", f"mkdir: can't create directory '{target}': Permission denied"]
    assert not target.exists()


@pytest.mark.parametrize(("extra", "expected"), [({}, EPERM), ({"errnoRet": 0}, 0),
                                                 ({"errnoRet": 4094}, 4094)])
def test_errno_ret_is_the_exact_errno(tmp_path: Path, extra: dict[str, Any],
                                      expected: int) -> None:
    """ERRNO without errnoRet is EPERM; errnoRet 0 makes the call "succeed" unexecuted."""
    target = tmp_path / "made"
    code = (f"import os\ntry:\n os.mkdir({str(target)!r}); print('ok')\n"
            "except OSError as e:\n print(e.errno)")
    res = apply(tmp_path, deny(["mkdir"], "SCMP_ACT_ERRNO", **extra), *python(code))
    assert res.returncode == 0, res.stderr
    assert res.stdout == ("ok\n" if expected == 0 else f"{expected}\n")
    assert not target.exists()


_SIGSYS_HANDLER = ("import os, signal\n"
                   "signal.signal(signal.SIGSYS, lambda *a: print('caught SIGSYS', flush=True))\n"
                   "try:\n os.mkdir({target!r})\nexcept OSError:\n pass\n"
                   "print('after', flush=True)\n")


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD",
                                    "SCMP_ACT_KILL"])
def test_kill_ends_the_process_by_sigsys_even_with_a_handler(tmp_path: Path,
                                                             action: str) -> None:
    code = _SIGSYS_HANDLER.format(target=str(tmp_path / "made"))
    res = apply(tmp_path, deny(["mkdir"], action), *python(code))
    assert res.returncode == SIGSYS, res.stderr
    assert res.stdout == ""
    assert not (tmp_path / "made").exists()


def test_trap_sends_sigsys_which_a_handler_can_catch(tmp_path: Path) -> None:
    code = _SIGSYS_HANDLER.format(target=str(tmp_path / "made"))
    res = apply(tmp_path, deny(["mkdir"], "SCMP_ACT_TRAP"), *python(code))
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["caught SIGSYS", "after"]
    assert not (tmp_path / "made").exists()
    # Without a handler, SIGSYS's default action ends the process.
    res = apply(tmp_path, deny(["mkdir"], "SCMP_ACT_TRAP"), BUSYBOX, "mkdir",
                str(tmp_path / "made"))
    assert res.returncode == SIGSYS


# The thread that makes the call reports its TID and waits; the main thread
# opens a pidfd on that thread (PIDFD_THREAD), lets it go, and waits for the
# pidfd to say the thread is gone: no sleep, no timing.
_THREAD_PROBE = """
import os, select, threading
r, w = os.pipe(); go_r, go_w = os.pipe()
def worker():
    os.write(w, str(threading.get_native_id()).encode())
    os.read(go_r, 1)
    os.mkdir({target!r})
threading.Thread(target=worker, daemon=True).start()
fd = os.pidfd_open(int(os.read(r, 32)), os.O_EXCL)  # PIDFD_THREAD
os.write(go_w, b"g")
p = select.poll(); p.register(fd, select.POLLIN); p.poll()
print("main thread alive", flush=True)
os._exit(0)
"""


@pytest.mark.parametrize(("action", "code", "out"), [
    ("SCMP_ACT_KILL_THREAD", 0, "main thread alive\n"),
    ("SCMP_ACT_KILL_PROCESS", SIGSYS, ""),
])
def test_kill_thread_kills_only_the_calling_thread(tmp_path: Path, action: str, code: int,
                                                   out: str) -> None:
    res = apply(tmp_path, deny(["mkdir"], action),
                *python(_THREAD_PROBE.format(target=str(tmp_path / "made"))))
    assert res.returncode == code, res.stderr
    assert res.stdout == out
    assert not (tmp_path / "made").exists()


def test_trace_without_a_tracer_is_enosys(tmp_path: Path) -> None:
    """The kernel's rule: with no ptrace tracer, a TRACE'd call fails with ENOSYS."""
    code = (f"import os\ntry:\n os.mkdir({str(tmp_path / 'made')!r}); print('ok')\n"
            "except OSError as e:\n print(e.errno)")
    res = apply(tmp_path, deny(["mkdir"], "SCMP_ACT_TRACE", errnoRet=7), *python(code))
    assert res.returncode == 0, res.stderr
    assert res.stdout == f"{ENOSYS}\n"


@pytest.mark.parametrize("flags", [[], ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC",
                                        "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]])
def test_log_allows_the_call(tmp_path: Path, flags: list[str]) -> None:
    target = tmp_path / "made"
    profile = deny(["mkdir", "mkdirat"], "SCMP_ACT_LOG")
    profile["flags"] = flags
    res = apply(tmp_path, profile, BUSYBOX, "sh", "-c",
                f"mkdir {target} && echo made; grep '^Seccomp:' /proc/self/status")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["made", "Seccomp:\t2"]
    assert target.is_dir()


def test_default_action_with_default_errno_ret(tmp_path: Path) -> None:
    """An allow-list: everything Python needs to start, and nothing for mkdir."""
    profile = default_profile()
    profile["defaultErrnoRet"] = EACCES
    for rule in profile["syscalls"]:
        rule["names"] = [n for n in rule["names"] if n not in ("mkdir", "mkdirat")]
    code = (f"import os\ntry:\n os.mkdir({str(tmp_path / 'made')!r}); print('ok')\n"
            "except OSError as e:\n print(e.errno)")
    res = apply(tmp_path, profile, *python(code))
    assert res.returncode == 0, res.stderr
    assert res.stdout == f"{EACCES}\n"


_PERSONALITY = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
for value in (0x8, 0x20000, 0xFFFFFFFF):
    rc = libc.personality(ctypes.c_ulong(value))
    print(hex(value), "denied" if rc == -1 and ctypes.get_errno() == 13 else "allowed")
"""


@pytest.mark.parametrize(("op", "value_two", "denied"), [
    ("SCMP_CMP_NE", 0, {0x8, 0xFFFFFFFF}),
    ("SCMP_CMP_LT", 0, {0x8}),
    ("SCMP_CMP_LE", 0, {0x8, 0x20000}),
    ("SCMP_CMP_EQ", 0, {0x20000}),
    ("SCMP_CMP_GE", 0, {0x20000, 0xFFFFFFFF}),
    ("SCMP_CMP_GT", 0, {0xFFFFFFFF}),
    ("SCMP_CMP_MASKED_EQ", 0x20000, {0x20000, 0xFFFFFFFF}),  # (arg & 0x20000) == 0x20000
])
def test_argument_conditions(tmp_path: Path, op: str, value_two: int,
                             denied: set[int]) -> None:
    """personality is denied (EACCES) only for the values the condition matches."""
    profile = deny(["personality"], "SCMP_ACT_ERRNO", errnoRet=EACCES,
                   args=[{"index": 0, "value": 0x20000, "valueTwo": value_two, "op": op}])
    res = apply(tmp_path, profile, *python(_PERSONALITY))
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        f"{hex(v)} {'denied' if v in denied else 'allowed'}"
        for v in (0x8, 0x20000, 0xFFFFFFFF)]


_DUP3 = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
for old, flags in ((1, os.O_CLOEXEC), (1, 0), (2, os.O_CLOEXEC)):
    rc = libc.dup3(old, 10, flags)
    print(old, flags, "denied" if rc == -1 and ctypes.get_errno() == 13 else "allowed")
"""


def test_conditions_on_different_arguments_must_all_hold(tmp_path: Path) -> None:
    profile = deny(["dup3"], "SCMP_ACT_ERRNO", errnoRet=EACCES,
                   args=[{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                         {"index": 2, "value": os.O_CLOEXEC, "op": "SCMP_CMP_EQ"}])
    res = apply(tmp_path, profile, *python(_DUP3))
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [f"1 {os.O_CLOEXEC} denied", "1 0 allowed",
                                       f"2 {os.O_CLOEXEC} allowed"]


def test_conditions_on_the_same_argument_are_alternatives(tmp_path: Path) -> None:
    """runc's rule, which the moby profile relies on: any one of them is enough."""
    profile = deny(["personality"], "SCMP_ACT_ERRNO", errnoRet=EACCES,
                   args=[{"index": 0, "value": 0x8, "op": "SCMP_CMP_EQ"},
                         {"index": 0, "value": 0xFFFFFFFF, "op": "SCMP_CMP_EQ"}])
    res = apply(tmp_path, profile, *python(_PERSONALITY))
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["0x8 denied", "0x20000 allowed", "0xffffffff denied"]


def test_unknown_names_are_skipped_and_reported(tmp_path: Path) -> None:
    res = apply(tmp_path, deny(["pyinit_no_such_call", "mkdir", "another_fake"],
                               "SCMP_ACT_ERRNO", errnoRet=EACCES),
                BUSYBOX, "mkdir", str(tmp_path / "made"))
    assert res.returncode == 1
    assert res.stderr.splitlines()[0] == "skipped: pyinit_no_such_call,another_fake"
    assert not (tmp_path / "made").exists()


def test_what_libseccomp_refuses_is_named_by_its_path(tmp_path: Path) -> None:
    """The spec names architectures this libseccomp (2.5.4) does not know yet."""
    profile = deny(["mkdir"], "SCMP_ACT_ERRNO")
    profile["architectures"] = ["SCMP_ARCH_X86_64", "SCMP_ARCH_LOONGARCH64"]
    res = apply(tmp_path, profile, BUSYBOX, "true")
    assert res.returncode == 125
    assert res.stderr == (f"linux.seccomp.architectures[1]: seccomp: libseccomp "
                          f"{linux_seccomp.version()} does not know SCMP_ARCH_LOONGARCH64\n")


def test_notify_is_refused_with_its_path(tmp_path: Path) -> None:
    res = apply(tmp_path, deny(["mkdir"], "SCMP_ACT_NOTIFY"), BUSYBOX, "true")
    assert res.returncode == 125
    assert res.stderr == ("linux.seccomp.syscalls[0].action: SCMP_ACT_NOTIFY is not supported: "
                          "pyinit has no seccomp agent to answer the notifications (use "
                          "SCMP_ACT_ERRNO or SCMP_ACT_TRACE)\n")


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="int $0x80 is x86's")
@pytest.mark.parametrize(("architectures", "code", "out"), [
    # i386 numbers: getpid 20, mkdir 39. Not in the filter: a bad architecture.
    (["SCMP_ARCH_X86_64"], SIGSYS, ""),
    (["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"], 0, f"-{EACCES}\n"),
])
def test_architectures(tmp_path: Path, architectures: list[str], code: int, out: str) -> None:
    binary = tmp_path / "int80"
    subprocess.run(["gcc", "-static", "-no-pie", "-O", "-o", str(binary),
                    str(HELPERS / "int80.c")], check=True)
    profile = deny(["mkdir"], "SCMP_ACT_ERRNO", errnoRet=EACCES)
    profile["architectures"] = architectures
    res = apply(tmp_path, profile, str(binary), "39", str(tmp_path / "made"), "0755")
    assert res.returncode == code, res.stderr
    assert res.stdout == out
    assert not (tmp_path / "made").exists()
    # Without any filter the same helper really makes the directory.
    plain = subprocess.run([str(binary), "39", str(tmp_path / "made"), "0755"],
                           capture_output=True, text=True, check=True)
    assert plain.stdout == "0\n" and (tmp_path / "made").is_dir()


def test_the_default_profile(tmp_path: Path) -> None:
    """Ordinary work runs; namespaces, vsock and odd personalities do not."""
    code = """
import ctypes, os, socket, subprocess, threading
libc = ctypes.CDLL(None, use_errno=True)
def call(name, *args):
    rc = getattr(libc, name)(*args)
    return os.strerror(ctypes.get_errno()) if rc == -1 else "ok"
os.mkdir("made"); os.rmdir("made")
t = threading.Thread(target=print, args=("thread ok",)); t.start(); t.join()
print(subprocess.run(["true"]).returncode)
print("unshare", call("unshare", 0x10000000))
print("personality", call("personality", ctypes.c_ulong(0x0040000)))
print("personality query", call("personality", ctypes.c_ulong(0xFFFFFFFF)))
for family in (socket.AF_UNIX, 40):
    try:
        socket.socket(family, socket.SOCK_STREAM).close(); print(family, "ok")
    except OSError as e:
        print(family, e.strerror)
print("clone3", call("syscall", 435, None, 0))
"""
    res = apply(tmp_path, default_profile(), *python(code), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        "thread ok", "0", "unshare Operation not permitted",
        "personality Operation not permitted", "personality query ok", "1 ok",
        "40 Operation not permitted", "clone3 Function not implemented"]


def test_the_default_profile_follows_capabilities(tmp_path: Path) -> None:
    code = "import ctypes\nprint(ctypes.CDLL(None, use_errno=True).unshare(0) == 0)"
    without = apply(tmp_path, default_profile(), *python(code))
    with_admin = apply(tmp_path, default_profile(["CAP_SYS_ADMIN"]), *python(code))
    assert (without.stdout, with_admin.stdout) == ("False\n", "True\n")


NESTING = """
import ctypes, os, socket
libc = ctypes.CDLL(None, use_errno=True)
def call(name, *args):
    rc = getattr(libc, name)(*args)
    return os.strerror(ctypes.get_errno()) if rc == -1 else "ok"
print("unshare", call("unshare", 0x10000000 | 0x20000))
print("mount", call("mount", b"none", b"/tmp", b"tmpfs", 0, None))
print("clone3", call("syscall", @CLONE3@, None, 0))
print("keyctl", call("syscall", @KEYCTL@, 0, -3, 0))
print("bpf", call("syscall", @BPF@, 0, None, 0))
print("personality", call("personality", ctypes.c_ulong(0x0040000)))
try:
    socket.socket(40, socket.SOCK_STREAM).close(); print("vsock ok")
except OSError as e:
    print("vsock", e.strerror)
"""


def test_the_sandbox_profile_adds_namespaces_and_only_them(tmp_path: Path) -> None:
    """pyinit sandbox's default (namespaces=True): a user namespace, and mounts in it,
    as under bubblewrap; clone3 reaches the kernel (EINVAL for a NULL argument, not
    ENOSYS); keyrings, bpf, odd personalities and vsock stay refused."""
    code = NESTING
    for name in ("clone3", "keyctl", "bpf"):
        number = linux_seccomp.library().seccomp_syscall_resolve_name(name.encode())
        code = code.replace(f"@{name.upper()}@", str(number))
    res = apply(tmp_path, default_profile(namespaces=True), *python(code))
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        "unshare ok", "mount ok", "clone3 Invalid argument", "keyctl Operation not permitted",
        "bpf Operation not permitted", "personality Operation not permitted",
        "vsock Operation not permitted"]
    strict = apply(tmp_path, default_profile(), *python(code))
    assert strict.stdout.splitlines()[:3] == [
        "unshare Operation not permitted", "mount Operation not permitted",
        "clone3 Function not implemented"]


@pytest.mark.root
def test_without_no_new_privs_root_needs_cap_sys_admin(tmp_path: Path) -> None:
    profile = deny(["mkdir"], "SCMP_ACT_ERRNO", errnoRet=EACCES)
    res = apply(tmp_path, profile, BUSYBOX, "mkdir", str(tmp_path / "made"),
                options=("--no-nnp",))
    assert res.returncode == 1, res.stderr  # root: CAP_SYS_ADMIN is enough
    assert not (tmp_path / "made").exists()
    # As uid 65534 without capabilities (the profile comes on stdin: the
    # test's directory is root's).
    res = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
                          "--inh-caps=-all", *helper("seccomp_exec.py"), "-",
                          "--no-nnp", "--", BUSYBOX, "true"],
                         capture_output=True, text=True, timeout=60, check=False,
                         input=json.dumps(profile))
    assert res.returncode == 125
    assert res.stderr.splitlines()[-1] == (
        "install: [Errno 13] seccomp(SECCOMP_SET_MODE_FILTER): Permission denied")


def test_a_compiled_program_from_a_file_descriptor(tmp_path: Path) -> None:
    """bubblewrap's --seccomp FD: the BPF seccomp_export_bpf writes, loaded as it is."""
    profile, _ = parse_seccomp(deny(["mkdir", "mkdirat"], "SCMP_ACT_ERRNO", errnoRet=EACCES))
    assert profile is not None
    program = tmp_path / "filter.bpf"
    program.write_bytes(linux_seccomp.prepare(profile).program)
    with open(program, "rb") as fh:
        res = subprocess.run([*helper("seccomp_exec.py"), "--from-fd", str(fh.fileno()), "--",
                              BUSYBOX, "mkdir", str(tmp_path / "made")],
                             capture_output=True, text=True, timeout=60, check=False,
                             pass_fds=[fh.fileno()], stdin=subprocess.DEVNULL)
    assert res.returncode == 1
    assert res.stderr.splitlines()[-1] == (
        f"mkdir: can't create directory '{tmp_path / 'made'}': Permission denied")
    program.write_bytes(b"1234567")
    with open(program, "rb") as fh:
        res = subprocess.run([*helper("seccomp_exec.py"), "--from-fd", str(fh.fileno()), "--",
                              BUSYBOX, "true"], capture_output=True, text=True, timeout=60,
                             check=False, pass_fds=[fh.fileno()])
    assert res.returncode == 125
    assert res.stderr == ("not a seccomp BPF program: 7 bytes (a program is 1 to 4096 "
                          "instructions of 8 bytes)\n")


# ------------------------------------------------------------------ pyinit run, pyinit sandbox

def _with_rule(rule: dict[str, Any], *, first: bool = True) -> Any:
    """An edit() that puts ``rule`` into the bundle's default profile."""
    def change(cfg: dict[str, Any]) -> None:
        rules = cfg["linux"]["seccomp"]["syscalls"]
        for old in rules:  # the rule decides for its names, whatever the allow-list says
            old["names"] = [n for n in old["names"] if n not in rule["names"]]
        rules[:] = [r for r in rules if r["names"]]
        rules.insert(0 if first else len(rules), rule)
    return change


@pytest.mark.root
def test_run_applies_the_spec_default(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status;"
                         " mkdir /dev/shm/d && echo mkdir-ok")
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["NoNewPrivs:\t1", "Seccomp:\t2", "mkdir-ok"]
    prepared = event(res.stderr, "seccomp.prepared")
    assert prepared["default_action"] == "SCMP_ACT_ERRNO"
    assert prepared["skipped"] == [] and prepared["flags"] == []
    assert prepared["instructions"] > 500  # the allow-list, for three architectures


def test_check_names_the_filter(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "true")
    res = subprocess.run([PYINIT, "check", "--bundle", str(bundle)], capture_output=True,
                         text=True, check=False)
    assert res.returncode == 0, res.stdout
    n = len(default_profile(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"])["syscalls"])
    arches = ", ".join(default_profile()["architectures"])
    assert res.stdout.splitlines()[-1] == (
        f"then, just before exec: a seccomp filter (default SCMP_ACT_ERRNO, {n} rules, "
        f"architectures {arches})")


@pytest.mark.root
@pytest.mark.parametrize("no_new_privileges", [True, False])
def test_run_blocked_mkdir(tmp_path: Path, no_new_privileges: bool) -> None:
    """With and without noNewPrivileges (then loaded while CAP_SYS_ADMIN is still held)."""
    bundle = make_bundle(tmp_path, "grep -E '^(Seccomp|NoNewPrivs|CapEff):' /proc/self/status;"
                         " id -u; mkdir /dev/shm/d; echo rc=$?")
    edit(bundle, _with_rule({"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                             "errnoRet": EACCES}))

    def user(cfg: dict[str, Any]) -> None:
        cfg["process"]["user"] = {"uid": 65534, "gid": 65534}
        cfg["process"]["noNewPrivileges"] = no_new_privileges
    edit(bundle, user)
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        "CapEff:\t0000000000000000", f"NoNewPrivs:\t{int(no_new_privileges)}", "Seccomp:\t2",
        "65534", "rc=1"]
    assert "mkdir: can't create directory '/dev/shm/d': Permission denied" in \
        res.stderr.splitlines()


@pytest.mark.root
def test_run_kill_process_is_death_by_sigsys(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "echo before; exec mkdir /dev/shm/d")
    edit(bundle, _with_rule({"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL_PROCESS"}))
    res = run_bundle(bundle)
    assert res.returncode == 128 + signal.SIGSYS, res.stderr
    assert res.stdout == "before\n"


@pytest.mark.root
def test_run_a_filter_that_forbids_execve_stops_the_workload(tmp_path: Path) -> None:
    """Loaded before exec: a profile without execve leaves the workload unstarted."""
    bundle = make_bundle(tmp_path, "echo never")
    edit(bundle, _with_rule({"names": ["execve", "execveat"], "action": "SCMP_ACT_ERRNO",
                             "errnoRet": EPERM}))
    res = run_bundle(bundle)
    assert res.returncode == 126, res.stderr
    assert res.stdout == ""
    assert "pyinit: cannot execute 'sh': Operation not permitted" in res.stderr.splitlines()


@pytest.mark.root
def test_run_refuses_a_bad_profile_with_its_path(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "echo never")
    edit(bundle, _with_rule({"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}, first=False))

    def count(cfg: dict[str, Any]) -> None:
        cfg["linux"]["seccomp"]["syscalls"][-1]["args"] = [
            {"index": 0, "value": 1, "op": "SCMP_CMP_FOO"}]
    edit(bundle, count)
    n = len(json.loads((bundle / "config.json").read_text())["linux"]["seccomp"]["syscalls"])
    where = f"linux.seccomp.syscalls[{n - 1}]"
    res = run_bundle(bundle)
    assert res.returncode == 125
    assert res.stdout == ""
    assert res.stderr == (f"pyinit: config.json: {where}.action: SCMP_ACT_NOTIFY is not "
                          "supported: pyinit has no seccomp agent to answer the notifications "
                          "(use SCMP_ACT_ERRNO or SCMP_ACT_TRACE) (and 1 more; see pyinit "
                          "check)\n")
    check = subprocess.run([PYINIT, "check", "--bundle", str(bundle)], capture_output=True,
                           text=True, check=False)
    assert check.returncode == 1
    assert check.stdout.splitlines() == [
        f"{where}.action: SCMP_ACT_NOTIFY is not supported: pyinit has no seccomp agent to "
        "answer the notifications (use SCMP_ACT_ERRNO or SCMP_ACT_TRACE)",
        f"{where}.args[0].op: unknown operator 'SCMP_CMP_FOO'"]


def sandbox(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYINIT, "sandbox", *args], capture_output=True, text=True,
                          timeout=60, check=False, stdin=subprocess.DEVNULL)


_UNSHARE = "grep '^Seccomp:' /proc/self/status; unshare -m true; echo unshare=$?"


@pytest.mark.root
def test_sandbox_applies_the_default_unless_told_not_to() -> None:
    res = sandbox("--", "sh", "-c", _UNSHARE)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["Seccomp:\t2", "unshare=1"]
    assert "unshare: unshare failed: Operation not permitted" in res.stderr.splitlines()
    # The sandbox drops every capability: unshare needs CAP_SYS_ADMIN kept.
    res = sandbox("--no-seccomp", "--cap-add", "CAP_SYS_ADMIN", "--", "sh", "-c", _UNSHARE)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["Seccomp:\t0", "unshare=0"]


@pytest.mark.root
def test_sandbox_seccomp_profile(tmp_path: Path) -> None:
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps(deny(["mkdir", "mkdirat"], "SCMP_ACT_ERRNO",
                                       errnoRet=EACCES)))
    res = sandbox("--seccomp-profile", str(profile), "--cap-add", "CAP_SYS_ADMIN", "--setenv",
                  "LC_ALL", "C", "--", "sh", "-c", "mkdir /tmp/d; echo rc=$?; " + _UNSHARE)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["rc=1", "Seccomp:\t2", "unshare=0"]
    assert "mkdir: cannot create directory '/tmp/d': Permission denied" in \
        res.stderr.splitlines()
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_NOTIFY"}))
    res = sandbox("--seccomp-profile", str(profile), "--", "true")
    assert res.returncode == 2
    assert res.stderr == (f"pyinit sandbox: error: --seccomp-profile {profile}: "
                          "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY is not supported: "
                          "pyinit has no seccomp agent to answer the notifications (use "
                          "SCMP_ACT_ERRNO or SCMP_ACT_TRACE) (see 'pyinit sandbox --help')\n")
