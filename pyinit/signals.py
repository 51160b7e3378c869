"""Signal numbers, names and the sets pyinit treats specially.

Built on the C module ``_signal`` rather than ``signal``: ``import signal``
pulls in ``enum`` (about 3 ms here) and this module is on the path that runs
before the workload is spawned.
"""

from __future__ import annotations

import _signal

SIGRTMIN: int = _signal.SIGRTMIN
SIGRTMAX: int = _signal.SIGRTMAX

# When two names share a number, the first one listed here wins.
_PREFERRED = ("SIGABRT", "SIGCHLD", "SIGIO", "SIGSYS")


def _name_table() -> dict[int, str]:
    table: dict[int, str] = {}
    for name in _PREFERRED:
        table[getattr(_signal, name)] = name
    for name in sorted(dir(_signal)):
        if name.startswith("SIG") and not name.startswith("SIG_") and "RT" not in name:
            table.setdefault(getattr(_signal, name), name)
    return table


_NAMES = _name_table()
_NUMBERS = {name: num for num, name in _NAMES.items()}
for _alias in ("SIGIOT", "SIGCLD", "SIGPOLL"):
    if hasattr(_signal, _alias):
        _NUMBERS[_alias] = getattr(_signal, _alias)

# Faults the kernel raises on the faulting thread. A Python-level handler for
# them would return to the faulting instruction forever, so pyinit keeps their
# default action (a real crash stays a crash) and does not forward them; tini
# and catatonit make the same choice.
SYNCHRONOUS: frozenset[int] = frozenset(
    {_signal.SIGSEGV, _signal.SIGBUS, _signal.SIGFPE, _signal.SIGILL}
)
UNCATCHABLE: frozenset[int] = frozenset({_signal.SIGKILL, _signal.SIGSTOP})

# Everything pyinit forwards to the workload: 1..31 and the real-time signals
# the C library leaves to applications, minus the above and SIGCHLD, which is
# pyinit's own (reaping).
FORWARDED: frozenset[int] = frozenset(
    s
    for s in _signal.valid_signals()
    if s not in SYNCHRONOUS and s not in UNCATCHABLE and s != _signal.SIGCHLD
)

# Receiving one of these starts the graceful shutdown.
SHUTDOWN: frozenset[int] = frozenset({_signal.SIGTERM, _signal.SIGINT, _signal.SIGQUIT})


def name(signum: int) -> str:
    """``15`` -> ``"SIGTERM"``, ``36`` -> ``"SIGRTMIN+2"``."""
    if signum in _NAMES:
        return _NAMES[signum]
    if SIGRTMIN <= signum <= SIGRTMAX:
        return f"SIGRTMIN+{signum - SIGRTMIN}" if signum != SIGRTMIN else "SIGRTMIN"
    return f"SIG{signum}"


def parse(text: str) -> int:
    """Parse ``TERM``, ``SIGTERM``, ``sigterm``, ``15``, ``RTMIN+3`` or ``SIGRTMAX-1``.

    Raises ValueError with a message that names the bad text.
    """
    raw = text.strip()
    if raw.isdigit():
        num = int(raw)
        if num in _signal.valid_signals():
            return num
        raise ValueError(f"{text!r} is not a signal number (1-{SIGRTMAX})")
    upper = raw.upper()
    if not upper.startswith("SIG"):
        upper = "SIG" + upper
    if upper in _NUMBERS:
        return _NUMBERS[upper]
    for base_name, base in (("SIGRTMIN", SIGRTMIN), ("SIGRTMAX", SIGRTMAX)):
        if upper.startswith(base_name):
            rest = upper[len(base_name):]
            if rest == "":
                return base
            if rest[0] in "+-" and rest[1:].isdigit():
                num = base + int(rest)
                if SIGRTMIN <= num <= SIGRTMAX:
                    return num
    raise ValueError(f"unknown signal {text!r}")
