"""A command object of config.json: hooks and pyinit's pre/post-mount commands.

Pure (no trio, no system calls), so the config layer can parse commands
without importing the code that runs them (:mod:`pyinit.hooks`).
"""

from __future__ import annotations

import os

from pyinit.oci import jsonio
from pyinit.record import record

TYPE_CHECKING = False  # typing costs 6 ms at start-up; mypy reads the name
if TYPE_CHECKING:
    from typing import Any


@record
class Command:
    path: str
    args: tuple[str, ...]
    env: tuple[str, ...] | None = None  # None: pyinit's own environment
    cwd: str | None = None
    timeout: float | None = None
    where: str = ""  # its JSON path, for messages

    @property
    def argv(self) -> list[str]:
        return list(self.args) or [self.path]


def parse_command(r: Any, item: dict[str, Any], where: str) -> Command:
    """One command object of config.json ({path, args, env, cwd, timeout})."""
    path = r.get(item, "path", where, str, "", required=True)
    if path and not os.path.isabs(path):
        r.problem(f"{where}.path", f"must be an absolute path, not {path!r}")
    args = r.strings(item, "args", where)
    env = r.strings(item, "env", where) if "env" in item else None
    for i, entry in enumerate(env or []):
        if "=" not in entry:
            r.problem(f"{where}.env[{i}]", f"{entry!r} is not KEY=VALUE")
    cwd = r.get(item, "cwd", where, str, None)
    if cwd is not None and not os.path.isabs(cwd):
        r.problem(f"{where}.cwd", f"must be an absolute path, not {cwd!r}")
    timeout = r.get(item, "timeout", where, (int, float), None)
    if timeout is not None and timeout <= 0:
        r.problem(f"{where}.timeout", "must be a positive number of seconds")
    return Command(path, tuple(args), None if env is None else tuple(env), cwd, timeout, where)


def state_json(container_id: str, status: str, pid: int, bundle: str) -> bytes:
    """The OCI state a hook reads on its stdin (runtime.md "State"), as json.dumps
    writes it (pyinit/oci/jsonio.py: nothing to import, even in PID 1 after the pivot)."""
    return jsonio.dumps({"ociVersion": "1.0.2", "id": container_id, "status": status,
                         "pid": pid, "bundle": bundle, "annotations": {}}).encode()
