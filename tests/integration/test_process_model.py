"""The process model of ``pyinit run`` and ``pyinit sandbox`` under attack (issue 9).

Each test runs a real attack from inside the container with a small static C
helper (tests/helpers/*.c, built here with ``gcc -static``), and shows that it
fails and that the host is unchanged.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyinit.container import PROC_FD_MIN
from tests.conftest import HELPERS, PYINIT, events
from tests.integration.test_rootless import as_user, runtime
from tests.integration.test_run import edit, make_bundle

pytestmark = pytest.mark.root

__all__ = ["runtime"]  # the module-scoped fixture, shared with test_rootless

HOST = 100000
CAP_KILL = f"{1 << 5:016x}"
ZERO = f"{0:016x}"


@pytest.fixture(scope="module")
def helpers() -> Iterator[Path]:
    out = Path(tempfile.mkdtemp(prefix="pyinit-helpers-"))
    for source in HELPERS.glob("*.c"):
        subprocess.run(["gcc", "-static", "-O2", "-o", str(out / source.stem), str(source)],
                       check=True)
    yield out
    shutil.rmtree(out)


@pytest.fixture
def top(reachable: Path) -> Path:
    return reachable


def bundle_with(top: Path, helpers: Path, script: str, change: Any,
                userns: bool = False) -> Path:
    bundle = make_bundle(top / "b", script)
    for helper in helpers.iterdir():
        shutil.copy(helper, bundle / "rootfs" / "bin" / helper.name)

    def both(cfg: dict[str, Any]) -> None:
        # What these tests show is the process model's own doing: no seccomp
        # filter may be what stops an attack here (it has tests of its own).
        cfg["linux"].pop("seccomp", None)
        if userns:
            cfg["linux"]["namespaces"].append({"type": "user"})
            cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": HOST, "size": 65536}]
            cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": HOST, "size": 65536}]
        change(cfg)
    edit(bundle, both)
    if userns:
        for p in [bundle / "rootfs", *(bundle / "rootfs").rglob("*")]:
            os.lchown(p, HOST, HOST)
    return bundle


def run_with_fd9(bundle: Path, hostdir: Path) -> subprocess.CompletedProcess[str]:
    """``pyinit run --bundle B 9<hostdir``, as the CVE-2024-21626 pattern."""
    # The shell opens fd 9, not this process: a dup2 onto 9 here would close
    # whatever pytest keeps there (its faulthandler's stderr, for one).
    return subprocess.run(["sh", "-c", 'exec "$0" run --bundle "$1" 9<"$2"', PYINIT,
                           str(bundle), str(hostdir)], capture_output=True, text=True,
                          timeout=60, check=False, stdin=subprocess.DEVNULL)


def _with_caps(cfg: dict[str, Any], names: list[str]) -> None:
    cfg["process"]["capabilities"] = {k: names for k in ("bounding", "effective", "permitted",
                                                         "inheritable", "ambient")}


PROBE_PID1 = ("ptrace_pid1; cd /proc/1/fd/9 2>/dev/null && ls || echo fd9: refused;"
              " grep -E '^(Uid|Gid|Groups|Cap...|NoNewPrivs):' /proc/1/status")


def _status(out: str) -> dict[str, str]:
    return {k: v.strip() for k, v in (line.split(":", 1) for line in out.splitlines()
                                       if ":" in line)}


def test_a_workload_with_cap_sys_ptrace_in_a_user_namespace_cannot_reach_pid1(
        top: Path, helpers: Path) -> None:
    secret = top / "host-secret"
    secret.mkdir()
    (secret / "file").write_text("host\n")
    bundle = bundle_with(top, helpers, PROBE_PID1,
                         lambda c: _with_caps(c, ["CAP_SYS_PTRACE", "CAP_KILL"]), userns=True)
    res = run_with_fd9(bundle, secret)
    assert res.returncode == 0, res.stderr
    status = _status(res.stdout)
    assert {k: status[k] for k in ("attach", "process_vm_readv", "open /proc/1/mem", "fd9")} \
        == {"attach": "EPERM", "process_vm_readv": "EPERM", "open /proc/1/mem": "EACCES",
            "fd9": "refused"}
    assert (status["Uid"].split(), status["Gid"].split()) == (["0"] * 4, ["0"] * 4)
    assert {k: status[k] for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb",
                                   "NoNewPrivs")} == {
        "CapInh": ZERO, "CapPrm": CAP_KILL, "CapEff": CAP_KILL, "CapBnd": CAP_KILL,
        "CapAmb": ZERO, "NoNewPrivs": "1"}
    assert status["pidfd_getfd"] == "EPERM"
    assert "host" not in res.stdout.splitlines()


def test_pid1_attached_without_a_user_namespace_holds_nothing_worth_taking(
        top: Path, helpers: Path) -> None:
    """Without a user namespace CAP_SYS_PTRACE is the host's: the attach succeeds,
    and PID 1 turns out to be the workload's user with CAP_KILL and no host descriptor."""
    secret = top / "host-secret"
    secret.mkdir()

    def change(cfg: dict[str, Any]) -> None:
        _with_caps(cfg, ["CAP_SYS_PTRACE"])
        cfg["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [44]}
        # A mount command runs in a trio worker thread, which then idles in
        # PID 1 for 10 s: it must be stripped like the main thread.
        cfg["mounts"][-1]["io.pyinit.postmount"] = [{"path": "/bin/true"}]
    threads = ("; for t in /proc/1/task/*; do echo task $(grep -E"
               " '^(CapPrm|CapEff|CapBnd|NoNewPrivs)' $t/status | tr -s '\t\n' '  '); done")
    bundle = bundle_with(top, helpers, PROBE_PID1 + threads, change)
    res = run_with_fd9(bundle, secret)
    assert res.returncode == 0, res.stderr
    status = _status(res.stdout)
    assert (status["attach"], status["process_vm_readv"], status["fd9"]) == ("OK", "OK",
                                                                              "refused")
    assert (status["Uid"].split(), status["Gid"].split(), status["Groups"]) == (
        ["1000"] * 4, ["1000"] * 4, "44")
    assert {k: status[k] for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb",
                                   "NoNewPrivs")} == {
        "CapInh": ZERO, "CapPrm": CAP_KILL, "CapEff": CAP_KILL, "CapBnd": CAP_KILL,
        "CapAmb": ZERO, "NoNewPrivs": "1"}
    tasks = [line for line in res.stdout.splitlines() if line.startswith("task ")]
    assert len(tasks) >= 2  # the main thread and trio's idle worker
    assert set(tasks) == {f"task CapPrm: {CAP_KILL} CapEff: {CAP_KILL} CapBnd: {CAP_KILL} "
                          "NoNewPrivs: 1"} | {f"task CapPrm: {ZERO} CapEff: {ZERO} "
                                              f"CapBnd: {CAP_KILL} NoNewPrivs: 1"}, tasks
    # Every descriptor of PID 1, stolen with pidfd_getfd: stdio (the container's
    # /dev/null), the log socket to the parent, the container's own procfs (the
    # shutdown reads who is left through it), and later trio's own; never the
    # host directory, never the test's pipes, never a pipe at all.
    stolen = {int(line.split()[2]): line.split(" -> ", 1)[1]
              for line in res.stdout.splitlines() if line.startswith("pid1 fd ")}
    assert [stolen[0], stolen[1], stolen[2]] == ["/dev/null"] * 3, stolen
    assert stolen.pop(PROC_FD_MIN) == "/proc", stolen
    assert all(t.startswith(("anon_inode:", "socket:", "/dev/null"))
               for t in stolen.values()), stolen


