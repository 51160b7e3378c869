"""issue 9 review 2: the mount hardening that just merged, attacked again.

1. ``tmpcopyup`` runs in PID 1 before the pivot, with every capability and
   the host's paths: the image's symlinks (absolute and relative, to a
   host file and a host directory) must be copied as links, never followed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

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
