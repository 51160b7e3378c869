"""The cgroup filesystem: every read, write, mkdir and rmdir pyinit does there.

cgroup files are the kernel's interface, so they stay behind ``pyinit/linux``
like the syscalls: one value per ``write(2)`` (the kernel parses each write on
its own; a buffered writer could merge two ``devices.allow`` lines), no
``O_CREAT`` (a missing file means a missing controller or feature, never a
file to create), and errors as ``OSError`` with the file's path.
"""

from __future__ import annotations

import _signal as signal  # the C half: signal.py imports enum
import errno
import os
import time

_READ = os.O_RDONLY | os.O_CLOEXEC
_WRITE = os.O_WRONLY | os.O_CLOEXEC


def read(directory: str, name: str) -> str:
    fd = os.open(os.path.join(directory, name), _READ)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks).decode()
    finally:
        os.close(fd)


def write(directory: str, name: str, value: str) -> None:
    """One ``write(2)`` of ``value`` to ``directory/name``."""
    fd = os.open(os.path.join(directory, name), _WRITE)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def exists(directory: str, name: str) -> bool:
    return os.path.exists(os.path.join(directory, name))


def make(directory: str, stop: str) -> list[str]:
    """``mkdir -p directory`` below ``stop`` (which exists); the directories it created, top
    first. A directory that vanishes meanwhile (another container's cleanup removed an
    empty parent) is created again."""
    rel = os.path.relpath(directory, stop)
    created = []
    path = stop
    for part in rel.split("/"):
        path = os.path.join(path, part)
        for _ in range(8):
            try:
                os.mkdir(path, 0o755)
                created.append(path)
                break
            except FileExistsError:
                break
            except FileNotFoundError:  # a parent was removed under us: start again from stop
                return created + make(directory, stop)
    return created


def procs(directory: str) -> list[int]:
    try:
        return [int(line) for line in read(directory, "cgroup.procs").split()]
    except FileNotFoundError:
        return []


def open_procs(directory: str) -> int:
    """A descriptor on ``directory/cgroup.procs``, to list the cgroup with :func:`pids_of`
    later without its path (the container's PID 1, after the pivot)."""
    return os.open(os.path.join(directory, "cgroup.procs"), _READ)


def pids_of(fd: int) -> list[int]:
    """The processes in the cgroup of a :func:`open_procs` descriptor, read afresh from
    offset 0 (the kernel lists it again), as the reader's PID namespace numbers them
    (0: one outside it)."""
    chunks = []
    offset = 0
    while chunk := os.pread(fd, 65536, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return [int(word) for word in b"".join(chunks).split()]


def kill_all(directory: str) -> None:
    """SIGKILL every process in the cgroup: ``cgroup.kill`` where the kernel has it (v2,
    atomic against forks), else each pid in ``cgroup.procs``."""
    if exists(directory, "cgroup.kill"):
        write(directory, "cgroup.kill", "1")
        return
    for pid in procs(directory):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def remove(directory: str, kill: bool, attempts: int = 200) -> None:
    """rmdir, retrying while the cgroup's processes drain (EBUSY): an exiting task leaves
    its cgroup only once the kernel has finished its exit. With ``kill``, whatever is
    still inside is SIGKILLed first. Raises the last EBUSY if it never empties."""
    delay = 0.001
    for attempt in range(attempts):
        try:
            os.rmdir(directory)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or attempt == attempts - 1:
                raise
            if kill:
                kill_all(directory)
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
