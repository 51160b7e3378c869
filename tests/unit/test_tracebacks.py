"""PID 1's tracebacks open no file (pyinit/runtime/tracebacks.py), in a real interpreter.

Every file the interpreter opens raises the audit event ``open``, the C
printer's own included; the child records them from the moment the hooks are
in place and formats a traceback each way PID 1 could.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CHILD = r'''import gc, os, sys, threading, traceback
from pyinit.runtime import say_to, tracebacks

r, w = os.pipe()
say_to(w)
tracebacks.without_source()
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
print(formatted.count('child.py", line 11, in fail'), 'raise ValueError' in formatted + said)
print(said.count('child.py", line 11, in fail'), said.count('pyinit: ValueError: boom'))
'''


def test_no_traceback_opens_its_source_file(tmp_path: Path) -> None:
    child = tmp_path / "child.py"  # a real file: "-c" code has no source to look up
    child.write_text(CHILD)
    res = subprocess.run([sys.executable, str(child)], capture_output=True, text=True,
                         timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    # No file opened; the frame is named (file, line, function), without its source;
    # the three hooks said it through say(), which PID 1 points at its log pipe.
    assert res.stdout.splitlines() == ["[]", "1 False", "3 3"]
