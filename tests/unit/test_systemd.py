"""--cgroup-manager systemd, the pure parts: the systemd form of cgroupsPath, the
resources as unit properties (as runc maps them), the slice's cgroup path, the bus
address, and the D-Bus wire format (checked against GLib's implementation)."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from pyinit.cgroups import dbus, systemd
from pyinit.errors import SetupError
from pyinit.oci import resources
from pyinit.oci.resources import Cpu, Memory, Resources, SystemdPath

SYSTEM_PYTHON = "/usr/bin/python3"  # with python3-gi (tools/install.sh)
W = "linux.cgroupsPath"


def test_the_systemd_form_parses_into_slice_prefix_and_name() -> None:
    spec, problems = resources.parse({"cgroupsPath": "machine-web.slice:pyinit:db-1"})
    assert (spec.path, spec.systemd, problems) == (
        None, SystemdPath("machine-web.slice", "pyinit", "db-1"), [])
    assert spec.systemd is not None and spec.systemd.unit == "pyinit-db-1.scope"
    assert resources.parse_systemd_path(":pyinit:web") == (SystemdPath("", "pyinit", "web"), [])


@pytest.mark.parametrize(("value", "reason"), [
    ("a:b", "'a:b' has 2 ':'-separated parts; the systemd form is slice:prefix:name "
     "(e.g. system.slice:pyinit:web)"),
    ("a:b:c:d", "'a:b:c:d' has 4 ':'-separated parts; the systemd form is "
     "slice:prefix:name (e.g. system.slice:pyinit:web)"),
    ("system:pyinit:web", "'system:pyinit:web': the slice 'system' is not a slice unit name "
     "(NAME.slice, or empty for the default)"),
    ("a/b.slice:pyinit:web", "'a/b.slice:pyinit:web': the slice 'a/b.slice' is not a slice "
     "unit name (NAME.slice, or empty for the default)"),
    ("a--b.slice:pyinit:web", "'a--b.slice:pyinit:web': the slice 'a--b.slice' has an empty "
     "dash-separated part"),
    ("system.slice::web", "'system.slice::web': the prefix is empty"),
    ("system.slice:pyinit:", "'system.slice:pyinit:': the name is empty"),
    ("system.slice:pyinit:../x", "'system.slice:pyinit:../x': the name '../x' holds a "
     "character a systemd unit name cannot (allowed: ASCII letters, digits, '_', '.', '-')"),
    ("system.slice:py init:x", "'system.slice:py init:x': the prefix 'py init' holds a "
     "character a systemd unit name cannot (allowed: ASCII letters, digits, '_', '.', '-')"),
    ("system.slice:pyinit:x.slice", "'system.slice:pyinit:x.slice': the name 'x.slice' is a "
     "slice; pyinit asks systemd for a scope, give the slice first (slice:prefix:name)"),
    ("system.slice:p:" + "n" * 250, "'system.slice:p:" + "n" * 250 + "': the scope's name "
     "'p-" + "n" * 250 + ".scope' is longer than 255 characters"),
])
def test_a_bad_systemd_path_is_one_problem_naming_it(value: str, reason: str) -> None:
    spec, problems = resources.parse({"cgroupsPath": value})
    assert (spec.systemd, problems) == (None, [(W, reason)])


def test_the_scope_defaults_and_a_cgroupfs_path_is_refused() -> None:
    none = resources.CgroupSpec(None, Resources())
    assert systemd.resolve(none, "web", 0) == SystemdPath("system.slice", "pyinit", "web")
    assert systemd.resolve(none, "web", 1000) == SystemdPath("user.slice", "pyinit", "web")
    no_slice = resources.CgroupSpec(None, Resources(), systemd=SystemdPath("", "x", "y"))
    assert systemd.resolve(no_slice, "web", 0) == SystemdPath("system.slice", "x", "y")
    with pytest.raises(SetupError) as exc:
        systemd.resolve(resources.CgroupSpec("/pyinit/web", Resources()), "web", 0)
    assert exc.value.line() == (
        "linux.cgroupsPath: cgroup: '/pyinit/web' is a cgroupfs path; --cgroup-manager "
        "systemd needs systemd's form slice:prefix:name (e.g. system.slice:pyinit:web)")


def test_a_slice_nests_in_its_dash_separated_parents() -> None:
    assert systemd.slice_path("system.slice") == "/system.slice"
    assert systemd.slice_path("a-b-c.slice") == "/a.slice/a-b.slice/a-b-c.slice"
    assert systemd.slice_path("-.slice") == "/"


def test_the_bus_is_the_system_bus_for_root_and_the_users_own_otherwise() -> None:
    assert systemd.bus_address(0, {}) == "unix:path=/run/dbus/system_bus_socket"
    assert systemd.bus_address(0, {"DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/x",
                                   "DBUS_SESSION_BUS_ADDRESS": "unix:path=/y"}) == "unix:path=/x"
    assert systemd.bus_address(1000, {"DBUS_SESSION_BUS_ADDRESS": "unix:path=/y",
                                      "XDG_RUNTIME_DIR": "/run/user/1000"}) == "unix:path=/y"
    assert systemd.bus_address(1000, {"XDG_RUNTIME_DIR": "/run/user/1000"}) == (
        "unix:path=/run/user/1000/bus")
    with pytest.raises(SetupError) as exc:
        systemd.bus_address(1000, {})
    assert exc.value.reason == (
        "--cgroup-manager systemd as uid 1000 talks to the user's systemd over the user's "
        "bus, and neither DBUS_SESSION_BUS_ADDRESS nor XDG_RUNTIME_DIR is set")


def test_cpu_lists_and_quotas_as_systemd_takes_them() -> None:
    assert systemd.cpu_mask("0") == b"\x01"
    assert systemd.cpu_mask("0-3,8") == b"\x0f\x01"
    assert systemd.cpu_mask("9") == b"\x00\x02"
    assert systemd.quota_per_sec(None, None) is None
    assert systemd.quota_per_sec(50000, 100000) == 500000
    assert systemd.quota_per_sec(12345, None) == 130000  # per 100 ms, rounded up to 10 ms
    assert systemd.quota_per_sec(-1, 100000) == systemd.INFINITY
    assert systemd.quota_per_sec(None, 50000) == systemd.INFINITY


FULL = Resources(memory=Memory(limit=256 << 20, reservation=64 << 20, swap=512 << 20),
                 cpu=Cpu(shares=1024, quota=50000, period=100000, cpus="0-1", mems="0"),
                 pids_limit=-1, block_io=resources.BlockIO(weight=300))


def test_resources_as_unified_properties() -> None:
    assert systemd.resource_properties(FULL, 2) == [
        ("MemoryMax", ("t", 256 << 20)), ("MemoryLow", ("t", 64 << 20)),
        ("MemorySwapMax", ("t", 256 << 20)),  # swap counts memory too in the spec
        ("CPUWeight", ("t", 39)), ("CPUQuotaPerSecUSec", ("t", 500000)),
        ("CPUQuotaPeriodUSec", ("t", 100000)), ("AllowedCPUs", ("ay", b"\x03")),
        ("AllowedMemoryNodes", ("ay", b"\x01")), ("TasksMax", ("t", systemd.INFINITY))]


def test_resources_as_legacy_properties_on_a_v1_or_hybrid_host() -> None:
    assert systemd.resource_properties(FULL, 1) == [
        ("MemoryLimit", ("t", 256 << 20)), ("CPUShares", ("t", 1024)),
        ("CPUQuotaPerSecUSec", ("t", 500000)), ("CPUQuotaPeriodUSec", ("t", 100000)),
        ("TasksMax", ("t", systemd.INFINITY)), ("BlockIOWeight", ("t", 300))]
    unlimited = Resources(memory=Memory(limit=-1, swap=-1))
    assert systemd.resource_properties(unlimited, 2) == [
        ("MemoryMax", ("t", systemd.INFINITY)), ("MemorySwapMax", ("t", systemd.INFINITY))]
    assert systemd.resource_properties(Resources(), 2) == []


# ------------------------------------------------------------------ the wire
def test_values_survive_a_round_trip_through_every_type() -> None:
    sig = "ybnqiuxtdsoga{sv}(ias)v"
    values: list[Any] = [255, True, -2, 65535, -7, 2**32 - 1, -(2**63), 2**64 - 1, 0.5,
                         "ünï", "/a/b", "a(sv)", {"k": ("u", 3), "l": ("as", ["x"])},
                         (1, ["p", "q"]), ("(su)", ("s", 9))]
    data = dbus.marshal(sig, values)
    assert dbus.unmarshal(sig, data) == [255, True, -2, 65535, -7, 2**32 - 1, -(2**63),
                                         2**64 - 1, 0.5, "ünï", "/a/b", "a(sv)",
                                         {"k": 3, "l": ["x"]}, (1, ["p", "q"]), ("s", 9)]


def test_array_lengths_leave_out_the_padding_before_the_first_element() -> None:
    # a(t): length (4 bytes), 4 bytes of padding to 8, then the one element (8 bytes)
    assert dbus.marshal("at", [[1]]) == b"\x08\x00\x00\x00\x00\x00\x00\x00" \
        b"\x01\x00\x00\x00\x00\x00\x00\x00"
    assert dbus.marshal("at", [[]]) == b"\x00\x00\x00\x00\x00\x00\x00\x00"


@pytest.mark.parametrize(("sig", "data"), [
    ("s", b"\x05\x00\x00\x00ab\x00"),  # longer than the message
    ("u", b"\x01\x00"),
    ("as", b"\xff\xff\xff\x7f"),
])
def test_a_short_or_lying_body_is_a_protocol_error(sig: str, data: bytes) -> None:
    with pytest.raises(dbus.ProtocolError):
        dbus.unmarshal(sig, data)


def test_bad_signatures_are_refused() -> None:
    for sig in ("a", "(", "()", "(s", "z", "a{s}", "a{sss}", "a{(s)s}"):
        with pytest.raises(dbus.ProtocolError):
            dbus.split(sig)


def test_addresses() -> None:
    assert dbus.socket_path("unix:path=/run/dbus/system_bus_socket") == (
        "/run/dbus/system_bus_socket")
    assert dbus.socket_path("tcp:host=x;unix:path=/tmp/a%20b,guid=1") == "/tmp/a b"
    assert dbus.socket_path("unix:abstract=/tmp/dbus-X") == "\0/tmp/dbus-X"
    with pytest.raises(ValueError):
        dbus.socket_path("tcp:host=localhost,port=1")


def _glib(script: str, *args: str) -> str:
    res = subprocess.run([SYSTEM_PYTHON, "-c", "from gi.repository import Gio, GLib\n" + script,
                          *args], capture_output=True, text=True, check=True, timeout=30)
    return res.stdout


START = dbus.encode(dbus.METHOD_CALL, 7, {
    dbus.PATH: "/org/freedesktop/systemd1", dbus.INTERFACE: "org.freedesktop.systemd1.Manager",
    dbus.MEMBER: "StartTransientUnit", dbus.DESTINATION: "org.freedesktop.systemd1"},
    "ssa(sv)a(sa(sv))", ["pyinit-web.scope", "fail", systemd.unit_properties(
        SystemdPath("system.slice", "pyinit", "web"), 4711, FULL, 2, "pyinit container web"),
        []])


def test_glib_reads_our_start_transient_unit_call() -> None:
    """What the real bus and systemd would read: GLib's parser, not ours."""
    out = _glib("m = Gio.DBusMessage.new_from_blob(bytes.fromhex(__import__('sys').argv[1]), "
                "Gio.DBusCapabilityFlags.NONE)\n"
                "print(m.get_serial(), m.get_message_type().value_nick, m.get_destination(), "
                "m.get_path(), m.get_interface(), m.get_member(), m.get_signature())\n"
                "print(m.get_body().print_(True))", START.hex())
    head, body = out.splitlines()
    assert head == ("7 method-call org.freedesktop.systemd1 /org/freedesktop/systemd1 "
                    "org.freedesktop.systemd1.Manager StartTransientUnit ssa(sv)a(sa(sv))")
    assert body == (
        "('pyinit-web.scope', 'fail', [('Description', <'pyinit container web'>), "
        "('Slice', <'system.slice'>), ('Delegate', <true>), ('PIDs', <[uint32 4711]>), "
        "('DefaultDependencies', <false>), ('MemoryAccounting', <true>), "
        "('CPUAccounting', <true>), ('IOAccounting', <true>), ('TasksAccounting', <true>), "
        "('MemoryMax', <uint64 268435456>), ('MemoryLow', <uint64 67108864>), "
        "('MemorySwapMax', <uint64 268435456>), ('CPUWeight', <uint64 39>), "
        "('CPUQuotaPerSecUSec', <uint64 500000>), ('CPUQuotaPeriodUSec', <uint64 100000>), "
        "('AllowedCPUs', <[byte 0x03]>), ('AllowedMemoryNodes', <[byte 0x01]>), "
        "('TasksMax', <uint64 18446744073709551615>)], @a(sa(sv)) [])")


