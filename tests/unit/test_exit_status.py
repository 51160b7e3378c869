"""Wait status to exit code, for every code and every signal."""

from __future__ import annotations

import signal

from pyinit.report import exit_code, status_fields


def test_every_exit_code_passes_through() -> None:
    for code in range(256):
        assert exit_code(code << 8) == code


def test_death_by_signal_is_128_plus_n() -> None:
    for sig in range(1, signal.SIGRTMAX + 1):
        assert exit_code(sig) == 128 + sig
        assert exit_code(sig | 0x80) == 128 + sig  # core dumped
    fields = status_fields(signal.SIGSEGV | 0x80)
    assert fields == {"code": 139, "signal": "SIGSEGV", "core_dumped": True}
    assert status_fields(3 << 8) == {"code": 3, "signal": None}
