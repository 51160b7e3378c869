"""issue 9 review: the mode of an existing device node, set by name (a race).

shape13's fix for test_review_devices (bcb791f) gives an image's existing
``linux.devices`` node the config's mode with ``fchmodat(parent, name)``
after checking the node on an ``O_NOFOLLOW`` fd: the check and the chmod
resolve the name twice, and ``fchmodat`` follows a symlink, with the host's
``/`` as the root (the devices are made before the pivot). Whoever shares
the volume the container's /dev comes from (another container) swaps the
node and a symlink to a host file with ``RENAME_EXCHANGE`` in a loop: one
run in a few chmods the *host* file to the device's ``fileMode``. (pyinit
makes devices only in a /dev it does not bind, so the racer works on the
image's /dev directory itself: it stands for a container, or an image
tool, that shares the root filesystem's directory.)

The racing helper runs for the whole test; at most ROUNDS runs of pyinit, and
the host file must keep its mode through all of them.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from typing import Any

from tests.integration.test_run import edit, run_bundle
from tests.security.conftest import attack_bundle

ROUNDS = 40


def test_a_racing_volume_cannot_redirect_the_device_chmod(tmp_path: Path,
                                                          helpers: dict[str, Path]) -> None:
    target = tmp_path / "host-secret"
    target.write_text("secret\n")
    target.chmod(0o600)
    bundle = attack_bundle(tmp_path / "b", "true", helpers)
    vol = bundle / "rootfs" / "dev"
    vol.mkdir()
    os.mknod(vol / "mydev", stat.S_IFCHR | 0o600, os.makedev(1, 5))
    (vol / "swap").symlink_to(target)

    def change(cfg: dict[str, Any]) -> None:
        cfg["mounts"] = [m for m in cfg["mounts"] if not m["destination"].startswith("/dev")]
        cfg["linux"]["devices"] = [{"path": "/dev/mydev", "type": "c", "major": 1,
                                    "minor": 5, "fileMode": 0o666, "uid": 0, "gid": 0}]
    edit(bundle, change)
    racer = subprocess.Popen([str(helpers["exchange"]), str(vol), "mydev", "swap"],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert racer.stdout is not None and racer.stdout.readline() == "exchanging\n"
        modes = []
        for _ in range(ROUNDS):
            run_bundle(bundle)
            modes.append(stat.S_IMODE(target.stat().st_mode))
            if modes[-1] != 0o600:
                break
    finally:
        racer.kill()
        racer.wait()
    assert modes == [0o600] * ROUNDS
    assert target.read_text() == "secret\n"
