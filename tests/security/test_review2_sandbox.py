"""issue 9 review 2: ``pyinit sandbox``'s masks on a fresh ``--proc``.

Since 7eaf261 every ``--proc`` gets ``pyinit spec``'s ``maskedPaths``, but the
files among them (``keys``, ``timer_list``, ``kcore``, ...) only when the
sandbox also has ``--dev /dev``, whose ``null`` covers them. A sandbox with
``--proc`` and no ``--dev`` (or a ``--dev`` elsewhere) silently keeps them
readable: as root, the host root's keyring (``/proc/keys``) and every
CPU's timers and kernel symbols (``/proc/timer_list``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_sandbox import sandbox

SHOW = ("import sys\n"
        "for name in sys.argv[1:]:\n"
        "    with open(name, 'rb') as f: print(name, len(f.read()))\n")
FILES = ["/proc/keys", "/proc/timer_list"]
BASE = ("--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib",
        "/lib", "--symlink", "usr/lib64", "/lib64", "--proc", "/proc")


def _has_content() -> None:
    assert [len(Path(name).read_bytes()) > 0 for name in FILES] == [True, True]


def test_proc_files_are_masked_with_dev() -> None:
    _has_content()
    res = sandbox(*BASE, "--dev", "/dev", "--", "python3", "-c", SHOW, *FILES)
    assert (res.returncode, res.stdout) == (0, "/proc/keys 0\n/proc/timer_list 0\n"), res.stderr


# ("--dev", "/newdev") is refused with exit 2 (the minimal /dev only on /dev), so
# the other /devs without the sandbox's own null are a tmpfs and the host's /dev.
@pytest.mark.parametrize("dev", [(), ("--tmpfs", "/dev"), ("--dev-bind", "/dev", "/dev")],
                         ids=["no-dev", "dev-tmpfs", "dev-bind"])
def test_proc_files_are_masked_without_dev(dev: tuple[str, ...]) -> None:
    _has_content()
    res = sandbox(*BASE, *dev, "--", "python3", "-c", SHOW, *FILES)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "/proc/keys 0\n/proc/timer_list 0\n"


def test_the_cover_of_a_masked_file_is_an_empty_locked_down_file() -> None:
    show = ("import os\n"
            "st = os.stat('/proc/keys')\n"
            "print(oct(st.st_mode), st.st_size)\n"
            "for line in open('/proc/self/mountinfo'):\n"
            "    f = line.split()\n"
            "    if f[4] == '/proc/keys': print(f[3], f[5], f[f.index('-') + 1])\n")
    res = sandbox(*BASE, "--", "python3", "-c", show)
    assert (res.returncode, res.stdout) == (
        0, "0o100444 0\n/empty ro,nosuid,nodev,noexec,relatime tmpfs\n"), res.stderr


# ------------------------------------------------------------------------------------------
# A bind of the host's /sys gets /sys/firmware and powercap masked, but the
# sandbox recognises the host's /sys by its spelling: os.path.abspath keeps
# POSIX's two leading slashes, so "//sys" (the very same directory) is not
# "/sys", and the masks are silently left out.
# A symlink to /sys is refused on /sys itself (only a bind of the host's /sys
# may go there), so it is bound elsewhere.
@pytest.mark.parametrize(("source", "dest"), [("//sys", "/sys"), ("/sys/.", "/sys"),
                                              ("link", "/hostsys")])
def test_sys_masks_hold_however_the_source_is_spelled(source: str, dest: str,
                                                      tmp_path: Path) -> None:
    assert Path("/sys/firmware/acpi").is_dir()
    if source == "link":
        source = str(tmp_path / "sys")
        Path(source).symlink_to("/sys")
    res = sandbox(*BASE[:-2], "--ro-bind", source, dest, "--", "ls", "-A", f"{dest}/firmware")
    assert (res.returncode, res.stdout) == (0, ""), res.stderr


def test_a_bind_of_a_masked_sys_directory_itself_is_masked() -> None:
    assert Path("/sys/firmware/acpi").is_dir()
    res = sandbox(*BASE[:-2], "--ro-bind", "/sys/firmware", "/fw", "--", "ls", "-A", "/fw")
    assert (res.returncode, res.stdout) == (0, ""), res.stderr
