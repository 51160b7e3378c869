"""``json.loads`` and ``json.dumps`` for the parent's start, without ``import json``.

``json.decoder`` imports ``re`` (and so ``enum``): 7 ms before ``pyinit run``
has read its config.json. Both functions use the very C scanner and encoder
the json package uses, set up as ``json.loads``/``json.dumps`` set them up
with their defaults, so a document reads (and an object writes) exactly as
there. A document the scanner does not take whole (bad JSON, a BOM, extra
data) goes to ``json.loads`` itself, for its exact exception and message.
pyinit/log.py does the same for its log lines.
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False  # typing costs 6 ms at start-up; mypy reads the name
if TYPE_CHECKING:
    from typing import Any

_WHITESPACE = " \t\n\r"  # json.decoder.WHITESPACE's characters


class _Context:
    """What the C scanner reads from its json.decoder.JSONDecoder: the defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"),
                      "NaN": float("nan")}.__getitem__


_scan = _json.make_scanner(_Context())  # type: ignore[arg-type]  # typeshed: a JSONDecoder


def loads(text: str) -> Any:
    """``json.loads(text)``; its exceptions (json.JSONDecodeError) come from json."""
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        obj, end = _scan(text, start)
    except Exception:  # StopIteration (nothing there) or a JSONDecodeError
        obj, end = None, -1
    if end < 0 or text[end:].strip(_WHITESPACE):
        import json

        return json.loads(text)  # raises, with json's own message
    return obj


def dumps(obj: Any) -> str:
    """``json.dumps(obj)``; what it cannot write goes to json, for its exception."""
    if isinstance(obj, str):
        return str(_json.encode_basestring_ascii(obj))
    # json.dumps's encoder: a fresh circular-reference check, ensure_ascii,
    # separators ", " and ": ", NaN allowed, no default.
    encode = _json.make_encoder({}, _unserializable, _json.encode_basestring_ascii, None,
                                ": ", ", ", False, False, True)
    try:
        return "".join(encode(obj, 0))
    except (TypeError, ValueError):
        import json

        return json.dumps(obj)


def _unserializable(obj: Any) -> Any:
    raise TypeError(obj)
