"""issue 9 review 2: the mount hardening that just merged, attacked again.

1. ``tmpcopyup`` runs in PID 1 before the pivot, with every capability and
   the host's paths: the image's symlinks (absolute and relative, to a
   host file and a host directory) must be copied as links, never followed.
2. ``rbind,ro`` and mounts that arrive after the set-up; ``root.readonly``
   and the rootfs's submounts, before the start or after.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PYINIT
from tests.integration.test_run import edit, run_bundle
from tests.security.conftest import attack_bundle


def test_tmpcopyup_copies_the_images_symlinks_as_links(tmp_path: Path) -> None:
    secret_dir = tmp_path / "host-secret"
    secret_dir.mkdir()
    (secret_dir / "key").write_text("host-secret-content\n")
    bundle = attack_bundle(tmp_path / "b", "cd /dev/image; for l in *; do echo $l"
                           " $(readlink $l); done; cat abs up dir/key; echo done", {})
    image_dev = bundle / "rootfs" / "dev" / "image"
    image_dev.mkdir(parents=True)
    os.symlink(secret_dir / "key", image_dev / "abs")
    # From /dev/image of the host's view (<bundle>/rootfs/dev/image): up to tmp_path.
    up = os.path.relpath(secret_dir / "key", image_dev)
    os.symlink(up, image_dev / "up")
    os.symlink(secret_dir, image_dev / "dir")

    def change(c: dict[str, Any]) -> None:
        dev = next(m for m in c["mounts"] if m["destination"] == "/dev")
        dev["options"] = [*dev["options"], "tmpcopyup"]
    edit(bundle, change)
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    assert res.stdout == (f"abs {secret_dir}/key\ndir {secret_dir}\nup {up}\ndone\n")
    assert [line for line in res.stderr.splitlines() if line.startswith("cat: ")] == [
        "cat: can't open 'abs': No such file or directory",
        "cat: can't open 'up': No such file or directory",
        "cat: can't open 'dir/key': No such file or directory"]


# ------------------------------------------------------------------------------------------
# 2. ``rbind,ro`` is read-only for the whole tree since d5cdbed, but only
#    for the tree as it is at set-up: the volume's bind is a slave of the
#    host's mount (rootfsPropagation's default, rslave, as runc), so what
#    the host mounts under the volume later arrives in the container with
#    the host's flags, read-write. (Kubernetes' recursiveReadOnly requires
#    mountPropagation None for this reason.) The "host" is a private mount
#    namespace of the test's, where the volume is a shared mount.
#    Fixed: a read-only bind is private unless its options ask for slave or
#    shared propagation; then the explicit choice wins and the mount arrives.
def _waiting_bundle(tmp_path: Path, target: str) -> tuple[Path, Path]:
    """A bundle whose workload says it is up (/sync/up), waits until the test has
    mounted (/sync/mounted), then tries to write ``target``; and its sync directory."""
    sync = tmp_path / "sync"
    sync.mkdir()
    os.mkfifo(sync / "up")
    os.mkfifo(sync / "mounted")
    bundle = attack_bundle(tmp_path / "b", "echo > /sync/up; read x < /sync/mounted;"
                           f" touch {target} && echo wrote; echo done", {})
    edit(bundle, lambda c: c["mounts"].append(
        {"destination": "/sync", "type": "bind", "source": str(sync), "options": ["rbind"]}))
    return bundle, sync


def _run_mounting(bundle: Path, sync: Path, shared: Path, before: str, after: str,
                  listed: Path) -> tuple[str, list[str], str]:
    """pyinit run in a private mount namespace of the test's where ``shared`` is a
    shared mount: ``before`` runs first, ``after`` while the workload waits. Returns
    the output (the workload's, pyinit's status, what ``listed`` holds afterwards),
    the workload's touch errors, and stderr."""
    script = (f'mount --bind "{shared}" "{shared}" && mount --make-shared "{shared}" &&'
              f' {before} {{ "{PYINIT}" run --bundle "{bundle}" & }};'
              f' read x < "{sync}/up"; {after} echo > "{sync}/mounted"; wait $!;'
              f' echo "rc=$?"; ls -A "{listed}"')
    res = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                         capture_output=True, text=True, timeout=60, check=False,
                         stdin=subprocess.DEVNULL)
    errors = [line for line in res.stderr.splitlines() if line.startswith("touch: ")]
    return res.stdout, errors, res.stderr


@pytest.mark.parametrize(("propagation", "stdout", "errors"), [
    ([], "done\nrc=0\n", ["touch: /vol/sub/x: Read-only file system"]),
    (["rslave"], "wrote\ndone\nrc=0\nx\n", [])], ids=["default", "rslave"])
def test_ro_rbind_holds_for_mounts_that_arrive_later(tmp_path: Path, propagation: list[str],
                                                      stdout: str, errors: list[str]) -> None:
    volume = tmp_path / "volume"
    (volume / "sub").mkdir(parents=True)
    bundle, sync = _waiting_bundle(tmp_path, "/vol/sub/x")
    edit(bundle, lambda c: c["mounts"].append(
        {"destination": "/vol", "type": "bind", "source": str(volume),
         "options": ["rbind", "ro", *propagation]}))
    out, touched, stderr = _run_mounting(bundle, sync, volume, "",
                                         f'mount -t tmpfs tmpfs "{volume}/sub";',
                                         volume / "sub")
    assert (out, touched) == (stdout, errors), stderr


# The same for root.readonly, which is not even recursive at set-up: the
# root is a recursive bind of the bundle's rootfs, and only its top mount
# is made read-only. A mount under the rootfs (an image layer's, a host
# tool's) is writable in a read-only root whether it was there before the
# start or arrives later (the root is a slave of the rootfs).
# Fixed: the rootfs's submounts are made read-only at set-up, and the root
# is private unless linux.rootfsPropagation asks for slave or shared; then
# the explicit choice wins and a later mount arrives writable.
@pytest.mark.parametrize(("when", "propagation", "stdout", "errors"), [
    ("before", None, "done\nrc=0\n", ["touch: /mnt/x: Read-only file system"]),
    ("after", None, "done\nrc=0\n", ["touch: /mnt/x: Read-only file system"]),
    ("after", "rslave", "wrote\ndone\nrc=0\nx\n", [])],
    ids=["before", "after", "after-rslave"])
def test_readonly_root_holds_for_the_rootfs_submounts(
        tmp_path: Path, when: str, propagation: str | None, stdout: str,
        errors: list[str]) -> None:
    bundle, sync = _waiting_bundle(tmp_path, "/mnt/x")
    rootfs = bundle / "rootfs"
    (rootfs / "mnt").mkdir()

    def change(c: dict[str, Any]) -> None:
        c["root"]["readonly"] = True
        if propagation is not None:
            c["linux"]["rootfsPropagation"] = propagation
    edit(bundle, change)
    submount = f'mount -t tmpfs tmpfs "{rootfs}/mnt";'
    out, touched, stderr = _run_mounting(bundle, sync, rootfs,
                                         submount if when == "before" else "",
                                         submount if when == "after" else "", rootfs / "mnt")
    assert (out, touched) == (stdout, errors), stderr
