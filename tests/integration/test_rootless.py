"""``pyinit run`` as an unprivileged user, in user namespaces it creates itself.

The test (root) creates a user and a world-readable copy of pyinit and its
dependencies (the checkout may live under a directory that user cannot
enter), then runs pyinit as that user with ``setpriv``.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.integration.test_run import edit

pytestmark = pytest.mark.root

USER = "pyinit-rootless"
RUNTIME = ("pyinit", "trio", "structlog", "attr", "attrs", "idna", "outcome", "sniffio",
           "sortedcontainers")


@pytest.fixture(scope="module")
def runtime() -> Iterator[tuple[str, int, int]]:
    """(python of a world-readable venv with pyinit in it, uid, gid)."""
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", USER], check=True)
    entry = pwd.getpwnam(USER)
    top = Path(tempfile.mkdtemp(prefix="pyinit-rootless-"))
    venv = top / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    here = Path(sys.executable).parent.parent
    source_site = next((here / "lib").glob("python3*/site-packages"))
    for name in RUNTIME:
        src = ROOT / name if name == "pyinit" else source_site / name
        shutil.copytree(src, site / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(["chmod", "-R", "a+rX", str(top)], check=True)
    python = str(venv / "bin" / "python")
    yield python, entry.pw_uid, entry.pw_gid
    shutil.rmtree(top)


def as_user(runtime: tuple[str, int, int], *args: str, cwd: Path | None = None
            ) -> subprocess.CompletedProcess[str]:
    python, uid, gid = runtime
    return subprocess.run(
        ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", python, "-m",
         "pyinit", *args], capture_output=True, text=True, timeout=60, check=False, cwd=cwd,
        stdin=subprocess.DEVNULL)


def rootless_bundle(runtime: tuple[str, int, int], script: str) -> Path:
    _python, uid, gid = runtime
    top = Path(tempfile.mkdtemp(prefix="pyinit-rootless-bundle-"))
    top.chmod(0o755)
    rootfs = top / "rootfs" / "bin"
    rootfs.mkdir(parents=True)
    busybox = shutil.which("busybox") or "/bin/busybox"
    shutil.copy(busybox, rootfs / "busybox")
    for applet in subprocess.run([busybox, "--list"], capture_output=True, text=True,
                                 check=True).stdout.split():
        if applet != "busybox":
            (rootfs / applet).symlink_to("busybox")
    for p in [top, *top.rglob("*")]:
        os.lchown(p, uid, gid)
    res = as_user(runtime, "spec", "--rootless", "--bundle", str(top))
    assert res.returncode == 0, res.stderr
    cfg = json.loads((top / "config.json").read_text())
    cfg["process"]["args"] = ["sh", "-c", script]
    (top / "config.json").write_text(json.dumps(cfg))
    return top


@pytest.fixture
def cleanup() -> Iterator[list[Path]]:
    made: list[Path] = []
    yield made
    for p in made:
        shutil.rmtree(p, ignore_errors=True)


def _line(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 125, (res.returncode, res.stderr)
    lines = [x for x in res.stderr.splitlines() if x.startswith("pyinit:")]
    assert len(lines) == 1, res.stderr
    return lines[0]


def test_rootless_bundle_runs(runtime: tuple[str, int, int], cleanup: list[Path]) -> None:
    bundle = rootless_bundle(runtime, "id; cat /proc/self/uid_map; echo hi > /tmp-file;"
                             " grep -c ' - proc ' /proc/self/mountinfo")
    cleanup.append(bundle)
    edit(bundle, lambda c: c["root"].update(readonly=False))
    res = as_user(runtime, "run", "--bundle", str(bundle))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "uid=0 gid=0"
    assert lines[1].split() == ["0", str(runtime[1]), "1"]
    # /proc, and its read-only binds of readonlyPaths this kernel has.
    readonly = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
    assert lines[2:] == [str(1 + sum(os.path.exists(p) for p in readonly))]
    assert (bundle / "rootfs" / "tmp-file").stat().st_uid == runtime[1]


def test_rootless_sysfs_without_its_network_namespace(runtime: tuple[str, int, int],
                                                      cleanup: list[Path]) -> None:
    bundle = rootless_bundle(runtime, "grep ' /sys ' /proc/self/mountinfo")
    cleanup.append(bundle)

    def sysfs(cfg: dict[str, Any]) -> None:
        for m in cfg["mounts"]:
            if m["destination"] == "/sys":
                m.update(type="sysfs", source="sysfs", options=["nosuid", "nodev", "ro"])
    edit(bundle, sysfs)
    line = _line(as_user(runtime, "run", "--bundle", str(bundle)))
    assert line == (
        "pyinit: mounts[5]: mount (/sys): sysfs in a new user namespace needs a new network "
        "namespace, not the host's: the kernel mounts sysfs only for a network namespace "
        'that user namespace owns; add {"type": "network"} to linux.namespaces, bind /sys '
        "read-only, or run with --sysfs-fallback")
    res = as_user(runtime, "run", "--bundle", str(bundle), "--sysfs-fallback")
    assert res.returncode == 0, res.stderr
    sys_line = res.stdout.split()
    assert sys_line[4] == "/sys" and sys_line[5].startswith("ro,"), res.stdout


def test_unprivileged_without_a_user_namespace_has_no_cap_sys_admin(
        runtime: tuple[str, int, int], cleanup: list[Path]) -> None:
    bundle = rootless_bundle(runtime, "echo should-not-run")
    cleanup.append(bundle)

    def no_userns(cfg: dict[str, Any]) -> None:
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"]
                                      if n["type"] != "user"]
        del cfg["linux"]["uidMappings"], cfg["linux"]["gidMappings"]
    edit(bundle, no_userns)
    line = _line(as_user(runtime, "run", "--bundle", str(bundle)))
    assert line == (
        "pyinit: namespace: unshare pid: Operation not permitted; pyinit runs without "
        "CAP_SYS_ADMIN (it is not in CapEff of /proc/self/status), as in an ordinary "
        "unprivileged container: give it the capability (podman/docker --cap-add SYS_ADMIN), "
        "run it in a user namespace it owns, or use a privileged container")


def test_unprivileged_large_map_needs_newuidmap(runtime: tuple[str, int, int],
                                                cleanup: list[Path]) -> None:
    bundle = rootless_bundle(runtime, "echo should-not-run")
    cleanup.append(bundle)
    edit(bundle, lambda c: c["linux"].update(
        uidMappings=[{"containerID": 0, "hostID": 300000, "size": 10}]))
    line = _line(as_user(runtime, "run", "--bundle", str(bundle)))
    # newuidmap (tools/install.sh installs it) refuses: the user has no
    # /etc/subuid range.
    assert line == (
        "pyinit: linux.uidMappings: namespace: write uid_map: newuidmap: uid range [0-10) -> "
        "[300000-300010) not allowed; unprivileged, pyinit can map only your own uid and gid "
        "itself; larger maps need newuidmap/newgidmap and ranges in /etc/subuid and "
        "/etc/subgid")