# ------------------------------------------------------------------ finding 4: TIOCSTI

def _under_a_terminal(argv: list[str]) -> tuple[subprocess.CompletedProcess[str], bytes]:
    """Run ``argv`` with a new pty as its controlling terminal and stdin, as a shell would.

    Returns the result and whatever input is queued on the terminal afterwards:
    what the caller's shell would read next.
    """
    import fcntl
    import termios

    master, slave = os.openpty()

    def take_terminal() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    try:
        res = subprocess.run(argv, stdin=slave, capture_output=True, text=True, timeout=60,
                             check=False, start_new_session=True, preexec_fn=take_terminal)
        os.set_blocking(slave, False)
        try:
            queued = os.read(slave, 4096)
        except BlockingIOError:
            queued = b""
        return res, queued
    finally:
        os.close(master)
        os.close(slave)


def test_run_workload_cannot_type_into_the_callers_terminal(top: Path, helpers: Path) -> None:
    bundle = bundle_with(top, helpers, "tiocsti", lambda c: c["process"].update(
        user={"uid": 65534, "gid": 65534}))
    res, queued = _under_a_terminal([PYINIT, "run", "--bundle", str(bundle)])
    assert res.returncode == 0, res.stderr
    assert res.stdout == "tiocsti: EPERM\n"
    assert queued == b""


