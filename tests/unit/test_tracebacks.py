"""PID 1's tracebacks open no file (pyinit/runtime/tracebacks.py), in a real interpreter.

Every file the interpreter opens raises the audit event ``open``, the C
printer's own included; the child records them from the moment the hooks are
in place and formats a traceback each way PID 1 could.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import pyinit
from pyinit import closure

SOURCE = str(Path(pyinit.__file__).parent.parent)

CHILD = r'''import gc, os, sys
{first}
from pyinit.runtime import say_to, tracebacks

r, w = os.pipe()
say_to(w)
print("linecache" in sys.modules, "threading" in sys.modules)
tracebacks.without_source()
import threading, traceback
opened = []
sys.addaudithook(lambda ev, args: opened.append(args[0]) if ev == "open" else None)

def fail():
    raise ValueError("boom")

try:
    fail()
except ValueError as exc:
    formatted = "".join(traceback.format_exception(exc))
    sys.excepthook(type(exc), exc, exc.__traceback__)
thread = threading.Thread(target=fail, name="worker")
thread.start()
thread.join()

class Unraisable:
    def __del__(self):
        fail()

Unraisable()
gc.collect()
os.close(w)
said = os.read(r, 1 << 20).decode()
print(repr(opened))
print(formatted.count('child.py", line 14, in fail'), 'raise ValueError' in formatted + said)
print(said.count('child.py", line 14, in fail'), said.count('pyinit: ValueError: boom'))
'''


@pytest.mark.parametrize("first", ["import threading, traceback", "pass"],
                         ids=["loaded", "not-yet-loaded"])
def test_no_traceback_opens_its_source_file(tmp_path: Path, first: str) -> None:
    # PID 1 is the second case: the parent imports neither linecache nor threading,
    # and without_source() puts its lookups and hook where they will be found.
    child = tmp_path / "child.py"  # a real file: "-c" code has no source to look up
    child.write_text(CHILD.replace("{first}", first))
    res = subprocess.run([sys.executable, str(child)], capture_output=True, text=True,
                         timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    # No file opened; the frame is named (file, line, function), without its source;
    # the three hooks said it through say(), which PID 1 points at its log pipe.
    loaded = first != "pass"
    assert res.stdout.splitlines() == [f"{loaded} {loaded}", "[]", "1 False", "3 3"]


def test_pid1_can_format_a_traceback_after_the_pivot() -> None:
    # PID 1 imports traceback only when a hook formats one, maybe after the pivot:
    # then it comes from the modules read into memory before it (pyinit/closure.py).
    # What importing it loads, with without_source()'s linecache in place:
    code = ("import sys\n"
            "from pyinit.runtime import tracebacks\n"
            "tracebacks.without_source()\n"
            "before = set(sys.modules)\n"
            "import traceback\n"
            "print(' '.join(sorted(set(sys.modules) - before - set(sys.builtin_module_names))))\n")
    res = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                         timeout=60, check=False, env={"PYTHONPATH": SOURCE})
    assert res.stderr == ""
    loaded = set(res.stdout.split())
    assert "traceback" in loaded
    assert sorted(loaded - set(closure.MODULES)) == []
