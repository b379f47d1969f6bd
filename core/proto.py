"""Wire protocols: HTTP/1.x request heads and uwsgi packets into CGI vars.

Both parsers are pure functions over bytes (fuzzed in the tests). They return
``None`` when more bytes are needed and raise ``BadRequest`` for garbage.
"""
from __future__ import annotations

import re
import socket
import struct
from urllib.parse import unquote_to_bytes

HOSTNAME = socket.gethostname()

_V11 = (1, 1)
UWSGI_HEADER = struct.Struct("<BHB")
U16 = struct.Struct("<H")


class BadRequest(Exception):
    """A request we cannot parse: answered with ``status`` and logged."""

    def __init__(self, why: str, status: int = 400):
        super().__init__(why)
        self.status = status


class Head:
    """A parsed request head."""

    __slots__ = ("vars", "consumed", "length", "chunked", "keepalive", "expect_continue",
                 "version", "modifier1", "headers", "modifier2")

    def __init__(self, env: dict, consumed: int, length: int = 0, chunked: bool = False,
                 keepalive: bool = False, expect_continue: bool = False,
                 version: tuple[int, int] = (1, 0), headers: int = 0, modifier1: int = 0,
                 modifier2: int = 0):
        self.vars = env
        self.consumed = consumed
        self.length = length
        self.chunked = chunked
        self.keepalive = keepalive
        self.expect_continue = expect_continue
        self.version = version
        self.headers = headers
        self.modifier1 = modifier1
        self.modifier2 = modifier2


# header name (as sent) -> (CGI key, kind); filled as names are seen
_NAMES: dict[str, tuple[str, int]] = {}
_NAMES_MAX = 1024
_PLAIN, _CL, _CT, _TE, _CONN, _EXPECT = range(6)
_KINDS = {"content-length": _CL, "content-type": _CT, "transfer-encoding": _TE,
          "connection": _CONN, "expect": _EXPECT}
_METHODS: dict[str, str] = {}
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VERSION = {"HTTP/1.1": _V11, "HTTP/1.0": (1, 0)}


def _header_name(name: str) -> tuple[str, int]:
    """The CGI key and kind of a header name, validated once per distinct spelling."""
    if not name or not _TOKEN.fullmatch(name):
        raise BadRequest("malformed header line")
    entry = ("HTTP_" + name.upper().replace("-", "_"), _KINDS.get(name.lower(), _PLAIN))
    if len(_NAMES) < _NAMES_MAX:
        _NAMES[name] = entry
    return entry


def parse_http(buf: bytes | bytearray, limit: int, server_port: str, remote: str) -> Head | None:
    """Parse one HTTP/1.x head from ``buf`` (HTTP-1).

    The head is decoded once (latin-1: one character per byte, so every check below
    sees exactly the bytes that were sent) and parsed as text.
    """
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > limit:
            raise BadRequest(f"request head larger than buffer-size ({limit})", 431)
        return None
    if end > limit:
        raise BadRequest(f"request head larger than buffer-size ({limit})", 431)
    lines = buf[:end].decode("latin-1").split("\r\n")
    try:
        method, uri, proto = lines[0].split(" ")
    except ValueError:
        if buf.startswith(b"\r\n"):
            return _after_empty_lines(buf, limit, server_port, remote)
        raise BadRequest("malformed request line") from None
    version = _VERSION.get(proto)
    if version is None:
        raise BadRequest("unsupported protocol version", 505 if proto.startswith("HTTP/") else 400)
    if method not in _METHODS:
        if not _TOKEN.fullmatch(method):
            raise BadRequest("invalid method")
        if len(_METHODS) < 64:
            _METHODS[method] = method
    if uri[:1] != "/":
        if not uri or uri[0] != "*" and not uri.startswith(("http://", "https://")):
            raise BadRequest("invalid request target")
        if uri.startswith(("http://", "https://")):
            slash = uri.find("/", uri.find("//") + 2)
            uri = uri[slash:] if slash > 0 else "/"
    path, _, query = uri.partition("?")
    if "%" in path:
        path = unquote_to_bytes(path.encode("latin-1")).decode("latin-1")
    env = {
        "REQUEST_METHOD": method,
        "REQUEST_URI": uri,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_PROTOCOL": proto,
        "SCRIPT_NAME": "",
        "SERVER_NAME": HOSTNAME,
        "SERVER_PORT": server_port,
        "REMOTE_ADDR": remote,
    }
    length = te = None
    connection = ""
    expect = False
    names = _NAMES
    del lines[0]
    try:
        for line in lines:
            name, value = line.split(":", 1)
            try:
                key, kind = names[name]
            except KeyError:
                key, kind = _header_name(name)
            value = value.strip(" \t")
            if kind:
                if kind == _CONN:
                    connection = value.lower()
                elif kind == _CL:
                    if not (value.isascii() and value.isdigit()):
                        raise BadRequest("invalid Content-Length")
                    if length is not None and int(value) != length:
                        raise BadRequest("conflicting Content-Length headers")
                    length = int(value)
                    env["CONTENT_LENGTH"] = value
                    continue
                elif kind == _CT:
                    env["CONTENT_TYPE"] = value
                    continue
                elif kind == _TE:
                    te = value.lower()
                elif value.lower() == "100-continue":
                    expect = version is _V11
            if key in env:
                env[key] += "," + value
            else:
                env[key] = value
    except ValueError:   # a line with no colon
        raise BadRequest("malformed header line") from None
    chunked = False
    if te is not None:
        if te != "chunked":
            raise BadRequest("unsupported Transfer-Encoding", 501)
        if length is not None:
            raise BadRequest("both Content-Length and Transfer-Encoding")
        chunked = True
    if version is _V11:
        keepalive = "close" not in connection
    else:
        keepalive = "keep-alive" in connection
    return Head(env, end + 4, length or 0, chunked, keepalive, expect, version, len(lines))