def test_we_read_glibs_job_removed_signal_in_either_byte_order() -> None:
    for order in ("LITTLE_ENDIAN", "BIG_ENDIAN"):
        blob = bytes.fromhex(_glib(
            "m = Gio.DBusMessage.new_signal('/org/freedesktop/systemd1', "
            "'org.freedesktop.systemd1.Manager', 'JobRemoved')\n"
            "m.set_body(GLib.Variant('(uoss)', (12, '/org/freedesktop/systemd1/job/12', "
            "'pyinit-web.scope', 'done')))\n"
            "m.set_serial(3)\n"
            f"m.set_byte_order(Gio.DBusMessageByteOrder.{order})\n"
            "print(m.to_blob(Gio.DBusCapabilityFlags.NONE).hex())"))
        assert dbus.message_size(blob[:16]) == len(blob)
        msg = dbus.decode(blob)
        assert (msg.type, msg.serial, msg.get(dbus.PATH), msg.get(dbus.INTERFACE),
                msg.get(dbus.MEMBER), msg.signature, msg.body) == (
            dbus.SIGNAL, 3, "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager",
            "JobRemoved", "uoss",
            [12, "/org/freedesktop/systemd1/job/12", "pyinit-web.scope", "done"])


# ------------------------------------------------------------- the scope's calls
class FakeBus:
    """Answers each method from ``replies`` (a value, or a DBusError to raise) and hands
    out ``signals`` as the real connection does; records every call."""

    def __init__(self, replies: dict[str, Any], signals: list[dbus.Message]) -> None:
        self.replies = replies
        self.signals = signals
        self.calls: list[tuple[str, list[Any]]] = []
        self.closed = False

    def call(self, _dest: str | None, _path: str, _iface: str, member: str, _sig: str = "",
             body: Any = ()) -> list[Any]:
        self.calls.append((member, list(body)))
        reply = self.replies[member]
        if isinstance(reply, Exception):
            raise reply
        return [reply]

    def wait_signal(self, match: Any) -> dbus.Message:
        for msg in self.signals:
            if match(msg):
                return msg
        raise TimeoutError("no answer from unix:path=/bus in 30 s")

    def close(self) -> None:
        self.closed = True


