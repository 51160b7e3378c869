"""``pyinit run``'s hand parser agrees with argparse, or leaves the command line to it.

The fast path (pyinit/commands.py ``_fast_run``) keeps argparse off the way to the
workload (issue 12). It must never read a command line differently from argparse:
either the same options, or None, and then argparse parses (and reports) it.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from pyinit import commands

PLAIN = [
    [],
    ["--bundle", "/b"],
    ["-b", "/b", "--id", "c1"],
    ["--bundle=/b", "--id=c1", "--log-level", "error", "--log-format=json"],
    ["--no-pivot", "--sysfs-fallback", "--grace", "0.5", "--cgroup-manager", "cgroupfs"],
    ["--grace=7", "--grace", "3", "--bundle", "/a", "--bundle", "/b"],  # the last one wins
    ["--console-socket", "/run/s.sock", "--id", ""],
    ["--cgroup-manager=systemd", "--grace", "1e1", "--log-level=debug"],
]

UNUSUAL = [
    ["--help"],
    ["-h"],
    ["--bund", "/b"],  # an abbreviation: argparse's business
    ["--bundle"],  # no value
    ["--id", "-x"],  # a value that looks like an option
    ["--grace", "soon"],
    ["--grace", "-1"],
    ["--log-level", "loud"],
    ["--log-format=JSON"],
    ["--cgroup-manager", "both"],
    ["--no-pivot=yes"],
    ["-b=/b"],
    ["-b/b"],
    ["--bundle", "/b", "extra"],
    ["--", "--bundle", "/b"],
    ["--unknown"],
]


def _argparse(argv: list[str]) -> dict[str, Any]:
    top, _commands = commands._parser()
    args, extra = top.parse_known_args(["run", *argv])
    assert extra == []
    found = vars(args)
    del found["command"]
    return found


@pytest.mark.parametrize("argv", PLAIN, ids=" ".join)
def test_a_plain_command_line_reads_as_argparse_reads_it(argv: list[str]) -> None:
    fast = commands._fast_run(argv)
    assert fast is not None
    assert fast == _argparse(argv)


@pytest.mark.parametrize("argv", UNUSUAL, ids=" ".join)
def test_anything_else_is_left_to_argparse(argv: list[str]) -> None:
    assert commands._fast_run(argv) is None


@pytest.mark.parametrize("argv,message", [
    (["--grace", "soon"], "pyinit run: error: argument --grace: invalid float value: 'soon' "
     "(see 'pyinit run --help')\n"),
    (["--bundle", "/b", "extra"], "pyinit run: error: unrecognized arguments: extra "
     "(see 'pyinit run --help')\n"),
    (["--log-level", "loud"], "pyinit run: error: argument --log-level: invalid choice: "
     "'loud' (choose from 'debug', 'info', 'warning', 'error') (see 'pyinit run --help')\n"),
])
def test_errors_are_argparses_one_line_and_exit_2(argv: list[str], message: str) -> None:
    res = subprocess.run([sys.executable, "-m", "pyinit", "run", *argv], capture_output=True,
                         text=True, timeout=60, check=False, stdin=subprocess.DEVNULL)
    assert (res.returncode, res.stdout, res.stderr) == (2, "", message)


def test_run_with_a_plain_command_line_does_not_import_argparse(tmp_path: Any) -> None:
    # The point of the fast path: a bundle that fails to load (no config.json) still
    # went through it, and argparse was never imported on the way.
    code = ("import os, sys\n"
            "from pyinit import commands\n"
            "real_exit = os._exit\n"
            "def exit_(code):\n"
            "    print('argparse' in sys.modules, code, flush=True)\n"
            "    real_exit(code)\n"
            "os._exit = exit_\n"
            f"commands.main(['run', '--bundle', {str(tmp_path)!r}, '--log-level', 'error'], 0)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=False, stdin=subprocess.DEVNULL)
    assert (res.stdout, res.stderr) == (
        "False 125\n", f"pyinit: config.json: {tmp_path}/config.json does not exist\n")
