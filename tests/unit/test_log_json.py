"""pyinit's JSON lines without structlog are the lines structlog's chain wrote.

:class:`pyinit.log.JsonLogger` replaces structlog for the JSON format (issue
12: structlog's import was on the way to the workload). Many tests and users
parse these lines, so each one must be byte for byte what
``add_log_level``, ``TimeStamper(fmt="iso", utc=True)`` and ``JSONRenderer``
made of the same call, at the same instant.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import sys
from typing import Any

import pytest
import structlog

from pyinit import log as pyinit_log
from pyinit.log import JsonLogger, Sink, configure


class _Lines:
    """A sink stand-in that keeps what was written."""

    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data


def _structlog_line(level: str, min_level: str, now: datetime.datetime, event: str,
                    args: tuple[Any, ...], kw: dict[str, Any]) -> bytes:
    """The line the structlog chain pyinit used wrote for this call ("" if filtered)."""
    out = _Lines()

    class Frozen(datetime.datetime):
        @classmethod
        def now(cls, tz: datetime.tzinfo | None = None) -> Frozen:  # type: ignore[override]
            return cls.fromtimestamp(now.timestamp(), tz)

    real = datetime.datetime
    datetime.datetime = Frozen  # type: ignore[misc]  # TimeStamper looks it up per call
    try:
        logger = structlog.wrap_logger(
            pyinit_log._SinkLogger(out),  # type: ignore[arg-type]
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.JSONRenderer(
                    serializer=lambda obj, **_: json.dumps(
                        obj, default=pyinit_log._json_default, separators=(",", ":"))),
            ],
            wrapper_class=structlog.make_filtering_bound_logger(pyinit_log._LEVELS[min_level]),
        )
        getattr(logger, level)(event, *args, **kw)
    finally:
        datetime.datetime = real  # type: ignore[misc]
    return out.data


def _our_line(level: str, min_level: str, now: datetime.datetime, event: str,
              args: tuple[Any, ...], kw: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> bytes:
    out = _Lines()
    ns = int(now.timestamp()) * 1_000_000_000 + now.microsecond * 1000 + 999  # floored to µs
    monkeypatch.setattr(pyinit_log.time, "time_ns", lambda: ns)
    logger = JsonLogger(out, min_level)  # type: ignore[arg-type]
    getattr(logger, level)(event, *args, **kw)
    return out.data


INSTANTS = [
    datetime.datetime(2026, 12, 1, 20, 48, 41, 154, tzinfo=datetime.UTC),
    datetime.datetime(2026, 12, 1, 20, 48, 41, 0, tzinfo=datetime.UTC),  # no fraction then
    datetime.datetime(1999, 1, 2, 3, 4, 5, 999999, tzinfo=datetime.UTC),
]

CALLS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("workload.spawned", (), {"pid": 7, "argv": ["/bin/true", "é\n\"x\""], "spawn_ms": 10.827,
                              "pid1": False, "foreground": None}),
    ("orphans.reaped", (), {"count": 3, "codes": {"0": 2, "1": 1}, "pids": {3, 1, 2},
                            "skipped": frozenset({"b", "a"}), "nan": float("nan")}),
    ("setup.failed", (), {"error": ValueError("bad"), "where": ("a", 1), "big": 10**30}),
    ("signal %s from %d", ("SIGTERM", 42), {"level": "ignored", "event_id": 1}),
    ("ünïcode.event", (), {"\u2603": "\u2603", "nested": [{"a": [1.5, -0.0, True]}]}),
]


@pytest.mark.parametrize("now", INSTANTS, ids=str)
@pytest.mark.parametrize("event,args,kw", CALLS, ids=[c[0] for c in CALLS])
@pytest.mark.parametrize("level", ["debug", "info", "warning", "error", "critical"])
@pytest.mark.parametrize("min_level", ["debug", "info", "warning", "error"])
def test_each_line_is_structlogs_line(now: datetime.datetime, event: str, args: tuple[Any, ...],
                                      kw: dict[str, Any], level: str, min_level: str,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    expected = _structlog_line(level, min_level, now, event, args, dict(kw))
    ours = _our_line(level, min_level, now, event, args, dict(kw), monkeypatch)
    assert ours == expected


def test_a_line_is_one_json_object_with_the_fields_in_call_order(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The control for the comparison above: it compares real lines, not two empty ones.
    now = INSTANTS[0]
    line = _our_line("info", "info", now, "container.starting", (), {"bundle": "/b", "steps": 3},
                     monkeypatch)
    assert line == (b'{"bundle":"/b","steps":3,"event":"container.starting","level":"info",'
                    b'"timestamp":"2026-12-01T20:48:41.000154Z"}\n')


def test_json_format_does_not_import_structlog(tmp_path: Any) -> None:
    # What the logger is for: a fresh interpreter configures the JSON format and
    # logs without structlog, json (and its re) or datetime being imported.
    import subprocess

    code = ("import sys\n"
            "from pyinit.log import configure\n"
            "log, sink = configure('json', 'info')\n"
            "log.info('x.y', a=1)\n"
            "print(sorted(m for m in ('structlog', 'json', 'datetime', 'asyncio')"
            " if m in sys.modules))\n")
    res = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True,
                         check=True, timeout=60, env={**os.environ})
    assert res.stdout == "[]\n"
    line = json.loads(res.stderr)
    del line["timestamp"]
    assert line == {"a": 1, "event": "x.y", "level": "info"}


def test_console_format_is_still_structlogs() -> None:
    r, w = os.pipe()
    try:
        logger, _sink = configure("console", "info", Sink(w))
        logger.info("console.event", answer=42)
        logger.debug("console.hidden")
        data = os.read(r, 4096).decode()
    finally:
        os.close(r)
        os.close(w)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z \[info     \] "
                        r"console\.event +answer=42\n", data), data
