"""pyinit as an image's ENTRYPOINT, end to end under podman, for every variant.

images/build.sh builds them offline (``--network none``) from a wheelhouse:
the root Dockerfile on the local Debian base (tools/build-base-images.sh,
kept in podman's store as a cache), and busybox with the drop-in binary.
podman uses tools/containers.conf. ``$PYINIT_IMAGE`` names them instead of
localhost/pyinit, as for images/build.sh.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import ROOT, wait_for

pytestmark = pytest.mark.root

VARIANTS = ("debian-slim", "minimal")
IMAGE = os.environ.get("PYINIT_IMAGE", "localhost/pyinit")


def podman_env() -> dict[str, str]:
    env = dict(os.environ)
    if "CONTAINERS_CONF" not in env and not os.path.exists("/etc/containers/containers.conf"):
        env["CONTAINERS_CONF"] = str(ROOT / "tools" / "containers.conf")
    return env


def podman(*args: str, timeout: float = 120, check: bool = False
           ) -> subprocess.CompletedProcess[str]:
    if args and args[0] == "run":
        # No network: none is needed, and podman's network backend would leave
        # a /run/netns mount on the host the first time it makes one.
        args = ("run", "--network", "none", *args[1:])
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout,
                          check=check, env=podman_env(), stdin=subprocess.DEVNULL)


@pytest.fixture(scope="session")
def built() -> dict[str, str]:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (tools/install.sh installs it)")
    res = subprocess.run([str(ROOT / "images" / "build.sh")], capture_output=True, text=True,
                         timeout=1200, env={**podman_env(), "PYTHON": sys.executable})
    assert res.returncode == 0, res.stderr[-3000:]
    return {v: f"{IMAGE}:{v}" for v in VARIANTS}


@pytest.fixture(params=VARIANTS)
def image(request: pytest.FixtureRequest, built: dict[str, str]) -> str:
    return built[request.param]


@pytest.fixture
def name() -> Iterator[str]:
    container = f"pyinit-test-{uuid.uuid4().hex[:10]}"
    yield container
    podman("rm", "-f", "-t", "0", container)


def test_pid1_is_pyinit(image: str) -> None:
    res = podman("run", "--rm", image, "sh", "-c",
                 "tr '\\0' ' ' < /proc/1/cmdline; echo; cat /proc/1/status | grep PPid")
    assert res.returncode == 0, res.stderr
    cmdline = res.stdout.splitlines()[0].split()
    # The ENTRYPOINT ["pyinit", "--"]: the drop-in (CPython with pyinit as its
    # program: no interpreter options in argv), or the venv's interpreter,
    # which the launcher (a shell script) runs without site on its Python half
    # (scripts/pyinit).
    pyinit = {f"{IMAGE}:minimal": ["/opt/pyinit/pyinit"],
              f"{IMAGE}:debian-slim": ["/opt/pyinit/bin/python3", "-S",
                                       "/opt/pyinit/bin/pyinit-py"]}[image]
    assert cmdline[:len(pyinit) + 3] == [*pyinit, "--", "sh", "-c"], cmdline


def test_exit_status(image: str) -> None:
    assert podman("run", "--rm", image, "sh", "-c", "exit 7").returncode == 7
    assert podman("run", "--rm", image, "sh", "-c", "kill -TERM $$").returncode == 143


# Five orphans that exit at once, then wait (up to 30 s, no fixed sleep) until
# PID 1 has reaped each of them: a zombie keeps its /proc entry until it is
# reaped, so "gone from /proc" is the event itself. Prints the number still
# there, then the number of zombies left in the whole container.
ORPHANS = ("pids=; for i in 1 2 3 4 5;"
           " do pids=\"$pids $(sleep 0.1 >/dev/null 2>&1 & echo $!)\"; done;"
           " n=0; while :; do left=0; for p in $pids; do [ -e /proc/$p ] && left=$((left+1)); done;"
           " [ $left = 0 ] || [ $n = 300 ] && break; n=$((n+1)); sleep 0.1; done; echo left=$left;"
           " for p in /proc/[0-9]*; do cat $p/stat 2>/dev/null; echo; done"
           " | awk '$3 == \"Z\"' | wc -l")


def test_orphaned_zombies_are_reaped(image: str) -> None:
    res = podman("run", "--rm", image, "sh", "-c", ORPHANS)
    assert res.returncode == 0, res.stderr
    assert [x.strip() for x in res.stdout.splitlines()] == ["left=0", "0"]


def _run_detached(image: str, name: str, script: str, *extra: str) -> None:
    res = podman("run", "-d", "--name", name, *extra, image, "sh", "-c", script)
    assert res.returncode == 0, res.stderr
    wait_for(lambda: "ready" in podman("logs", name).stdout, timeout=60, what="container ready")


def _exit_code(name: str) -> int:
    res = podman("inspect", name, "--format", "{{.State.ExitCode}}")
    return int(res.stdout.strip())


def test_podman_stop_delivers_sigterm_through_pyinit(image: str, name: str) -> None:
    _run_detached(image, name, "trap 'echo got-term; exit 42' TERM; echo ready;"
                  " while :; do sleep 0.1; done")
    assert podman("stop", "-t", "30", name).returncode == 0
    assert _exit_code(name) == 42
    assert podman("logs", name).stdout == "ready\ngot-term\n"


def test_sigterm_ignored_is_killed_after_grace_before_podmans_timeout(image: str,
                                                                     name: str) -> None:
    _run_detached(image, name, "trap '' TERM; echo ready; while :; do sleep 0.1; done",
                  "-e", "PYINIT_GRACE=1")
    assert podman("stop", "-t", "60", name).returncode == 0
    # 137 alone would also be podman's own SIGKILL after its 60 s timeout; the
    # shutdown.killed event below is what says pyinit sent it, after --grace.
    assert _exit_code(name) == 137
    logs = podman("logs", name)
    assert any(json.loads(x)["event"] == "shutdown.killed"
               for x in logs.stderr.splitlines() if x.startswith("{"))


def test_podman_kill_usr1_reaches_the_workload(image: str, name: str) -> None:
    _run_detached(image, name, "trap 'echo got-usr1; exit 3' USR1; echo ready;"
                  " while :; do sleep 0.1; done")
    assert podman("kill", "-s", "USR1", name).returncode == 0
    assert podman("wait", name).stdout.strip() == "3"
    assert podman("logs", name).stdout == "ready\ngot-usr1\n"


def test_json_logs_in_podman_logs(image: str, name: str) -> None:
    res = podman("run", "--name", name, image, "sh", "-c", "exit 0")
    assert res.returncode == 0
    events = [json.loads(x)["event"] for x in podman("logs", name).stderr.splitlines()
              if x.startswith("{")]
    assert events[0] == "workload.spawned" and events[-1] == "pyinit.exit"


# What the sandbox's program reports: ids, privileges, its /proc.
SANDBOX_PROBE = ("id -u; cat /proc/self/uid_map | tr -s ' ' | sed 's/^ //';"
                 " grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status"
                 " | tr -d '\\t'; grep ' /proc ' /proc/self/mountinfo | cut -d' ' -f5,6,9;"
                 " ls /root 2>&1 | head -1")


def test_sandbox_in_an_ordinary_container(image: str) -> None:
    """Issue 10: no CAP_SYS_ADMIN, podman's seccomp filter and masked /proc. The sandbox
    makes a user namespace; the kernel refuses it a fresh /proc there, so the default
    layout binds the container's /proc read-only and says so in one warning line."""
    res = podman("run", "--rm", "--entrypoint", "pyinit", image, "sandbox", "--",
                 "sh", "-c", SANDBOX_PROBE)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        "0", "0 0 1", "CapEff:0000000000000000", "CapBnd:0000000000000000", "NoNewPrivs:1",
        "Seccomp:2", "/proc ro,nosuid,nodev,noexec,relatime proc",
        "ls: /root: No such file or directory" if image.endswith("minimal")
        else "ls: cannot access '/root': No such file or directory"]
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    warning = json.loads(lines[0])
    assert (warning["event"], warning["level"], warning["destination"]) == (
        "mount.proc_fallback", "warning", "/proc")
    assert warning["detail"].startswith(
        "a fresh /proc is refused in a user namespace while every proc mount here has mounts "
        "on top of it (/proc/"), warning["detail"]
    assert warning["detail"].endswith(
        "); the caller's /proc is bound read-only instead (recursively, with its masks; it "
        "shows the caller's PID namespace)"), warning["detail"]


