"""Terminal job control through a real pty: Ctrl-Z, fg and Ctrl-C as without pyinit."""

from __future__ import annotations

import pexpect
import pytest

from tests.conftest import PYINIT, _processes_with, wait_for

PROMPT = "PROMPT[$] "


def _in_foreground(comm: str) -> bool:
    """A process of this test named ``comm`` owns the terminal's foreground."""
    import os

    for pid in _processes_with(os.environ["PYINIT_TEST_TOKEN"]):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                head, _, tail = fh.read().rpartition(")")
        except OSError:
            continue
        fields = tail.split()
        # fields: state ppid pgrp session tty_nr tpgid ...
        if head.partition("(")[2] == comm and fields[2] == fields[5]:
            return True
    return False


def _wait_foreground(comm: str) -> None:
    # Typing Ctrl-Z before the shell has handed the terminal to the job would
    # send SIGTSTP to the (immune) shell instead: wait for the hand-over.
    wait_for(lambda: _in_foreground(comm), what=f"{comm} to own the terminal")


def _shell(argv: list[str]) -> pexpect.spawn:
    import os

    env = {"PS1": "PROMPT$ ", "PATH": "/usr/bin:/bin", "TERM": "dumb",
           "PYINIT_TEST_TOKEN": os.environ["PYINIT_TEST_TOKEN"]}
    return pexpect.spawn(argv[0], argv[1:], env=env, timeout=20, encoding="utf-8")


def _last_status(child: pexpect.spawn) -> str:
    """The shell's $? for the last command."""
    child.expect(PROMPT)
    child.sendline("echo rc=$?")
    child.expect(r"rc=(\d+)")
    return str(child.match.group(1))


def test_interactive_shell_under_pyinit_has_job_control() -> None:
    """pyinit runs ``sh -i``; the shell's own jobs stop, resume and die as usual."""
    child = _shell([PYINIT, "--log-level", "warning", "--", "sh", "-i"])
    try:
        child.expect(PROMPT)
        child.sendline("sleep 100")
        _wait_foreground("sleep")
        child.sendcontrol("z")
        child.expect("Stopped")
        child.expect(PROMPT)
        child.sendline("fg")
        child.expect("sleep 100")
        _wait_foreground("sleep")
        child.sendcontrol("c")
        assert _last_status(child) == "130"
        child.sendline("exit 7")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 7


def test_ctrl_z_stops_pyinit_and_fg_gives_the_terminal_back() -> None:
    """An outer shell runs pyinit; Ctrl-Z stops the whole job, fg resumes it."""
    child = _shell(["sh", "-i"])
    try:
        child.expect(PROMPT)
        child.sendline(
            f"{PYINIT} --log-level warning -- sh -c 'read x; echo got=$x; read y; exit 5'"
        )
        # The workload is reading the terminal: it has the foreground.
        child.sendline("one")
        child.expect("got=one")
        child.sendcontrol("z")
        child.expect("Stopped")
        child.expect(PROMPT)
        child.sendline("fg")
        # After fg the workload reads the terminal again (a background read
        # would stop it with SIGTTIN instead).
        child.sendline("two")
        assert _last_status(child) == "5"

        child.sendline(f"{PYINIT} --log-level warning -- sleep 100")
        _wait_foreground("sleep")
        child.sendcontrol("c")
        assert _last_status(child) == "130"

        # Started in the background, pyinit leaves the terminal to the shell.
        child.sendline(f"{PYINIT} --log-level warning -- sleep 2 &")
        child.expect(PROMPT)
        child.sendline("read line; echo shell-read=$line")
        child.sendline("mine")
        child.expect("shell-read=mine")
        child.sendline("wait")
        child.sendline("exit 0")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)


@pytest.mark.root
def test_pid1_with_a_terminal_runs_an_interactive_shell() -> None:
    """As PID 1 (podman run -it), pyinit cannot stop itself; the shell still works."""
    child = _shell(["unshare", "--pid", "--fork", "--mount-proc", PYINIT,
                    "--log-level", "warning", "--", "sh", "-i"])
    try:
        child.expect(PROMPT)
        child.sendline("sleep 100")
        _wait_foreground("sleep")
        child.sendcontrol("c")
        assert _last_status(child) == "130"
        child.sendline("exit 3")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 3
