"""The runtime's pure pieces: the sync protocol, and closing descriptors."""

from __future__ import annotations

import json
import os

import pytest

from pyinit import diagnose
from pyinit.errors import SetupError
from pyinit.linux import syscalls, task
from pyinit.oci.config import Process
from pyinit.runtime import credentials
from pyinit.runtime.sync import Sync, decode

TMPFS_MAGIC = 0x01021994


def test_each_message_is_one_byte_and_decodes_back() -> None:
    assert {len(m.value) for m in Sync} == {1}
    assert decode(b"".join(m.value for m in Sync)) == list(Sync)


def test_unknown_bytes_are_dropped() -> None:
    assert decode(b"NX\0S") == [Sync.NAMESPACES_READY, Sync.STARTED]


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