class Log:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def info(self, event: str, **fields: Any) -> None:
        self.events.append((event, fields))

    warning = info


def job_removed(job: str, unit: str, result: str) -> dbus.Message:
    return dbus.Message(dbus.SIGNAL, 9, {dbus.MEMBER: "JobRemoved"}, [1, job, unit, result])


def scope_with(bus: FakeBus) -> systemd.Scope:
    from pyinit.cgroups.host import Host

    spec = resources.CgroupSpec(None, Resources(pids_limit=5))
    return systemd.Scope(Host("hybrid", ()), spec, SystemdPath("system.slice", "pyinit", "web"),
                         "web", bus, Log())


def test_a_job_that_does_not_end_done_fails_naming_its_result_and_the_unit() -> None:
    """Only this job's JobRemoved counts (another job's, for the same unit, comes first)."""
    bus = FakeBus({"AddMatch": None, "StartTransientUnit": "/job/7"},
                  [job_removed("/job/6", "pyinit-web.scope", "done"),
                   job_removed("/job/7", "pyinit-web.scope", "failed")])
    scope = scope_with(bus)
    with pytest.raises(SetupError) as exc:
        scope.add(4711)
    assert exc.value.line() == (
        "linux.cgroupsPath: cgroup: systemd's job to start the scope pyinit-web.scope ended "
        "with 'failed', not 'done'")
    assert (exc.value.op, exc.value.fields) == ("systemd-refused", {"unit": "pyinit-web.scope"})
    assert [member for member, _ in bus.calls] == ["AddMatch", "StartTransientUnit"]
    assert bus.calls[0][1] == [
        "type='signal',sender='org.freedesktop.systemd1',path='/org/freedesktop/systemd1',"
        "interface='org.freedesktop.systemd1.Manager',member='JobRemoved'"]
    assert scope.started  # so remove() stops what systemd may have half made


