"""What a real PID 1 loads to supervise: the bundle's modules, the stubs, nothing else.

``pyinit run``'s PID 1 imports trio from memory after the pivot, with stubs
for the modules trio never uses there (pyinit/memimport.py: STUBS), so
OpenSSL's bindings are never loaded; and it opens no file of the container
for it, though trio dlopen()s a C library by name while it is imported
(pyinit/early.py: import_trio). Read from the host in /proc/<PID 1>/maps while
the workload waits. Where trio comes from its files (``pyinit -- CMD``, a
setup with mount commands), the stubs are never served: the real ssl is
loaded. And a trio that needs a stub when it is imported stops the start with
the one line PID 1 prints when it cannot load its runtime.
"""

from __future__ import annotations

import marshal
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pyinit import memimport
from pyinit.linux import cachefile
from tests.conftest import PYINIT, children, event, events, log_line
from tests.integration.test_run import edit, make_bundle

pytestmark = pytest.mark.root

WAIT = "read go; echo ran"
# What PID 1 must not have mapped: OpenSSL's bindings and libraries, the
# compression modules shutil imports, and any library called libc.so (planted
# in the container's /lib below; the host's C library is libc.so.6).
OPENSSL_AND_CO = ("_ssl.", "libssl.", "_bz2.", "libbz2.", "_lzma.", "liblzma.")


def _mapped_files(pid: int) -> set[str]:
    with open(f"/proc/{pid}/maps") as fh:
        return {f[5].rstrip("\n") for f in (line.split(maxsplit=5) for line in fh) if len(f) == 6
                and f[5].startswith("/")}


def _pid1(parent: int) -> int:
    """The host PID of the container's PID 1 among ``parent``'s children."""
    (pid,) = [c for c in children(parent) if _nspid(c)[-1] == "1"]
    return pid


def _nspid(pid: int) -> list[str]:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("NSpid:"):
                return line.split()[1:]
    raise AssertionError(f"no NSpid in /proc/{pid}/status")


def _maps_while_supervising(argv: list[str], pid1: Any,
                            env: dict[str, str] | None = None
                            ) -> tuple[set[str], list[dict[str, Any]]]:
    """Start ``argv`` (its workload waits for "go" on stdin), read PID 1's mapped
    files once the supervisor is ready, let the workload finish."""
    with subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env) as proc:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:
            seen.append(line)
            ev = log_line(line)
            if ev is not None and ev["event"] == "supervisor.ready":
                break
        mapped = _mapped_files(pid1(proc.pid))
        out, err = proc.communicate("go\n", timeout=60)
    assert (proc.returncode, out) == (0, "ran\n"), "".join(seen) + err
    return mapped, events("".join(seen) + err)


def _forbidden(mapped: set[str]) -> list[str]:
    return sorted(p for p in mapped if os.path.basename(p).startswith(OPENSSL_AND_CO)
                  or os.path.basename(p) == "libc.so")


def _ssl_modules(mapped: set[str]) -> list[str]:
    return sorted(os.path.basename(p).split(".")[0] for p in mapped
                  if os.path.basename(p).startswith("_ssl."))


def test_pid1_of_run_loads_no_openssl_and_opens_no_library_of_the_container(
        tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, WAIT)
    # A library where the loader looks for "libc.so" (any ELF library will
    # do: this one would be mapped into PID 1, its constructors run there).
    lib = tmp_path / "rootfs" / "lib"
    lib.mkdir()
    shutil.copy(_host_zlib(), lib / "libc.so")
    mapped, evs = _maps_while_supervising(
        [PYINIT, "run", "--bundle", str(bundle), "--log-level", "debug", "--log-format",
         "json"], _pid1)
    (loaded,) = [e for e in evs if e["event"] == "runtime.loaded"]
    assert loaded["source"] == "memory"  # trio imported from the bundle, after the pivot
    assert _forbidden(mapped) == []
    assert any(os.path.basename(p).startswith("libc.so.6") for p in mapped)  # the control


