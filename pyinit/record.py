"""Records: what pyinit used ``dataclasses`` for, without generating code at import.

``@dataclass`` compiles five to seven methods per class with ``exec`` when the
class is defined (and ``import dataclasses`` pulls in ``inspect``). pyinit's
config, plan and cgroup modules define about seventy of them, all imported on
the way to the workload of ``pyinit run`` and ``pyinit sandbox``: a third of
the parent's start-up (issue 12). :func:`record` gives a class the same
``__init__``, ``__repr__``, ``__eq__``, ``__hash__``, frozen ``__setattr__``
and ``__match_args__`` as ``@dataclass(frozen=True)`` (or ``frozen=False``),
as shared functions that read the class's field table, so defining a class
costs a dictionary. What pyinit does not use is left out: ordering, slots,
``kw_only``, ``InitVar``, ``__post_init__``, ``init=False``/``repr=False``
fields. Type checkers see a dataclass (``dataclass_transform``).
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing costs 6 ms at start-up; mypy reads the name
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform, overload

    _T = TypeVar("_T", bound=type)
    _R = TypeVar("_R")
else:  # what the decorators do at run time (ruff sees the local def: noqa F811 below)
    def overload(func: object) -> object:
        return func

    def dataclass_transform(**_: object) -> object:
        return overload


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class FrozenInstanceError(AttributeError):
    """An assignment to a field of a frozen record (as ``dataclasses``' error of that name)."""


class Field:
    """A field's default (or default factory) and whether it takes part in ``==``."""

    __slots__ = ("compare", "default", "default_factory")

    def __init__(self, default: Any = MISSING, default_factory: Callable[[], Any] | None = None,
                 compare: bool = True) -> None:
        if default is not MISSING and default_factory is not None:
            raise ValueError("cannot specify both default and default_factory")
        self.default = default
        self.default_factory = default_factory
        self.compare = compare


def field(*, default: Any = MISSING, default_factory: Callable[[], Any] | None = None,
          compare: bool = True) -> Any:
    """As ``dataclasses.field``, for the parameters pyinit uses."""
    return Field(default, default_factory, compare)


def _is_classvar(annotation: object) -> bool:
    if isinstance(annotation, str):  # from __future__ import annotations
        return annotation.startswith(("ClassVar", "typing.ClassVar"))
    typing = sys.modules.get("typing")  # no ClassVar can exist before it is imported
    if typing is None:
        return False
    return annotation is typing.ClassVar or \
        getattr(annotation, "__origin__", None) is typing.ClassVar


def _fields(cls: type) -> dict[str, Field]:
    """The fields in ``__init__`` order: the bases' first, then the class's own
    annotations (one that redefines a base's field keeps its place)."""
    found: dict[str, Field] = {}
    for base in reversed(cls.__mro__[1:]):
        found.update(base.__dict__.get("__record_fields__", {}))
    # The class's own annotations (inspect.get_annotations would import inspect).
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():  # noqa: RUF063
        if _is_classvar(annotation):
            continue
        value = cls.__dict__.get(name, MISSING)
        if isinstance(value, Field):
            spec = value
            if spec.default is MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, spec.default)
        else:
            spec = Field(value)
        found[name] = spec
    seen_default = False
    for name, spec in found.items():
        if spec.default is not MISSING or spec.default_factory is not None:
            seen_default = True
        elif seen_default:
            raise TypeError(f"non-default argument {name!r} follows default argument")
    return found


def _init(cls: type, fields: dict[str, Field]) -> Callable[..., None]:
    """``__init__``, with the very errors Python gives for a bad call of dataclass's."""
    names = tuple(fields)
    qualname = f"{cls.__qualname__}.__init__()"
    required = sum(1 for spec in fields.values()
                   if spec.default is MISSING and spec.default_factory is None)
    takes = f"{len(names) + 1}" if required == len(names) else \
        f"from {required + 1} to {len(names) + 1}"

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(names):
            raise TypeError(f"{qualname} takes {takes} positional arguments but "
                            f"{len(args) + 1} were given")
        values = dict(zip(names, args, strict=False))
        for name in kwargs:
            if name not in fields:
                raise TypeError(f"{qualname} got an unexpected keyword argument {name!r}")
            if name in values:
                raise TypeError(f"{qualname} got multiple values for argument {name!r}")
        values.update(kwargs)
        state = self.__dict__
        missing = []
        for name in names:
            if name in values:
                state[name] = values[name]
                continue
            spec = fields[name]
            if spec.default_factory is not None:
                state[name] = spec.default_factory()
            elif spec.default is not MISSING:
                state[name] = spec.default
            else:
                missing.append(repr(name))
        if missing:
            listed = missing[0] if len(missing) == 1 else \
                f"{missing[0]} and {missing[1]}" if len(missing) == 2 else \
                f"{', '.join(missing[:-1])}, and {missing[-1]}"
            plural = "argument" if len(missing) == 1 else "arguments"
            raise TypeError(f"{qualname} missing {len(missing)} required positional "
                            f"{plural}: {listed}")

    return __init__


