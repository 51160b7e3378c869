"""issue 9 review, mounts: what a config's mount options leave reachable.

Each test is the attack from the review, run from inside a real ``pyinit
run`` (or ``pyinit sandbox``) as root:

1. ``rbind,ro`` of a volume that has a submount: ``ro`` made only the top
   mount read-only, so the workload wrote into the submount (runc does the
   same, "rbind,ro is read-only but not recursively"; crun and bubblewrap's
   ``--ro-bind`` make the whole tree read-only).
2. ``tmpcopyup`` over a directory of the image that holds a device node:
   the copy lands on a tmpfs that is not ``nodev`` (``/dev``), so the
   image's node becomes usable although the root is ``nodev``.
3. The sysfs fallback (a user namespace without its network namespace):
   the host's /sys is bound with its submounts (the kernel refuses a
   non-recursive bind of a tree with locked submounts, EINVAL); every one
   of them must be read-only, and out of sight as on a fresh sysfs.
4. and 5. ``pyinit sandbox``'s fresh ``--proc`` gets the masks of ``pyinit
   spec``'s ``maskedPaths``; ``/sys/devices/virtual/powercap`` (RAPL energy
   counters, CVE-2020-8694) is masked by ``pyinit spec`` and the sandbox.
6. A sandbox without ``--unshare-net`` shares the host's abstract unix
   sockets, as bubblewrap's does; ``--unshare-net`` cuts them off.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import PYINIT, event
from tests.integration.test_run import _chown_tree, _userns, edit, fields, run_bundle
from tests.integration.test_sandbox import sandbox
from tests.security.conftest import attack_bundle


# ---------------------------------------------------------------- 1: rbind,ro
def test_ro_rbind_makes_the_volumes_submounts_read_only(tmp_path: Path,
                                                        helpers: dict[str, Path]) -> None:
    volume = tmp_path / "volume"
    (volume / "sub").mkdir(parents=True)
    bundle = attack_bundle(tmp_path / "b", "touch /vol/top; touch /vol/sub/x; echo done",
                           helpers)
    edit(bundle, lambda c: c["mounts"].append(
        {"destination": "/vol", "type": "bind", "source": str(volume),
         "options": ["rbind", "ro"]}))
    # The volume's submount lives in a private mount namespace of the test's
    # own, so the host's mount table never sees it.
    script = (f'mount -t tmpfs tmpfs "{volume}/sub" && "{PYINIT}" run --bundle "{bundle}";'
              f' echo "rc=$?"; ls -A "{volume}" "{volume}/sub"')
    res = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                         capture_output=True, text=True, timeout=60, check=False,
                         stdin=subprocess.DEVNULL)
    assert res.stdout == f"done\nrc=0\n{volume}:\nsub\n\n{volume}/sub:\n", res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("touch: ")]
    assert errors == ["touch: /vol/top: Read-only file system",
                      "touch: /vol/sub/x: Read-only file system"]


# ---------------------------------------------------------------- 2: tmpcopyup
def test_tmpcopyup_does_not_copy_the_images_device_nodes(tmp_path: Path,
                                                          helpers: dict[str, Path]) -> None:
    # The image ships the host's disk and /dev/zero's numbers as
    # world-readable nodes in its /dev, which a tmpcopyup tmpfs covers. The
    # config has no device rules (no device cgroup), so only nodev stood in
    # the way; the workload is uid 65534 without capabilities.
    disk = os.stat("/").st_dev
    bundle = attack_bundle(tmp_path, "ls -A /dev/image; head -c 512 /dev/image/disk >/dev/null"
                           " && echo read-the-disk; head -c 1 /dev/image/zero >/dev/null"
                           " && echo read-zero; echo done", helpers)
    image_dev = bundle / "rootfs" / "dev" / "image"
    image_dev.mkdir(parents=True)
    os.mknod(image_dev / "disk", 0o60666, disk)
    os.mknod(image_dev / "zero", 0o20666, os.makedev(1, 5))
    os.mkfifo(image_dev / "fifo", 0o644)
    (image_dev / "file").write_text("kept\n")
    for name in ("disk", "zero"):
        os.chmod(image_dev / name, 0o666)

    def change(c: dict[str, Any]) -> None:
        c["process"]["user"] = {"uid": 65534, "gid": 65534}
        del c["linux"]["resources"]["devices"]
        dev = next(m for m in c["mounts"] if m["destination"] == "/dev")
        dev["options"] = [*dev["options"], "tmpcopyup"]
    edit(bundle, change)
    res = run_bundle(bundle, "--log-format", "json")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "fifo\nfile\ndone\n"
    assert fields(event(res.stderr, "mount.tmpcopyup_skipped")) == {
        "event": "mount.tmpcopyup_skipped", "level": "warning", "where": "mounts[1]",
        "destination": "/dev", "skipped": ["image/disk", "image/zero"],
        "detail": "device nodes of the image are not copied onto a tmpfs; list them in "
                  "linux.devices to have them"}


# ---------------------------------------------------------------- 3: the sysfs fallback
def test_sysfs_fallback_hides_the_hosts_sys_submounts(reachable: Path) -> None:
    # The host's /sys here has cgroup v1 hierarchies under /sys/fs/cgroup
    # (a tmpfs); the workload lists them and writes into the last one.
    host = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if line.split()[4].startswith("/sys/")]
    assert "/sys/fs/cgroup" in host, "the host's /sys has no cgroup submount: nothing to attack"
    target = host[-1]
    bundle = attack_bundle(reachable, f"ls -A /sys/fs/cgroup; mkdir {target}/pyinit-attack;"
                           " awk '$5 ~ \"^/sys\" {split($6, o, \",\"); print $5, o[1]}'"
                           " /proc/self/mountinfo", {})

    def change(c: dict[str, Any]) -> None:
        _userns(c, net=False)
        c["mounts"] = [m for m in c["mounts"] if m["destination"] != "/sys/fs/cgroup"]
    edit(bundle, change)
    _chown_tree(bundle / "rootfs", 100000, 100000)
    res = run_bundle(bundle, "--sysfs-fallback")
    assert res.returncode == 0, res.stderr
    # /sys/fs/cgroup is an empty cover; the container's mount table still
    # lists /sys, the mask on /sys/firmware, the cover, and (below it) each
    # host submount, every one read-only.
    assert set(res.stdout.splitlines()) == {"/sys ro", "/sys/firmware ro",
                                            *(f"{m} ro" for m in host)}
    assert f"mkdir: can't create directory '{target}/pyinit-attack': No such file or directory" \
        in res.stderr.splitlines()
    assert not Path(target, "pyinit-attack").exists()


# ---------------------------------------------------------------- 4 and 5: masks
SHOW = ("import sys\n"
        "for name in sys.argv[1:]:\n"
        "    with open(name, 'rb') as f: print(name, len(f.read()))\n"
        "for line in open('/proc/self/mountinfo'):\n"
        "    f = line.split()\n"
        "    if f[4].startswith(('/proc/', '/sys/')): print(f[4], f[f.index('-') + 1])\n")


def test_sandbox_proc_and_sys_are_masked_as_pyinit_specs() -> None:
    # The masked files this kernel has, with something in them to hide.
    files = ["/proc/keys", "/proc/timer_list"]
    assert [len(Path(name).read_bytes()) > 0 for name in files] == [True, True]
    assert Path("/sys/firmware/acpi").is_dir()
    res = sandbox("--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin",
                  "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
                  "--ro-bind", "/sys", "/sys", "--proc", "/proc", "--dev", "/dev", "--",
                  "python3", "-c", SHOW, *files)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[:2] == ["/proc/keys 0", "/proc/timer_list 0"]
    mounts = dict(line.split() for line in lines[2:] if not line.startswith("/sys/fs/"))
    # An empty read-only file of a private tmpfs over the files (no /dev/null needed),
    # an empty tmpfs over the directories; powercap and sysrq-trigger are not on this host.
    assert mounts == {
        "/sys/firmware": "tmpfs", "/proc/acpi": "tmpfs", "/proc/keys": "tmpfs",
        "/proc/timer_list": "tmpfs",
        **{f"/proc/{name}": "proc" for name in ("sys", "irq", "bus", "fs")}}


def test_powercap_is_masked_by_pyinit_spec(tmp_path: Path) -> None:
    subprocess.run([PYINIT, "spec", "--bundle", str(tmp_path)], check=True)
    (tmp_path / "rootfs").mkdir()
    res = subprocess.run([PYINIT, "check", "--bundle", str(tmp_path)], capture_output=True,
                         text=True, check=False)
    assert res.returncode == 0, res.stderr
    assert [line.split(None, 3)[1:] for line in res.stdout.splitlines()
            if line.endswith("/powercap")] == [["mask", "mask", "/sys/devices/virtual/powercap"]]


# ---------------------------------------------------------------- 6: abstract sockets
def test_abstract_unix_sockets_are_cut_off_only_by_unshare_net() -> None:
    name = f"pyinit-review-{os.getpid()}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind("\0" + name)
    server.listen(4)
    try:
        probe = ("import socket, sys\ns = socket.socket(socket.AF_UNIX)\n"
                 "try:\n    s.connect('\\0' + sys.argv[1]); print('connected')\n"
                 "except OSError as e:\n    print(e.strerror)\n")
        shared = sandbox("--", "python3", "-c", probe, name)
        own = sandbox("--unshare-net", "--", "python3", "-c", probe, name)
    finally:
        server.close()
    assert (shared.returncode, shared.stdout) == (0, "connected\n"), shared.stderr
    assert (own.returncode, own.stdout) == (0, "Connection refused\n"), own.stderr
