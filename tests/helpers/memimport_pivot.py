"""Import the supervisor from memory after pivot_root into a root without Python.

usage: memimport_pivot.py ROOT [--no-seal]
Run as root. Reads the closure into memory (pyinit.memimport.snapshot), then,
in a new mount namespace, mounts an empty tmpfs on ROOT, plants in it a
``trio`` package and a module ``planted`` where this interpreter's sys.path
would look (as a hostile container could), pivots into it and detaches the
old root. Then it imports trio, pyinit's log and pyinit's supervisor, runs a trio
loop and writes a log line, tries ``import planted``, and prints one JSON line:
what was imported from where, the open descriptors, and whether ``planted``
could be imported. trio is imported as PID 1 imports it (pyinit.early), with
the closure's stubs (pyinit/memimport.py: STUBS) for what it never uses.
"""

import ctypes
import json
import os
import sys

from pyinit import closure, memimport
from pyinit.linux import syscalls

MS_REC, MS_PRIVATE, MNT_DETACH = 0x4000, 0x40000, 2
root = sys.argv[1]
seal = "--no-seal" not in sys.argv
assert "trio" not in sys.modules and "structlog" not in sys.modules
skipped = sorted(n for n in closure.MODULES if n in sys.modules)  # loaded: not read again
bundle = memimport.snapshot(closure.MODULES, closure.STUBS)
read = sorted(bundle.code)  # each entry goes once its module is imported
bundle.install()
search = [p for p in sys.path if p.startswith("/")]

syscalls.unshare(syscalls.CLONE_NEWNS)
libc = ctypes.CDLL(None, use_errno=True)  # mount(2): a test's setup, not pyinit's code
for source, target, fstype, flags in ((None, b"/", None, MS_REC | MS_PRIVATE),
                                      (b"tmpfs", root.encode(), b"tmpfs", 0)):
    if libc.mount(source, target, fstype, ctypes.c_ulong(flags), None) != 0:
        raise OSError(ctypes.get_errno(), f"mount {target!r}")
for directory in search:  # the container's own "Python", where ours would look
    os.makedirs(root + directory + "/trio", exist_ok=True)
    with open(root + directory + "/trio/__init__.py", "w") as fh:
        fh.write("raise SystemExit('the container trio ran in PID 1')\n")
    with open(root + directory + "/planted.py", "w") as fh:
        fh.write("PLANTED = True\n")
os.mkdir(root + "/old")
os.chdir(root)
syscalls.pivot_root(".", "old")
os.chdir("/")
syscalls.umount2("/old", MNT_DETACH)
os.rmdir("/old")
if seal:
    bundle.seal()

import pyinit.early  # noqa: E402

pyinit.early.load_runtime()
import trio  # noqa: E402

import pyinit.log  # noqa: E402
import pyinit.supervisor  # noqa: E402
from pyinit.log import configure  # noqa: E402

trio.run(trio.sleep, 0)
log, sink = configure("json", "info")
log.info("from.memory", code=len(read), extensions=len(bundle.extensions))
try:
    import planted  # noqa: F401
    planted_imported = True
except ModuleNotFoundError:
    planted_imported = False
fds = []
for fd in range(0, 1024):
    try:
        os.fstat(fd)
    except OSError:
        continue
    fds.append(fd)
print(json.dumps({
    "trio_loader": type(trio.__spec__.loader).__name__,
    "log_loader": type(pyinit.log.__spec__.loader).__name__,
    "structlog_imported": "structlog" in sys.modules,
    "ssl_origin": sys.modules["ssl"].__spec__.origin,
    "openssl_imported": sorted({"_ssl", "_hashlib"} & set(sys.modules)),
    "missing": bundle.missing,
    "code": read,
    "code_left": sorted(bundle.code),
    "extensions": sorted(bundle.extensions),
    "skipped": skipped,
    "planted_imported": planted_imported,
    "fds": fds,
    "sink_fd": sink.fileno(),
}), flush=True)
