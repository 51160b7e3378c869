"""seccomp filters: compile a profile with libseccomp, load it with seccomp(2).

The two halves run at different times, on purpose:

* :func:`prepare` runs **before pivot_root**: in ``pyinit run``'s parent
  before it forks (PID 1 inherits the result), or in any process that will
  fork the workload; ``seccomp_cache`` keeps its result for the next start
  with the same profile. It loads ``libseccomp.so.2``
  (dlopen needs the host's files, which are gone after the pivot), compiles
  the profile into a filter context and exports the BPF program it generates
  into a memfd, which it reads back into memory. libseccomp resolves
  system-call names from tables compiled into the library and reads no file
  for any of this (checked with strace: the only system calls are the
  memfd's, and ``seccomp(SECCOMP_GET_ACTION_AVAIL)`` probes of the kernel).
* :func:`install` runs **in the workload's process, as the last step before
  exec**, after no_new_privs is set (or while the process still holds
  CAP_SYS_ADMIN: the kernel wants one of the two). It hands the in-memory
  program to ``seccomp(SECCOMP_SET_MODE_FILTER)`` with the profile's flags.
  Nothing of libseccomp runs after the fork, so no allocation or lock of a
  C library can be caught half-way in the child.

Why a ctypes layer over libseccomp rather than a Python binding: libseccomp
is the library runc, crun and podman compile profiles with, so the same
profile means the same filter here (the same pseudo-syscall handling on
multiplexed architectures, the same x32 checks). Its own Python binding,
``seccomp``, is a Cython extension that is not published on PyPI at all
(``pip install seccomp`` finds no distribution): it exists only as distro
packages such as Debian's ``python3-seccomp``, installed into the system
interpreter's dist-packages, which pyinit's venv (and the drop-in, images/)
does not see. The PyPI alternatives are ``pyseccomp`` (a ctypes shim, last
released in 2021) and ``mephi42-seccomp`` (a re-packaging with no build for
this platform). What pyinit needs is eight C functions; a maintained ABI
(libseccomp.so.2) is a smaller dependency than any of them.

Unknown system-call names follow the OCI convention runc and crun use: a
name libseccomp does not know (too new for this version of the library, or
misspelt) is skipped, not an error, so one profile works across library
versions. pyinit does not skip silently: :attr:`PreparedFilter.skipped`
names each one, and ``pyinit run`` logs them (``seccomp.prepared``). A name
the library knows but the architecture lacks (``socketcall`` on x86_64)
is handled by libseccomp itself: it applies where the call exists.

Flags (TSYNC, LOG, SPEC_ALLOW) go straight to seccomp(2): libseccomp's
filter attributes for them (``seccomp_attr_set``) only act in its own
``seccomp_load``, which pyinit does not call, and they do not change the
exported program. For the same reason libseccomp's no_new_privs attribute is
moot: the OCI ``noNewPrivileges`` decides.

Other behaviour, as runc's:

* The native architecture is always in the filter; ``architectures`` adds
  more. A call made through an architecture not in the filter kills the
  thread (libseccomp's default for a bad architecture).
* A rule whose action is the default action is redundant and skipped
  (libseccomp refuses it with EACCES), except on a multiplexer (below).

The multiplexers (``socketcall``, ``ipc`` on i386, s390, ppc …) need care.
libseccomp turns a rule on ``socket`` (or ``bind`` …) into one on the direct
call and one on ``socketcall`` whose first argument selects it; the rule's
argument conditions cannot be checked there (the arguments are in memory)
and are dropped. So an ``ALLOW socket`` rule with a condition allows every
``socketcall(SYS_SOCKET, …)``. A rule on the multiplexer itself, without
conditions, replaces all of these. When that rule's action is the default
action libseccomp refuses it in the same filter, so pyinit compiles such
rules into a second, small filter (default ALLOW) loaded with the first:
the kernel takes the strictest answer of the two, and the multiplexer gets
the default action whatever the first filter derived for it.
* Conditions on different arguments of one rule must all hold (AND).
  When one argument is compared more than once, each comparison becomes its
  own rule, so any one of them matching is enough (OR): libseccomp 2.5
  cannot compare one argument twice in a rule, and profiles written for
  runc (the ``personality`` rules of the moby default) rely on this.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys

from pyinit.errors import SetupError
from pyinit.linux import syscalls
from pyinit.record import record

TYPE_CHECKING = False  # typing costs 6 ms at start-up; mypy reads the name
if TYPE_CHECKING:  # the parsed profile (pyinit.oci.seccomp); no import upwards at run time
    from collections.abc import Iterator

    from pyinit.oci.seccomp import Action, ArgCondition, Rule, Seccomp

LIBRARY = "libseccomp.so.2"
BPF_MAXINSNS = 4096  # the kernel's limit per filter
SOCK_FILTER_SIZE = 8  # struct sock_filter: u16 code, u8 jt, u8 jf, u32 k
SECCOMP_SET_MODE_FILTER = 1
_NR_SECCOMP = syscalls.number("seccomp")  # glibc 2.36 has no seccomp() wrapper
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

_ACTION_BITS = {
    "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ERRNO": 0x00050000,
    "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_LOG": 0x7FFC0000,
    "SCMP_ACT_ALLOW": 0x7FFF0000,
}
_OPERATOR_NUMBERS = {  # enum scmp_compare
    "SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7,
}
_NR_SCMP_ERROR = -1


class _ArgCmp(ctypes.Structure):
    """struct scmp_arg_cmp: the same 24 bytes on x86_64 and aarch64."""

    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


@record
class PreparedFilter:
    """A compiled filter, ready for :func:`install` in a forked child."""

    program: bytes  # struct sock_filter[], exactly as the kernel takes it
    flags: int = 0  # SECCOMP_FILTER_FLAG_* for seccomp(2)
    skipped: tuple[str, ...] = ()  # system-call names this libseccomp does not know
    multiplexers: bytes = b""  # a second program: default-action rules on socketcall/ipc

    @property
    def instructions(self) -> int:
        return len(self.program) // SOCK_FILTER_SIZE


_lib: ctypes.CDLL | None = None


def library() -> ctypes.CDLL:
    """libseccomp, loaded once (call it before pivot_root: dlopen reads the host's files)."""
    global _lib
    if _lib is None:
        try:
            lib = ctypes.CDLL(LIBRARY, use_errno=True)
        except OSError as exc:
            # The drop-in (images/dropin/build.sh) carries its own copy in lib/.
            own = os.path.join(os.path.dirname(sys.executable), "lib", LIBRARY)
            try:
                lib = ctypes.CDLL(own, use_errno=True)
            except OSError:
                raise SetupError("seccomp", f"cannot load {LIBRARY}: {exc}",
                                 op="load-libseccomp", where="linux.seccomp") from None
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_release.restype = None
        lib.seccomp_release.argtypes = [ctypes.c_void_p]
        lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
        lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                               ctypes.c_uint, ctypes.c_void_p]
        lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.seccomp_version.restype = ctypes.POINTER(_Version)
        _lib = lib
    return _lib


