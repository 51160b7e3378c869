"""PID 1's log pipe (pyinit/runtime/logpipe.py), with real pipes."""

from __future__ import annotations

import os

from pyinit.log import Sink
from pyinit.runtime import logpipe, say


class Lines:
    """A stand-in for the parent's sink: what it was asked to write."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)


def _pair() -> tuple[int, int, Lines, logpipe.Forwarder]:
    read_end, write_end = logpipe.open_pipe()
    # Checked first: with a blocking pipe pump() would hang, not fail.
    assert (os.get_blocking(write_end), os.get_blocking(read_end)) == (False, False)
    lines = Lines()
    return read_end, write_end, lines, logpipe.Forwarder(read_end, lines)  # type: ignore[arg-type]


def test_whole_lines_only_and_the_last_one_at_the_end() -> None:
    _, write_end, lines, fwd = _pair()
    os.write(write_end, b'{"event":"a"}\n{"event":')
    assert fwd.pump()
    assert lines.written == [b'{"event":"a"}\n']
    os.write(write_end, b'"b"}\n{"event":"cut')
    os.close(write_end)
    fwd.drain()  # PID 1 has exited: what it wrote is passed on, a cut line ended
    assert lines.written == [b'{"event":"a"}\n', b'{"event":"b"}\n', b'{"event":"cut\n']


def test_control_characters_are_shown_escaped_and_colours_kept() -> None:
    # A lone byte 0x9b (CSI in an 8-bit terminal) is no UTF-8: the replacement character.
    assert logpipe.clean(b"a\x1b]0;t\x07\x1b[1;31mred\x1b[0m\r\x9b\tz") == \
        "a\\x1b]0;t\\x07\x1b[1;31mred\x1b[0m\\x0d\ufffd\tz".encode()
    assert logpipe.clean("\u009b2J é".encode()) == "\\x9b2J é".encode()


def test_a_line_longer_than_the_limit_is_cut() -> None:
    _, write_end, lines, fwd = _pair()
    os.write(write_end, b"x" * (logpipe.MAX_LINE + 10))
    fwd.pump()
    assert lines.written == [b"x" * logpipe.MAX_LINE + b"\n"]


def test_pid1_never_blocks_when_the_parent_stops_reading() -> None:
    read_end, write_end = logpipe.open_pipe()
    # Checked first: with a blocking pipe the loop below would hang, not fail.
    assert (os.get_blocking(write_end), os.get_blocking(read_end)) == (False, False)
    sink = Sink(2)
    logpipe.write_to_parent(sink, write_end)
    try:
        size = 0
        line = b"y" * 1000 + b"\n"
        while sink.dropped == 0:  # the pipe fills; the write that does not fit is dropped
            sink.write(line)
            size += len(line)
            assert size < 64 << 20, "the pipe never filled"
        say("still here")  # neither blocks nor raises
        sink.write(line)
        assert sink.dropped == 2
        assert sink.alive
        first = os.read(read_end, len(line))
        assert first == line
    finally:
        from pyinit.runtime import say_to

        say_to(2)
        os.close(write_end)
        os.close(read_end)
