"""Files only the code's own writers can have written: pyinit's caches of work done before a start.

A start of ``pyinit run`` or ``pyinit sandbox`` compiles a seccomp program
(pyinit/linux/seccomp_cache.py) and reads the supervisor's code
(pyinit/memimport.py); both depend only on things that rarely change, so they
are kept in files for the next start. What such a file holds ends up as the
workload's filter or as code the parent and PID 1 run, so a cache must never
be a way in: whoever can write a cache file must already be able to rewrite
pyinit itself. There are two places (:func:`directory`):

* **By default, pyinit's own package directory**, ``_cache/NAME`` beside
  ``pyinit/__init__.py``, as Python keeps ``__pycache__``. It is used only
  while the package directory and ``__init__.py`` have one owner and nobody
  else can write them, and every directory and file of the cache is that
  owner's, writable by nobody else, on the package's filesystem. Only a
  process of that owner writes it (root's first start for a root install,
  the user's own for their venv); everyone else only reads it. Whoever can
  write there can rewrite ``pyinit/*.py`` (or ``__pycache__``) too: the cache
  gives nobody a power they lack (docs/security.md rule 9 says it precisely).
* **``$PYINIT_CACHE``, when set** (``off``: no cache at all): a directory of
  the caller's that nothing it runs can write. The directory and its parent
  are owned by the caller's effective uid and writable by nobody else.

Either way every directory is opened with ``O_NOFOLLOW`` one component at a
time, each relative to the one before (no symlink is followed, no path is
looked at twice), and checked on the descriptor; the file is opened
``O_NOFOLLOW`` in it and must be a regular file of the owner's with one
link, mode 0600 (0644 for a file of the package cache that every user of
the install may read). Anything else is :class:`Refused`.

* **Whole.** A file starts with its format's magic line and a CRC-32 of the
  rest; a truncated or altered file does not match and is refused. (Against
  a writer other than the owner, the ownership rules above are the defence:
  any unkeyed digest can be recomputed.) The name is a SHA-256 of the key.
* **Written atomically**: a new file ``O_EXCL`` in the same directory,
  renamed over the old one, so a reader sees a whole file or none, and
  concurrent writers each rename a whole file. At most :data:`KEEP` files
  stay per cache (fewer for big ones): a write drops the oldest.

What the file must hold for this start (its key) is each cache's business.
"""

from __future__ import annotations

import os
import stat
import sys
import zlib
from _sha256 import sha256  # hashlib imports OpenSSL's bindings: 6 ms here

ENV = "PYINIT_CACHE"
SUBDIR = "_cache"  # of pyinit's package directory: the default place
KEEP = 64  # files kept per cache, unless its writer says fewer
DIGEST_SIZE = 4
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Refused(Exception):
    """A cache file (or directory) that is not provably its owner's, or not whole."""


class Unavailable(OSError):
    """No cache here, nothing to warn about: the directory cannot be opened (missing,
    not the caller's to search), or it is not this process's to write, or pyinit's
    package directory is not fit to hold one (the reason is the message)."""


class Package:
    """The default place of the cache ``name``: ``_cache/NAME`` in pyinit's package directory.

    ``package`` is the directory the import system found pyinit in; it is
    opened by that path (following symlinks, as the import did), everything
    below it one component at a time without following any.
    """

    __slots__ = ("name", "package")

    def __init__(self, package: str, name: str) -> None:
        self.package = package
        self.name = name

    def __str__(self) -> str:
        return os.path.join(self.package, SUBDIR, self.name)

    def __repr__(self) -> str:
        return f"Package({self.package!r}, {self.name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Package) and (self.package, self.name) == (other.package,
                                                                             other.name)

    def __hash__(self) -> int:
        return hash((self.package, self.name))


Where = str | Package  # an explicit $PYINIT_CACHE directory, or the package's