def _after_empty_lines(buf: bytes | bytearray, limit: int, server_port: str,
                       remote: str) -> Head | None:
    """Empty lines before a request line are tolerated (RFC 9112 2.2): skip them."""
    skip = 0
    while buf.startswith(b"\r\n", skip):
        skip += 2
    if skip > limit:
        raise BadRequest(f"request head larger than buffer-size ({limit})", 431)
    head = parse_http(buf[skip:], limit - skip, server_port, remote)
    if head is not None:
        head.consumed += skip
    return head


def parse_uwsgi(buf: bytes | bytearray, limit: int) -> Head | None:
    """Parse one uwsgi packet: 4-byte header then the vars block (PROTO-1/2)."""
    if len(buf) < 4:
        return None
    modifier1, size, modifier2 = UWSGI_HEADER.unpack_from(buf, 0)
    if size > limit:
        raise BadRequest(f"invalid request block size: {size} (max {limit})...skip", 0)
    if len(buf) < 4 + size:
        return None
    block = bytes(buf[4:4 + size])
    env = {}
    pos = 0
    n = len(block)
    while pos < n:
        if pos + 2 > n:
            raise BadRequest("truncated uwsgi vars block", 0)
        klen = U16.unpack_from(block, pos)[0]
        pos += 2
        key = block[pos:pos + klen]
        pos += klen
        if pos + 2 > n:
            raise BadRequest("truncated uwsgi vars block", 0)
        vlen = U16.unpack_from(block, pos)[0]
        pos += 2
        if pos + vlen > n:
            raise BadRequest("truncated uwsgi vars block", 0)
        env[key.decode("latin-1")] = block[pos:pos + vlen].decode("latin-1")
        pos += vlen
    h = Head(env, 4 + size, modifier1=modifier1, modifier2=modifier2)
    cl = env.get("CONTENT_LENGTH", "")
    if cl:
        if not (cl.isascii() and cl.isdigit()):   # "\xb2" (superscript two) is a digit to str
            raise BadRequest("invalid CONTENT_LENGTH", 0)
        h.length = int(cl)
    proto = env.get("SERVER_PROTOCOL", "HTTP/1.0")
    h.version = (1, 1) if proto == "HTTP/1.1" else (1, 0)
    env.setdefault("SERVER_PROTOCOL", "HTTP/1.0")
    env.setdefault("SCRIPT_NAME", "")
    env.setdefault("QUERY_STRING", "")
    env.setdefault("REQUEST_METHOD", "GET")
    env.setdefault("PATH_INFO", "/")
    env.setdefault("SERVER_NAME", HOSTNAME)
    env.setdefault("SERVER_PORT", "80")
    h.headers = sum(1 for k in env if k.startswith("HTTP_"))
    return h


def pack_uwsgi(env: dict[str, str], modifier1: int = 0, modifier2: int = 0) -> bytes:
    """Build a uwsgi request packet (used by tests and tools)."""
    block = bytearray()
    for k, v in env.items():
        kb, vb = k.encode("latin-1"), v.encode("latin-1")
        block += U16.pack(len(kb)) + kb + U16.pack(len(vb)) + vb
    return UWSGI_HEADER.pack(modifier1, len(block), modifier2) + bytes(block)


REASONS = {
    100: "Continue", 200: "OK", 400: "Bad Request", 404: "Not Found", 408: "Request Timeout",
    413: "Payload Too Large", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
    501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}


def simple_response(status: int, body: str = "") -> bytes:
    text = (body or REASONS.get(status, "Error")).encode() + b"\n"
    return (b"HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n" % (status, REASONS.get(status, "Error").encode(), len(text))
            + text)
