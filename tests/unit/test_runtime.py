"""The runtime's pure pieces: the sync protocol, and closing descriptors."""

from __future__ import annotations

import json
import os

from pyinit.linux import task
from pyinit.runtime.sync import Sync, decode


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
