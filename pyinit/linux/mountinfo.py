"""/proc/self/mountinfo, parsed (proc(5))."""

from __future__ import annotations

from pyinit.record import record


def _unescape(field: str) -> str:
    # Spaces, tabs, newlines and backslashes are written as octal escapes.
    return (field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n")
            .replace("\\134", "\\"))


@record(frozen=False)
class MountEntry:
    mount_id: int
    parent_id: int
    root: str
    mount_point: str
    options: list[str]
    optional: list[str]
    fstype: str
    source: str
    super_options: list[str]


def parse(text: str) -> list[MountEntry]:
    entries = []
    for line in text.splitlines():
        if " - " not in line:
            continue
        pre, post = line.split(" - ", 1)
        a = pre.split()
        b = post.split()
        entries.append(MountEntry(
            mount_id=int(a[0]), parent_id=int(a[1]), root=_unescape(a[3]),
            mount_point=_unescape(a[4]), options=a[5].split(","), optional=a[6:],
            fstype=b[0], source=_unescape(b[1]) if len(b) > 1 else "",
            super_options=b[2].split(",") if len(b) > 2 else [],
        ))
    return entries


def read(path: str = "/proc/self/mountinfo") -> list[MountEntry]:
    with open(path, encoding="utf-8", errors="replace") as fh:
        return parse(fh.read())
