"""issue 9 review: what a startContainer hook's working directory can reach.

A startContainer hook is the image's code, and its ``cwd`` is resolved by
name inside the container, where the image's symlinks apply. pyinit starts
it with trio/subprocess, which forks PID 1 and, in the child, does
``chdir(cwd)`` *before* it closes the descriptors it inherited from PID 1
(and before ``as_workload`` drops anything). A ``cwd`` whose last component
is the image's symlink ``-> /proc/self/fd/N`` therefore lands on whatever
directory PID 1 holds as fd N at that moment: the CVE-2024-21626 pattern,
for hooks (the workload's own cwd is checked with getcwd; a hook's is not).
Since then startContainer hooks start from the workload's process, after
PID 1's lock-down (runtime/starthooks.py), and the hook's process closes
every descriptor but its stdio before the chdir.

The first test lists PID 1's descriptors while a hook runs (a hook given
CAP_SYS_PTRACE can read /proc/1/fd): no directory may be among them. The
second makes the hook's cwd each directory fd of PID 1 that is not the
container's root, as the first test found them (fd 3 when there is none),
and tries the host's sysctls from there (opened for writing, never written).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.conftest import events
from tests.integration.test_run import edit, run_bundle
from tests.security.conftest import attack_bundle

_LINK = re.compile(r"^l\S+\s+\d+\s+\d+\s+\d+\s+\d+ \w+ +\d+ [\d:]+ (\d+) -> (.*)$")


def _hook_lines(stderr: str) -> list[str]:
    return [ev["line"] for ev in events(stderr)
            if ev.get("event") == "command.output" and ev.get("kind") == "startContainer"]


def _with_hook(script: str, cwd: str | None = None, ptrace: bool = False) -> Any:
    def change(cfg: dict[str, Any]) -> None:
        hook: dict[str, Any] = {"path": "/bin/sh", "args": ["sh", "-c", script]}
        if cwd is not None:
            hook["cwd"] = cwd
        cfg["hooks"] = {"startContainer": [hook]}
        if ptrace:
            for kind in ("bounding", "effective", "permitted"):
                cfg["process"]["capabilities"][kind].append("CAP_SYS_PTRACE")
    return change


def _pid1_fds_during_a_hook(tmp_path: Path, helpers: dict[str, Path]) -> dict[int, str]:
    """fd -> link target of PID 1's descriptors, seen from a startContainer hook."""
    bundle = attack_bundle(tmp_path / "look", "true", helpers)
    edit(bundle, _with_hook("ls -ln /proc/1/fd/", ptrace=True))
    res = run_bundle(bundle, "--log-format", "json")
    assert res.returncode == 0, res.stderr
    fds = {}
    for line in _hook_lines(res.stderr):
        found = _LINK.match(line)
        if found:
            fds[int(found.group(1))] = found.group(2)
    assert fds, res.stderr  # the listing was parsed at all
    return fds


def _paths(fds: dict[int, str]) -> dict[int, str]:
    """Only the descriptors that name a path (not pipe:, socket:, anon_inode:)."""
    return {fd: target for fd, target in fds.items() if target.startswith("/")}


def test_pid1_holds_no_host_directory_while_a_hook_runs(tmp_path: Path,
                                                        helpers: dict[str, Path]) -> None:
    # startContainer hooks run after PID 1's set-up is over (its mount fds are
    # closed): the only paths it holds are its stdin, the caller's /dev/null, and
    # the container's own procfs, which its shutdown reads (pyinit/proc.py).
    fds = _paths(_pid1_fds_during_a_hook(tmp_path, helpers))
    assert sorted(set(fds.values())) == ["/dev/null", "/proc"], fds


def test_a_hooks_cwd_cannot_reach_a_host_directory(tmp_path: Path,
                                                   helpers: dict[str, Path]) -> None:
    fds = _paths(_pid1_fds_during_a_hook(tmp_path, helpers))
    # Each path PID 1 holds that is not the container's root, one run each
    # (fd 3, a pipe, when there is none: the chdir then simply fails).
    candidates = sorted(fd for fd, target in fds.items() if target not in ("/", "/dev/null"))
    core_pattern = Path("/proc/sys/kernel/core_pattern").read_text()
    reached = {}
    for fd in candidates or [3]:
        bundle = attack_bundle(tmp_path / f"attack-{fd}", "true", helpers)
        (bundle / "rootfs" / "hookdir").symlink_to(f"/proc/self/fd/{fd}")
        probe = ("ls .. | head -3; /bin/openw ../../sys/kernel/core_pattern "
                 "../../sys/vm/overcommit_memory")
        edit(bundle, _with_hook(probe, cwd="/hookdir"))
        res = run_bundle(bundle, "--log-format", "json")
        reached[fd] = _hook_lines(res.stderr)
    assert reached == {fd: [] for fd in candidates or [3]}, fds
    assert Path("/proc/sys/kernel/core_pattern").read_text() == core_pattern
