"""pyinit's parsers ask the terminal's width only when formatting: same help as argparse's."""

from __future__ import annotations

import argparse
import sys

import pytest

from pyinit import commands, sandbox


@pytest.mark.parametrize("columns", ["50", "80", "132"])
def test_the_sandbox_help_is_argparses(columns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", columns)

    class Plain(argparse.ArgumentParser):
        pass

    ours = sandbox.parser(commands.parser_class())
    theirs = sandbox.parser(Plain)
    assert ours.format_help() == theirs.format_help()
    assert ours.format_usage() == theirs.format_usage()


def test_the_width_is_the_terminals(monkeypatch: pytest.MonkeyPatch) -> None:
    helps = []
    for columns in ("50", "132"):
        monkeypatch.setenv("COLUMNS", columns)
        helps.append(sandbox.parser(commands.parser_class()).format_help())
    assert len(helps[0].splitlines()) > len(helps[1].splitlines())


def test_defining_the_options_does_not_ask_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "shutil", raising=False)
    sandbox.parser(commands.parser_class())
    assert "shutil" not in sys.modules
