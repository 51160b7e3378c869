"""The supervisor's modules, imported from memory once the root has no Python.

After ``pivot_root`` the container's root is the container's: usually no
Python at all, and whatever is there is the container's to control. So PID 1
must not import anything from a file after the pivot. Today it imports all of
trio and structlog before, on the way to the workload (issue 12). This module
makes the other order possible:

* :func:`snapshot`, before the pivot, reads the compiled code of every module
  in :data:`pyinit.closure.MODULES` (the closure of trio, structlog and
  pyinit's supervisor, computed by :func:`compute` when pyinit is built) into
  memory, as the bytes of their ``.pyc`` files (unmarshalled only when
  imported), and ``dlopen``s their C extensions (the loader
  finds an object already loaded by its path, so initialising one later
  opens no file). Nothing is executed; no descriptor stays open. The
  modules of :data:`pyinit.closure.STUBS` (:data:`STUBS`: what trio imports
  but PID 1 never uses) are served as stubs, never read.
* :func:`cached_snapshot` does the same through one cache file (below), in
  ``pyinit run``'s parent before PID 1 is forked; PID 1 inherits the bundle.
* :meth:`Bundle.seal`, after the pivot, makes the import system serve only
  built-in and frozen modules, modules already loaded, and the bundle: no
  path finder, no ``sys.path``, so no file of the container is ever imported
  by PID 1, even one placed where the host's Python would look.

Kept light: ``importlib.machinery`` is part of the interpreter's start-up.
"""

from __future__ import annotations

