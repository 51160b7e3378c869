"""The log sink never blocks: full pipes, closed pipes, files, sockets."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path
from typing import Any

import pytest

from pyinit.log import Sink


def _sink_on(fd: int) -> Sink:
    saved = os.dup(2)
    os.dup2(fd, 2)
    try:
        return Sink(2)
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _without_proc(monkeypatch: pytest.MonkeyPatch) -> None:
    """As with no /proc mounted: stderr cannot be reopened through /proc/self/fd."""
    real = os.open

    def fake_open(path: str, *args: Any, **kw: Any) -> int:
        if str(path).startswith("/proc/self/fd/"):
            raise FileNotFoundError(2, "No such file or directory", path)
        return real(path, *args, **kw)

    monkeypatch.setattr(os, "open", fake_open)


@pytest.mark.parametrize("writer", ["reopened", "polled-duplicate"])
def test_full_pipe_drops_instead_of_blocking(monkeypatch: pytest.MonkeyPatch,
                                             writer: str) -> None:
    """Both writers: the one that reopens stderr non-blocking, and the fallback
    without /proc that polls a duplicate before each write."""
    if writer == "polled-duplicate":
        _without_proc(monkeypatch)
    r, w = os.pipe()
    sink = _sink_on(w)
    line = b"x" * 1000 + b"\n"
    # A writer that blocks would hang here: the alarm turns that into a failure.
    previous = signal.signal(signal.SIGALRM, _blocked)
    signal.alarm(20)
    try:
        for _ in range(200):  # 200 KB into a 64 KB pipe, nobody reading
            sink.write(line)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert sink.alive
    assert os.get_blocking(w)  # the shared description was not made non-blocking
    written = os.read(r, 1 << 20)
    kept = len(written) // len(line)
    assert written == line * kept  # whole lines only
    assert (kept + sink.dropped, kept < 200) == (200, True)  # every other one counted dropped
    os.close(r)
    os.close(w)


def _blocked(signum: int, frame: Any) -> None:
    raise AssertionError("the sink blocked on a full pipe")


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


def test_a_full_log_socket_never_blocks_pid1_whatever_its_flags() -> None:
    """PID 1's log socket cleared to blocking (issue 9 review 5: a pidfd_getfd copy
    shares the flag) and full: the sink drops the line and ``say`` returns."""
    import socket

    from pyinit import runtime
    from pyinit.log import Sink

    reader, writer = socket.socketpair()
    fd = writer.detach()
    os.set_blocking(fd, True)  # what the workload does to its copy
    sink = Sink(2)
    sink.redirect(fd)
    old = list(runtime._SAY_FD)
    try:
        runtime.say_to(fd)
        line = b"x" * 4000 + b"\n"
        while sink.dropped == 0:  # fills the socket, then drops instead of blocking
            sink.write(line)
        runtime.say("still here")  # would block in write() on the blocking fd
        assert (sink.dropped, os.get_blocking(fd)) == (1, True)
    finally:
        runtime._SAY_FD[:] = old
        reader.close()
        os.close(fd)


def test_a_line_cut_short_on_the_log_socket_does_not_swallow_the_next() -> None:
    """A stream socket takes part of a line too long for its room; the rest is dropped,
    and the next line still arrives as a line of its own."""
    import socket

    from pyinit.log import Sink

    reader, writer = socket.socketpair()
    writer.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    fd = writer.detach()
    sink = Sink(2)
    sink.redirect(fd)
    try:
        sink.write(b"x" * (1 << 20) + b"\n")  # far more than fits: cut
        assert sink.dropped == 1
        reader.setblocking(False)
        got = b""
        while True:  # empty the socket, as the parent does
            try:
                got += reader.recv(1 << 20)
            except BlockingIOError:
                break
        sink.write(b"next\n")
        got += reader.recv(1 << 20)
        assert got.count(b"\n") == 2
        assert got.split(b"\n")[1:] == [b"next", b""]
        assert set(got.split(b"\n")[0]) == {ord("x")}
    finally:
        reader.close()
        os.close(fd)
