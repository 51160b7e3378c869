"""``linux.seccomp`` parsing: every problem with its JSON path, without root."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pyinit.oci.config import ConfigError, parse
from pyinit.oci.seccomp import Action, ArgCondition, Rule, Seccomp, parse_seccomp
from pyinit.oci.seccomp_default import default_profile
from pyinit.oci.spec import default_config


def problems(value: Any) -> list[tuple[str, str]]:
    profile, found = parse_seccomp(value)
    assert profile is None
    return found


def test_absent_or_null_is_no_profile() -> None:
    assert parse_seccomp(None) == (None, [])


def test_a_full_profile() -> None:
    profile, found = parse_seccomp({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X86_64"],
        "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                  "SECCOMP_FILTER_FLAG_TSYNC"],
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"names": ["ptrace"], "action": "SCMP_ACT_TRACE", "errnoRet": 65535},
            {"names": ["kill"], "action": "SCMP_ACT_KILL"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"},
                      {"index": 5, "value": 0xFF, "valueTwo": 2**64 - 1,
                       "op": "SCMP_CMP_MASKED_EQ"}]},
        ],
        "someFutureField": True,  # unknown fields are ignored, as the spec asks
    })
    assert found == []
    assert profile == Seccomp(
        default_action=Action("SCMP_ACT_ERRNO", 38),
        architectures=("SCMP_ARCH_X86_64", "SCMP_ARCH_X86"),
        flags=("SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
               "SECCOMP_FILTER_FLAG_TSYNC"),
        syscalls=(
            Rule(("read", "write"), Action("SCMP_ACT_ALLOW"), (), "linux.seccomp.syscalls[0]"),
            Rule(("mkdir",), Action("SCMP_ACT_ERRNO", 1), (), "linux.seccomp.syscalls[1]"),
            Rule(("rmdir",), Action("SCMP_ACT_ERRNO", 13), (), "linux.seccomp.syscalls[2]"),
            Rule(("ptrace",), Action("SCMP_ACT_TRACE", 65535), (),
                 "linux.seccomp.syscalls[3]"),
            Rule(("kill",), Action("SCMP_ACT_KILL_THREAD"), (), "linux.seccomp.syscalls[4]"),
            Rule(("personality",), Action("SCMP_ACT_ALLOW"),
                 (ArgCondition(0, 8, 0, "SCMP_CMP_EQ"),
                  ArgCondition(5, 0xFF, 2**64 - 1, "SCMP_CMP_MASKED_EQ")),
                 "linux.seccomp.syscalls[5]"),
        ),
    )
    assert profile.flag_bits == 1 | 2 | 4


@pytest.mark.parametrize(("oci", "action"), [
    ("SCMP_ACT_KILL", Action("SCMP_ACT_KILL_THREAD")),
    ("SCMP_ACT_KILL_THREAD", Action("SCMP_ACT_KILL_THREAD")),
    ("SCMP_ACT_KILL_PROCESS", Action("SCMP_ACT_KILL_PROCESS")),
    ("SCMP_ACT_TRAP", Action("SCMP_ACT_TRAP")),
    ("SCMP_ACT_ERRNO", Action("SCMP_ACT_ERRNO", 1)),
    ("SCMP_ACT_TRACE", Action("SCMP_ACT_TRACE", 1)),
    ("SCMP_ACT_LOG", Action("SCMP_ACT_LOG")),
    ("SCMP_ACT_ALLOW", Action("SCMP_ACT_ALLOW")),
])
def test_every_action(oci: str, action: Action) -> None:
    profile, found = parse_seccomp({"defaultAction": oci})
    assert found == []
    assert profile == Seccomp(action)


@pytest.mark.parametrize(("value", "expected"), [
    ([], [("linux.seccomp", "must be an object, not list")]),
    ({}, [("linux.seccomp.defaultAction", "is required")]),
    ({"defaultAction": 1}, [("linux.seccomp.defaultAction", "must be a string, not int")]),
    ({"defaultAction": "SCMP_ACT_FOO"},
     [("linux.seccomp.defaultAction", "unknown action 'SCMP_ACT_FOO'")]),
    ({"defaultAction": "SCMP_ACT_NOTIFY"},
     [("linux.seccomp.defaultAction", "SCMP_ACT_NOTIFY is not supported: pyinit has no "
       "seccomp agent to answer the notifications (use SCMP_ACT_ERRNO or SCMP_ACT_TRACE)")]),
    ({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1},
     [("linux.seccomp.defaultErrnoRet", "only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take a "
       "return value, not SCMP_ACT_ALLOW")]),
    ({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 4095},
     [("linux.seccomp.defaultErrnoRet", "4095 is out of range (0 to 4094)")]),
    ({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": -1},
     [("linux.seccomp.defaultErrnoRet", "-1 is out of range (0 to 4094)")]),
    ({"defaultAction": "SCMP_ACT_TRACE", "defaultErrnoRet": 65536},
     [("linux.seccomp.defaultErrnoRet", "65536 is out of range (0 to 65535)")]),
    ({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": True},
     [("linux.seccomp.defaultErrnoRet", "must be an integer, not bool")]),
    ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": "SCMP_ARCH_X86"},
     [("linux.seccomp.architectures", "must be an array, not str")]),
    ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "x86"]},
     [("linux.seccomp.architectures[1]", "unknown architecture 'x86'")]),
    ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": [7]},
     [("linux.seccomp.architectures[0]", "must be a string, not int")]),
    ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_NOPE"]},
     [("linux.seccomp.flags[0]", "unknown flag 'SECCOMP_FILTER_FLAG_NOPE'")]),
    ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]},
     [("linux.seccomp.flags[0]", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV is not supported: "
       "only applies to SCMP_ACT_NOTIFY, which pyinit does not support")]),
    ({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock"},
     [("linux.seccomp.listenerPath", "is not supported: pyinit does not support "
       "SCMP_ACT_NOTIFY, so there is no listener to hand to an agent")]),
    ({"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "x"},
     [("linux.seccomp.listenerMetadata", "is not supported: pyinit does not support "
       "SCMP_ACT_NOTIFY, so there is no listener to hand to an agent")]),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": {}},
     [("linux.seccomp.syscalls", "must be an array, not dict")]),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": ["mkdir"]},
     [("linux.seccomp.syscalls[0]", "must be an object")]),
])
def test_top_level_problems(value: Any, expected: list[tuple[str, str]]) -> None:
    assert problems(value) == expected


def _rule(**fields: Any) -> dict[str, Any]:
    return {"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
                         {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", **fields}]}


def _without(key: str) -> dict[str, Any]:
    doc = _rule()
    del doc["syscalls"][1][key]
    return doc


R = "linux.seccomp.syscalls[1]"


@pytest.mark.parametrize(("value", "expected"), [
    (_without("names"), [(f"{R}.names", "is required")]),
    (_rule(names=None), [(f"{R}.names", "is required")]),
    (_rule(names=[]), [(f"{R}.names", "must name at least one system call")]),
    (_rule(names="mkdir"), [(f"{R}.names", "must be an array, not str")]),
    (_rule(names=["mkdir", 3, ""]), [(f"{R}.names[1]", "must be a string, not int"),
                                     (f"{R}.names[2]", "must not be empty")]),
    (_without("action"), [(f"{R}.action", "is required")]),
    (_rule(action="SCMP_ACT_NOTIFY"),
     [(f"{R}.action", "SCMP_ACT_NOTIFY is not supported: pyinit has no seccomp agent to "
       "answer the notifications (use SCMP_ACT_ERRNO or SCMP_ACT_TRACE)")]),
    (_rule(action="SCMP_ACT_KILL_PROCESS", errnoRet=1),
     [(f"{R}.errnoRet", "only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take a return value, not "
       "SCMP_ACT_KILL_PROCESS")]),
    (_rule(errnoRet="EACCES"), [(f"{R}.errnoRet", "must be an integer, not str")]),
    (_rule(errnoRet=70000), [(f"{R}.errnoRet", "70000 is out of range (0 to 4094)")]),
    (_rule(args={}), [(f"{R}.args", "must be an array, not dict")]),
    (_rule(args=[3]), [(f"{R}.args[0]", "must be an object")]),
    (_rule(args=[{}]), [(f"{R}.args[0].index", "is required"),
                        (f"{R}.args[0].value", "is required"),
                        (f"{R}.args[0].op", "is required")]),
    (_rule(args=[{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]),
     [(f"{R}.args[0].index", "6 is out of range (0 to 5)")]),
    (_rule(args=[{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}]),
     [(f"{R}.args[0].value", "-1 is out of range (0 to 18446744073709551615)")]),
    (_rule(args=[{"index": 0, "value": 2**64, "op": "SCMP_CMP_EQ"}]),
     [(f"{R}.args[0].value", "18446744073709551616 is out of range "
       "(0 to 18446744073709551615)")]),
    (_rule(args=[{"index": 0, "value": 1, "valueTwo": "2", "op": "SCMP_CMP_EQ"}]),
     [(f"{R}.args[0].valueTwo", "must be an integer, not str")]),
    (_rule(args=[{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                 {"index": 1, "value": 1, "op": "SCMP_CMP_FOO"}]),
     [(f"{R}.args[1].op", "unknown operator 'SCMP_CMP_FOO'")]),
])
def test_rule_problems(value: Any, expected: list[tuple[str, str]]) -> None:
    assert problems(value) == expected


def test_every_problem_is_collected_at_once() -> None:
    found = problems({"defaultAction": "SCMP_ACT_NOPE", "architectures": ["nope"],
                      "flags": ["nope"], "syscalls": [{"names": ["x"], "action": "nope"}]})
    assert found == [("linux.seccomp.defaultAction", "unknown action 'SCMP_ACT_NOPE'"),
                     ("linux.seccomp.architectures[0]", "unknown architecture 'nope'"),
                     ("linux.seccomp.flags[0]", "unknown flag 'nope'"),
                     ("linux.seccomp.syscalls[0].action", "unknown action 'nope'")]


def test_the_path_is_the_callers() -> None:
    assert problems({"defaultAction": 0}) == [
        ("linux.seccomp.defaultAction", "must be a string, not int")]
    _, found = parse_seccomp({"defaultAction": 0}, "hooks.seccomp")
    assert found == [("hooks.seccomp.defaultAction", "must be a string, not int")]


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
@pytest.mark.parametrize("caps", [(), ("CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_SYS_CHROOT")])
def test_the_default_profile_parses(machine: str, caps: tuple[str, ...]) -> None:
    profile, found = parse_seccomp(default_profile(caps, machine))
    assert found == []
    assert profile is not None
    assert profile.default_action == Action("SCMP_ACT_ERRNO", 1)
    allowed = {n for r in profile.syscalls if r.action == Action("SCMP_ACT_ALLOW")
               and not r.args for n in r.names}
    assert {"read", "execve", "exit_group", "rt_sigreturn"} <= allowed
    assert ("mount" in allowed) == ("CAP_SYS_ADMIN" in caps)
    assert ("chroot" in allowed) == ("CAP_SYS_CHROOT" in caps)
    assert ("arch_prctl" in allowed) == (machine == "x86_64")
    assert ("set_tls" in allowed) == (machine == "aarch64")
    for never in ("kexec_load", "open_by_handle_at", "init_module", "reboot", "keyctl",
                  "userfaultfd", "io_uring_setup", "pivot_root", "swapon"):
        assert never not in allowed


def test_config_json_carries_the_profile_and_its_problems(tmp_path: Path) -> None:
    (tmp_path / "rootfs").mkdir()
    doc = default_config()
    cfg = parse(doc, str(tmp_path))
    assert cfg.seccomp is not None  # pyinit spec writes the default
    assert cfg.seccomp.default_action == Action("SCMP_ACT_ERRNO", 1)
    assert cfg.seccomp.architectures == tuple(default_profile(())["architectures"])
    doc["linux"]["seccomp"]["syscalls"][2]["args"][0]["op"] = "SCMP_CMP_FOO"
    doc["linux"]["seccomp"]["flags"] = ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]
    with pytest.raises(ConfigError) as info:
        parse(doc, str(tmp_path))
    assert info.value.problems == [
        ("linux.seccomp.flags[0]", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV is not supported: "
         "only applies to SCMP_ACT_NOTIFY, which pyinit does not support"),
        ("linux.seccomp.syscalls[2].args[0].op", "unknown operator 'SCMP_CMP_FOO'")]
    del doc["linux"]["seccomp"]
    assert parse(doc, str(tmp_path)).seccomp is None