import marshal
import os
import struct
import sys
from importlib._bootstrap_external import MAGIC_NUMBER
from importlib.machinery import (
    BuiltinImporter,
    ExtensionFileLoader,
    FrozenImporter,
    ModuleSpec,
    PathFinder,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from types import CodeType, ModuleType
    from typing import NoReturn

    from pyinit.linux.cachefile import Where

# What the supervisor imports: trio and pyinit's own runtime. Not structlog: the
# JSON format's lines no longer need it (pyinit/log.py), and the console format
# imports it in the parent of ``pyinit run``, before PID 1 is forked.
ROOTS = ("trio", "pyinit.log", "pyinit.report", "pyinit.supervisor")

# Modules trio imports but uses only inside functions PID 1 never calls. The
# bundle serves each as a stub instead of the module (and so none of what it
# imports in turn: OpenSSL's libssl and libcrypto, bz2, lzma, shutil, tempfile,
# locale).
# Every attribute of a stub raises ImportError, so a trio that starts using
# one when it is imported fails at once, in the tests that compute the closure
# (:func:`compute` imports the runtime with these stubs), not silently later.
# Only the bundle serves them: the parent, ``pyinit -- CMD`` and a setup that
# imports trio from its files get the real modules.
STUBS = {
    "ctypes.util": "trio's thread cache calls its find_library only while "
                   "pyinit.early.import_trio has put its own in place",
    "hmac": "trio imports it for the cookies of trio.DTLSEndpoint, which PID 1 never uses",
    "idna": "trio imports it to encode host names for getaddrinfo, which PID 1 never calls",
    "ssl": "trio imports it for trio.SSLStream and trio.open_ssl_over_tcp_stream, "
           "which PID 1 never uses",
    "subprocess": "trio imports it for trio.run_process, which PID 1 never calls "
                  "(it spawns the workload itself: pyinit/spawn.py)",
}
# A stub's attributes that exist, as functions that raise when called: what
# pyinit swaps for the time of ``import trio`` (pyinit.early.import_trio).
STUB_FUNCTIONS = {"ctypes.util": ("find_library",)}


def stub_error(name: str, attr: str) -> ImportError:
    return ImportError(f"pyinit's PID 1 has no {name} ({name}.{attr} was asked for): "
                       f"{STUBS[name]} (pyinit/memimport.py: STUBS)", name=name)


def _fill_stub(module: ModuleType) -> None:
    """Make ``module`` the stub of its name: every attribute raises :func:`stub_error`."""
    name = module.__name__

    def missing(attr: str) -> NoReturn:
        if attr.startswith("__") and attr.endswith("__"):  # the import system's probes
            raise AttributeError(f"module {name!r} has no attribute {attr!r}")
        raise stub_error(name, attr)

    def function(attr: str) -> Callable[..., NoReturn]:
        def call(*args: object, **kwargs: object) -> NoReturn:
            raise stub_error(name, attr)
        call.__name__ = call.__qualname__ = attr
        return call

    module.__getattr__ = missing  # type: ignore[method-assign]  # PEP 562
    for attr in STUB_FUNCTIONS.get(name, ()):
        setattr(module, attr, function(attr))


class Bundle:
    """Code objects by module name, and the extension modules already dlopen'ed."""

    def __init__(self, stubs: Iterable[str] = ()) -> None:
        # name -> (marshalled or compiled code, is a package, origin)
        self.code: dict[str, tuple[bytes | CodeType, bool, str]] = {}
        self.extensions: dict[str, str] = {}  # name -> path of the loaded shared object
        self.stubs = frozenset(stubs)  # names served as stubs (STUBS), never read
        if not self.stubs <= STUBS.keys():
            raise ValueError(f"not in STUBS: {sorted(self.stubs - STUBS.keys())}")
        self.missing: list[str] = []  # in the closure, not found here
        self._handles: list[object] = []  # keeps every dlopen'ed object mapped
        self.between: Callable[[], None] | None = None  # called before each module runs

    # ----- the meta-path finder and loader ------------------------------
    def find_spec(self, name: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if name in self.code:
            _, package, origin = self.code[name]
            spec = ModuleSpec(name, self, origin=origin,  # type: ignore[arg-type]
                              is_package=package)  # a loader by protocol, not by class
            spec.has_location = True  # __file__: where it was read, for tracebacks' names
            return spec
        if name in self.extensions:
            where = self.extensions[name]
            return ModuleSpec(name, ExtensionFileLoader(name, where), origin=where)
        if name in self.stubs:
            return ModuleSpec(name, self, origin="pyinit's PID 1 stub")  # type: ignore[arg-type]
        return None

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return None  # the default module object

    def exec_module(self, module: ModuleType) -> None:
        if module.__name__ in self.stubs:
            _fill_stub(module)
            return
        if self.between is not None:
            self.between()
        # Served once: the bytes go before the module runs, and what it allocates
        # reuses their memory (about 2.4 MB in all) instead of growing PID 1's.
        code = self.code.pop(module.__name__)[0]
        if isinstance(code, bytes):
            code = marshal.loads(code)
        exec(code, module.__dict__)

    # ----- the two moments ----------------------------------------------
    def install(self) -> None:
        """Serve the bundle first, before any file (still allowed until :meth:`seal`)."""
        if self not in sys.meta_path:
            sys.meta_path.insert(0, self)

    def seal(self) -> None:
        """From now on: built-in, frozen, already loaded or in the bundle; nothing else."""
        sys.meta_path[:] = [self, BuiltinImporter, FrozenImporter]
        sys.path_hooks.clear()
        sys.path_importer_cache.clear()
        sys.path.clear()


def built_for_here(built_for: dict[str, str]) -> bool:
    """Whether this interpreter and the installed distributions are the closure's.

    The closure is computed at build time. A different Python, or a trio or
    structlog of another version (pyproject allows any newer one), may import
    a module that is not in it; after the seal that import would fail with the
    workload already running. So the bundle is used only where its key holds:
    ``python`` is ``major.minor``, every other key a distribution whose
    ``NAME-VERSION.dist-info`` directory must be on ``sys.path`` (a few stats;
    importlib.metadata would cost more than the snapshot itself).
    """
    if built_for.get("python") != f"{sys.version_info[0]}.{sys.version_info[1]}":
        return False
    dirs = [d for d in sys.path if d and os.path.isdir(d)]
    for dist, version in built_for.items():
        if dist == "python":
            continue
        if not any(os.path.isdir(os.path.join(d, f"{dist}-{version}.dist-info")) for d in dirs):
            return False
    return True


def snapshot(names: Iterable[str], stubs: Iterable[str] = ()) -> Bundle:
    """Read the code of ``names`` (not yet imported ones) and dlopen their C extensions;
    serve ``stubs`` (names of :data:`STUBS`) as stubs.

    Parents come before their submodules, whose search path is the parent's
    package directory; a module that is already imported is skipped.
    """
    import ctypes

    bundle = Bundle(stubs)
    where: dict[str, list[str] | None] = {}  # package -> its submodule search locations
    for name in sorted(names, key=lambda n: (n.count("."), n)):
        loaded = sys.modules.get(name)
        if loaded is not None:
            where[name] = getattr(loaded, "__path__", None)
            continue
        parent = name.rpartition(".")[0]
        if parent and parent not in where and parent in sys.modules:  # not in names
            where[parent] = getattr(sys.modules[parent], "__path__", None)
        search = where.get(parent) if parent else None
        if parent and search is None:
            bundle.missing.append(name)
            continue
        spec = PathFinder.find_spec(name, search)
        if spec is None or spec.loader is None or spec.origin is None:
            bundle.missing.append(name)
            continue
        where[name] = spec.submodule_search_locations
        if isinstance(spec.loader, ExtensionFileLoader):
            bundle._handles.append(ctypes.CDLL(spec.origin, mode=os.RTLD_NOW))
            bundle.extensions[name] = spec.origin
            continue
        code = _cached_bytecode(spec.origin, spec.cached)
        if code is None:  # no valid .pyc: compile now, before the pivot
            code = spec.loader.get_code(name)  # type: ignore[attr-defined]
        bundle.code[name] = (code, spec.submodule_search_locations is not None, spec.origin)
    return bundle


# ----- the cache: one file instead of about 130 -----------------------------
#
# Reading the closure is ~120 find_spec calls, opens and reads (15 to 40 ms
# of every start here, under load). The same bytes, with the identity (inode,
# size, mtime) of every file they came from and of every directory searched,
# go into one file of the caches (pyinit/linux/cachefile.py: by default in
# pyinit's package directory, only its owner can have written it; PID 1
# executes what it holds, as it executes pyinit's own files). A file whose recorded
# identities no longer all hold is stale: the closure is read again. The key
# names the closure's modules this process has imported already (skipped by
# the snapshot): ``run`` and ``sandbox`` keep one file each.

CACHE = "closure"
CACHE_MAGIC = b"pyinit closure cache 1\n"
CACHE_KEEP = 8  # about 2.5 MB each: run, sandbox, a few variants
_INDEX = struct.Struct("<I")


def _identity(path: str) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns


def cache_key(names: Sequence[str]) -> bytes:
    """What the cached closure depends on besides its files: the interpreter, the
    search path, the module list, and which of them are imported already."""
    parts = [CACHE_MAGIC.decode().strip(), sys.version, sys.executable, *sys.path, "",
             *(f"{n}{' loaded' if n in sys.modules else ''}" for n in names)]
    return "\n".join(parts).encode()


def _directories(bundle: Bundle) -> list[str]:
    """Where a new file could change what an import finds: sys.path and every package."""
    dirs = {d for d in sys.path if d and os.path.isdir(d)}
    for _, package, origin in bundle.code.values():
        if package:
            dirs.add(os.path.dirname(origin))
    return sorted(dirs)


def encode_cache(key: bytes, bundle: Bundle) -> bytes:
    """An index (marshalled: names, origins, identities, offsets), then the code."""
    blobs = []
    code = []
    at = 0
    for name, (c, package, origin) in sorted(bundle.code.items()):
        data = c if isinstance(c, bytes) else marshal.dumps(c)
        blobs.append(data)
        code.append((name, package, origin, _identity(origin), at, len(data)))
        at += len(data)
    extensions = [(name, origin, _identity(origin))
                  for name, origin in sorted(bundle.extensions.items())]
    dirs = [(d, _identity(d)) for d in _directories(bundle)]
    index = marshal.dumps((key, code, extensions, dirs))
    return _INDEX.pack(len(index)) + index + b"".join(blobs)


def decode_cache(key: bytes, body: bytes, stubs: Iterable[str] = ()) -> Bundle | None:
    """The bundle in a cache file's body (already checked whole and the caller's);
    None when it is another key's or a file it came from has changed."""
    import ctypes

    (size,) = _INDEX.unpack_from(body)
    stored_key, code, extensions, dirs = marshal.loads(body[_INDEX.size:_INDEX.size + size])
    if stored_key != key:
        return None
    try:
        for path, identity in dirs:
            if _identity(path) != identity:
                return None
        for _, _, origin, identity, _, _ in code:
            if _identity(origin) != identity:
                return None
        for _, origin, identity in extensions:
            if _identity(origin) != identity:
                return None
    except OSError:
        return None
    blob = _INDEX.size + size
    bundle = Bundle(stubs)
    for name, package, origin, _, at, length in code:
        bundle.code[name] = (body[blob + at:blob + at + length], package, origin)
    for name, origin, _ in extensions:
        bundle._handles.append(ctypes.CDLL(origin, mode=os.RTLD_NOW))
        bundle.extensions[name] = origin
    return bundle


def cached_snapshot(names: Sequence[str], where: Where | None,
                    stubs: Iterable[str] = ()) -> tuple[Bundle, str]:
    """:func:`snapshot` of ``names`` and ``stubs`` through the cache in ``where``
    (None: no cache).

    Returns the bundle and where it came from: ``cache``, ``files`` (no cache
    file yet, or a stale one, now replaced) or ``refused: REASON`` (a file
    that is not provably its owner's or not whole, now replaced). Kept
    readable by every user of the install (``public``): it is their code.
    """
    from pyinit.linux import cachefile

    key = cache_key(names)
    how = "files"
    if where is not None:
        try:
            body = cachefile.read(where, cachefile.file_name(key), CACHE_MAGIC)
            bundle = decode_cache(key, body, stubs) if body is not None else None
            if bundle is not None:
                return bundle, "cache"
        except cachefile.Refused as exc:
            how = f"refused: {exc}"
        except Exception as exc:  # a whole file of the caller's, but not one we wrote
            how = f"refused: {where}: unreadable ({type(exc).__name__}: {exc})"
    bundle = snapshot(names, stubs)
    if where is not None and not bundle.missing:
        try:
            cachefile.write(where, cachefile.file_name(key), CACHE_MAGIC,
                            encode_cache(key, bundle), keep=CACHE_KEEP, public=True)
        except (OSError, cachefile.Refused):
            pass  # the next start reads the files again
    return bundle, how


def _cached_bytecode(source: str, cached: str | None) -> bytes | None:
    """The marshalled code in ``cached`` if it is a valid .pyc of ``source``, else None.

    Only read, not unmarshalled: that is most of an import's cost beyond
    executing the module, and it can wait until after the workload started.
    A timestamp-checked .pyc must match the source's mtime and size, as for
    the import system; an unchecked hash-based one is taken as it is.
    """
    if cached is None:
        return None
    try:
        with open(cached, "rb") as fh:
            data = fh.read()
        if data[:4] != MAGIC_NUMBER or len(data) < 16:
            return None
        flags = int.from_bytes(data[4:8], "little")
        if flags == 0:  # timestamp-based
            st = os.stat(source)
            if (int.from_bytes(data[8:12], "little") != int(st.st_mtime) & 0xFFFFFFFF
                    or int.from_bytes(data[12:16], "little") != st.st_size & 0xFFFFFFFF):
                return None
        elif flags & 0b10:  # hash-based and checked: leave it to the import system
            return None
    except OSError:
        return None
    return data[16:]


_COMPUTE = """\
import sys
sys.path[:0] = sys.argv[1].split(":")
from pyinit import memimport  # PID 1 has it (the parent imported it): not counted
memimport.Bundle(memimport.STUBS).install()  # as in PID 1: the stubs, not the modules
before = set(sys.modules)
import pyinit.early
pyinit.early.load_runtime()
for root in sys.argv[2:]:
    __import__(root)
names = set(sys.modules) - before - set(sys.builtin_module_names) - set(memimport.STUBS)
print("\\n".join(sorted(n for n in names if getattr(sys.modules[n], "__spec__", None)
                        and sys.modules[n].__spec__.origin not in (None, "frozen"))))
"""


def compute(python: str = sys.executable, path: Sequence[str] = ()) -> list[str]:
    """The closure: every module a fresh interpreter that has imported this one
    loads for the supervisor, with :data:`STUBS` served as stubs.

    Run once at build time (``python -m pyinit.memimport``), not at start: it
    imports all of trio in a child interpreter (-S: without ``site``, so only
    what the supervisor itself needs is counted). A module of trio that uses a
    stub when it is imported fails here, with its traceback.
    """
    import subprocess

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # pyinit's parent
    search = [here, *(path or sys.path)]
    res = subprocess.run([python, "-I", "-S", "-c", _COMPUTE,
                          ":".join(p for p in search if p), *ROOTS],
                         capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"the supervisor cannot be imported with pyinit's stubs:\n"
                           f"{res.stderr}")
    return res.stdout.split()


def distributions(names: Sequence[str]) -> dict[str, str]:
    """The key of :func:`built_for_here`: Python's version and every third-party
    distribution that provides a top-level module of ``names``."""
    from importlib import metadata

    key = {"python": f"{sys.version_info[0]}.{sys.version_info[1]}"}
    tops = {name.partition(".")[0] for name in names}
    for top, dists in sorted(metadata.packages_distributions().items()):
        if top in tops and top != "pyinit":
            for dist in dists:
                key[dist.lower().replace("-", "_")] = metadata.version(dist)
    return dict(sorted(key.items()))


def write_closure(names: Sequence[str], built_for: dict[str, str]) -> str:
    """The text of pyinit/closure.py for ``names``."""
    lines = ['"""Generated by ``python -m pyinit.memimport``: the modules the supervisor needs.',
             "",
             "MODULES: what :func:`pyinit.memimport.snapshot` reads into memory before",
             "pivot_root; STUBS: what it serves as stubs instead (pyinit.memimport.STUBS).",
             "tests/integration/test_memimport.py checks both against the installed trio.",
             "BUILT_FOR: where they hold (:func:`pyinit.memimport.built_for_here`).",
             '"""', "", "BUILT_FOR = {"]
    lines += [f'    "{dist}": "{version}",' for dist, version in built_for.items()]
    lines += ["}", "", "MODULES = ("]
    lines += [f'    "{name}",' for name in names]
    lines += [")", "", "STUBS = ("]
    lines += [f'    "{name}",' for name in sorted(STUBS)]
    lines += [")", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    target = os.path.join(os.path.dirname(os.path.abspath(__file__)), "closure.py")
    with open(target, "w", encoding="utf-8") as fh:
        modules = compute()
        fh.write(write_closure(modules, distributions(modules)))
    print(f"wrote {target}")