def test_sandbox_program_cannot_type_into_the_callers_terminal(helpers: Path) -> None:
    res, queued = _under_a_terminal([PYINIT, "sandbox", "--no-seccomp", "--ro-bind",
                                     str(helpers), "/h", "--", "/h/tiocsti"])
    assert res.returncode == 0, res.stderr
    assert res.stdout == "tiocsti: EPERM\n"
    assert queued == b""


# ------------------------------------------------------------------ finding 5: sandbox as root

SANDBOX_BASE = ("--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink",
                "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64", "--proc", "/proc")
STATUS = "grep -E '^(CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs)' /proc/self/status"


def sandbox(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYINIT, "sandbox", *args], capture_output=True, text=True,
                          timeout=60, check=False, stdin=subprocess.DEVNULL)


def test_sandbox_program_cannot_remount_a_ro_bind_writable(top: Path) -> None:
    src = top / "secret"
    src.mkdir()
    (src / "f").write_text("original\n")
    res = sandbox(*SANDBOX_BASE, "--no-seccomp", "--ro-bind", str(src), "/data", "--", "sh", "-c",
                  "mount -o remount,bind,rw /data 2>/dev/null && echo remounted;"
                  " echo changed > /data/f 2>/dev/null || echo write-refused; " + STATUS)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        "write-refused", f"CapPrm:\t{ZERO}", f"CapEff:\t{ZERO}", f"CapBnd:\t{ZERO}",
        f"CapAmb:\t{ZERO}", "NoNewPrivs:\t1"]
    assert (src / "f").read_text() == "original\n"


def test_sandbox_cap_add_keeps_exactly_that_one() -> None:
    res = sandbox(*SANDBOX_BASE, "--cap-add", "CAP_NET_RAW", "--", "sh", "-c", STATUS)
    assert res.returncode == 0, res.stderr
    raw = f"{1 << 13:016x}"
    assert res.stdout.splitlines() == [f"CapPrm:\t{raw}", f"CapEff:\t{raw}", f"CapBnd:\t{raw}",
                                       f"CapAmb:\t{raw}", "NoNewPrivs:\t1"]


def test_sandbox_cap_add_unknown_or_unprivileged_is_a_usage_error(
        runtime: tuple[str, int, int]) -> None:
    res = sandbox("--cap-add", "CAP_BOGUS", "--", "true")
    assert (res.returncode, res.stderr) == (
        2, "pyinit sandbox: error: --cap-add CAP_BOGUS: unknown capability "
        "(see 'pyinit sandbox --help')\n")
    res = as_user(runtime, "sandbox", "--cap-add", "CAP_NET_RAW", "--", "true")
    assert (res.returncode, res.stderr) == (
        2, "pyinit sandbox: error: --cap-add CAP_NET_RAW: pyinit does not have CAP_NET_RAW "
        "itself (CapEff of /proc/self/status), so the program cannot keep it "
        "(see 'pyinit sandbox --help')\n")


# ------------------------------------------------------------------ finding 8: hooks

def _hook_lines(stderr: str) -> list[str]:
    return [ev["line"] for ev in events(stderr) if ev.get("event") == "command.output"]


def test_start_container_hook_runs_as_the_workload_with_only_its_env(
        top: Path, helpers: Path) -> None:
    probe = ("grep -E '^(Uid|Gid|Groups|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):'"
             " /proc/self/status; tr '\\0' '\\n' < /proc/$$/environ; true")  # sh, not tr

    def change(cfg: dict[str, Any]) -> None:
        _with_caps(cfg, ["CAP_NET_RAW"])
        cfg["process"]["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [7]}
        cfg["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", probe],
                                            "env": ["ONLY=given"]}]}
    bundle = bundle_with(top, helpers, "true", change)
    res = subprocess.run([PYINIT, "run", "--bundle", str(bundle), "--log-format", "json",
                          "--log-level", "info"], capture_output=True, text=True, timeout=60,
                         check=False, stdin=subprocess.DEVNULL,
                         env={**os.environ, "HOST_SECRET": "hunter2"})
    assert res.returncode == 0, res.stderr
    raw = f"{1 << 13:016x}"
    assert _hook_lines(res.stderr) == [
        "Uid:\t1000\t1000\t1000\t1000", "Gid:\t1001\t1001\t1001\t1001", "Groups:\t7 ",
        f"CapPrm:\t{raw}", f"CapEff:\t{raw}", f"CapBnd:\t{raw}", f"CapAmb:\t{raw}",
        "NoNewPrivs:\t1", "ONLY=given"]


