"""pyinit.record behaves as the dataclasses it replaced, for what pyinit uses.

Each case defines the same class twice, once with ``dataclasses`` and once with
:func:`pyinit.record.record`, and compares what pyinit and its logs can see:
``repr`` (logged), ``==`` and ``hash`` (plans are compared and put in sets),
frozenness, defaults and factories, ``replace``, inheritance, and the errors
of a bad call.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import pytest

from pyinit import record as rec


def _pair(frozen: bool = True) -> tuple[Any, Any]:
    """(dataclass version, record version) of the same small family of classes."""

    def make(decorate: Any, field: Any) -> tuple[Any, Any]:
        class Base:
            kind: ClassVar[str] = "base"
            path: str
            inside: str | None
            flags: int = 0
            opts: tuple[str, ...] = field(default_factory=tuple)
            where: str = field(default="", compare=False)

            @property
            def summary(self) -> str:
                return f"{self.kind} {self.path}"

        Base = decorate(Base)

        class Child(Base):
            kind: ClassVar[str] = "child"
            source: str = "src"
            flags: int = 7  # redefined: keeps its place, new default

        return Base, decorate(Child)

    dc = make(dataclasses.dataclass(frozen=frozen), dataclasses.field)
    ours = make(rec.record(frozen=frozen), rec.field)
    return dc, ours


CALLS: list[tuple[int, tuple[Any, ...], dict[str, Any]]] = [
    (0, ("/a", None), {}),
    (0, ("/a", "proc", 3, ("ro",), "mounts[1]"), {}),
    (0, ("/a",), {"inside": "sys", "where": "x"}),
    (1, ("/b", None), {}),
    (1, ("/b", None, 1), {"source": "/s", "opts": ("a", "b")}),
]


@pytest.mark.parametrize("frozen", [True, False])
@pytest.mark.parametrize("which,args,kwargs", CALLS)
def test_instances_look_and_compare_the_same(frozen: bool, which: int, args: tuple[Any, ...],
                                             kwargs: dict[str, Any]) -> None:
    dc, ours = _pair(frozen)
    a, b = dc[which](*args, **kwargs), ours[which](*args, **kwargs)
    assert repr(a) == repr(b)
    assert a.__match_args__ == b.__match_args__
    assert a.summary == b.summary
    same = ours[which](*args, **kwargs)
    assert (b == same, b != same) == (True, False)
    if frozen:
        assert hash(b) == hash(same)
        # where= does not take part in == or hash, as compare=False says
        other_where = ours[which](*args[:4], **{**kwargs, "where": "elsewhere"})
        assert (b == other_where, hash(b) == hash(other_where)) == (True, True)
    else:
        assert type(b).__hash__ is None
    assert (b == ours[1 - which](*args[:1], None)) is False  # another class: never equal


def test_defaults_and_factories_are_per_instance() -> None:
    _dc, (base, _child) = _pair()
    one, two = base("/a", None), base("/a", None)
    assert (one.opts, two.opts) == ((), ())
    assert base.flags == 0  # a plain default stays a class attribute, as with dataclasses
    assert "opts" not in base.__dict__  # a factory's field does not


def test_frozen_refuses_assignment_and_deletion() -> None:
    _dc, (_base, child) = _pair()
    b = child("/b", None)
    with pytest.raises(rec.FrozenInstanceError, match=r"^cannot assign to field 'path'$"):
        b.path = "/c"
    with pytest.raises(rec.FrozenInstanceError, match=r"^cannot delete field 'path'$"):
        del b.path
    assert isinstance(rec.FrozenInstanceError("x"), AttributeError)


def test_a_mutable_record_can_be_assigned() -> None:
    _dc, (base, _child) = _pair(frozen=False)
    b = base("/a", None)
    b.path = "/z"
    assert repr(b) == ("_pair.<locals>.make.<locals>.Base(path='/z', inside=None, flags=0, "
                       "opts=(), where='')")


def test_replace_is_dataclasses_replace() -> None:
    (dbase, _dchild), (base, _child) = _pair()
    a = dataclasses.replace(dbase("/a", None, opts=("x",)), path="/n", flags=2)
    b = rec.replace(base("/a", None, opts=("x",)), path="/n", flags=2)
    assert repr(a) == repr(b)
    with pytest.raises(TypeError, match=r"^_pair.<locals>.make.<locals>.Base has no field 'nope'$"):
        rec.replace(base("/a", None), nope=1)


@pytest.mark.parametrize("args,kwargs", [
    ((), {}),
    (("/a",), {}),
    (("/a", None, 1, [], "", 9), {}),
    (("/a", None), {"path": "/b"}),
    (("/a", None), {"nope": 1}),
    (("/a",), {"flags": 1, "nope": 1}),
])
def test_bad_calls_fail_with_dataclasses_message(args: tuple[Any, ...],
                                                 kwargs: dict[str, Any]) -> None:
    (dbase, _dchild), (base, _child) = _pair()
    with pytest.raises(TypeError) as expected:
        dbase(*args, **kwargs)
    with pytest.raises(TypeError) as got:
        base(*args, **kwargs)
    # dataclasses name the function __init__ by its qualname, as pyinit.record does
    assert str(got.value) == str(expected.value)


def test_a_field_without_default_after_one_with_is_refused() -> None:
    with pytest.raises(TypeError, match=r"^non-default argument 'b' follows default argument$"):
        @rec.record
        class Bad:
            a: int = 0
            b: int


def test_importing_the_plan_does_not_import_dataclasses() -> None:
    import subprocess
    import sys

    code = ("import sys\nimport pyinit.rootfs.plan, pyinit.oci.config, pyinit.cgroups.manager\n"
            "print(sorted(m for m in ('dataclasses', 'inspect') if m in sys.modules))\n")
    res = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert res.stdout == "[]\n", res.stderr
