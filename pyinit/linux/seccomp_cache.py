"""A cache of compiled seccomp programs, so a start does not pay libseccomp again.

libseccomp compiles the default profile (about a thousand BPF instructions for
three architectures) in 15 to 25 ms of CPU here, in every ``pyinit run`` and
``pyinit sandbox``, on the way to the workload: more than a tenth of a
sandbox's start. The program depends only on the profile, libseccomp, the
kernel (libseccomp probes it) and pyinit's compiler, so the parent keeps it in
a file named by a SHA-256 of all of these, and the next start with the same
profile loads it instead (a few hundred µs).

A cache must never be a way to hand the workload a weaker filter. So:

* **Only the caller can have written it.** The directory is root's
  ``/run/pyinit/seccomp`` for root, ``$XDG_RUNTIME_DIR/pyinit/seccomp`` for
  anyone else (no cache when that is unset), or ``$PYINIT_SECCOMP_CACHE``
  (``off`` disables it). Every directory from the cache's parent down and the
  file itself are opened with ``O_NOFOLLOW`` relative to the one before
  (no symlink is followed), and checked on the open descriptor (no path is
  looked at twice): owned by the caller's effective uid, not writable by group
  or others; the file is a regular file, mode 0600, one link. Anything else is
  refused (``seccomp.cache_refused``) and the program is compiled.
* **It is the program for this key, whole.** The file holds its full key
  (not only its hash: two profiles whose keys collide in the name still
  differ here) and a SHA-256 of its contents; a truncated or altered file
  does not match and is refused, then replaced.
* **Written atomically**: a new file ``O_EXCL`` with mode 0600 in the same
  directory, renamed over the old one, so a reader sees a whole file or none.
  At most :data:`KEEP` programs stay: a store drops the oldest.

The cache only ever avoids work: a miss, a refusal or a failure to write costs
a compile, never the start.
"""

from __future__ import annotations

import os
import stat
import struct
import sys
from _sha256 import sha256  # hashlib imports OpenSSL's bindings: 6 ms here

from pyinit.linux import seccomp

MAGIC = b"pyinit seccomp cache 1\n"
_HEAD = struct.Struct("<IIIII")  # key, flags, program, multiplexers, skipped: lengths
_DIGEST = 32
ENV = "PYINIT_SECCOMP_CACHE"
ROOT_DIR = "/run/pyinit/seccomp"
KEEP = 64  # programs kept (about 15 kB each for the default profile)


class Refused(Exception):
    """A cache file (or directory) that is not provably the caller's own."""


def directory(environ: dict[str, str] | os._Environ[str] = os.environ) -> str | None:
    """Where the cache lives for this caller, or None for no cache."""
    chosen = environ.get(ENV)
    if chosen == "off":
        return None
    if chosen:
        return chosen
    if os.geteuid() == 0:
        return ROOT_DIR
    runtime = environ.get("XDG_RUNTIME_DIR")
    return os.path.join(runtime, "pyinit", "seccomp") if runtime else None


def key(profile_repr: str) -> bytes:
    """Everything the compiled program depends on, as bytes."""
    module = seccomp.__file__ or sys.executable
    try:
        st = os.stat(module)
    except OSError:  # a frozen build: the binary holds the compiler
        module = sys.executable
        st = os.stat(module)
    uname = os.uname()
    parts = (MAGIC.decode().strip(), f"libseccomp {seccomp.version()}",
             f"kernel {uname.release} {uname.machine}",
             f"compiler {module} {st.st_ino} {st.st_size} {st.st_mtime_ns}", profile_repr)
    return "\n".join(parts).encode()


def file_name(full_key: bytes) -> str:
    return sha256(full_key).hexdigest()


