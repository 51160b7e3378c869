"""The OCI ``linux.seccomp`` object, parsed and validated (pure: no system calls).

:func:`parse_seccomp` turns the raw JSON value into frozen records and
reports every problem as ``(json_path, reason)``, the shape
:class:`pyinit.oci.config.ConfigError` carries, so ``pyinit check`` lists them
with the rest of config.json. Compiling and loading the filter is
:mod:`pyinit.linux.seccomp`'s job.

What is refused, and why:

* ``SCMP_ACT_NOTIFY``, ``listenerPath`` and ``listenerMetadata``: a user
  notification needs a supervisor on the other end of the listener socket;
  pyinit has none, and a filter that notifies nobody would block the
  workload's calls forever (or fail them, depending on the kernel).
* ``SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV``: it only changes how notified
  calls wait, so it means nothing without ``SCMP_ACT_NOTIFY`` (and
  libseccomp 2.5.4 has no attribute for it).
* ``errnoRet`` on an action other than ``SCMP_ACT_ERRNO`` and
  ``SCMP_ACT_TRACE``: the kernel has nowhere to put it, and silently
  dropping it would hide a profile that does not do what its author thinks.

Names in ``syscalls[].names`` are not checked here: which names exist depends
on the libseccomp version and the architectures, and the OCI convention
(runc, crun) is to skip a name the library does not know. The compiler does
that and reports the skipped names.
"""

from __future__ import annotations

from pyinit.record import record

TYPE_CHECKING = False  # typing costs 6 ms at start-up; mypy reads the name
if TYPE_CHECKING:
    from typing import Any

# The kernel takes errnos below MAX_ERRNO (4095), and libseccomp refuses 4095
# itself; SECCOMP_RET_DATA, the trace value, is 16 bits.
MAX_ERRNO = 4094
MAX_TRACE = 0xFFFF
EPERM = 1
MAX_ARGS = 6  # a system call has at most six arguments

# OCI action name -> the action libseccomp knows (SCMP_ACT_KILL is KILL_THREAD).
ACTIONS = {
    "SCMP_ACT_KILL": "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_KILL_THREAD": "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_KILL_PROCESS": "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_TRAP": "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO": "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE": "SCMP_ACT_TRACE",
    "SCMP_ACT_LOG": "SCMP_ACT_LOG",
    "SCMP_ACT_ALLOW": "SCMP_ACT_ALLOW",
}
_WITH_RET = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")

OPERATORS = ("SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE",
             "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ")

# Every architecture the runtime spec names; whether this libseccomp knows
# one is checked when the filter is compiled (2.5.4 lacks the last four).
ARCHITECTURES = (
    "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64", "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390", "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC", "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64", "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K", "SCMP_ARCH_SH", "SCMP_ARCH_SHEB",
)

# Flag name -> the seccomp(2) flag bit pyinit passes when it loads the filter.
FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": 1,
    "SECCOMP_FILTER_FLAG_LOG": 2,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
}
_REFUSED_FLAGS = {
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV":
        "only applies to SCMP_ACT_NOTIFY, which pyinit does not support",
    "SECCOMP_FILTER_FLAG_NEW_LISTENER":
        "a listener needs SCMP_ACT_NOTIFY, which pyinit does not support",
}
_NOTIFY = ("SCMP_ACT_NOTIFY is not supported: pyinit has no seccomp agent to answer "
           "the notifications (use SCMP_ACT_ERRNO or SCMP_ACT_TRACE)")


@record
class Action:
    """What the filter does: libseccomp's name, and the errno or trace value."""

    name: str  # a value of ACTIONS: SCMP_ACT_KILL_THREAD, ..., SCMP_ACT_ALLOW
    ret: int | None = None  # ERRNO: the errno (default EPERM); TRACE: the trace value


@record
class ArgCondition:
    index: int
    value: int
    value_two: int
    op: str  # one of OPERATORS


@record
class Rule:
    names: tuple[str, ...]
    action: Action
    args: tuple[ArgCondition, ...]
    where: str  # its JSON path, for messages: linux.seccomp.syscalls[3]


@record
class Seccomp:
    default_action: Action
    architectures: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    syscalls: tuple[Rule, ...] = ()
    where: str = "linux.seccomp"

    @property
    def flag_bits(self) -> int:
        bits = 0
        for name in self.flags:
            bits |= FLAGS[name]
        return bits


Problems = list[tuple[str, str]]

_KINDS = {bool: "true or false", int: "an integer", str: "a string", list: "an array",
          dict: "an object"}


