"""config.json validation and the plan, without root."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest

from pyinit.linux import flags
from pyinit.oci.config import ConfigError, parse
from pyinit.oci.spec import default_config
from pyinit.rootfs import plan


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    (tmp_path / "rootfs").mkdir()
    return tmp_path


def problems(doc: Any, bundle: Path) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        parse(doc, str(bundle))
    return info.value.problems


def test_the_default_spec_is_valid(bundle: Path) -> None:
    cfg = parse(default_config(), str(bundle))
    assert cfg.root_path == str(bundle / "rootfs") and cfg.root_readonly
    assert [m.destination for m in cfg.mounts][:2] == ["/proc", "/dev"]
    assert cfg.process.capabilities is not None
    assert cfg.process.capabilities["bounding"] == [29, 5, 10]


def test_all_problems_are_collected_with_their_paths(bundle: Path) -> None:
    doc = copy.deepcopy(default_config())
    doc["process"]["cwd"] = "relative"
    doc["mounts"][1]["destination"] = "dev"
    doc["mounts"][2]["options"] = ["nosuid", 7]
    doc["linux"]["namespaces"].append({"type": "pid"})
    doc["linux"]["devices"] = [{"type": "x", "path": "/dev/x"}]
    assert problems(doc, bundle) == [
        ("process.cwd", "must be an absolute path, not 'relative'"),
        ("mounts[1].destination", "must be an absolute path, not 'dev'"),
        ("mounts[2].options[1]", "must be a string, not int"),
        ("linux.namespaces[6].type", "the pid namespace is listed twice"),
        ("linux.devices[0].type", "must be one of c, b, u, p, not 'x'"),
        ("linux.devices[0].major", "is required"),
        ("linux.devices[0].minor", "is required"),
    ]


def test_types_and_required_fields(bundle: Path) -> None:
    assert problems([], bundle) == [("(top level)", "must be a JSON object")]
    assert problems({"root": {"path": 3}, "process": {"args": "sh"}}, bundle) == [
        ("ociVersion", "is required"),
        ("root.path", "must be a string, not int"),
        ("process.args", "must be an array, not str"),
        ("process.cwd", "is required"),
    ]


def test_plan_order_and_summaries(bundle: Path) -> None:
    steps = plan.build(parse(default_config(), str(bundle))).steps
    kinds = [s.kind for s in steps]
    assert kinds[:2] == ["propagation", "rootfs"]
    assert kinds.index("pivot") > max(i for i, k in enumerate(kinds) if k == "mount")
    assert kinds.index("pivot") < kinds.index("readonly") < kinds.index("mask")
    first = steps[0]
    assert isinstance(first, plan.Propagation) and first.flags == flags.MS_REC | flags.MS_SLAVE
    sys_step = next(s for s in steps
                    if isinstance(s, plan.MountStep) and s.mount.destination == "/sys")
    assert sys_step.summary == "sysfs sysfs on /sys MS_RDONLY|MS_NOSUID|MS_NODEV|MS_NOEXEC"


def test_shared_propagation_is_never_applied_before_the_pivot(bundle: Path) -> None:
    doc = copy.deepcopy(default_config())
    doc["linux"]["rootfsPropagation"] = "shared"
    steps = plan.build(parse(doc, str(bundle))).steps
    props = [(i, s.flags) for i, s in enumerate(steps) if isinstance(s, plan.Propagation)]
    pivot = next(i for i, s in enumerate(steps) if s.kind == "pivot")
    assert props[0] == (0, flags.MS_REC | flags.MS_SLAVE)
    assert props[1][0] > pivot and props[1][1] == flags.MS_SHARED


def test_rootless_spec(bundle: Path) -> None:
    from pyinit.oci.spec import rootless

    doc = rootless(default_config(), uid=1000, gid=1001)
    cfg = parse(doc, str(bundle))
    assert [n.type for n in cfg.namespaces][-1] == "user"
    assert not cfg.has_namespace("network") and not cfg.has_namespace("cgroup")
    assert [(m.container_id, m.host_id, m.size) for m in cfg.uid_mappings] == [(0, 1000, 1)]
    assert [(m.container_id, m.host_id, m.size) for m in cfg.gid_mappings] == [(0, 1001, 1)]
    sys_mount = next(m for m in cfg.mounts if m.destination == "/sys")
    assert sys_mount.parsed.is_bind and sys_mount.parsed.flags & flags.MS_RDONLY
    assert all(not o.startswith("gid=") for m in cfg.mounts for o in m.options)
    assert "/sys/fs/cgroup" not in [m.destination for m in cfg.mounts]


def test_terminal_and_console_size(bundle: Path) -> None:
    doc = copy.deepcopy(default_config())
    doc["process"].update(terminal=True, consoleSize={"height": 40, "width": 120})
    proc = parse(doc, str(bundle)).process
    assert (proc.terminal, proc.console_size) == (True, (40, 120))
    doc["process"]["consoleSize"] = {"height": -1, "width": 70000}
    assert problems(doc, bundle) == [("process.consoleSize.height", "-1 is not 0 to 65535"),
                                     ("process.consoleSize.width", "70000 is not 0 to 65535")]


# ---------------------------------------------------------------- a new user namespace
def _userns_doc(change: Any) -> dict[str, Any]:
    doc = copy.deepcopy(default_config())
    doc["linux"]["namespaces"].append({"type": "user"})
    doc["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    doc["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    change(doc)
    return doc


def _namespace(doc: dict[str, Any], kind: str, path: str | None) -> None:
    """Drop namespace ``kind``, or (with ``path``) join it by path instead."""
    spaces = [n for n in doc["linux"]["namespaces"] if n["type"] != kind]
    doc["linux"]["namespaces"] = spaces + ([{"type": kind, "path": path}] if path else [])


_PROC_LINE = ("proc in a new user namespace needs a new PID namespace, not {}: the kernel mounts "
              "proc only for a PID namespace that user namespace owns; add {{\"type\": \"pid\"}}"
              " without a path to linux.namespaces")
_MQUEUE_LINE = ("mqueue in a new user namespace needs a new IPC namespace, not {}: the kernel "
                "mounts mqueue only for an IPC namespace that user namespace owns; add "
                "{{\"type\": \"ipc\"}} without a path to linux.namespaces")
_UTS_LINE = ("a new user namespace cannot set it in a uts namespace joined by path (the kernel "
             "allows it only in one that user namespace owns): remove the uts namespace's "
             "path, or the field")


@pytest.mark.parametrize(("kind", "path", "expected"), [
    ("pid", None, [("mounts[0].type", _PROC_LINE.format("the host's"))]),
    ("pid", "/proc/1/ns/pid", [("mounts[0].type", _PROC_LINE.format("one joined by path"))]),
    ("ipc", None, [("mounts[4].type", _MQUEUE_LINE.format("the host's"))]),
    ("ipc", "/proc/1/ns/ipc", [("mounts[4].type", _MQUEUE_LINE.format("one joined by path"))]),
    ("uts", "/proc/1/ns/uts", [("hostname", _UTS_LINE)]),
])
def test_a_new_user_namespace_needs_the_namespaces_it_must_own(
        bundle: Path, kind: str, path: str | None, expected: list[tuple[str, str]]) -> None:
    doc = _userns_doc(lambda d: _namespace(d, kind, path))
    assert problems(doc, bundle) == expected
    # Without the user namespace root may do all three: nothing is refused.
    doc["linux"]["namespaces"] = [n for n in doc["linux"]["namespaces"] if n["type"] != "user"]
    del doc["linux"]["uidMappings"], doc["linux"]["gidMappings"]
    parse(doc, str(bundle))


def test_a_filesystems_ids_must_be_mapped(bundle: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["mounts"][2]["options"].append("gid=65536")  # devpts: gid=5 is mapped
        doc["mounts"].append({"destination": "/t", "type": "tmpfs", "source": "tmpfs",
                              "options": ["uid=65535", "uid=70000"]})
    assert problems(_userns_doc(change), bundle) == [
        ("mounts[2].options[6]", "gid 65536 is not mapped by linux.gidMappings"),
        ("mounts[7].options[1]", "uid 70000 is not mapped by linux.uidMappings"),
    ]


def test_domainname_in_a_joined_uts_namespace_with_a_new_user_namespace(bundle: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        _namespace(doc, "uts", "/proc/1/ns/uts")
        del doc["hostname"]
        doc["domainname"] = "example.org"
    assert problems(_userns_doc(change), bundle) == [("domainname", _UTS_LINE)]


def test_a_joined_user_namespace_may_own_what_is_joined(bundle: Path) -> None:
    """A user namespace joined by path may own a PID namespace joined by path: the
    config cannot say, so the kernel decides at run time."""
    def change(doc: dict[str, Any]) -> None:
        _namespace(doc, "user", "/proc/1/ns/user")
        _namespace(doc, "pid", "/proc/1/ns/pid")
        _namespace(doc, "uts", "/proc/1/ns/uts")
        del doc["linux"]["uidMappings"], doc["linux"]["gidMappings"]
    parse(_userns_doc(change), str(bundle))


def test_a_bound_host_node_must_have_the_configs_mode_and_owner(bundle: Path) -> None:
    """In a user namespace linux.devices are the host's nodes, bound: a node whose
    owner is a container id other than the config's uid would give that user what
    the config gives another. A regular file stands in for the host's node here
    (the check reads only its mode and owner); the maps put our own ids at 0."""
    from pyinit.diagnose import explain_error
    from pyinit.errors import SetupError
    from pyinit.rootfs.devices import check_host_nodes

    node = bundle / "node"
    node.write_text("")
    node.chmod(0o640)
    uid, gid = os.getuid(), os.getgid()

    def doc(**device: Any) -> dict[str, Any]:
        def change(d: dict[str, Any]) -> None:
            d["linux"]["uidMappings"] = [{"containerID": 0, "hostID": uid, "size": 65536}]
            d["linux"]["gidMappings"] = [{"containerID": 0, "hostID": gid, "size": 65536}]
            d["linux"]["devices"] = [{"path": str(node), "type": "c", "major": 1, "minor": 5,
                                      "fileMode": 0o640, "uid": 0, "gid": 0, **device}]
        return _userns_doc(change)

    check_host_nodes(parse(doc(), str(bundle)))  # mode and owner as configured
    # An owner the maps leave unmapped is nobody inside: its bits go to no one.
    unmapped = doc(uid=5, gid=5)
    unmapped["linux"]["uidMappings"][0]["hostID"] = uid + 1
    unmapped["linux"]["gidMappings"][0]["hostID"] = gid + 1
    check_host_nodes(parse(unmapped, str(bundle)))
    for change, line in [
        ({"fileMode": 0o600}, f"linux.devices[0].fileMode: device ({node}): in a user namespace "
         f"the host's {node} is bound (mknod is not allowed there), and its mode is 0640, not "
         "0600; give the host's mode as fileMode, or chmod the host's node"),
        ({"uid": 5}, f"linux.devices[0].uid: device ({node}): in a user namespace the host's "
         f"{node} is bound (mknod is not allowed there), and it belongs to host uid {uid}, "
         "which is uid 0 in the container, not 5; give 0 as uid, or chown the host's node"),
        ({"gid": 7}, f"linux.devices[0].gid: device ({node}): in a user namespace the host's "
         f"{node} is bound (mknod is not allowed there), and it belongs to host gid {gid}, "
         "which is gid 0 in the container, not 7; give 0 as gid, or chown the host's node"),
    ]:
        with pytest.raises(SetupError) as info:
            check_host_nodes(parse(doc(**change), str(bundle)))
        exc = info.value
        exc.hint = explain_error(exc, {}, evidence=False)  # as run and check do
        assert exc.line() == line
    # Without a user namespace pyinit makes the node itself, with the config's mode.
    plain = doc(fileMode=0o600)
    plain["linux"]["namespaces"] = [n for n in plain["linux"]["namespaces"]
                                    if n["type"] != "user"]
    del plain["linux"]["uidMappings"], plain["linux"]["gidMappings"]
    check_host_nodes(parse(plain, str(bundle)))
