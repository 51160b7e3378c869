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
        ([], "no PROGRAM given (usage: pyinit [OPTIONS] -- PROGRAM [ARGS...])"),
        (["--"], "no PROGRAM given (usage: pyinit [OPTIONS] -- PROGRAM [ARGS...])"),
        (["--nope"], "unknown option '--nope'"),
        (["-x"], "unknown option '-x'"),
        (["-e"], "-e needs a value"),
        (["--grace", "nan", "--", "x"], "--grace: 'nan' must be between 0 and 86400 seconds"),
        (["--grace", "1e9", "--", "x"], "--grace: '1e9' must be between 0 and 86400 seconds"),
        (["--remap-exit", "a:b", "--", "x"],
         "--remap-exit: 'a:b' is not FROM:TO (two exit codes 0..255)"),
        (["--remap-exit", "1:256", "--", "x"], "--remap-exit: '1:256': exit codes are 0..255"),
        (["--preserve-fds", "-1", "--", "x"],
         "--preserve-fds: '-1' is not a count of file descriptors"),
        (["--pdeathsig", "KILLL", "--", "x"], "--pdeathsig: unknown signal 'KILLL'"),
        (["--pdeathsig", "0", "--", "x"], "--pdeathsig: '0' is not a signal number (1-64)"),
        (["--log-level", "trace", "--", "x"],
         "--log-level: 'trace' is not one of debug, info, warning, error"),
        (["--kill-group=1", "--", "x"], "--kill-group takes no value"),
    ],
)
def test_errors_name_the_option(argv: list[str], message: str) -> None:
    with pytest.raises(cli.UsageError) as info:
        cli.parse(argv, {})
    assert str(info.value) == message  # one line, naming the option and the value