def directory(name: str, environ: dict[str, str] | os._Environ[str] = os.environ
              ) -> Where | None:
    """Where the cache ``name`` lives for this start, or None for no cache.

    ``$PYINIT_CACHE=DIR``: ``DIR/NAME``, which must be the caller's own and
    one nothing the caller runs can write: issue 9 review 6 had a sandboxed
    program (same uid) given such a directory to write (``$XDG_RUNTIME_DIR``
    is bound for Wayland or D-Bus sockets, ``/run`` as a volume) plant a file
    that passed every check, and the next start loaded a weaker filter or ran
    its code in the parent. ``off``: no cache.

    Unset (or empty): pyinit's own package directory (:class:`Package`), whose
    writers can rewrite pyinit's code anyway (the drop-in, images/, included:
    its modules are files). Not in a frozen build (PyInstaller and the like):
    its code is inside the executable, and the directory its modules claim to
    come from proves nothing about who can change that.
    """
    chosen = environ.get(ENV)
    if chosen == "off":
        return None
    if chosen:
        return os.path.join(chosen, name)
    package = sys.modules.get("pyinit")
    origin = getattr(package, "__file__", None)
    if getattr(sys, "frozen", False) or not origin:
        return None
    return Package(os.path.dirname(os.path.abspath(origin)), name)


def digest(data: bytes) -> bytes:
    """Against a torn or altered file, not an attacker (who could recompute any
    unkeyed digest): CRC-32, since SHA-256 costs 15 ms on the closure's 3 MB."""
    return zlib.crc32(data).to_bytes(4, "little")


def file_name(key: bytes) -> str:
    return sha256(key).hexdigest()


def _check(fd: int, what: str, owner: int, regular: bool, dev: int | None = None,
           modes: tuple[int, ...] = (0o600,)) -> None:
    st = os.fstat(fd)
    if st.st_uid != owner:
        raise Refused(f"{what} is owned by uid {st.st_uid}, not {owner}")
    if dev is not None and st.st_dev != dev:
        raise Refused(f"{what} is not on the filesystem of pyinit's package")
    if regular:
        if not stat.S_ISREG(st.st_mode):
            raise Refused(f"{what} is not a regular file")
        if stat.S_IMODE(st.st_mode) not in modes:
            raise Refused(f"{what} has mode {stat.S_IMODE(st.st_mode):04o}, not "
                          f"{' or '.join(f'{m:04o}' for m in modes)}")
        if st.st_nlink != 1:
            raise Refused(f"{what} has {st.st_nlink} links, not 1")
    elif st.st_mode & 0o022:
        raise Refused(f"{what} is writable by group or others "
                      f"(mode {stat.S_IMODE(st.st_mode):04o})")


def _open_dir(path: str, create: bool) -> int:
    """The ``$PYINIT_CACHE`` directory, opened and checked component by component
    below its parent.

    The parent (``DIR`` of ``DIR/seccomp``) is checked like the directory
    itself: whoever could write it could swap the directory.
    """
    parent, leaf = os.path.split(os.path.normpath(os.path.abspath(path)))
    grand, middle = os.path.split(parent)
    try:
        fd = os.open(grand, _DIR_FLAGS)
    except OSError as exc:
        raise Unavailable(exc.errno, f"{grand}: {exc.strerror}") from None
    try:
        for name in (middle, leaf) if middle else (leaf,):
            sub = _open_sub(fd, name, create, 0o700)
            os.close(fd)
            fd = sub
            _check(fd, parent if name == middle else path, os.geteuid(), regular=False)
        return fd
    except BaseException:
        os.close(fd)
        raise


def _open_sub(fd: int, name: str, create: bool, mode: int) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=fd)
    except FileNotFoundError:
        if not create:
            raise
    try:
        os.mkdir(name, mode, dir_fd=fd)
    except FileExistsError:  # another start made it first
        pass
    return os.open(name, _DIR_FLAGS, dir_fd=fd)