def _host_zlib() -> str:
    """The zlib this interpreter has loaded: it needs nothing but libc.so.6."""
    (path,) = {p for p in _mapped_files(os.getpid()) if os.path.basename(p).startswith("libz.")}
    return path


def test_pid1_of_init_mode_imports_the_real_ssl() -> None:
    # `pyinit -- CMD` imports trio from its files, in a thread: no bundle, no stubs.
    mapped, _ = _maps_while_supervising(
        [PYINIT, "--log-level", "debug", "--log-format", "json", "--", "sh", "-c", WAIT],
        lambda pid: pid)
    assert _ssl_modules(mapped) == ["_ssl"]


def test_pid1_of_a_setup_with_mount_commands_imports_the_real_ssl(tmp_path: Path) -> None:
    # A mount command needs trio before the pivot: PID 1 imports it from its files.
    bundle = make_bundle(tmp_path, WAIT)
    edit(bundle, lambda c: c["mounts"].append({
        "destination": "/mnt", "type": "tmpfs", "source": "tmpfs",
        "io.pyinit.premount": [{"path": "/bin/true", "args": ["true"]}]}))
    mapped, evs = _maps_while_supervising(
        [PYINIT, "run", "--bundle", str(bundle), "--log-level", "debug", "--log-format",
         "json"], _pid1)
    (loaded,) = [e for e in evs if e["event"] == "runtime.loaded"]
    assert loaded["source"] == "files"
    assert _ssl_modules(mapped) == ["_ssl"]


def test_a_trio_that_needs_a_stub_when_imported_stops_the_start(tmp_path: Path) -> None:
    # A future trio whose module uses ssl when it is imported, as PID 1 would
    # import it: from a cache of the closure whose code for one trio module is
    # that (written as pyinit writes it, so it is taken).
    env = dict(os.environ, PYINIT_CACHE=str(tmp_path / "cache"))
    argv = [PYINIT, "sandbox", "--log-level", "debug", "--", "sh", "-c", "echo ran"]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False,
                         stdin=subprocess.DEVNULL, env=env)
    assert (res.returncode, res.stdout) == (0, "ran\n"), res.stderr
    where = str(tmp_path / "cache" / memimport.CACHE)
    (name,) = os.listdir(where)
    body = cachefile.read(where, name, memimport.CACHE_MAGIC)
    assert body is not None
    (size,) = memimport._INDEX.unpack_from(body)
    key = marshal.loads(body[memimport._INDEX.size:memimport._INDEX.size + size])[0]
    bundle = memimport.decode_cache(key, body)
    assert bundle is not None
    module = "trio._highlevel_ssl_helpers"
    origin = bundle.code[module][2]
    bundle.code[module] = (compile("import ssl\nssl.create_default_context\n", origin, "exec"),
                           False, origin)
    cachefile.write(where, name, memimport.CACHE_MAGIC, memimport.encode_cache(key, bundle))

    # The workload waits for its stdin, never written: PID 1 must stop it.
    read, write = os.pipe()
    try:
        res = subprocess.run([*argv[:-1], "cat; echo ran"], capture_output=True, text=True,
                             timeout=60, check=False, stdin=read, env=env)
    finally:
        os.close(read)
        os.close(write)
    assert event(res.stderr, "closure.read")["source"] == "cache"
    lines = [line for line in res.stderr.splitlines() if log_line(line) is None]
    assert lines == [
        "pyinit: cannot load its runtime (ImportError: pyinit's PID 1 has no ssl "
        "(ssl.create_default_context was asked for): trio imports it for trio.SSLStream "
        "and trio.open_ssl_over_tcp_stream, which PID 1 never uses "
        "(pyinit/memimport.py: STUBS)); stopping the workload"]
    assert (res.returncode, res.stdout) == (1, "")  # the workload never got to "echo ran"
