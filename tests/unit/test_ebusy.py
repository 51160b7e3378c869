"""The EBUSY retry of remounts, with a fake mount call (no root needed)."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest

from pyinit.errors import SetupError
from pyinit.linux import flags
from pyinit.linux.paths import Root
from pyinit.rootfs import setup


class Log:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Any:
        return lambda event, **kw: self.events.append((event, kw))


def _executor(tmp_path: Path, busy: int, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, list[int]]:
    calls: list[int] = []

    def fake_mount(source: Any, target: str, fstype: Any, mflags: int, data: Any = None) -> None:
        calls.append(mflags)
        if len(calls) <= busy:
            raise OSError(errno.EBUSY, "Device or resource busy")

    monkeypatch.setattr(setup.syscalls, "mount", fake_mount)
    monkeypatch.setattr(setup, "EBUSY_DELAY", 0.001)
    ex = setup.Executor(str(tmp_path), Log())
    ex.root = Root(str(tmp_path))
    (tmp_path / "data").mkdir()
    return ex, calls


async def test_remount_retries_ebusy_then_succeeds(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    ex, calls = _executor(tmp_path, 2, monkeypatch)
    await ex._remount("/data", flags.MS_RDONLY)
    assert len(calls) == 3
    assert calls[-1] == flags.MS_REMOUNT | flags.MS_BIND | flags.MS_RDONLY
    busy = [kw for event, kw in ex.log.events if event == "remount.busy"]
    assert [b["attempt"] for b in busy] == [1, 2]


async def test_remount_gives_up_after_five_tries(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    ex, calls = _executor(tmp_path, 99, monkeypatch)
    with pytest.raises(SetupError) as info:
        await ex._remount("/data", flags.MS_RDONLY, "mounts[2]")
    assert len(calls) == setup.EBUSY_TRIES == 5
    assert info.value.errno_name == "EBUSY" and info.value.fields["attempts"] == 5
    hint = "something holds the mount busy (an open file or a process with its cwd there)"
    assert info.value.hint == hint
    assert info.value.line() == ("mounts[2]: remount (/data): remount /data MS_RDONLY: Device or "
                                 f"resource busy; {hint}")


def test_ebusy_hint_names_the_process_holding_the_mount(tmp_path: Path) -> None:
    import subprocess

    from pyinit import diagnose

    held = tmp_path / "held"
    held.mkdir()
    proc = subprocess.Popen(["sleep", "30"], cwd=held)
    try:
        hint = diagnose.explain("remount", errno.EBUSY, {"destination": str(held)})
    finally:
        proc.kill()
        proc.wait()
    assert hint == f"busy because of: {proc.pid} (sleep) cwd -> {held}"