def test_sandbox_in_a_container_with_unmasked_proc_gets_its_own(image: str) -> None:
    """docs/sandbox.md, "Why ps fails in the fallback /proc": with podman's masks off the
    kernel mounts the sandbox a fresh /proc, so its PIDs are the sandbox's and ps works."""
    res = podman("run", "--rm", "--security-opt", "unmask=ALL", "--entrypoint", "pyinit",
                 image, "sandbox", "--", "sh", "-c",
                 "grep ' /proc ' /proc/self/mountinfo | cut -d' ' -f5,6,9; echo pid=$$;"
                 " read p rest < /proc/self/stat; echo self=$p")
    assert (res.returncode, res.stderr) == (0, "")
    assert res.stdout.splitlines() == ["/proc rw,nosuid,nodev,noexec,relatime proc", "pid=2",
                                       "self=2"]


def test_explicit_proc_in_an_ordinary_container_fails_with_the_hint(image: str) -> None:
    covered = podman("run", "--rm", image, "sh", "-c",
                     "cut -d' ' -f5 /proc/self/mountinfo | grep '^/proc/' | sort")
    assert covered.returncode == 0, covered.stderr
    on_top = covered.stdout.split()
    res = podman("run", "--rm", "--entrypoint", "pyinit", image, "sandbox",
                 "--ro-bind", "/usr", "/usr", "--proc", "/proc", "--", "true")
    assert res.returncode == 125, res.stderr
    lines = [x for x in res.stderr.splitlines() if x.startswith("pyinit:")]
    assert "Traceback" not in res.stderr
    assert lines == [
        "pyinit: mounts[1]: mount (/proc): proc proc on /proc MS_NOSUID|MS_NODEV|MS_NOEXEC: "
        "Operation not permitted; a new proc needs a fully visible /proc in the mount "
        f"namespace, and the visible one has mounts on top of it: {', '.join(on_top[:8])}"
        f"{' …' if len(on_top) > 8 else ''}; unmount them, or give the container a PID "
        "namespace it owns"]