def version() -> str:
    v = library().seccomp_version().contents
    return f"{v.major}.{v.minor}.{v.micro}"


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


def library_identity() -> str:
    """The loaded libseccomp file: its path, device, inode, size and mtime.

    Its version string alone does not name the compiler: a distribution's fix
    keeps the upstream version (Debian's 2.5.4-1+deb12u1 reports 2.5.4), and a
    cached program must not outlive the library that compiled it (issue 12
    review 7). dladdr(3) names the file the function was loaded from.
    """
    lib = library()
    info = _DlInfo()
    addr = ctypes.cast(lib.seccomp_version, ctypes.c_void_p)
    if not _libc.dladdr(addr, ctypes.byref(info)) or not info.dli_fname:
        return "unknown"
    path = os.fsdecode(info.dli_fname)
    st = os.stat(path)
    return f"{path} {st.st_dev} {st.st_ino} {st.st_size} {st.st_mtime_ns}"


def action_value(action: Action) -> int:
    """The 32-bit SECCOMP_RET_* value libseccomp takes for ``action``."""
    bits = _ACTION_BITS[action.name]
    if action.ret is not None:
        bits |= action.ret & 0xFFFF
    return bits


def _rule_conditions(rule: Rule) -> Iterator[tuple[ArgCondition, ...]]:
    """The condition sets to add for ``rule``: one rule each (runc's semantics)."""
    indexes = [c.index for c in rule.args]
    if len(set(indexes)) < len(indexes):  # an argument checked twice
        for cond in rule.args:
            yield (cond,)
    else:
        yield rule.args


def _fail(where: str, reason: str, err: int | None = None) -> SetupError:
    return SetupError("seccomp", reason, err=err, where=where)


_MULTIPLEXERS = ("socketcall", "ipc")


def _add_rules(lib: ctypes.CDLL, ctx: int, profile: Seccomp,
               multiplexers: bool = False) -> list[str]:
    """Add the profile's rules to ``ctx``; with ``multiplexers``, only the
    default-action rules on socketcall/ipc (for the second filter)."""
    skipped: list[str] = []
    default = action_value(profile.default_action)
    for rule in profile.syscalls:
        action = action_value(rule.action)
        if (action == default) != multiplexers:
            continue  # redundant (libseccomp would refuse it with EACCES)
        for name in rule.names:
            if multiplexers and name not in _MULTIPLEXERS:
                continue
            number = lib.seccomp_syscall_resolve_name(name.encode())
            if number == _NR_SCMP_ERROR:
                if name not in skipped:
                    skipped.append(name)
                continue
            for conds in _rule_conditions(rule):
                array = (_ArgCmp * max(len(conds), 1))(
                    *(_ArgCmp(c.index, _OPERATOR_NUMBERS[c.op], c.value, c.value_two)
                      for c in conds))
                rc = lib.seccomp_rule_add_array(ctypes.c_void_p(ctx), action, number,
                                                len(conds), array)
                if rc < 0:
                    raise _fail(rule.where, f"libseccomp refused the rule for {name}: "
                                f"{os.strerror(-rc)}", -rc)
    return skipped


