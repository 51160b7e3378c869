"""PID 1's log channel (pyinit/runtime/logpipe.py), with real socket pairs."""

from __future__ import annotations

import errno
import os

import pytest

from pyinit.log import Sink
from pyinit.runtime import logpipe, say


class Lines:
    """A stand-in for the parent's sink: what it was asked to write."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)


def _pair() -> tuple[int, int, Lines, logpipe.Forwarder]:
    read_end, write_end = logpipe.open_channel()
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
    assert logpipe.clean(b"a\x1b]0;t\x07\x1b[1;31mred\x1b[0m\r\x7f\tz") == \
        b"a\\x1b]0;t\\x07\x1b[1;31mred\x1b[0m\\x0d\\x7f\tz"


def test_every_byte_outside_ascii_is_shown_escaped() -> None:
    # U+009B (c2 9b), U+011B (c4 9b: 0x9b is CSI on an 8-bit terminal), a lone
    # 0x9b, U+00E9, U+202E (right-to-left override): byte by byte, all ASCII.
    assert logpipe.clean("\u009b2J \u011b2J ".encode() + b"\x9b \xc3\xa9 \xe2\x80\xae.") \
        == b"\\xc2\\x9b2J \\xc4\\x9b2J \\x9b \\xc3\\xa9 \\xe2\\x80\\xae."
    assert logpipe.clean(bytes(range(0x80, 0x100))) == \
        b"".join(b"\\x%02x" % b for b in range(0x80, 0x100))


def test_pid1s_end_cannot_be_reopened_or_read_and_the_parents_cannot_write() -> None:
    read_end, write_end, _, fwd = _pair()
    try:
        for fd in (read_end, write_end):  # what a workload with CAP_SYS_PTRACE tries
            with pytest.raises(OSError) as caught:
                os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_NONBLOCK)
            assert caught.value.errno == errno.ENXIO
        assert os.read(write_end, 10) == b""  # a copy of PID 1's end: end of file at once
        with pytest.raises(BrokenPipeError):
            os.write(read_end, b"x\n")
    finally:
        os.close(write_end)
        fwd.close()


def test_what_pid1_wrote_before_it_exited_is_all_read() -> None:
    # Many lines, then PID 1's end closed (its exit) before the parent reads any.
    _, write_end, lines, fwd = _pair()
    sent = [b'{"event":"signal.forwarded","n":%d}\n' % i for i in range(200)]
    for line in sent:
        assert os.write(write_end, line) == len(line)
    os.close(write_end)
    fwd.drain()
    assert lines.written == sent
    assert fwd.fileno() == -1


def test_a_line_longer_than_the_limit_is_cut() -> None:
    _, write_end, lines, fwd = _pair()
    os.write(write_end, b"x" * (logpipe.MAX_LINE + 10))
    fwd.pump()
    assert lines.written == [b"x" * logpipe.MAX_LINE + b"\n"]


def test_pid1_never_blocks_when_the_parent_stops_reading() -> None:
    read_end, write_end = logpipe.open_channel()
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
