"""What the executor's parts share while a plan runs."""

from __future__ import annotations

import errno
import os

from pyinit.errors import SetupError
from pyinit.linux.kernel import Kernel
from pyinit.linux.paths import Root
from pyinit.record import field, record

TYPE_CHECKING = False  # typing costs 6 ms at start-up; mypy reads the name
if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from typing import Any

    # hooks.run_checked's shape: (command, log, step, stdin=, cwd_fd=, **tags)
    CommandRunner = Callable[..., Awaitable[None]]


@record(frozen=False)
class Context:
    kernel: Kernel
    log: Any
    root_path: str
    run_command: CommandRunner
    container_id: str = "pyinit"
    bundle: str = ""
    user_ns: bool = False
    # Read before anything changes (and so before the pivot).
    host_pid: int = 0
    host_devnull: int = 0  # st_rdev of the host's /dev/null
    # Hierarchy name -> this process's cgroup in it (the container's), read
    # before the cgroup namespace existed: a cgroup mount's bind fallback.
    own_cgroups: dict[str, str] = field(default_factory=dict)
    # The root's mount (the detached bind, attached at root_path) and a Root on it.
    root_mount: int = -1
    pivoted: bool = False
    # The container's /dev/null (char 1:3), opened in the root after the pivot and
    # left open for PID 1's stdio (rootfs/hardening.py devnull); -1 without one.
    devnull: int = -1
    # Mount fds by mounts[] index, for the post-mount commands.
    mount_fds: dict[int, int] = field(default_factory=dict)
    # A directory fd on the first procfs this setup mounted, -1 without one.
    # Not closed here: the container's PID 1 keeps it for its shutdown, which
    # reads who is left through it and never through the container's /proc path.
    proc_dir: int = -1

    @property
    def root(self) -> Root:
        if self.root_mount < 0:
            raise SetupError("", "the root filesystem is not set up yet", err=errno.EINVAL)
        return Root(self.kernel, self.root_mount)

    def close(self) -> None:
        for fd in self.mount_fds.values():
            self.kernel.close(fd)
        self.mount_fds.clear()
        if self.root_mount >= 0:
            self.kernel.close(self.root_mount)
            self.root_mount = -1
        self.kernel.release()


def dev_of(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino
