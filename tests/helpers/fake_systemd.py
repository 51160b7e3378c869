"""A stand-in for systemd's D-Bus API, on a private dbus-daemon, for
tests/integration/test_cgroups_systemd.py. Run with the system's python3 (GLib's
D-Bus implementation, python3-gi): an implementation of the protocol that
shares nothing with pyinit's own client.

    fake_systemd.py ADDRESS RECORD CGROUP_ROOTS

ADDRESS: the bus. RECORD: every call is appended to it as one JSON line
(method, arguments as GLib unpacked them, with each variant's signature).
CGROUP_ROOTS: ':'-separated mount points (e.g. the unified and name=systemd
hierarchies) where, as systemd does, StartTransientUnit creates the scope's
cgroup and moves its PIDs in, and StopUnit kills what is left and removes it.
Prints "ready" once it owns org.freedesktop.systemd1.
"""

import json
import os
import signal
import sys
import time

from gi.repository import Gio, GLib

XML = """
<node>
  <interface name="org.freedesktop.systemd1.Manager">
    <method name="StartTransientUnit">
      <arg type="s" direction="in"/><arg type="s" direction="in"/>
      <arg type="a(sv)" direction="in"/><arg type="a(sa(sv))" direction="in"/>
      <arg type="o" direction="out"/>
    </method>
    <method name="StopUnit">
      <arg type="s" direction="in"/><arg type="s" direction="in"/>
      <arg type="o" direction="out"/>
    </method>
    <method name="GetUnit">
      <arg type="s" direction="in"/><arg type="o" direction="out"/>
    </method>
    <signal name="JobRemoved">
      <arg type="u"/><arg type="o"/><arg type="s"/><arg type="s"/>
    </signal>
  </interface>
</node>
"""
UNIT_XML = """
<node>
  <interface name="org.freedesktop.DBus.Properties">
    <method name="Get">
      <arg type="s" direction="in"/><arg type="s" direction="in"/>
      <arg type="v" direction="out"/>
    </method>
  </interface>
</node>
"""
OBJECT = "/org/freedesktop/systemd1"


def main() -> None:
    address, record, roots = sys.argv[1], sys.argv[2], sys.argv[3].split(":")
    conn = Gio.DBusConnection.new_for_address_sync(
        address, Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT
        | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION, None, None)
    units: dict[str, str] = {}  # unit -> its cgroup
    jobs = [0]

    def write(entry: dict) -> None:
        with open(record, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")

    def finish_job(unit: str) -> str:
        jobs[0] += 1
        job = f"{OBJECT}/job/{jobs[0]}"
        # As systemd: the reply first, the signal when the job is done (after it).
        GLib.idle_add(lambda: conn.emit_signal(
            None, OBJECT, "org.freedesktop.systemd1.Manager", "JobRemoved",
            GLib.Variant("(uoss)", (jobs[0], job, unit, "done"))) and False)
        return job

    def slice_path(name: str) -> str:
        parts = name.removesuffix(".slice").split("-")
        return "/" + "/".join("-".join(parts[:i + 1]) + ".slice" for i in range(len(parts)))

    def manager(_conn, _sender, _path, _iface, method, params, invocation) -> None:
        if method == "StartTransientUnit":
            unit, mode, props, aux = params.unpack()
            raw = params.get_child_value(2)
            signatures = {raw.get_child_value(i).get_child_value(0).get_string():
                          raw.get_child_value(i).get_child_value(1).get_variant()
                          .get_type_string() for i in range(raw.n_children())}
            write({"method": method, "unit": unit, "mode": mode,
                   "properties": [[name, signatures[name],
                                   list(value) if isinstance(value, (bytes, list)) else value]
                                  for name, value in props], "aux": aux})
            if unit in units:
                invocation.return_dbus_error("org.freedesktop.systemd1.UnitExists",
                                             f"Unit {unit} was already loaded or has a "
                                             "fragment file.")
                return
            values = dict(props)
            cgroup = slice_path(values["Slice"]) + "/" + unit
            for root in roots:
                os.makedirs(root + cgroup, exist_ok=True)
                for pid in values["PIDs"]:
                    with open(f"{root}{cgroup}/cgroup.procs", "w") as fh:
                        fh.write(str(pid))
            units[unit] = cgroup
            invocation.return_value(GLib.Variant("(o)", (finish_job(unit),)))
        elif method == "StopUnit":
            unit, mode = params.unpack()
            write({"method": method, "unit": unit, "mode": mode})
            cgroup = units.pop(unit, None)
            if cgroup is None:
                invocation.return_dbus_error("org.freedesktop.systemd1.NoSuchUnit",
                                             f"Unit {unit} not loaded.")
                return
            for root in roots:
                remove(root, cgroup)
            invocation.return_value(GLib.Variant("(o)", (finish_job(unit),)))
        elif method == "GetUnit":
            (unit,) = params.unpack()
            write({"method": method, "unit": unit})
            path = f"{OBJECT}/unit/" + unit.replace("-", "_2d").replace(".", "_2e")
            if path not in registered:
                registered[path] = unit
                conn.register_object(path, unit_info, properties, None, None)
            invocation.return_value(GLib.Variant("(o)", (path,)))

    def properties(_conn, _sender, path, _iface, method, params, invocation) -> None:
        iface, name = params.unpack()
        write({"method": method, "interface": iface, "property": name})
        invocation.return_value(GLib.Variant("(v)", (GLib.Variant("s",
                                                                  units[registered[path]]),)))

    def remove(root: str, cgroup: str) -> None:
        directory = root + cgroup
        for _ in range(200):
            try:
                with open(f"{directory}/cgroup.procs") as fh:
                    for pid in fh.read().split():
                        os.kill(int(pid), signal.SIGKILL)
                os.rmdir(directory)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.01)
        parent = os.path.dirname(directory)
        while parent != root and parent.endswith(".slice"):
            try:
                os.rmdir(parent)
            except OSError:
                break
            parent = os.path.dirname(parent)

    registered: dict[str, str] = {}
    info = Gio.DBusNodeInfo.new_for_xml(XML).interfaces[0]
    unit_info = Gio.DBusNodeInfo.new_for_xml(UNIT_XML).interfaces[0]
    conn.register_object(OBJECT, info, manager, None, None)
    reply = conn.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus",
                           "org.freedesktop.DBus", "RequestName",
                           GLib.Variant("(su)", ("org.freedesktop.systemd1", 4)),
                           GLib.VariantType("(u)"), Gio.DBusCallFlags.NONE, -1, None)
    assert reply.unpack() == (1,), reply  # the primary owner
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
