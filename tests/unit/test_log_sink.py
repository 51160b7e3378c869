"""The log sink never blocks: full pipes, closed pipes, files, sockets."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from pyinit.log import Sink


def _sink_on(fd: int) -> Sink:
    saved = os.dup(2)
    os.dup2(fd, 2)
    try:
        return Sink(2)
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def test_full_pipe_drops_instead_of_blocking() -> None:
    r, w = os.pipe()
    sink = _sink_on(w)
    line = b"x" * 1000 + b"\n"
    for _ in range(200):  # 200 KB into a 64 KB pipe, nobody reading
        sink.write(line)
    assert sink.dropped > 0 and sink.alive
    assert os.get_blocking(w)  # the shared description was not made non-blocking
    os.close(r)
    os.close(w)


def test_reader_gone_turns_the_sink_off() -> None:
    r, w = os.pipe()
    sink = _sink_on(w)
    os.close(r)
    sink.write(b"hello\n")
    assert not sink.alive
    sink.write(b"again\n")
    assert sink.dropped == 2
    os.close(w)


def test_regular_file_and_socket(tmp_path: Path) -> None:
    path = tmp_path / "log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    sink = _sink_on(fd)
    sink.write(b"one\n")
    assert path.read_bytes() == b"one\n"
    os.close(fd)
    a, b = socket.socketpair()
    sink = _sink_on(a.fileno())
    sink.write(b"two\n")
    assert b.recv(10) == b"two\n"
    a.close()
    b.close()
