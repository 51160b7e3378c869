"""``process.terminal: true``: a pty from the container's devpts, and the caller's end of it.

The container's PID 1 allocates the pty after the pivot, from the devpts
mounted on the container's ``/dev/pts`` (checked to be one: no symlink, the
ptmx node of a devpts filesystem), opens the other end through the master
(TIOCGPTPEER: no path), gives it to the workload as stdio and controlling
terminal, and sends the master to the parent over a unix socket
(SCM_RIGHTS); PID 1 keeps neither end.

The parent then either passes the master on to ``--console-socket PATH``
(as runc does; the receiver owns the terminal from then on), or relays it
itself: the caller's terminal in raw mode (restored on exit), its window
size copied to the pty at the start and on every SIGWINCH, and bytes copied
both ways by a trio loop in a thread of its own (the parent's main thread
waits for signals and hooks).
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import termios
import threading
import tty
from typing import TYPE_CHECKING, Any

from pyinit.linux import pty

if TYPE_CHECKING:  # imported where used: PID 1 imports this module without trio
    import trio

PTMX = "/dev/pts/ptmx"


def allocate(size: tuple[int, int] | None) -> tuple[int, int]:
    """In PID 1, after the pivot: (master, the workload's end).

    Its window size from the start: ``process.consoleSize`` if given, else
    the caller's (fd 0 is still the caller's terminal here), so that the
    parent's first resize changes nothing and sends no SIGWINCH.
    """
    master = pty.open_ptmx(PTMX)
    try:
        with contextlib.suppress(OSError):
            if size is not None:
                pty.set_window_size(master, struct.pack("HHHH", size[0], size[1], 0, 0))
            else:
                pty.set_window_size(master, pty.window_size(0))
        return master, pty.open_peer(master)
    except BaseException:
        os.close(master)
        raise


def attach(peer: int) -> None:
    """In the workload, after setsid: the pty as stdio and controlling terminal."""
    for fd in (0, 1, 2):
        os.dup2(peer, fd)
    pty.make_controlling(0)


def send_master(sock_fd: int, master: int) -> None:
    with socket.socket(fileno=sock_fd) as sock:
        socket.send_fds(sock, [b"pty"], [master])


def receive_master(sock_fd: int) -> int | None:
    with socket.socket(fileno=os.dup(sock_fd)) as sock:
        _data, fds, _flags, _addr = socket.recv_fds(sock, 16, 1)
    return fds[0] if fds else None


def hand_to_socket(path: str, master: int) -> None:
    """``--console-socket PATH``: send the master there, as runc does; then it is theirs."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        socket.send_fds(sock, [b"pyinit"], [master])


class Relay:
    """The caller's terminal <-> the container's pty."""

    def __init__(self, master: int) -> None:
        self.master = master
        self._saved: list[Any] | None = None
        self._thread = threading.Thread(target=self._run, name="pyinit-console",
                                        daemon=True)

    def start(self) -> None:
        from pyinit.early import import_trio

        import_trio()  # here, in the main thread; the relay's thread runs trio
        if os.isatty(0):
            self._saved = termios.tcgetattr(0)
            tty.setraw(0, termios.TCSANOW)
        self.resize()
        self._thread.start()

    def resize(self) -> None:
        with contextlib.suppress(OSError):
            pty.set_window_size(self.master, pty.window_size(0))

    def finish(self) -> None:
        """After the workload is gone: drain, then give the caller's terminal back."""
        self._thread.join(timeout=5)
        if self._saved is not None:
            with contextlib.suppress(termios.error):
                termios.tcsetattr(0, termios.TCSADRAIN, self._saved)

    def _run(self) -> None:
        import trio

        trio.run(self._copy)

    async def _copy(self) -> None:
        import trio

        master = trio.lowlevel.FdStream(self.master)  # closed with it
        stdout = trio.lowlevel.FdStream(os.dup(1))
        stdin = trio.lowlevel.FdStream(os.dup(0))
        async with master, stdout, stdin, trio.open_nursery() as nursery:
            nursery.start_soon(self._keyboard, stdin, master)
            await self._screen(master, stdout)
            nursery.cancel_scope.cancel()

    @staticmethod
    async def _screen(master: trio.lowlevel.FdStream, stdout: trio.lowlevel.FdStream) -> None:
        import trio

        while True:
            try:
                data = await master.receive_some(65536)
            except trio.BrokenResourceError:  # EIO: every end in the container is closed
                return
            if not data:
                return
            try:
                await stdout.send_all(data)
            except trio.BrokenResourceError:
                return

    @staticmethod
    async def _keyboard(stdin: trio.lowlevel.FdStream, master: trio.lowlevel.FdStream) -> None:
        import trio

        while True:
            try:
                data = await stdin.receive_some(4096)
            except trio.BrokenResourceError:
                return
            if not data:
                return  # no more input; the pty stays open for the output
            await master.send_all(data)
