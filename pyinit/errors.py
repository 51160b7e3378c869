"""One error type for every setup failure: its fields are the log fields.

As runc's mountError does, it carries the whole story, so no call site has to
remember to add context, and the message is complete wherever it is printed:

- ``step``: the plan step's kind (``mount``, ``pivot``, ...), filled in by the
  executor when the kernel seam raised it;
- ``op``: the operation that failed (``open_tree``, ``fsconfig``, ...);
- ``path``: what it acted on;
- ``where``: the JSON path in config.json (``mounts[3]``);
- ``errno``: the kernel's answer;
- ``hint``: from :mod:`pyinit.diagnose`'s table, never written at the call site.

The kernel seam (:mod:`pyinit.linux.kernel`) raises it for every failed call,
with ``op``, ``path`` and ``errno`` set.
"""

from __future__ import annotations

import errno as errno_mod
import os

TYPE_CHECKING = False  # typing costs 6 ms at start-up; mypy reads the name
if TYPE_CHECKING:
    from typing import Any

# pyinit run's own failures, before the workload started: above any code a
# workload commonly uses, like podman's and docker's 125.
EXIT_SETUP_FAILED = 125


class SetupError(Exception):
    def __init__(self, step: str, reason: str, *, err: int | None = None,
                 hint: str | None = None, op: str | None = None, path: str | None = None,
                 where: str | None = None, **fields: Any) -> None:
        self.step = step
        self.reason = reason
        self.errno = err
        self.hint = hint
        self.op = op
        self.path = path
        self.where = where
        self.fields = fields
        super().__init__(reason)

    @classmethod
    def from_os(cls, step: str, what: str, exc: OSError, hint: str | None = None,
                **fields: Any) -> SetupError:
        """``what`` failed with ``exc``'s errno; ``op=`` names the operation for the hints."""
        err = exc.errno or 0
        return cls(step, f"{what}: {os.strerror(err)}", err=err, hint=hint, **fields)

    def __str__(self) -> str:
        return self.line()

    @property
    def errno_name(self) -> str | None:
        return errno_mod.errorcode.get(self.errno) if self.errno else None

    def line(self) -> str:
        dest = self.fields.get("destination")
        head = f"{self.where}: " if self.where else ""
        target = f" ({dest})" if dest and self.where else ""
        hint = f"; {self.hint}" if self.hint else ""
        return f"{head}{self.step}{target}: {self.reason}{hint}"

    def log_fields(self) -> dict[str, Any]:
        out = dict(self.fields)
        if self.where:
            out["where"] = self.where
        out["reason"] = self.reason
        if self.errno:
            out["errno"] = self.errno_name
        if self.hint:
            out["hint"] = self.hint
        return out