def _methods(cls: type, fields: dict[str, Field], frozen: bool) -> dict[str, Any]:
    names = tuple(fields)
    compared = tuple(name for name, spec in fields.items() if spec.compare)

    def __repr__(self: Any) -> str:
        state = self.__dict__
        inner = ", ".join(f"{name}={state[name]!r}" for name in names)
        return f"{self.__class__.__qualname__}({inner})"

    def __eq__(self: Any, other: object) -> bool:
        if other.__class__ is self.__class__:
            mine, theirs = self.__dict__, other.__dict__
            return tuple(mine[n] for n in compared) == tuple(theirs[n] for n in compared)
        return NotImplemented

    methods: dict[str, Any] = {"__init__": _init(cls, fields), "__repr__": __repr__,
                               "__eq__": __eq__, "__match_args__": names}
    if frozen:
        def __hash__(self: Any) -> int:
            state = self.__dict__
            return hash(tuple(state[n] for n in compared))

        def __setattr__(self: Any, name: str, value: Any) -> None:
            if type(self) is cls or name in fields:
                raise FrozenInstanceError(f"cannot assign to field {name!r}")
            super(cls, self).__setattr__(name, value)  # type: ignore[arg-type]

        def __delattr__(self: Any, name: str) -> None:
            if type(self) is cls or name in fields:
                raise FrozenInstanceError(f"cannot delete field {name!r}")
            super(cls, self).__delattr__(name)  # type: ignore[arg-type]

        methods.update(__hash__=__hash__, __setattr__=__setattr__, __delattr__=__delattr__)
    elif "__hash__" not in cls.__dict__:
        methods["__hash__"] = None  # as a dataclass with eq and not frozen: unhashable
    return methods


def _build(cls: _T, frozen: bool) -> _T:
    own = dict(cls.__dict__)
    # A class body with __eq__ gets __hash__ = None from Python: not an explicit hash.
    explicit_hash = "__hash__" in own and not (own["__hash__"] is None and "__eq__" in own)
    fields = _fields(cls)
    cls.__record_fields__ = fields  # type: ignore[attr-defined]
    for name, value in _methods(cls, fields, frozen).items():
        if name == "__hash__":
            if not explicit_hash:
                setattr(cls, name, value)
        elif name in own:
            if name in ("__setattr__", "__delattr__"):
                raise TypeError(f"cannot overwrite attribute {name} in class {cls.__name__}")
        else:
            setattr(cls, name, value)
    return cls


@overload
def record(cls: _T, /) -> _T: ...


@overload
def record(*, frozen: bool = True) -> Callable[[_T], _T]: ...  # noqa: F811 (overload: see top)


@dataclass_transform(frozen_default=True, field_specifiers=(field, Field))
def record(cls: _T | None = None, /, *, frozen: bool = True  # noqa: F811
           ) -> _T | Callable[[_T], _T]:
    """``@record`` for ``@dataclass(frozen=True)``; ``@record(frozen=False)`` for ``@dataclass``."""
    if cls is None:
        return lambda c: _build(c, frozen)
    return _build(cls, frozen)


def replace(obj: _R, /, **changes: Any) -> _R:
    """As ``dataclasses.replace``: a copy of the record with ``changes``."""
    fields: dict[str, Field] = type(obj).__record_fields__  # type: ignore[attr-defined]
    for name in changes:
        if name not in fields:
            raise TypeError(f"{type(obj).__qualname__} has no field {name!r}")
    for name in fields:
        changes.setdefault(name, obj.__dict__[name])
    return type(obj)(**changes)
