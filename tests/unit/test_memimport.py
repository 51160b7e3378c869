"""pyinit.memimport without a pivot: what is read, and what is imported from it."""

from __future__ import annotations

import ctypes
import marshal
import os
import py_compile
import shutil
import sys
from importlib.util import cache_from_source, module_from_spec
from pathlib import Path
from types import ModuleType

import pytest

from pyinit import early, memimport


def _package(tmp_path: Path, name: str) -> Path:
    pkg = tmp_path / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text("WHO = 'package'\n")
    (pkg / "mod.py").write_text("from . import WHO\nVALUE = WHO + ' and module'\n")
    for source in pkg.glob("*.py"):
        py_compile.compile(str(source), doraise=True)
    return pkg


def test_a_snapshot_imports_after_its_files_are_gone(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    name = "pyinit_memtest_pkg"
    _package(tmp_path, name)
    monkeypatch.syspath_prepend(str(tmp_path))
    bundle = memimport.snapshot([f"{name}.mod", name])
    assert sorted(bundle.code) == [name, f"{name}.mod"] and bundle.missing == []
    shutil.rmtree(tmp_path / name)  # no file left to import from
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    bundle.install()
    ran: list[str] = []
    # PID 1 polls its signals there, before each module it executes.
    bundle.between = lambda: ran.append(",".join(sorted(k for k in sys.modules if name in k)))
    try:
        mod = __import__(f"{name}.mod", fromlist=["VALUE"])
        assert ran == [name, f"{name},{name}.mod"]  # before each of the two ran
        assert mod.VALUE == "package and module"
        assert mod.__spec__.loader is bundle
        assert mod.__file__ == str(tmp_path / name / "mod.py")
        assert bundle.code == {}  # served once: the bytes are not kept
    finally:
        for key in (name, f"{name}.mod"):
            sys.modules.pop(key, None)


def test_a_module_not_found_is_reported_missing(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    bundle = memimport.snapshot(["pyinit_memtest_absent", "pyinit_memtest_absent.sub"])
    assert bundle.missing == ["pyinit_memtest_absent", "pyinit_memtest_absent.sub"]
    assert bundle.code == {}


def test_a_stale_pyc_is_not_taken(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("X = 1\n")
    py_compile.compile(str(source), doraise=True)
    cached = cache_from_source(str(source))
    data = memimport._cached_bytecode(str(source), cached)
    assert data == Path(cached).read_bytes()[16:]
    st = source.stat()
    os.utime(source, (st.st_atime, st.st_mtime + 10))  # the source changed since
    assert memimport._cached_bytecode(str(source), cached) is None
    assert memimport._cached_bytecode(str(source), None) is None
    assert memimport._cached_bytecode(str(source), str(tmp_path / "absent.pyc")) is None


def test_a_checked_hash_pyc_is_left_to_the_import_system(tmp_path: Path) -> None:
    source = tmp_path / "h.py"
    source.write_text("X = 2\n")
    py_compile.compile(str(source), doraise=True,
                       invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
    assert memimport._cached_bytecode(str(source), cache_from_source(str(source))) is None
    py_compile.compile(str(source), doraise=True,
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    assert memimport._cached_bytecode(str(source), cache_from_source(str(source))) is not None


def test_the_bundle_is_used_only_where_its_build_key_holds(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    (tmp_path / "trio-9.9.dist-info").mkdir()
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    monkeypatch.setattr(sys, "path", [str(tmp_path / "nothing"), str(tmp_path)])
    assert memimport.built_for_here({"python": here, "trio": "9.9"}) is True
    # Another Python, another trio, a dependency not installed: files, not memory.
    assert memimport.built_for_here({"python": "2.7", "trio": "9.9"}) is False
    assert memimport.built_for_here({"python": here, "trio": "9.8"}) is False
    assert memimport.built_for_here({"python": here, "trio": "9.9", "attrs": "1"}) is False
    assert memimport.built_for_here({}) is False


def test_a_cached_closure_is_stale_once_a_file_changes(tmp_path: Path) -> None:
    source = tmp_path / "cachedmod.py"
    source.write_text("VALUE = 1\n")
    bundle = memimport.Bundle()
    bundle.code["cachedmod"] = (marshal.dumps(compile("VALUE = 1\n", str(source), "exec")),
                                False, str(source))
    body = memimport.encode_cache(b"key", bundle)
    back = memimport.decode_cache(b"key", body)
    assert back is not None and back.code == bundle.code
    assert memimport.decode_cache(b"another key", body) is None
    os.utime(source, ns=(1, 1))  # the file it came from changed
    assert memimport.decode_cache(b"key", body) is None


def test_the_closure_key_names_what_is_imported_already() -> None:
    assert b"\nos loaded\n" in memimport.cache_key(["os", "nosuchmodule_xyz"]) + b"\n"
    assert memimport.cache_key(["os", "nosuchmodule_xyz"]).endswith(b"\nnosuchmodule_xyz")


def _stub(name: str) -> ModuleType:
    """The module PID 1's bundle serves for ``name``, without installing the bundle."""
    bundle = memimport.Bundle([name])
    spec = bundle.find_spec(name)
    assert spec is not None and spec.loader is bundle
    module = module_from_spec(spec)
    bundle.exec_module(module)
    return module


def test_every_attribute_of_a_stub_raises_import_error() -> None:
    ssl = _stub("ssl")
    with pytest.raises(ImportError) as caught:
        ssl.SSLContext  # noqa: B018
    assert str(caught.value) == (
        "pyinit's PID 1 has no ssl (ssl.SSLContext was asked for): trio imports it for "
        "trio.SSLStream and trio.open_ssl_over_tcp_stream, which PID 1 never uses "
        "(pyinit/memimport.py: STUBS)")
    assert caught.value.name == "ssl"
    # Loud, not quietly false: hasattr() lets an ImportError through.
    with pytest.raises(ImportError, match=r"^pyinit's PID 1 has no ssl \(ssl.OP_ALL was "):
        hasattr(ssl, "OP_ALL")
    assert repr(ssl) == "<module 'ssl' (pyinit's PID 1 stub)>"


def test_from_a_stub_import_name_raises_the_stubs_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "hmac", _stub("hmac"))
    with pytest.raises(ImportError) as caught:
        exec("from hmac import digest", {})
    assert str(caught.value) == (
        "pyinit's PID 1 has no hmac (hmac.digest was asked for): trio imports it for the "
        "cookies of trio.DTLSEndpoint, which PID 1 never uses (pyinit/memimport.py: STUBS)")


def test_the_import_systems_probes_of_a_stub_are_plain_attribute_errors() -> None:
    idna = _stub("idna")
    assert hasattr(idna, "__path__") is False  # not a package: `import idna.core` fails
    assert idna.__name__ == "idna"


def test_ctypes_utils_stub_has_find_library_that_raises_when_called() -> None:
    util = _stub("ctypes.util")
    find_library = util.find_library  # there to be swapped by pyinit.early.import_trio
    with pytest.raises(ImportError) as caught:
        find_library("pthread")
    assert str(caught.value) == (
        "pyinit's PID 1 has no ctypes.util (ctypes.util.find_library was asked for): "
        "trio's thread cache calls its find_library only while pyinit.early.import_trio "
        "has put its own in place (pyinit/memimport.py: STUBS)")


def test_a_bundle_serves_only_the_stubs_it_was_given() -> None:
    # snapshot() without stubs (and a bundle read from the cache without them)
    # serves none: only container._read_runtime asks for the closure's.
    assert memimport.Bundle().find_spec("ssl") is None
    assert memimport.snapshot([]).find_spec("ssl") is None
    assert memimport.snapshot([], ["ssl"]).find_spec("hmac") is None
    with pytest.raises(ValueError, match=r"^not in STUBS: \['json'\]$"):
        memimport.Bundle(["ssl", "json"])


def test_trio_is_given_the_loaded_libc_which_names_threads() -> None:
    # What trio's thread cache dlopen()s during pyinit.early.import_trio: the C
    # library already loaded, matched by its soname, with pthread_setname_np in
    # it (tests/integration/test_pid1_runtime.py: no file is opened for it).
    name = early.loaded_libc("pthread")
    assert name == "libc.so.6"  # glibc here (os.confstr: CS_GNU_LIBC_VERSION)
    libc = ctypes.CDLL(name)
    assert hasattr(libc, "pthread_setname_np")
