"""Files only the caller can have written: pyinit's caches of work done before a start.

A start of ``pyinit run`` or ``pyinit sandbox`` compiles a seccomp program
(pyinit/linux/seccomp_cache.py) and reads the supervisor's code
(pyinit/memimport.py); both depend only on things that rarely change, so they
are kept in files for the next start. What such a file holds ends up as the
workload's filter or as code PID 1 runs, so a cache must never be a way in:

* **Only the caller can have written it.** The caches are off unless
  ``$PYINIT_CACHE`` names their directory (:func:`directory` says why), and
  it must be one nothing the caller runs can write. The directory and its
  parent are opened with ``O_NOFOLLOW`` one component at a time, each
  relative to the one before (no symlink is followed, no path is looked
  at twice), and checked on the descriptor:
  owned by the caller's effective uid, writable by nobody else. The file is
  opened ``O_NOFOLLOW`` in that directory and must be a regular file of the
  caller's, mode 0600, one link. Anything else is :class:`Refused`.
* **Whole.** A file starts with its format's magic line and a CRC-32 of the
  rest; a truncated or altered file does not match and is refused. (Against
  a writer other than the caller, the ownership rules above are the defence:
  any unkeyed digest can be recomputed.) The name is a SHA-256 of the key.
* **Written atomically**: a new file ``O_EXCL``, mode 0600, in the same
  directory, renamed over the old one, so a reader sees a whole file or none.
  At most :data:`KEEP` files stay per cache (fewer for big ones): a write
  drops the oldest.

What the file must hold for this start (its key) is each cache's business.
"""

from __future__ import annotations

import os
import stat
import zlib
from _sha256 import sha256  # hashlib imports OpenSSL's bindings: 6 ms here

ENV = "PYINIT_CACHE"
KEEP = 64  # files kept per cache, unless its writer says fewer
DIGEST_SIZE = 4
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Refused(Exception):
    """A cache file (or directory) that is not provably the caller's own, or not whole."""


class Unavailable(OSError):
    """The directory the caches go in cannot be opened (missing, not the caller's to
    search): no cache, nothing to warn about."""


def directory(name: str, environ: dict[str, str] | os._Environ[str] = os.environ) -> str | None:
    """Where the cache ``name`` lives for this caller, or None for no cache.

    Only where ``$PYINIT_CACHE`` says: no cache by default (issue 9 review 6).
    The ownership rules stop every other user, but not what runs as the caller:
    a sandboxed program (same uid) or a root container without a user namespace,
    given the cache directory as a writable bind (``$XDG_RUNTIME_DIR`` is bound
    for Wayland or D-Bus sockets, ``/run`` as a volume), wrote a file that passed
    every check, and the next start loaded a weaker filter or ran its code in the
    parent. So a cache directory is the caller's explicit choice of a place
    nothing it runs can write.
    """
    chosen = environ.get(ENV)
    if not chosen or chosen == "off":
        return None
    return os.path.join(chosen, name)


def digest(data: bytes) -> bytes:
    """Against a torn or altered file, not an attacker (who could recompute any
    unkeyed digest): CRC-32, since SHA-256 costs 15 ms on the closure's 3 MB."""
    return zlib.crc32(data).to_bytes(4, "little")


def file_name(key: bytes) -> str:
    return sha256(key).hexdigest()


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


def _open_dir(path: str, create: bool) -> int:
    """The cache directory, opened and checked component by component below its parent.

    The parent (``/run/pyinit``, ``$XDG_RUNTIME_DIR/pyinit``) is checked like
    the directory itself: whoever could write it could swap the directory.
    """
    parent, leaf = os.path.split(os.path.normpath(os.path.abspath(path)))
    grand, middle = os.path.split(parent)
    try:
        fd = os.open(grand, _DIR_FLAGS)
    except OSError as exc:
        raise Unavailable(exc.errno, f"{grand}: {exc.strerror}") from None
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
            _check(fd, parent if name == middle else path, regular=False)
        return fd
    except BaseException:
        os.close(fd)
        raise


def unframe(magic: bytes, data: bytes, what: str) -> bytes:
    """The body of a cache file's contents ``data``; raises :class:`Refused`."""
    start = len(magic) + DIGEST_SIZE
    if not data.startswith(magic) or len(data) < start:
        raise Refused(f"{what} is not a {magic.decode().strip()} file")
    body = data[start:]
    if digest(body) != data[len(magic):start]:
        raise Refused(f"{what}: its checksum does not match its contents")
    return body


def frame(magic: bytes, body: bytes) -> bytes:
    return magic + digest(body) + body


def read(where: str, name: str, magic: bytes) -> bytes | None:
    """The body of the cache file ``name`` in ``where``; None when there is none.

    Raises :class:`Refused` for a file or directory that is there but not
    provably the caller's, or not whole.
    """
    what = os.path.join(where, name)
    try:
        dfd = _open_dir(where, create=False)
    except (FileNotFoundError, Unavailable):
        return None
    except OSError as exc:  # ELOOP: a symlink; EACCES ...
        raise Refused(f"{where}: {exc.strerror or exc}") from None
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
            chunks = []
            while size >= 0 and (chunk := os.read(fd, size + 1)):
                chunks.append(chunk)
                size -= len(chunk)
        finally:
            os.close(fd)
    finally:
        os.close(dfd)
    return unframe(magic, b"".join(chunks), what)


def write(where: str, name: str, magic: bytes, body: bytes, keep: int | None = None) -> None:
    """Keep ``body`` as ``name`` (atomically), and at most ``keep`` (:data:`KEEP`)
    files; raises OSError or :class:`Refused`."""
    dfd = _open_dir(where, create=True)
    try:
        temp = f".{name}.{os.getpid()}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=dfd)
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            data = memoryview(frame(magic, body))
            while data:
                data = data[os.write(fd, data):]
        except BaseException:
            os.close(fd)
            os.unlink(temp, dir_fd=dfd)
            raise
        os.close(fd)
        os.rename(temp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        _trim(dfd, name, KEEP if keep is None else keep)
    finally:
        os.close(dfd)


def _trim(dfd: int, kept: str, keep: int) -> None:
    """At most ``keep`` files: the oldest go (only on a write, so rarely)."""
    with os.scandir(dfd) as entries:
        files = [(e.stat(follow_symlinks=False).st_mtime_ns, e.name) for e in entries
                 if e.is_file(follow_symlinks=False) and e.name != kept]
    files.sort()
    for _, name in files[:max(0, len(files) + 1 - keep)]:
        try:
            os.unlink(name, dir_fd=dfd)
        except FileNotFoundError:  # another pyinit trimmed it first
            pass