class _Fields:
    """Typed reads from one JSON object, each problem recorded with its path."""

    def __init__(self, obj: dict[str, Any], where: str, problems: Problems) -> None:
        self.obj = obj
        self.where = where
        self.problems = problems

    def problem(self, key: str | None, reason: str) -> None:
        self.problems.append((f"{self.where}.{key}" if key else self.where, reason))

    def get(self, key: str, kind: type, required: bool = False) -> Any:
        value = self.obj.get(key)
        if value is None:
            if required:
                self.problem(key, "is required")
            return None
        if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
            self.problem(key, f"must be {_KINDS[kind]}, not {type(value).__name__}")
            return None
        return value

    def uint(self, key: str, limit: int, required: bool = False) -> int | None:
        value: int | None = self.get(key, int, required)
        if value is not None and not 0 <= value <= limit:
            self.problem(key, f"{value} is out of range (0 to {limit})")
            return None
        return value

    def strings(self, key: str) -> list[tuple[str, str]]:
        """Each string of the array ``key`` with its path; anything else is a problem."""
        out = []
        for i, item in enumerate(self.get(key, list) or []):
            at = f"{self.where}.{key}[{i}]"
            if isinstance(item, str):
                out.append((at, item))
            else:
                self.problems.append((at, f"must be a string, not {type(item).__name__}"))
        return out

    def objects(self, key: str) -> list[_Fields]:
        out = []
        for i, item in enumerate(self.get(key, list) or []):
            at = f"{self.where}.{key}[{i}]"
            if isinstance(item, dict):
                out.append(_Fields(item, at, self.problems))
            else:
                self.problems.append((at, "must be an object"))
        return out


def _action(f: _Fields, key: str, ret_key: str, required: bool) -> Action | None:
    """The action named by ``key``, with its errno/trace value from ``ret_key``."""
    name = f.get(key, str, required)
    limit = MAX_TRACE if name == "SCMP_ACT_TRACE" else MAX_ERRNO
    ret = f.uint(ret_key, limit)
    if name is None:
        return None
    if name == "SCMP_ACT_NOTIFY":
        f.problem(key, _NOTIFY)
        return None
    if name not in ACTIONS:
        f.problem(key, f"unknown action {name!r}")
        return None
    if ret is not None and name not in _WITH_RET:
        f.problem(ret_key, f"only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take a return value, "
                  f"not {name}")
    if name in _WITH_RET:
        return Action(ACTIONS[name], EPERM if ret is None else ret)
    return Action(ACTIONS[name])


def _condition(f: _Fields) -> ArgCondition | None:
    index = f.uint("index", MAX_ARGS - 1, required=True)
    value = f.uint("value", 2**64 - 1, required=True)
    value_two = f.uint("valueTwo", 2**64 - 1)
    op = f.get("op", str, required=True)
    if op is not None and op not in OPERATORS:
        f.problem("op", f"unknown operator {op!r}")
        return None
    if index is None or value is None or op is None:
        return None
    return ArgCondition(index, value, value_two or 0, op)


def _rule(f: _Fields) -> Rule | None:
    if f.obj.get("names") is None:
        f.problem("names", "is required")
    names = f.strings("names")
    if f.obj.get("names") == []:
        f.problem("names", "must name at least one system call")
    for at, name in names:
        if not name:
            f.problems.append((at, "must not be empty"))
    action = _action(f, "action", "errnoRet", required=True)
    args = [_condition(item) for item in f.objects("args")]
    if action is None or None in args:
        return None
    return Rule(tuple(name for _, name in names), action,
                tuple(a for a in args if a is not None), f.where)


def parse_seccomp(value: Any, path: str = "linux.seccomp") -> tuple[Seccomp | None, Problems]:
    """The profile in ``value`` (the raw JSON), and every problem with its JSON path.

    ``(None, [])`` when there is no profile (absent or null). The profile is
    only usable when the problem list is empty.
    """
    problems: Problems = []
    if value is None:
        return None, problems
    if not isinstance(value, dict):
        return None, [(path, f"must be an object, not {type(value).__name__}")]
    f = _Fields(value, path, problems)
    default = _action(f, "defaultAction", "defaultErrnoRet", required=True)
    architectures = []
    for at, name in f.strings("architectures"):
        if name not in ARCHITECTURES:
            problems.append((at, f"unknown architecture {name!r}"))
        elif name not in architectures:
            architectures.append(name)
    flags = []
    for at, name in f.strings("flags"):
        if name in _REFUSED_FLAGS:
            problems.append((at, f"{name} is not supported: {_REFUSED_FLAGS[name]}"))
        elif name not in FLAGS:
            problems.append((at, f"unknown flag {name!r}"))
        elif name not in flags:
            flags.append(name)
    for key in ("listenerPath", "listenerMetadata"):
        if f.get(key, str):
            f.problem(key, "is not supported: pyinit does not support SCMP_ACT_NOTIFY, "
                      "so there is no listener to hand to an agent")
    rules = [_rule(item) for item in f.objects("syscalls")]
    if problems or default is None:
        return None, problems
    return Seccomp(default, tuple(architectures), tuple(flags),
                   tuple(r for r in rules if r is not None), path), problems
