"""The runtime's pure pieces: the sync protocol, and closing descriptors."""

from __future__ import annotations

import _socket
import json
import os
import select

import pytest

from pyinit import diagnose
from pyinit.errors import SetupError
from pyinit.linux import syscalls, task
from pyinit.oci.config import Process
from pyinit.runtime import credentials
from pyinit.runtime.sync import MESSAGES, Sync, decode, expect, open_channel, send, shut

TMPFS_MAGIC = 0x01021994


def test_each_message_is_one_byte_and_decodes_back() -> None:
    assert {len(m.value) for m in MESSAGES} == {1}
    assert len(set(MESSAGES)) == len(MESSAGES) == 7
    assert decode(b"".join(m.value for m in MESSAGES)) == list(MESSAGES)


def test_unknown_bytes_are_dropped() -> None:
    found = decode(b"NX\0S")
    assert found == [Sync.NAMESPACES_READY, Sync.STARTED]
    # the very constants: the parent tells them apart with ``is``
    assert found[0] is Sync.NAMESPACES_READY
    assert found[1] is Sync.STARTED
    assert repr(found) == "[Sync.NAMESPACES_READY, Sync.STARTED]"


def test_the_sync_channel_once_both_sides_are_done_with_go() -> None:
    parent, pid1 = open_channel()
    copy = os.dup(pid1)  # what pidfd_getfd gives a workload
    try:
        assert os.readlink(f"/proc/self/fd/{pid1}").startswith("socket:[")
        send(pid1, Sync.NAMESPACES_READY)
        assert os.read(parent, 16) == b"N"
        send(parent, Sync.GO)
        assert expect(pid1, Sync.GO)
        shut(pid1, _socket.SHUT_RD)  # PID 1, once it has "go"
        shut(parent, _socket.SHUT_WR)  # the parent, once it has answered
        os.set_blocking(copy, False)  # a failure, not a hang, if the shutdown did not hold
        assert os.read(copy, 16) == b""  # nothing more to read, ever
        with pytest.raises(BrokenPipeError):
            os.write(parent, Sync.FAILED.value)
        # Both shut, and the parent's end still open: no hang-up yet
        # (_die_with_parent reads POLLHUP as "the parent is gone").
        poller = select.poll()
        poller.register(pid1, select.POLLIN)
        assert [ev & select.POLLHUP for _fd, ev in poller.poll(0)] == [0]
        send(copy, Sync.STARTED)  # PID 1's direction is still open
        assert os.read(parent, 16) == b"S"
        os.close(parent)
        parent = -1
        assert [ev & select.POLLHUP for _fd, ev in poller.poll(0)] == [select.POLLHUP]
    finally:
        for fd in (parent, pid1, copy):
            if fd >= 0:
                os.close(fd)


def test_close_from_keeps_exactly_the_listed_descriptors() -> None:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child closes, then reports what is left
        try:
            keep = frozenset({write_end, 1000, 2})  # 1000 is not open; 2 is below 3
            os.dup2(write_end, 1000)
            task.close_from(3, keep)
            left = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
            os.write(1000, json.dumps(left).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    data = b""
    while chunk := os.read(read_end, 4096):
        data += chunk
    os.close(read_end)
    os.waitpid(pid, 0)
    # listdir's own descriptor is the one extra entry, above 2.
    left = json.loads(data)
    assert [fd for fd in left if fd in (0, 1, 2, write_end, 1000)] == sorted(
        {0, 1, 2, write_end, 1000})
    assert len(left) == 6


def _own_oom_score_adj() -> str:
    with open("/proc/self/oom_score_adj") as fh:
        return fh.read().strip()


def test_oom_score_adj_is_written_only_on_procfs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever sits at /proc/thread-self/oom_score_adj (a tmpfs over /proc, a file
    bound over it): unless fstatfs on its fd says procfs, nothing is written."""
    before = _own_oom_score_adj()
    wanted = int(before) + 1
    monkeypatch.setattr(syscalls, "fstatfs_type", lambda fd: TMPFS_MAGIC)
    with pytest.raises(SetupError) as info:
        credentials.before_namespaces(Process(args=["sh"], cwd="/", oom_score_adj=wanted))
    exc = info.value
    exc.hint = diagnose.explain_error(exc, {}, evidence=False)  # as container._failed does
    assert exc.line() == ("process.oomScoreAdj: process: /proc/thread-self/oom_score_adj is "
                          "not on a procfs: pyinit writes it only through the host's procfs")
    assert _own_oom_score_adj() == before
    monkeypatch.undo()
    pid = os.fork()
    if pid == 0:  # on the real procfs the same call writes it (in a child: ours stays)
        try:
            credentials.before_namespaces(Process(args=["sh"], cwd="/", oom_score_adj=wanted))
            os._exit(0 if _own_oom_score_adj() == str(wanted) else 1)
        finally:
            os._exit(2)
    assert os.waitpid(pid, 0)[1] == 0
