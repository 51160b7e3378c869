"""issue 9 review: a ``linux.devices`` node the image already ships.

A config without a tmpfs on /dev (the image's /dev is used) lists a device
with a restrictive ``fileMode``, ``uid`` and ``gid``; the image ships a node
of the same type and numbers at that path, mode 0666, owned by the
workload's user. The device cgroup allows the device (linux.devices are
allowed), so the node's mode is the only thing between the workload and it.

Before the mount rewrite (shape13) pyinit made the config's mode and owner
hold; shape13's rootfs/devices.py ``make`` takes EEXIST with the same type
and numbers as "the same device is fine" and keeps the image's node as it
is: uid 65534 reads the device the config gave to root alone.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from tests.integration.test_run import edit, run_bundle
from tests.security.conftest import attack_bundle


def _image_dev(cfg: dict[str, Any]) -> None:
    cfg["mounts"] = [m for m in cfg["mounts"] if not m["destination"].startswith("/dev")]
    cfg["linux"]["devices"] = [{"path": "/dev/mydev", "type": "c", "major": 1, "minor": 5,
                                "fileMode": 0o600, "uid": 0, "gid": 0}]
    cfg["process"]["user"] = {"uid": 65534, "gid": 65534}


def test_the_configs_mode_holds_over_the_images_node(tmp_path: Path,
                                                     helpers: dict[str, Path]) -> None:
    script = ("stat -c '%a %u %g %t:%T' /dev/mydev;"
              " head -c 1 /dev/mydev >/dev/null 2>&1 && echo read=ok || echo read=refused")
    bundle = attack_bundle(tmp_path, script, helpers)
    node = bundle / "rootfs" / "dev" / "mydev"
    node.parent.mkdir()
    os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 5))
    os.chmod(node, 0o666)
    os.chown(node, 65534, 65534)
    edit(bundle, _image_dev)
    res = run_bundle(bundle)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "600 0 0 1:5\nread=refused\n"