def _open_package(where: Package, create: bool) -> tuple[int, int]:
    """The package cache's directory and its owner (the package's); raises
    :class:`Unavailable` (no cache, nothing wrong) or :class:`Refused`
    (something in ``_cache`` that its owner did not make).

    The package directory and its ``__init__.py`` (the file Python ran, symlinks
    followed as the import did) must have one owner and be writable by nobody
    else: otherwise no cache, so that "the code has one writer, the cache's
    owner" is checked here rather than assumed (docs/security.md rule 9). ``_cache`` and the
    cache's directory below it must be that owner's, writable by nobody else,
    on the same filesystem (a volume mounted there is not the package's; a
    file's own device is not compared: overlayfs may report its layer's).
    Created (mode 0755, so every user of the install can read) only by a
    process of the owner's, when ``create``.
    """
    package = where.package
    try:
        fd = os.open(package, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise Unavailable(exc.errno, f"{package}: {exc.strerror}") from None
    try:
        top = os.fstat(fd)
        owner = top.st_uid
        try:
            init = os.stat("__init__.py", dir_fd=fd)
        except OSError as exc:
            raise Unavailable(exc.errno, f"{package}/__init__.py: {exc.strerror}") from None
        for what, st in ((package, top), (os.path.join(package, "__init__.py"), init)):
            if st.st_uid != owner:
                raise Unavailable(f"{what} is owned by uid {st.st_uid}, not {owner} (the "
                                  f"package directory's): no cache")
            if st.st_mode & 0o022:
                raise Unavailable(f"{what} is writable by group or others (mode "
                                  f"{stat.S_IMODE(st.st_mode):04o}): no cache")
        if create and os.geteuid() != owner:
            raise Unavailable(f"{package} is uid {owner}'s: only its owner writes its cache, "
                              f"not uid {os.geteuid()}")
        for name, what in ((SUBDIR, os.path.join(package, SUBDIR)), (where.name, str(where))):
            sub = _open_sub(fd, name, create, 0o755)
            os.close(fd)
            fd = sub
            _check(fd, what, owner, regular=False, dev=top.st_dev)
            if create and stat.S_IMODE(os.fstat(fd).st_mode) != 0o755:
                os.fchmod(fd, 0o755)  # whatever the umask: readable by every user
        return fd, owner
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


def read(where: Where, name: str, magic: bytes) -> bytes | None:
    """The body of the cache file ``name`` in ``where``; None when there is none
    (or, in the package's cache, none this process may read or use).

    Raises :class:`Refused` for a file or directory that is there but not
    provably its owner's, or not whole.
    """
    what = os.path.join(str(where), name)
    try:
        if isinstance(where, Package):
            dfd, owner = _open_package(where, create=False)
            modes: tuple[int, ...] = (0o600, 0o644)
        else:
            dfd, owner, modes = _open_dir(where, create=False), os.geteuid(), (0o600,)
    except (FileNotFoundError, Unavailable):
        return None
    except PermissionError as exc:
        if isinstance(where, Package):  # a directory its owner keeps to itself
            return None
        raise Refused(f"{where}: {exc.strerror or exc}") from None
    except OSError as exc:  # ELOOP: a symlink
        raise Refused(f"{where}: {exc.strerror or exc}") from None
    try:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                         dir_fd=dfd)
        except FileNotFoundError:
            return None
        except PermissionError:
            if isinstance(where, Package):  # the owner's private file (a profile's program)
                return None
            raise Refused(f"{what}: Permission denied") from None
        except OSError as exc:  # ELOOP: a symlink
            raise Refused(f"{what}: {exc.strerror}") from None
        try:
            _check(fd, what, owner, regular=True, modes=modes)
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


def write(where: Where, name: str, magic: bytes, body: bytes, keep: int | None = None,
          public: bool = False) -> None:
    """Keep ``body`` as ``name`` (atomically), and at most ``keep`` (:data:`KEEP`)
    files; raises OSError (:class:`Unavailable`: not this process's to write)
    or :class:`Refused`.

    ``public``: in the package's cache, readable by every user of the install
    (mode 0644; code anybody can read in its own files anyway). Otherwise, and
    always in ``$PYINIT_CACHE``, 0600: a compiled profile is its owner's.
    """
    if isinstance(where, Package):
        dfd = _open_package(where, create=True)[0]
        mode = 0o644 if public else 0o600
    else:
        dfd, mode = _open_dir(where, create=True), 0o600
    try:
        temp = f".{name}.{os.getpid()}.{os.urandom(4).hex()}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=dfd)
        try:
            os.fchmod(fd, mode)  # whatever the umask
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
    files = []
    with os.scandir(dfd) as entries:
        for entry in entries:
            try:
                if entry.is_file(follow_symlinks=False) and entry.name != kept:
                    files.append((entry.stat(follow_symlinks=False).st_mtime_ns, entry.name))
            except FileNotFoundError:  # another pyinit's trim or rename
                pass
    files.sort()
    for _, name in files[:max(0, len(files) + 1 - keep)]:
        try:
            os.unlink(name, dir_fd=dfd)
        except FileNotFoundError:  # another pyinit trimmed it first
            pass