def test_no_job_removed_in_time_is_a_setup_error() -> None:
    bus = FakeBus({"AddMatch": None, "StartTransientUnit": "/job/7"}, [])
    with pytest.raises(SetupError) as exc:
        scope_with(bus).add(4711)
    assert exc.value.reason == ("systemd's job /job/7: no answer from unix:path=/bus in 30 s")


def test_a_refusal_by_systemd_is_one_line_with_its_error() -> None:
    denied = dbus.DBusError("org.freedesktop.DBus.Error.AccessDenied", "Access denied")
    bus = FakeBus({"AddMatch": None, "StartTransientUnit": denied}, [])
    scope = scope_with(bus)
    with pytest.raises(SetupError) as exc:
        scope.add(4711)
    assert exc.value.line() == (
        "linux.cgroupsPath: cgroup: systemd refused to start the scope pyinit-web.scope: "
        "org.freedesktop.DBus.Error.AccessDenied: Access denied")
    assert not scope.started


def test_stopping_a_scope_systemd_has_already_collected_is_fine() -> None:
    gone = dbus.DBusError("org.freedesktop.systemd1.NoSuchUnit", "Unit pyinit-web.scope not "
                          "loaded.")
    bus = FakeBus({"StopUnit": gone}, [])
    scope = scope_with(bus)
    scope.started = True
    scope.remove()
    assert (bus.calls, bus.closed, scope.started) == (
        [("StopUnit", ["pyinit-web.scope", "replace"])], True, False)


def test_a_scope_that_will_not_stop_is_reported_and_the_bus_closed() -> None:
    bus = FakeBus({"StopUnit": dbus.DBusError("org.freedesktop.DBus.Error.NoReply", "")}, [])
    scope = scope_with(bus)
    scope.started = True
    with pytest.raises(SetupError) as exc:
        scope.remove()
    assert (exc.value.reason, bus.closed) == (
        "StopUnit pyinit-web.scope: org.freedesktop.DBus.Error.NoReply", True)
