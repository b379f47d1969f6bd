"""The worker side of the bridge's framed protocol (docs/ruby_bridge.md).

A frame is ``kind`` (one ASCII byte) + ``length`` (u32 big-endian) + payload.
Lower-case kinds go from the worker to Ruby, upper-case ones from Ruby to the
worker. Structured payloads use a small tagged value encoding (``pack`` /
``unpack``), mirrored by ``wire.rb``.
"""
from __future__ import annotations

import select
import socket
import struct
import time

HEADER = struct.Struct(">cI")
U32 = struct.Struct(">I")
I64 = struct.Struct(">q")
RECV_SIZE = 1 << 18

# ---- frame kinds: worker -> ruby ------------------------------------------------
INIT = b"i"       # value: the UWSGI constants, sent once before the app loads
REQUEST = b"q"    # value: [env, body length or -1 when unknown (chunked)]
DATA = b"d"       # raw: request body bytes answering READ; empty = end of body
RETURN = b"r"     # value: the result of a CALL
ERROR = b"e"      # value: [ruby exception class, message], answering CALL or READ
ABORT = b"k"      # empty: the client is gone, stop iterating the body
# ---- frame kinds: ruby -> worker ------------------------------------------------
READY = b"Y"      # value: {pid, ruby, rack, app}: the app is loaded
HEAD = b"H"       # value: [status, [[name, value], ...]]
BODY = b"B"       # raw: response body bytes
PATH = b"P"       # raw: a file path to send (body.to_path)
DONE = b"D"       # empty: the response is complete
EXCEPTION = b"X"  # value: [class, message, [backtrace lines]]
READ = b"R"       # value: the most body bytes Ruby wants now
CALL = b"C"       # value: [name, [args]]: a UWSGI.* call
WRITE = b"W"      # raw: bytes for the server log (rack.errors)

# ---- tagged values -----------------------------------------------------------
T_NIL, T_TRUE, T_FALSE, T_INT, T_STR, T_ARRAY, T_HASH = (bytes([c]) for c in b"NTFISAH")


class ProtocolError(Exception):
    """Ruby sent bytes that are not a valid frame or value."""


class RubyGone(Exception):
    """The Ruby child closed the channel (it exited or crashed)."""


class RubyTimeout(Exception):
    """The Ruby child did not answer before the deadline."""


def pack(value, out: bytearray | None = None) -> bytearray:
    """Encode None/bool/int/bytes/str/list/tuple/dict as a tagged value."""
    if out is None:
        out = bytearray()
    if value is None:
        out += T_NIL
    elif value is True:
        out += T_TRUE
    elif value is False:
        out += T_FALSE
    elif isinstance(value, int):
        out += T_INT + I64.pack(value)
    elif isinstance(value, (bytes, bytearray, str)):
        data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
        out += T_STR + U32.pack(len(data)) + data
    elif isinstance(value, (list, tuple)):
        out += T_ARRAY + U32.pack(len(value))
        for item in value:
            pack(item, out)
    elif isinstance(value, dict):
        out += T_HASH + U32.pack(len(value))
        for key, item in value.items():
            pack(key, out)
            pack(item, out)
    else:
        raise TypeError(f"cannot send a {type(value).__name__} to Ruby")
    return out


def pack_env(env: dict[str, str], length: int) -> bytearray:
    """The REQUEST payload: CGI vars are latin-1 text on our side, raw bytes on the wire."""
    out = bytearray(T_ARRAY + U32.pack(2) + T_HASH + U32.pack(len(env)))
    for key, value in env.items():
        k = key.encode("latin-1")
        v = value.encode("latin-1")
        out += T_STR + U32.pack(len(k)) + k + T_STR + U32.pack(len(v)) + v
    out += T_INT + I64.pack(length)
    return out


def unpack(data: bytes | bytearray):
    """Decode one tagged value; strings come back as bytes."""
    data = bytes(data)
    try:
        value, end = _unpack(data, 0)
    except (IndexError, struct.error, KeyError) as e:
        raise ProtocolError(f"malformed value: {e}") from None
    if end != len(data):
        raise ProtocolError("trailing bytes after a value")
    return value


def _unpack(data: bytes, pos: int):
    tag = data[pos:pos + 1]
    pos += 1
    if tag == T_STR:
        (n,) = U32.unpack_from(data, pos)
        pos += 4
        if pos + n > len(data):
            raise IndexError("string past the end")
        return data[pos:pos + n], pos + n
    if tag == T_INT:
        return I64.unpack_from(data, pos)[0], pos + 8
    if tag == T_ARRAY:
        (n,) = U32.unpack_from(data, pos)
        pos += 4
        items = []
        for _ in range(n):
            item, pos = _unpack(data, pos)
            items.append(item)
        return items, pos
    if tag == T_HASH:
        (n,) = U32.unpack_from(data, pos)
        pos += 4
        out = {}
        for _ in range(n):
            key, pos = _unpack(data, pos)
            out[key], pos = _unpack(data, pos)
        return out, pos
    return _CONSTANTS[tag], pos


_CONSTANTS = {T_NIL: None, T_TRUE: True, T_FALSE: False}


class Channel:
    """One end of the socketpair: frames out, frames in, every wait bounded by a deadline."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.fd = sock.fileno()
        sock.setblocking(False)
        self.buf = bytearray()

    def send(self, kind: bytes, payload: bytes | bytearray = b"", deadline: float | None = None) -> None:
        data = memoryview(HEADER.pack(kind, len(payload)) + payload)
        while data:
            try:
                n = self.sock.send(data)
            except BlockingIOError:
                self._wait(select.POLLOUT, deadline)
                continue
            except OSError as e:
                raise RubyGone(f"send: {e.strerror}") from None
            data = data[n:]

    def send_value(self, kind: bytes, value, deadline: float | None = None) -> None:
        self.send(kind, pack(value), deadline)

    def frame(self, deadline: float | None = None) -> tuple[bytes, bytes]:
        """The next frame from Ruby; RubyGone at EOF, RubyTimeout past ``deadline``."""
        buf = self.buf
        while True:
            if len(buf) >= 5:
                kind, n = HEADER.unpack_from(buf)
                if len(buf) >= 5 + n:
                    payload = bytes(buf[5:5 + n])
                    del buf[:5 + n]
                    return kind, payload
            try:
                data = self.sock.recv(RECV_SIZE)
            except BlockingIOError:
                self._wait(select.POLLIN, deadline)
                continue
            except OSError as e:
                raise RubyGone(f"recv: {e.strerror}") from None
            if not data:
                raise RubyGone("end of file")
            buf += data

    def _wait(self, events: int, deadline: float | None) -> None:
        poller = select.poll()
        poller.register(self.fd, events | select.POLLHUP | select.POLLERR)
        if deadline is None:
            poller.poll()
            return
        left = deadline - time.monotonic()
        if left <= 0 or not poller.poll(left * 1000):
            raise RubyTimeout("no answer before the deadline")

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