def test_host_side_hooks_get_only_their_env(top: Path, helpers: Path) -> None:
    given, none = top / "given", top / "none"

    def dump(to: Path) -> list[str]:
        return ["sh", "-c", f"tr '\\0' '\\n' < /proc/$$/environ > {to}"]
    bundle = bundle_with(top, helpers, "true", lambda c: c.update(hooks={
        "poststart": [{"path": "/bin/sh", "args": dump(given), "env": ["ONLY=given"]}],
        "prestart": [{"path": "/bin/sh", "args": dump(none)}]}))
    res = subprocess.run([PYINIT, "run", "--bundle", str(bundle)], capture_output=True,
                         text=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
                         env={**os.environ, "HOST_SECRET": "hunter2"})
    assert res.returncode == 0, res.stderr
    assert (given.read_text(), none.read_text()) == ("ONLY=given\n", "")


@pytest.mark.parametrize("kind", ["prestart", "startContainer"])
def test_a_hooks_background_child_cannot_hang_the_setup(top: Path, helpers: Path,
                                                        kind: str) -> None:
    """The hook exits at once; its child keeps stdout open and would run 1000 s."""
    pids = top / "pids"
    record = f"echo $! >> {pids}" if kind == "prestart" else "echo bg=$!"

    def change(cfg: dict[str, Any]) -> None:
        cfg["hooks"] = {kind: [{"path": "/bin/sh", "args": [
            "sh", "-c", f"sleep 1000 & {record}; echo hook-done"]}]}
    bundle = bundle_with(top, helpers, "ps -o comm | grep -c sleep", change)
    res = subprocess.run([PYINIT, "run", "--bundle", str(bundle), "--log-format", "json",
                          "--log-level", "info"], capture_output=True, text=True, timeout=60,
                         check=False, stdin=subprocess.DEVNULL)
    assert res.stdout == "0\n", res.stderr  # no sleep inside the container
    assert res.returncode == 1  # grep -c found nothing
    assert "hook-done" in _hook_lines(res.stderr)
    if kind == "prestart":
        pid = int(pids.read_text())
        assert not Path(f"/proc/{pid}").exists()  # killed and reaped by pyinit


def test_a_hooks_timeout_kills_its_whole_group(top: Path, helpers: Path) -> None:
    pids = top / "pids"
    bundle = bundle_with(top, helpers, "echo should-not-run", lambda c: c.update(hooks={
        "prestart": [{"path": "/bin/sh", "timeout": 1, "args": [
            "sh", "-c", f"sleep 1000 & echo $! >> {pids}; echo $$ >> {pids}; exec sleep 999"]}]}))
    res = subprocess.run([PYINIT, "run", "--bundle", str(bundle)], capture_output=True,
                         text=True, timeout=60, check=False, stdin=subprocess.DEVNULL)
    line = [x for x in res.stderr.splitlines() if x.startswith("pyinit:")]
    assert res.returncode == 125 and "should-not-run" not in res.stdout
    assert line == ["pyinit: hooks.prestart[0]: hook: 'sh -c "
                    f"sleep 1000 & echo $! >> {pids}; echo $$ >> {pids}; exec sleep 999' "
                    "was killed after its timeout of 1s; no output"]
    for pid in pids.read_text().split():
        assert not Path(f"/proc/{pid}").exists(), pid