def _check(fd: int, what: str, regular: bool) -> None:
    st = os.fstat(fd)
    if st.st_uid != os.geteuid():
        raise Refused(f"{what} is owned by uid {st.st_uid}, not {os.geteuid()}")
    if regular:
        if not stat.S_ISREG(st.st_mode):
            raise Refused(f"{what} is not a regular file")
        if stat.S_IMODE(st.st_mode) != 0o600:
            raise Refused(f"{what} has mode {stat.S_IMODE(st.st_mode):04o}, not 0600")
        if st.st_nlink != 1:
            raise Refused(f"{what} has {st.st_nlink} links, not 1")
    elif st.st_mode & 0o022:
        raise Refused(f"{what} is writable by group or others "
                      f"(mode {stat.S_IMODE(st.st_mode):04o})")


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _open_dir(path: str, create: bool) -> int:
    """The cache directory, opened and checked component by component below its parent.

    The parent (``/run/pyinit``, ``$XDG_RUNTIME_DIR/pyinit``) is checked like
    the directory itself: whoever could write it could swap the directory.
    """
    parent, leaf = os.path.split(os.path.normpath(os.path.abspath(path)))
    grand, middle = os.path.split(parent)
    fd = os.open(grand, _DIR_FLAGS)
    try:
        for name in (middle, leaf) if middle else (leaf,):
            try:
                sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(name, 0o700, dir_fd=fd)
                except FileExistsError:
                    pass
                sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = sub
            _check(fd, os.path.join(grand, middle) if name == middle else path, regular=False)
        return fd
    except BaseException:
        os.close(fd)
        raise


def encode(full_key: bytes, filt: seccomp.PreparedFilter) -> bytes:
    skipped = "\n".join(filt.skipped).encode()
    body = (_HEAD.pack(len(full_key), filt.flags, len(filt.program), len(filt.multiplexers),
                       len(skipped)) + full_key + filt.program + filt.multiplexers + skipped)
    return MAGIC + sha256(body).digest() + body


def decode(full_key: bytes, data: bytes, what: str) -> seccomp.PreparedFilter:
    start = len(MAGIC) + _DIGEST
    if not data.startswith(MAGIC) or len(data) < start + _HEAD.size:
        raise Refused(f"{what} is not a pyinit seccomp cache file")
    body = data[start:]
    if sha256(body).digest() != data[len(MAGIC):start]:
        raise Refused(f"{what}: its checksum does not match its contents")
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


def load(where: str, full_key: bytes) -> seccomp.PreparedFilter | None:
    """The cached program for ``full_key``, None when there is none yet.

    Raises :class:`Refused` for a file or directory that is there but not
    provably the caller's, or not whole.
    """
    name = file_name(full_key)
    what = os.path.join(where, name)
    try:
        dfd = _open_dir(where, create=False)
    except FileNotFoundError:
        return None
    try:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                         dir_fd=dfd)
        except FileNotFoundError:
            return None
        except OSError as exc:  # ELOOP: a symlink
            raise Refused(f"{what}: {exc.strerror}") from None
        try:
            _check(fd, what, regular=True)
            size = os.fstat(fd).st_size
            data = os.pread(fd, size + 1, 0)
        finally:
            os.close(fd)
    finally:
        os.close(dfd)
    return decode(full_key, data, what)


def store(where: str, full_key: bytes, filt: seccomp.PreparedFilter) -> None:
    """Keep ``filt`` for the next start (atomically); raises OSError or Refused."""
    name = file_name(full_key)
    dfd = _open_dir(where, create=True)
    try:
        temp = f".{name}.{os.getpid()}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=dfd)
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            data = encode(full_key, filt)
            if os.write(fd, data) != len(data):
                raise OSError("short write")
        except BaseException:
            os.close(fd)
            os.unlink(temp, dir_fd=dfd)
            raise
        os.close(fd)
        os.rename(temp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        _trim(dfd, name)
    finally:
        os.close(dfd)


def _trim(dfd: int, kept: str) -> None:
    """At most :data:`KEEP` programs: the oldest go (only on a miss, so rarely)."""
    with os.scandir(dfd) as entries:
        files = [(e.stat(follow_symlinks=False).st_mtime_ns, e.name) for e in entries
                 if e.is_file(follow_symlinks=False) and e.name != kept]
    files.sort()
    for _, name in files[:max(0, len(files) + 1 - KEEP)]:
        try:
            os.unlink(name, dir_fd=dfd)
        except FileNotFoundError:  # another pyinit trimmed it first
            pass