def test_nested_sandbox_in_a_privileged_container(image: str) -> None:
    res = podman("run", "--rm", "--privileged", "--entrypoint", "pyinit", image, "sandbox",
                 "--", "sh", "-c", "ps -o pid,comm 2>/dev/null || cat /proc/1/comm; mount")
    assert res.returncode == 0, res.stderr
    assert "tmpfs on / type tmpfs" in res.stdout and "proc on /proc" in res.stdout


def test_dropin_as_podman_init_path_in_an_image_without_python(built: dict[str, str]) -> None:
    dropin = ROOT / "build" / "dropin"
    script = ("tr '\\0' ' ' < /proc/1/cmdline; echo; command -v python3 >/dev/null && echo HAS-PY;"
              f" {ORPHANS}; exit 7")
    res = podman("run", "--rm", "--init", f"--init-path={dropin / 'pyinit-init'}",
                 "-v", f"{dropin / 'opt' / 'pyinit'}:/opt/pyinit:ro",
                 "localhost/busybox-base:latest", "sh", "-c", script)
    assert res.returncode == 7, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split()[:2] == ["/opt/pyinit/pyinit", "--"]  # the drop-in is PID 1
    assert [x.strip() for x in lines[-2:]] == ["left=0", "0"]  # every orphan reaped, no zombie
    assert "HAS-PY" not in lines  # no Python in that image


# Where a CPython started in an image looks for its modules, besides its own
# files: the image's standard library and site directories, and the PYTHON*
# variables. Each decoy exits at once naming itself, should it be imported.
DECOY_MODULES = ("encodings/__init__.py", "sitecustomize.py", "usercustomize.py",
                 "pyinit/__init__.py", "pyinit/__main__.py", "trio/__init__.py",
                 "structlog/__init__.py", "json/__init__.py", "enum.py", "re/__init__.py",
                 "signal.py", "subprocess.py", "ssl.py", "typing.py", "functools.py")
DECOY_DIRS = ("/decoy", "/usr/lib/python3.11", "/usr/lib/python3/dist-packages",
              "/usr/local/lib/python3.11")


def test_dropin_imports_nothing_from_the_image(built: dict[str, str],
                                              tmp_path: pathlib.Path) -> None:
    """The drop-in in an image with Python (debian-slim, /opt/pyinit mounted over its
    venv): its sys.path is its own (pyinit._pth), the image's PYTHON* variables are
    ignored, and every C library PID 1 maps is the drop-in's."""
    for module in DECOY_MODULES:
        (tmp_path / module).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / module).write_text('raise SystemExit(f"decoy imported: {__file__}")\n')
    mounts = [x for d in DECOY_DIRS for x in ("-v", f"{tmp_path}:{d}:ro")]
    env = [x for var in ("PYTHONPATH", "PYTHONHOME", "PYTHONUSERBASE", "PYTHONSTARTUP")
           for x in ("-e", f"{var}=/decoy")]
    dropin = ROOT / "build" / "dropin" / "opt" / "pyinit"
    res = podman("run", "--rm", *mounts, *env, "-v", f"{dropin}:/opt/pyinit:ro",
                 "--entrypoint", "/opt/pyinit/pyinit", built["debian-slim"], "--", "sh", "-c",
                 "python3 -c 'import encodings' 2>&1 | tail -1;"
                 " grep -o ' /.*' /proc/1/maps | sort -u | sed 's/^ //'; exit 7")
    assert res.returncode == 7, res.stderr
    lines = res.stdout.splitlines()
    # The decoys are in place: the image's own python3 imports one.
    assert lines[0] == "SystemExit: decoy imported: /decoy/encodings/__init__.py", lines
    mapped = lines[1:]
    assert "/opt/pyinit/pyinit" in mapped and "/opt/pyinit/lib/libc.so.6" in mapped, mapped
    # Besides its own files, only glibc's locale data of the image, as for any
    # program: CPython sets LC_CTYPE from the environment (C.UTF-8 here).
    assert [m for m in mapped if not m.startswith("/opt/pyinit/")] == [
        "/usr/lib/locale/C.utf8/LC_CTYPE", "/usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache"
    ], mapped
    events = [json.loads(x)["event"] for x in res.stderr.splitlines()]  # nothing but events
    assert (events[0], events[-1]) == ("workload.spawned", "pyinit.exit"), res.stderr
