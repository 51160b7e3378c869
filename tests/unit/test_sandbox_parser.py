"""``pyinit sandbox``'s fast parser agrees with argparse, or leaves the command line to it.

The fast path (pyinit/sandbox.py ``fast_parse``) keeps argparse, re and enum off the
sandbox's way to its program (issue 12). Its table must describe the very options
argparse's parser defines, and it must never read a command line differently from
argparse: either the same namespace, or None, and then argparse parses (and reports) it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from typing import Any

import pytest

from pyinit import sandbox


def _argparse_parser() -> argparse.ArgumentParser:
    return sandbox.parser(argparse.ArgumentParser)


def _how(action: argparse.Action) -> object:
    """What the fast table says for this action: "flag", "ops", the choices or the type."""
    if isinstance(action, argparse._StoreTrueAction):
        return "flag"
    if type(action).__name__ == "Ops":
        return "ops"
    if action.choices is not None:
        return tuple(action.choices)
    return str if action.type is None else action.type


def _arity(action: argparse.Action) -> int:
    n = action.nargs
    return 0 if n == 0 else n if isinstance(n, int) else 1


def test_the_table_is_argparses_parser_option_by_option() -> None:
    fast: dict[str, tuple[str, int, object]] = {}
    arity: dict[str, int] = {}
    left_to_argparse = []
    for action in _argparse_parser()._actions:
        for option in action.option_strings:
            arity[option] = _arity(action)
            if isinstance(action, argparse._HelpAction) or option == "--args" \
                    or type(action).__name__ == "Unsupported":
                left_to_argparse.append(option)
            else:
                fast[option] = (action.dest, _arity(action), _how(action))
    assert fast == sandbox.FAST
    assert arity == sandbox.ARITY
    assert sorted(left_to_argparse) == sorted(["-h", "--help", "--args", *sandbox.UNSUPPORTED])


def test_the_defaults_are_argparses() -> None:
    assert vars(_argparse_parser().parse_args([])) == sandbox.FAST_DEFAULTS


PLAIN = [
    [],
    ["--", "true"],
    ["true"],
    ["--", "--", "x"],
    ["true", "--", "x", "--hostname", "y"],  # the program takes the rest, options or not
    ["--ro-bind", "/usr", "/usr", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
     "--", "sh", "-c", "exit 3"],
    ["--unshare-net", "--unshare-user-try", "--hostname", "box", "--chdir=/tmp", "--", "true"],
    ["--setenv", "A", "1", "--unsetenv", "B", "--clearenv", "--setenv", "C", "", "true", "-x"],
    ["--uid", "0", "--gid=0", "--memory", "64m", "--pids", "10", "--cpus", "0.5", "--", "true"],
    ["--cap-add", "CAP_NET_RAW", "--cap-drop", "ALL", "--no-seccomp", "--die-with-parent",
     "--log-level", "debug", "--log-format=json", "--grace", "1e1", "--", "true"],
    ["--info-fd", "1", "--json-status-fd=2", "--sync-fd", "0", "--seccomp", "0",
     "--seccomp-profile", "/p.json", "--disable-userns", "--map-subids", "--new-session",
     "--unshare-all", "--share-net", "--unshare-ipc", "--unshare-pid", "--unshare-uts",
     "--unshare-cgroup-try", "--unshare-cgroup", "--unshare-user", "--", "true"],
    ["--symlink", "usr/bin", "/bin", "--perms", "0700", "--dir", "/d", "--size", "1024",
     "--tmpfs", "/t", "--chmod", "0755", "/d", "--remount-ro", "/", "--mqueue", "/dev/mqueue",
     "true", "--", "x"],
    ["--bind", "/a", "/b", "--bind-try", "/c", "/d", "--ro-bind-try", "/e", "/f", "--dev-bind",
     "/dev", "/dev", "--dev-bind-try", "/x", "/y", "--file", "5", "/f", "--bind-data", "6", "/g",
     "--ro-bind-data", "7", "/h", "--", "true"],
    ["--hostname", "a", "--hostname=b", "--grace", "3", "--grace=4", "true"],  # the last wins
    ["--tmpfs", "", "--hostname", "", "--", ""],  # empty values are values
]

UNUSUAL = [
    ["--help"],
    ["-h", "--", "true"],
    ["--hostn", "x", "--", "true"],  # an abbreviation: argparse's business
    ["--hostname"],  # no value
    ["--ro-bind", "/a"],
    ["--ro-bind", "/a", "--", "true"],  # a value that looks like an option
    ["--hostname", "-x", "true"],
    ["--uid", "abc", "true"],
    ["--uid", "-1", "true"],
    ["--memory", "lots", "true"],
    ["--cpus", "0", "true"],
    ["--info-fd", "999", "true"],  # not open
    ["--grace", "soon", "true"],
    ["--grace", "-1", "true"],
    ["--log-level", "loud", "true"],
    ["--log-format=JSON", "true"],
    ["--unshare-net=1", "true"],
    ["--clearenv=", "true"],
    ["--bind=/a", "/b", "true"],
    ["--hostname=", "true"],
    ["--userns", "3", "true"],  # refused: argparse says why
    ["--as-pid-1", "true"],
    ["--args", "3", "true"],
    ["-x", "true"],
    ["-", "true"],
    ["", "true"],
    ["--bogus", "true"],
]


def _argparse(argv: list[str]) -> dict[str, Any]:
    return vars(_argparse_parser().parse_args(argv))


@pytest.mark.parametrize("argv", PLAIN, ids=" ".join)
def test_a_plain_command_line_reads_as_argparse_reads_it(argv: list[str]) -> None:
    fast = sandbox.fast_parse(argv)
    assert fast is not None
    assert vars(fast) == _argparse(argv)


@pytest.mark.parametrize("argv", UNUSUAL, ids=" ".join)
def test_anything_else_is_left_to_argparse(argv: list[str]) -> None:
    assert sandbox.fast_parse(argv) is None


def test_a_value_is_converted_as_argparse_converts_it() -> None:
    fast = sandbox.fast_parse(["--memory", "2k", "--cpus", "1.5", "--uid", "7", "--", "true"])
    assert fast is not None
    assert (fast.memory, fast.cpus, fast.uid, fast.program) == (2048, 1.5, 7, ["--", "true"])


def _sandbox(*argv: str) -> tuple[int, str, str]:
    res = subprocess.run([sys.executable, "-m", "pyinit", "sandbox", *argv],
                         capture_output=True, text=True, timeout=60, check=False,
                         stdin=subprocess.DEVNULL)
    return res.returncode, res.stdout, res.stderr


@pytest.mark.parametrize("argv,message", [
    (["--uid", "abc", "--", "true"], "argument --uid: 'abc' is not an id (0 to 4294967294)"),
    (["--bogus", "true"], "unrecognized arguments: --bogus"),
    (["--as-pid-1", "true"], "--as-pid-1: not supported: pyinit is always the sandbox's PID 1 "
     "(that is its job)"),
    # parsed by the fast parser, refused when built: argparse's one line all the same
    ([], "no PROGRAM given (usage: pyinit sandbox [OPTIONS] -- PROGRAM [ARGS...])"),
    (["--perms", "0700", "--", "true"],
     "--perms and --size must be followed by the option they apply to"),
    (["--args", "x", "--", "true"], "--args x: not a file descriptor number"),
])
def test_errors_are_argparses_one_line_and_exit_2(argv: list[str], message: str) -> None:
    assert _sandbox(*argv) == (2, "", f"pyinit sandbox: error: {message} "
                                      "(see 'pyinit sandbox --help')\n")


def test_args_expands_before_either_parser(tmp_path: Any) -> None:
    # --args FD, read from a pipe: the options in it are the fast parser's to read
    r, w = os.pipe()
    os.write(w, b"--setenv\0FROM_ARGS\0yes\0")
    os.close(w)
    try:
        res = subprocess.run(
            [sys.executable, "-m", "pyinit", "sandbox", "--args", str(r), "--",
             "/bin/sh", "-c", "echo $FROM_ARGS"],
            capture_output=True, text=True, timeout=60, check=False, pass_fds=(r,),
            stdin=subprocess.DEVNULL)
    finally:
        os.close(r)
    assert (res.returncode, res.stdout, res.stderr) == (0, "yes\n", "")
