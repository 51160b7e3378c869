"""The command-line parser, without starting anything."""

from __future__ import annotations

import signal

import pytest

from pyinit import cli


def parse(*argv: str, **env: str) -> cli.Options:
    return cli.parse(list(argv), env)


def test_defaults() -> None:
    opts = parse("--", "sleep", "1")
    assert opts.argv == ["sleep", "1"]
    assert opts.grace == 5.0 and not opts.kill_group and opts.subreaper
    assert opts.remap == {} and opts.pdeathsig is None and opts.preserve_fds == 0
    assert opts.log_format == "auto" and opts.log_level == "info" and not opts.exec_mode


def test_all_options() -> None:
    opts = parse("-g", "--grace=2.5", "-e", "143:0", "-e3:4", "--pdeathsig", "USR1",
                 "--preserve-fds", "2", "--exec", "--no-subreaper", "--log-format", "json",
                 "--log-level=DEBUG", "--", "prog", "--grace", "9")
    assert opts.kill_group and opts.grace == 2.5 and opts.remap == {143: 0, 3: 4}
    assert opts.pdeathsig == signal.SIGUSR1 and opts.preserve_fds == 2 and opts.exec_mode
    assert not opts.subreaper and opts.log_format == "json" and opts.log_level == "debug"
    assert opts.argv == ["prog", "--grace", "9"]  # after -- nothing is pyinit's


def test_options_stop_at_the_program() -> None:
    assert parse("-g", "ls", "-g").argv == ["ls", "-g"]
    assert parse("-p", "SIGKILL", "true").pdeathsig == signal.SIGKILL


def test_environment_and_override() -> None:
    opts = parse("--", "x", PYINIT_GRACE="1", PYINIT_KILL_GROUP="yes",
                 PYINIT_LOG_FORMAT="console", PYINIT_LOG_LEVEL="error")
    assert opts.grace == 1.0 and opts.kill_group
    assert opts.log_format == "console" and opts.log_level == "error"
    assert parse("--grace", "3", "--", "x", PYINIT_GRACE="1").grace == 3.0
    assert not parse("--", "x", PYINIT_KILL_GROUP="0").kill_group


def test_help_and_version_need_no_program() -> None:
    assert parse("--help").action == "help"
    assert parse("-V").action == "version"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "no PROGRAM given"),
        (["--"], "no PROGRAM given"),
        (["--nope"], "unknown option '--nope'"),
        (["-x"], "unknown option '-x'"),
        (["-e"], "-e needs a value"),
        (["--grace", "nan", "--", "x"], "must be between"),
        (["--grace", "1e9", "--", "x"], "must be between"),
        (["--remap-exit", "a:b", "--", "x"], "is not FROM:TO"),
        (["--remap-exit", "1:256", "--", "x"], "0..255"),
        (["--preserve-fds", "-1", "--", "x"], "not a count"),
        (["--pdeathsig", "KILLL", "--", "x"], "unknown signal"),
        (["--pdeathsig", "0", "--", "x"], "is not a signal number"),
        (["--log-level", "trace", "--", "x"], "not one of"),
        (["--kill-group=1", "--", "x"], "takes no value"),
    ],
)
def test_errors_name_the_option(argv: list[str], message: str) -> None:
    with pytest.raises(cli.UsageError) as info:
        cli.parse(argv, {})
    assert message in str(info.value)
    assert "\n" not in str(info.value)
