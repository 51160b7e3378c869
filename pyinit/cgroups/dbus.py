"""The D-Bus wire protocol, as much of it as talking to systemd needs.

Why not a library: pyinit's dependencies are trio and structlog, and what
``--cgroup-manager systemd`` needs of D-Bus is small and fixed: a unix socket,
SASL ``EXTERNAL`` (the kernel vouches for our uid), method calls, their replies
and errors, and one signal (``JobRemoved``). Marshalling (:func:`marshal`,
:func:`unmarshal`, :func:`encode`, :func:`decode`) is pure and covers the
whole basic type system, so a reply of any signature can be read; the
:class:`Connection` is blocking (``pyinit run`` calls it before the workload
exists, outside trio) and every wait on it has a deadline.

Reference: the D-Bus specification, "Message Protocol" (marshalling, header
fields) and "Authentication Protocol". Only little-endian messages are
written; both byte orders are read.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

METHOD_CALL, METHOD_RETURN, ERROR, SIGNAL = 1, 2, 3, 4
# Header field codes.
PATH, INTERFACE, MEMBER, ERROR_NAME, REPLY_SERIAL, DESTINATION, SENDER, SIGNATURE = range(1, 9)
_FIELD_TYPES = {PATH: "o", INTERFACE: "s", MEMBER: "s", ERROR_NAME: "s", REPLY_SERIAL: "u",
                DESTINATION: "s", SENDER: "s", SIGNATURE: "g"}
MAX_MESSAGE = 1 << 27  # the specification's limit: 128 MiB

_FIXED = {"y": "B", "b": "I", "n": "h", "q": "H", "i": "i", "u": "I", "x": "q", "t": "Q",
          "d": "d", "h": "I"}
_ALIGN = {"y": 1, "g": 1, "v": 1, "n": 2, "q": 2, "b": 4, "i": 4, "u": 4, "h": 4, "s": 4,
          "o": 4, "a": 4, "x": 8, "t": 8, "d": 8, "(": 8, "{": 8}


class ProtocolError(Exception):
    """A malformed message or signature, or a peer that does not speak D-Bus."""


class DBusError(Exception):
    """An ERROR reply: ``name`` (org.freedesktop.DBus.Error.…) and its message."""

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        self.message = message
        super().__init__(f"{name}: {message}" if message else name)


def _end(sig: str, start: int) -> int:
    """The index just past the single complete type starting at ``sig[start]``."""
    if start >= len(sig):
        raise ProtocolError(f"signature {sig!r} ends too early")
    head = sig[start]
    if head == "a":
        return _end(sig, start + 1)
    if head in "({":
        close = ")" if head == "(" else "}"
        i, count = start + 1, 0
        while i < len(sig) and sig[i] != close:
            if head == "{" and count == 0 and sig[i] in "a({v":
                raise ProtocolError(f"signature {sig!r}: a dict entry's key must be basic")
            i = _end(sig, i)
            count += 1
        if i >= len(sig) or count == 0:
            raise ProtocolError(f"signature {sig!r}: unclosed or empty {head}")
        if head == "{" and count != 2:
            raise ProtocolError(f"signature {sig!r}: a dict entry holds a key and a value")
        return i + 1
    if head in _ALIGN:
        return start + 1
    raise ProtocolError(f"signature {sig!r}: unknown type code {head!r}")


def split(sig: str) -> list[str]:
    """The single complete types of ``sig``: ``"sa{sv}u"`` -> ``["s", "a{sv}", "u"]``."""
    out, i = [], 0
    while i < len(sig):
        j = _end(sig, i)
        out.append(sig[i:j])
        i = j
    return out


# --------------------------------------------------------------- marshalling
class _Writer:
    def __init__(self) -> None:
        self.buf = bytearray()

    def align(self, n: int) -> None:
        self.buf += b"\0" * (-len(self.buf) % n)

    def put(self, sig: str, value: Any) -> None:
        code = sig[0]
        self.align(_ALIGN[code])
        if code in _FIXED:
            if code == "b":
                value = 1 if value else 0
            self.buf += struct.pack("<" + _FIXED[code], value)
        elif code in "so":
            data = value.encode()
            if b"\0" in data:
                raise ProtocolError(f"a string must not hold NUL: {value!r}")
            self.buf += struct.pack("<I", len(data)) + data + b"\0"
        elif code == "g":
            split(value)  # well-formed
            self.buf += struct.pack("<B", len(value)) + value.encode() + b"\0"
        elif code == "v":
            inner, item = value
            if len(split(inner)) != 1:
                raise ProtocolError(f"a variant holds one complete type, not {inner!r}")
            self.put("g", inner)
            self.put(inner, item)
        elif code == "a":
            self._array(sig[1:], value)
        elif code == "(":
            fields = split(sig[1:-1])
            if len(fields) != len(value):
                raise ProtocolError(f"struct {sig} needs {len(fields)} values, not {len(value)}")
            for sub, item in zip(fields, value, strict=True):
                self.put(sub, item)
        elif code == "{":
            key, val = split(sig[1:-1])
            self.put(key, value[0])
            self.put(val, value[1])

    def _array(self, elem: str, value: Any) -> None:
        at = len(self.buf)
        self.buf += b"\0\0\0\0"  # the length, filled in below
        self.align(_ALIGN[elem[0]])  # padding before the first element is not counted
        start = len(self.buf)
        items = value.items() if isinstance(value, dict) else value
        for item in items:
            self.put(elem, item)
        struct.pack_into("<I", self.buf, at, len(self.buf) - start)


def marshal(sig: str, values: Sequence[Any]) -> bytes:
    """``values`` (one per complete type of ``sig``) as a message body.

    Python shapes: integers, ``bool``, ``str``; a list (or, for ``a{..}``, a
    dict) for an array; a tuple for a struct; ``(signature, value)`` for a
    variant."""
    types = split(sig)
    if len(types) != len(values):
        raise ProtocolError(f"signature {sig!r} needs {len(types)} values, not {len(values)}")
    out = _Writer()
    for sub, value in zip(types, values, strict=True):
        out.put(sub, value)
    return bytes(out.buf)


class _Reader:
    def __init__(self, buf: bytes, pos: int, little: bool) -> None:
        self.buf = buf
        self.pos = pos
        self.order = "<" if little else ">"

    def align(self, n: int) -> None:
        self.pos += -self.pos % n

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise ProtocolError("message ends too early")
        data = self.buf[self.pos:self.pos + n]
        self.pos += n
        return data

    def get(self, sig: str, depth: int = 0) -> Any:
        if depth > 64:
            raise ProtocolError("values nested too deep")
        code = sig[0]
        self.align(_ALIGN[code])
        if code in _FIXED:
            fmt = self.order + _FIXED[code]
            (value,) = struct.unpack(fmt, self.take(struct.calcsize(fmt)))
            return bool(value) if code == "b" else value
        if code in "so":
            (n,) = struct.unpack(self.order + "I", self.take(4))
            data = self.take(n + 1)
            return data[:-1].decode()
        if code == "g":
            (n,) = struct.unpack("B", self.take(1))
            return self.take(n + 1)[:-1].decode()
        if code == "v":
            inner = self.get("g")
            if len(split(inner)) != 1:
                raise ProtocolError(f"a variant holds one complete type, not {inner!r}")
            return self.get(inner, depth + 1)
        if code == "a":
            (n,) = struct.unpack(self.order + "I", self.take(4))
            if n > MAX_MESSAGE:
                raise ProtocolError(f"array of {n} bytes")
            elem = sig[1:]
            self.align(_ALIGN[elem[0]])
            end = self.pos + n
            if end > len(self.buf):
                raise ProtocolError("message ends too early")
            items = []
            while self.pos < end:
                items.append(self.get(elem, depth + 1))
            return dict(items) if elem[0] == "{" else items
        if code == "(":
            return tuple(self.get(sub, depth + 1) for sub in split(sig[1:-1]))
        key, val = split(sig[1:-1])  # "{"
        return (self.get(key, depth + 1), self.get(val, depth + 1))


def unmarshal(sig: str, body: bytes, little: bool = True) -> list[Any]:
    """A message body as Python values (variants are unwrapped to their value)."""
    reader = _Reader(body, 0, little)
    try:
        values = [reader.get(sub) for sub in split(sig)]
    except (struct.error, UnicodeDecodeError) as exc:
        raise ProtocolError(str(exc)) from None
    if reader.pos != len(body):
        raise ProtocolError(f"{len(body) - reader.pos} bytes left after the {sig!r} body")
    return values


# ------------------------------------------------------------------- messages
@dataclass
class Message:
    type: int
    serial: int
    fields: dict[int, Any] = field(default_factory=dict)
    body: list[Any] = field(default_factory=list)
    flags: int = 0

    @property
    def signature(self) -> str:
        return str(self.fields.get(SIGNATURE, ""))

    def get(self, code: int) -> Any:
        return self.fields.get(code)


def encode(kind: int, serial: int, fields: dict[int, Any], sig: str = "",
           body: Sequence[Any] = (), flags: int = 0) -> bytes:
    """One whole message, little-endian."""
    payload = marshal(sig, body)
    header_fields = [(code, (_FIELD_TYPES[code], value)) for code, value in sorted(fields.items())]
    if sig:
        header_fields.append((SIGNATURE, ("g", sig)))
    head = _Writer()
    head.buf += struct.pack("<cBBBII", b"l", kind, flags, 1, len(payload), serial)
    head.put("a(yv)", header_fields)
    head.align(8)
    return bytes(head.buf) + payload


def message_size(head: bytes) -> int:
    """The whole size of the message whose first 16 bytes are ``head``."""
    order = {b"l": "<", b"B": ">"}.get(head[:1])
    if order is None:
        raise ProtocolError(f"not a D-Bus message (byte order {head[:1]!r})")
    body_len, _serial, fields_len = struct.unpack(order + "III", head[4:16])
    header = 16 + fields_len
    size = int(header + (-header % 8) + body_len)
    if size > MAX_MESSAGE:
        raise ProtocolError(f"a message of {size} bytes")
    return size


def decode(data: bytes) -> Message:
    """One whole message (as long as :func:`message_size` says)."""
    little = data[:1] == b"l"
    if data[:1] not in (b"l", b"B"):
        raise ProtocolError(f"not a D-Bus message (byte order {data[:1]!r})")
    kind, flags, version = data[1], data[2], data[3]
    if version != 1:
        raise ProtocolError(f"D-Bus protocol version {version}")
    order = "<" if little else ">"
    body_len, serial = struct.unpack(order + "II", data[4:12])
    reader = _Reader(data, 12, little)
    try:
        raw_fields = reader.get("a(yv)")
    except (struct.error, UnicodeDecodeError) as exc:
        raise ProtocolError(str(exc)) from None
    reader.align(8)
    fields = {code: value for code, value in raw_fields}
    body_bytes = data[reader.pos:reader.pos + body_len]
    if len(body_bytes) != body_len:
        raise ProtocolError("message ends too early")
    body = unmarshal(str(fields.get(SIGNATURE, "")), body_bytes, little)
    return Message(kind, serial, fields, body, flags)


# ----------------------------------------------------------------- addresses
def socket_path(address: str) -> str:
    """The socket of the first ``unix:`` address in a D-Bus address list:
    ``unix:path=/run/dbus/system_bus_socket``, or ``unix:abstract=NAME`` (returned
    with a leading NUL, as the kernel wants). Values are %-escaped."""
    from urllib.parse import unquote

    for entry in address.split(";"):
        transport, _, rest = entry.partition(":")
        if transport != "unix":
            continue
        keys = dict(kv.partition("=")[::2] for kv in rest.split(",") if kv)
        if "path" in keys:
            return unquote(keys["path"])
        if "abstract" in keys:
            return "\0" + unquote(keys["abstract"])
    raise ValueError(f"no unix:path= or unix:abstract= address in {address!r}")


# ---------------------------------------------------------------- connection
class Connection:
    """A blocking connection to a bus (or to a peer such as systemd's private socket).

    ``call`` sends a method call and returns the reply's body, or raises
    :class:`DBusError`; signals that arrive meanwhile are kept for ``wait_signal``."""

    def __init__(self, address: str, timeout: float = 30.0, hello: bool = True) -> None:
        self.address = address
        self.timeout = timeout
        self._serial = 0
        self._pending = b""
        self.signals: list[Message] = []
        self.unique_name: str | None = None
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            self.sock.settimeout(timeout)
            self.sock.connect(socket_path(address))
            self._authenticate()
            if hello:
                (self.unique_name,) = self.call("org.freedesktop.DBus", "/org/freedesktop/DBus",
                                                "org.freedesktop.DBus", "Hello")
        except BaseException:
            self.sock.close()
            raise

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _line(self) -> bytes:
        while b"\r\n" not in self._pending:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ProtocolError("the bus closed the connection during authentication")
            self._pending += chunk
            if len(self._pending) > 16384:
                raise ProtocolError("no authentication reply")
        line, _, self._pending = self._pending.partition(b"\r\n")
        return line

    def _authenticate(self) -> None:
        """SASL EXTERNAL: the server checks our uid with SO_PEERCRED."""
        uid = str(os.geteuid()).encode().hex().encode()
        self.sock.sendall(b"\0AUTH EXTERNAL " + uid + b"\r\n")
        reply = self._line()
        if not reply.startswith(b"OK "):
            raise ProtocolError(f"the bus refused EXTERNAL authentication as uid "
                                f"{os.geteuid()}: {reply.decode(errors='replace')}")
        self.sock.sendall(b"BEGIN\r\n")

    def _recv_exactly(self, n: int) -> bytes:
        while len(self._pending) < n:
            chunk = self.sock.recv(max(65536, n - len(self._pending)))
            if not chunk:
                raise ProtocolError("the bus closed the connection")
            self._pending += chunk
        data, self._pending = self._pending[:n], self._pending[n:]
        return data

    def receive(self) -> Message:
        head = self._recv_exactly(16)
        rest = self._recv_exactly(message_size(head) - 16)
        return decode(head + rest)

    def send(self, kind: int, fields: dict[int, Any], sig: str = "",
             body: Sequence[Any] = ()) -> int:
        self._serial += 1
        self.sock.sendall(encode(kind, self._serial, fields, sig, body))
        return self._serial

    def call(self, destination: str | None, path: str, interface: str, member: str,
             sig: str = "", body: Sequence[Any] = ()) -> list[Any]:
        fields: dict[int, Any] = {PATH: path, INTERFACE: interface, MEMBER: member}
        if destination is not None:
            fields[DESTINATION] = destination
        serial = self.send(METHOD_CALL, fields, sig, body)
        deadline = time.monotonic() + self.timeout
        while True:
            self._until(deadline)
            msg = self.receive()
            if msg.type == SIGNAL:
                self.signals.append(msg)
            elif msg.get(REPLY_SERIAL) == serial:
                if msg.type == ERROR:
                    text = msg.body[0] if msg.body and isinstance(msg.body[0], str) else ""
                    raise DBusError(str(msg.get(ERROR_NAME)), text)
                return msg.body

    def wait_signal(self, match: Callable[[Message], bool]) -> Message:
        """The first signal (kept or new) for which ``match`` is true."""
        deadline = time.monotonic() + self.timeout
        while True:
            for i, msg in enumerate(self.signals):
                if match(msg):
                    return self.signals.pop(i)
            self.signals.clear()
            self._until(deadline)
            msg = self.receive()
            if msg.type == SIGNAL:
                self.signals.append(msg)

    def _until(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no answer from {self.address} in {self.timeout:g} s")
        self.sock.settimeout(left)
