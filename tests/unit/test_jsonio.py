"""pyinit/oci/jsonio.py reads and writes exactly as json.loads and json.dumps do.

It exists so the parent reads config.json without ``import json`` (which imports
re and enum); it must never read a document differently, nor report a bad one
differently.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pyinit.oci import jsonio

GOOD = [
    '{"a": 1}',
    '  \n\t{"ociVersion": "1.0.2", "process": {"args": ["sh", "-c", "x"], "env": []}}\r\n ',
    "[]",
    "0",
    "-0.5e-3",
    "123456789012345678901234567890",
    "1.7976931348623157e309",  # inf, as float() reads it
    '"plain"',
    '"\\u00e9\\ud83d\\ude00 \\n \\" \\\\ \\/"',
    '"\\ud800"',  # a lone surrogate: json takes it
    "true",
    "null",
    '{"a": 1, "a": 2}',  # the last one wins
    '{"nested": [{"x": [1, 2.5, null, false, {"y": {}}]}]}',
    '{"k": "é, and a raw non-ASCII character"}',
]

BAD = [
    "",
    "   ",
    "{",
    '{"a": 1,}',
    '{"a": 1} {"b": 2}',  # extra data
    '{"a": 1} x',
    "\ufeff{}",  # a BOM
    "[1, 2",
    '{"a": "\x01"}',  # a control character inside a string (strict)
    "{'a': 1}",
    "01",
    "nan",
    "[NaN, Infinity, -Infinity",
]


def _same(a: Any, b: Any) -> bool:
    """Equal, NaN included; and of the same types all the way down."""
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@pytest.mark.parametrize("text", [*GOOD, "[NaN, Infinity, -Infinity]"])
def test_a_document_reads_as_json_reads_it(text: str) -> None:
    assert _same(jsonio.loads(text), json.loads(text))


@pytest.mark.parametrize("text", BAD)
def test_a_bad_document_fails_as_json_fails(text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as theirs:
        json.loads(text)
    with pytest.raises(json.JSONDecodeError) as ours:
        jsonio.loads(text)
    assert (ours.value.msg, ours.value.pos, str(ours.value)) == \
        (theirs.value.msg, theirs.value.pos, str(theirs.value))


@pytest.mark.parametrize("obj", [
    {"path": "/pyinit/c1", "created": ["/sys/fs/cgroup/pids/pyinit/c1"]},
    {"ociVersion": "1.0.2", "id": "é\u2028\ud800", "pid": 7, "bundle": "/b", "annotations": {}},
    [1, 2.5, None, True, False, float("nan"), float("inf"), 10**30],
    "a string",
    {1: "int key", None: "null key"},
])
def test_an_object_writes_as_json_writes_it(obj: Any) -> None:
    assert jsonio.dumps(obj) == json.dumps(obj)


@pytest.mark.parametrize("obj", [{"a": {1, 2}}, {(1, 2): "tuple key"}])
def test_what_json_cannot_write_fails_as_there(obj: Any) -> None:
    with pytest.raises(TypeError) as theirs:
        json.dumps(obj)
    with pytest.raises(TypeError) as ours:
        jsonio.dumps(obj)
    assert str(ours.value) == str(theirs.value)


def test_a_circular_object_fails_as_there_and_the_next_one_still_writes() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match=r"^Circular reference detected$"):
        jsonio.dumps(loop)
    assert jsonio.dumps([[1], [1]]) == "[[1], [1]]"


def test_reading_a_config_imports_neither_json_nor_re(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"ociVersion": "1.0.2"}')
    code = ("import sys\n"
            "from pyinit.oci import jsonio\n"
            f"doc = jsonio.loads(open({str(tmp_path / 'config.json')!r}).read())\n"
            "print(doc, sorted(m for m in ('json', 're', 'enum') if m in sys.modules))\n")
    res = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                         timeout=60, check=False,
                         env={"PYTHONPATH": str(Path(jsonio.__file__).parents[2])})
    assert (res.stdout, res.stderr) == ("{'ociVersion': '1.0.2'} []\n", "")