def _export(lib: ctypes.CDLL, ctx: int, where: str) -> bytes:
    fd = os.memfd_create("pyinit-seccomp", os.MFD_CLOEXEC)
    try:
        rc = lib.seccomp_export_bpf(ctypes.c_void_p(ctx), fd)
        if rc < 0:
            raise _fail(where, f"seccomp_export_bpf: {os.strerror(-rc)}", -rc)
        size = os.fstat(fd).st_size
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)


def prepare(profile: Seccomp) -> PreparedFilter:
    """Compile ``profile`` into a BPF program, in memory (before pivot_root).

    Raises :class:`SetupError` naming the JSON path of what libseccomp
    refused (an architecture this version does not know, a rule it rejects).
    """
    lib = library()
    default = action_value(profile.default_action)
    program, skipped = _compile(lib, profile, default, multiplexers=False)
    if len(program) // SOCK_FILTER_SIZE > BPF_MAXINSNS:
        raise _fail(profile.where, f"the filter has {len(program) // SOCK_FILTER_SIZE} "
                    f"instructions; the kernel takes at most {BPF_MAXINSNS}")
    second = b""
    if any(action_value(r.action) == default and set(r.names) & set(_MULTIPLEXERS)
           for r in profile.syscalls):
        second, _ = _compile(lib, profile, _ACTION_BITS["SCMP_ACT_ALLOW"], multiplexers=True)
    return PreparedFilter(program, profile.flag_bits, tuple(skipped), second)


def _compile(lib: ctypes.CDLL, profile: Seccomp, default: int,
             multiplexers: bool) -> tuple[bytes, list[str]]:
    """One BPF program for ``profile``'s architectures (see :func:`_add_rules`)."""
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise _fail(f"{profile.where}.defaultAction", "seccomp_init failed (does this "
                    "libseccomp or kernel support the action?)")
    try:
        for i, name in enumerate(profile.architectures):
            where = f"{profile.where}.architectures[{i}]"
            token = lib.seccomp_arch_resolve_name(name.removeprefix("SCMP_ARCH_").lower()
                                                  .encode())
            if token == 0:
                raise _fail(where, f"libseccomp {version()} does not know {name}")
            rc = lib.seccomp_arch_add(ctypes.c_void_p(ctx), token)
            if rc < 0 and rc != -errno.EEXIST:  # the native one is always there
                raise _fail(where, f"seccomp_arch_add {name}: {os.strerror(-rc)}", -rc)
        skipped = _add_rules(lib, ctx, profile, multiplexers)
        return _export(lib, ctx, profile.where), skipped
    finally:
        lib.seccomp_release(ctypes.c_void_p(ctx))


def read_program(fd: int) -> PreparedFilter:
    """A compiled BPF program (struct sock_filter[]) read from ``fd`` to its end.

    What bubblewrap's ``--seccomp FD`` takes, e.g. the output of
    ``seccomp_export_bpf``. Read before pivot_root and kept in memory.
    """
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    program = b"".join(chunks)
    count, rest = divmod(len(program), SOCK_FILTER_SIZE)
    if rest or not 0 < count <= BPF_MAXINSNS:
        raise ValueError(f"not a seccomp BPF program: {len(program)} bytes (a program is 1 "
                         f"to {BPF_MAXINSNS} instructions of {SOCK_FILTER_SIZE} bytes)")
    return PreparedFilter(program)


def install(prepared: PreparedFilter) -> None:
    """Load the filter into the calling process: the last step before exec.

    The kernel accepts it only with no_new_privs set or with CAP_SYS_ADMIN
    (EACCES otherwise). Raises OSError, as ``os`` functions do.
    """
    if prepared.multiplexers:
        _load(prepared.multiplexers, prepared.flags)
    _load(prepared.program, prepared.flags)


def _load(program: bytes, flags: int) -> None:
    buffer = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // SOCK_FILTER_SIZE, ctypes.cast(buffer, ctypes.c_void_p))
    rc = _libc.syscall(ctypes.c_long(_NR_SECCOMP), ctypes.c_long(SECCOMP_SET_MODE_FILTER),
                      ctypes.c_long(flags), ctypes.byref(prog))
    if rc != 0:
        err = ctypes.get_errno() if rc == -1 else errno.ESRCH  # TSYNC: a thread's id
        raise OSError(err, f"seccomp(SECCOMP_SET_MODE_FILTER): {os.strerror(err)}")