async def test_a_hook_without_a_timeout_gets_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    import structlog

    from pyinit import hooks
    from pyinit.errors import SetupError

    monkeypatch.setattr(hooks, "DEFAULT_HOOK_TIMEOUT", 0.5)
    hook = hooks.Command("/bin/sleep", ["sleep", "1000"], where="hooks.prestart[0]")
    with pytest.raises(SetupError) as info:
        await hooks.run_checked(hook, structlog.get_logger(), "hook", kind="prestart")
    assert info.value.line() == ("hooks.prestart[0]: hook: 'sleep 1000' was killed after its "
                                 "timeout of 0.5s; no output")
    # A mount command keeps its documented default: no timeout, pyinit's environment.
    cmd = hooks.Command("/bin/sh", ["sh", "-c", "echo $HOME"], where="mounts[0]")
    result = await hooks.run(cmd, structlog.get_logger())
    assert (result.code, result.tail, result.timeout) == (0, [f"stdout: {os.environ['HOME']}"],
                                                          None)


# ------------------------------------------------------------------ process.terminal

def _terminal(cfg: dict[str, Any]) -> None:
    cfg["process"]["terminal"] = True


def test_terminal_true_relays_a_pty_from_the_containers_devpts(top: Path,
                                                                helpers: Path) -> None:
    import pexpect

    script = ("tty; stty size; trap 'stty size; exit 5' WINCH; echo ready; read line;"
              " echo got:$line; while :; do sleep 0.1; done")
    bundle = bundle_with(top, helpers, script, _terminal)
    child = pexpect.spawn(PYINIT, ["run", "--bundle", str(bundle)], dimensions=(24, 80),
                          timeout=30, env={**os.environ, "TERM": "dumb"})
    try:
        child.expect_exact("/dev/pts/0\r\n24 80\r\nready\r\n")
        child.sendline("hello")
        child.expect_exact("got:hello\r\n")
        child.setwinsize(30, 100)
        child.expect_exact("30 100\r\n")
        child.expect(pexpect.EOF)
        # The caller's terminal is back in the mode it had: canonical, echoing.
        import termios
        lflag = termios.tcgetattr(child.child_fd)[3]
        assert lflag & termios.ICANON and lflag & termios.ECHO
    finally:
        child.close()
    assert child.exitstatus == 5


def test_terminal_master_goes_to_the_console_socket(top: Path, helpers: Path) -> None:
    import socket

    def change(cfg: dict[str, Any]) -> None:
        _terminal(cfg)
        cfg["process"]["consoleSize"] = {"height": 33, "width": 77}
    bundle = bundle_with(top, helpers, "tty; stty size; echo on-the-console", change)
    path = top / "console.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        server.listen(1)
        proc = subprocess.Popen([PYINIT, "run", "--bundle", str(bundle), "--console-socket",
                                 str(path)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        conn, _ = server.accept()
        with conn:
            _data, fds, _flags, _addr = socket.recv_fds(conn, 16, 1)
        master = fds[0]
        output = b""
        try:
            while True:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the container's end is closed
                    break
                if not chunk:
                    break
                output += chunk
        finally:
            os.close(master)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert (output, out) == (b"/dev/pts/0\r\n33 77\r\non-the-console\r\n", b"")


def test_terminal_without_devpts_is_refused_by_check(top: Path, helpers: Path) -> None:
    def change(cfg: dict[str, Any]) -> None:
        _terminal(cfg)
        cfg["mounts"] = [m for m in cfg["mounts"] if m["destination"] != "/dev/pts"]
    bundle = bundle_with(top, helpers, "true", change)
    check = subprocess.run([PYINIT, "check", "--bundle", str(bundle)], capture_output=True,
                           text=True, timeout=60, check=False)
    assert (check.returncode, check.stdout) == (1, (
        "process.terminal: needs a devpts mount on /dev/pts: the terminal is allocated "
        "from the container's own devpts\n"))


def test_start_container_hook_gets_the_workloads_seccomp_filter(top: Path) -> None:
    bundle = make_bundle(top / "b", "grep Seccomp: /proc/self/status")  # spec's default profile
    edit(bundle, lambda c: c.update(hooks={"startContainer": [
        {"path": "/bin/sh", "args": ["sh", "-c", "grep Seccomp: /proc/self/status"]}]}))
    res = subprocess.run([PYINIT, "run", "--bundle", str(bundle), "--log-format", "json",
                          "--log-level", "info"], capture_output=True, text=True, timeout=60,
                         check=False, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr
    assert (_hook_lines(res.stderr), res.stdout) == (["Seccomp:\t2"], "Seccomp:\t2\n")
