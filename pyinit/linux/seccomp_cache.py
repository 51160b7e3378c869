"""A cache of compiled seccomp programs, so a start does not pay libseccomp again.

libseccomp compiles the default profile (about a thousand BPF instructions for
three architectures) in 15 to 25 ms of CPU here, in every ``pyinit run`` and
``pyinit sandbox``, on the way to the workload: more than a tenth of a
sandbox's start. The program depends only on the profile, libseccomp, the
kernel (libseccomp probes it) and pyinit's compiler, so the parent keeps it in
a file named by a SHA-256 of all of these (in ``seccomp/`` of the caches,
pyinit/linux/cachefile.py: by default ``_cache/seccomp`` in pyinit's package
directory, which only those who can rewrite pyinit's code can write), and
the next start with the same profile loads it instead (a few hundred µs).
A program is kept mode 0600: a profile is its owner's to show.

The file holds its full key, not only its hash: two profiles whose keys
collide in the name still differ here, and the program of another key is
refused.
"""

from __future__ import annotations

import os
import struct
import sys

from pyinit.linux import cachefile, seccomp

MAGIC = b"pyinit seccomp cache 1\n"
_HEAD = struct.Struct("<IIIII")  # key, flags, program, multiplexers, skipped: lengths
Refused = cachefile.Refused
NAME = "seccomp"


def directory(environ: dict[str, str] | os._Environ[str] = os.environ
              ) -> cachefile.Where | None:
    return cachefile.directory(NAME, environ)


def key(profile_repr: str) -> bytes:
    """Everything the compiled program depends on, as bytes."""
    module = seccomp.__file__ or sys.executable
    try:
        st = os.stat(module)
    except OSError:  # a frozen build: the binary holds the compiler
        module = sys.executable
        st = os.stat(module)
    uname = os.uname()
    parts = (MAGIC.decode().strip(), f"libseccomp {seccomp.version()} {seccomp.library_identity()}",
             f"kernel {uname.release} {uname.machine}",
             f"compiler {module} {st.st_ino} {st.st_size} {st.st_mtime_ns}", profile_repr)
    return "\n".join(parts).encode()


def _body(full_key: bytes, filt: seccomp.PreparedFilter) -> bytes:
    skipped = "\n".join(filt.skipped).encode()
    return (_HEAD.pack(len(full_key), filt.flags, len(filt.program), len(filt.multiplexers),
                       len(skipped)) + full_key + filt.program + filt.multiplexers + skipped)


def encode(full_key: bytes, filt: seccomp.PreparedFilter) -> bytes:
    """A cache file's contents."""
    return cachefile.frame(MAGIC, _body(full_key, filt))


def decode(full_key: bytes, data: bytes, what: str) -> seccomp.PreparedFilter:
    """The program in a cache file's contents; raises :class:`Refused`."""
    return _parse(full_key, cachefile.unframe(MAGIC, data, what), what)


def _parse(full_key: bytes, body: bytes, what: str) -> seccomp.PreparedFilter:
    if len(body) < _HEAD.size:
        raise Refused(f"{what}: its lengths do not add up")
    key_len, flags, prog_len, mux_len, skip_len = _HEAD.unpack_from(body)
    if len(body) != _HEAD.size + key_len + prog_len + mux_len + skip_len:
        raise Refused(f"{what}: its lengths do not add up")
    at = _HEAD.size
    if body[at:at + key_len] != full_key:
        raise Refused(f"{what} holds the program of another profile or library")
    at += key_len
    program, at = body[at:at + prog_len], at + prog_len
    mux, at = body[at:at + mux_len], at + mux_len
    skipped = body[at:].decode()
    for prog in (program, mux):
        count, rest = divmod(len(prog), seccomp.SOCK_FILTER_SIZE)
        if rest or count > seccomp.BPF_MAXINSNS or (prog is program and not count):
            raise Refused(f"{what}: not a BPF program ({len(prog)} bytes)")
    return seccomp.PreparedFilter(program, flags, tuple(skipped.split("\n")) if skipped else (),
                                  mux)


def load(where: cachefile.Where, full_key: bytes) -> seccomp.PreparedFilter | None:
    """The cached program for ``full_key``, None when there is none yet.

    Raises :class:`Refused` for a file that is there but not provably its
    owner's, not whole, or another key's.
    """
    name = cachefile.file_name(full_key)
    body = cachefile.read(where, name, MAGIC)
    if body is None:
        return None
    return _parse(full_key, body, os.path.join(str(where), name))


def store(where: cachefile.Where, full_key: bytes, filt: seccomp.PreparedFilter) -> None:
    """Keep ``filt`` for the next start (atomically); raises OSError or Refused."""
    cachefile.write(where, cachefile.file_name(full_key), MAGIC, _body(full_key, filt))
