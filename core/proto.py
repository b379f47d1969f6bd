"""Wire protocols: HTTP/1.x request heads and uwsgi packets into CGI vars.

Both parsers are pure functions over bytes (fuzzed in the tests, and the HTTP one
checked against gunicorn's request corpus and against h11). They return ``None``
when more bytes are needed and raise ``BadRequest`` for anything RFC 9112 (HTTP) or
the uwsgi protocol does not allow; README.md ("Differences from uWSGI") lists the rules.
Request bodies (Content-Length, chunked) are read by ``body.Input``.
"""
from __future__ import annotations

import re
import socket
import struct

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


# RFC 9112 / RFC 9110 character classes
TCHAR = r"!#$%&'*+\-.^_`|~0-9A-Za-z"
FIELD_CHARS = r"\t\x20-\x7e\x80-\xff"          # HTAB, SP, VCHAR, obs-text
# bytes a head may hold only as CRLF pairs (CR, LF) or not at all (the other CTLs)
_CTLS = bytes(range(0x09)) + bytes(range(0x0a, 0x20)) + b"\x7f"
# in a head still arriving: bytes no valid head contains, rejected before it is complete
_PARTIAL_BAD = re.compile(rb"(?<!\r)\n|\r[^\n]|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_PARTIAL_START = re.compile(rf"(?:\r\n)*+(?:[{TCHAR}]|\r?\Z)".encode())   # a method starts it
_TOKEN = re.compile(rf"[{TCHAR}]+")
_FIELD_VALUE = re.compile(rf"[{FIELD_CHARS}]*")
_TARGET = re.compile(r"[\x21-\x7e\x80-\xff]+")
_HTTP_VERSION = re.compile(r"HTTP/[0-9]\.[0-9]")
_METHODS: dict[str, str] = {}
# absolute-form (RFC 9112 3.2.2): scheme "://" [userinfo "@"] host [":" port] (RFC 3986),
# then the origin-form part the app gets
_SUB = r"A-Za-z0-9\-._~!$&'()*+,;=%"
_ABSOLUTE = re.compile(rf"[A-Za-z][A-Za-z0-9+.\-]*://(?:[{_SUB}:]*@)?"
                       rf"(?:\[[{_SUB}:]+\]|[{_SUB}]+)(?::[0-9]*)?([/?#].*)?", re.S)
_VERSION = {"HTTP/1.1": _V11, "HTTP/1.0": (1, 0)}
MAX_LENGTH_DIGITS = 19   # Content-Length below 10**19 (fits in 63 bits)


class HttpRules:
    """The limits and choices an HTTP socket applies to request heads."""

    __slots__ = ("max_fields", "max_lines", "max_line", "underscores")

    def __init__(self, max_fields: int = 100, max_line: int = 0, underscores: bool = False):
        self.max_fields = max_fields     # --limit-request-fields (0: no limit)
        self.max_lines = max_fields + 1 if max_fields else 1 << 62   # with the request line
        self.max_line = max_line         # --limit-request-line (0: --buffer-size)
        self.underscores = underscores   # --http-allow-underscore-headers


RULES = HttpRules()

# header name (as sent) -> (CGI key, kind); filled as names are seen
_NAMES: dict[str, tuple[str, int]] = {}
_NAMES_MAX = 1024
_PLAIN, _CL, _CT, _TE, _EXPECT, _UNDERSCORE = range(6)
_KINDS = {"content-length": _CL, "content-type": _CT, "transfer-encoding": _TE, "expect": _EXPECT}


def _header_name(name: str) -> tuple[str, int]:
    """The CGI key and kind of a header name, validated once per distinct spelling."""
    if not _TOKEN.fullmatch(name):
        if name[:1] in (" ", "\t"):
            raise BadRequest("obsolete line folding (or whitespace before a header line)")
        raise BadRequest(f"invalid header name {name!r}")
    kind = _KINDS.get(name.lower(), _UNDERSCORE if "_" in name else _PLAIN)
    entry = ("HTTP_" + name.upper().replace("-", "_"), kind)
    if len(_NAMES) < _NAMES_MAX:
        _NAMES[name] = entry
    return entry


def parse_http(buf: bytes | bytearray, limit: int, server_port: str, remote: str,
               rules: HttpRules = RULES) -> Head | None:
    """Parse one HTTP/1.x head from ``buf`` (HTTP-1).

    The head is decoded once (latin-1: one character per byte, so every check below
    sees exactly the bytes that were sent). One C pass checks every byte: without its
    CTLs (HTAB aside), CR and LF, a head must be shorter by exactly its CRLF pairs.
    Tokens (methods, header names) are checked once per distinct spelling.
    """
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        _check_partial(buf, limit, rules)
        return None
    if end > limit:
        raise _too_large(buf, limit, rules)
    raw = buf[:end]
    head = raw.decode("latin-1")
    lines = head.split("\r\n")
    try:
        if len(raw) - len(raw.translate(None, _CTLS)) != 2 * len(lines) - 2:
            raise ValueError
        method, uri, proto = lines[0].split(" ")
    except ValueError:
        if buf.startswith(b"\r\n"):
            return _after_empty_lines(buf, limit, server_port, remote, rules)
        raise _diagnose(head) from None
    if method not in _METHODS:
        _method(method)
    if rules.max_line and len(lines[0]) > rules.max_line:
        raise BadRequest(f"request line longer than limit-request-line ({rules.max_line})", 414)
    if len(lines) > rules.max_lines:
        raise BadRequest(f"more than limit-request-fields ({rules.max_fields}) header lines", 431)
    version = _VERSION.get(proto)
    if version is None:
        if _HTTP_VERSION.fullmatch(proto):
            raise BadRequest(f"unsupported protocol version {proto}", 505)
        raise BadRequest(f"malformed HTTP version {proto!r}")
    if "\t" in uri:      # the one CTL the byte check lets through (for field values)
        raise BadRequest("control character in the request target")
    if uri[:1] != "/":
        uri = _target_path(method, uri)
    path, _, query = uri.partition("?")
    if "%" in path:
        path = unquote(path)
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
                if kind == _CL:
                    if length is not None:
                        raise BadRequest("more than one Content-Length header")
                    if not (value.isascii() and value.isdigit()) or len(value) > MAX_LENGTH_DIGITS:
                        raise BadRequest(f"invalid Content-Length {value!r}")
                    length = int(value)
                    env["CONTENT_LENGTH"] = value
                    continue
                elif kind == _CT:
                    if "CONTENT_TYPE" in env:
                        raise BadRequest("more than one Content-Type header")
                    env["CONTENT_TYPE"] = value
                    continue
                elif kind == _TE:
                    te = value if te is None else te + "," + value
                elif kind == _EXPECT:
                    if value.lower() == "100-continue":
                        expect = version == _V11
                elif not rules.underscores:   # _UNDERSCORE: dropped, as nginx does by default
                    continue
            if key in env:
                if key == "HTTP_HOST":
                    raise BadRequest("more than one Host header")
                env[key] += "," + value
            else:
                env[key] = value
    except ValueError:   # a line with no colon (obs-fold, often)
        raise _diagnose(head) from None
    chunked = False
    if te is not None:
        chunked = _transfer_encoding(te, version, length)
    connection = env.get("HTTP_CONNECTION", "").lower()
    if version == _V11:
        keepalive = "close" not in connection
    else:
        keepalive = "keep-alive" in connection
    return Head(env, end + 4, length or 0, chunked, keepalive, expect, version, len(lines))


def _method(method: str) -> None:
    """Check a method once per spelling; CONNECT is never cached, so always refused."""
    if not _TOKEN.fullmatch(method):
        raise BadRequest(f"invalid method {method!r}")
    if method == "CONNECT":
        raise BadRequest("CONNECT is refused (an application server makes no tunnels)")
    if len(_METHODS) < 64:
        _METHODS[method] = method


def _target_path(method: str, uri: str) -> str:
    """The origin-form part of an asterisk-form or absolute-form target (RFC 9112 3.2)."""
    if uri == "*":
        if method != "OPTIONS":
            raise BadRequest(f"request target '*' with {method} (only OPTIONS takes it)")
        return uri
    m = _ABSOLUTE.fullmatch(uri)
    if m is None:
        raise BadRequest("invalid request target")
    rest = m.group(1) or ""
    return rest if rest[:1] == "/" else "/" + rest


# "%XX" (either case) -> the byte XX, as a latin-1 character
_ESCAPES = {f"{a}{b}": chr(int(a + b, 16)) for a in "0123456789abcdefABCDEF"
            for b in "0123456789abcdefABCDEF"}


def unquote(path: str) -> str:
    """PATH_INFO from a request path: each ``%XX`` decoded to its byte, a ``%`` not followed
    by two hex digits kept as written (urllib's ``unquote_to_bytes``, on latin-1 text)."""
    first, *rest = path.split("%")
    out = [first]
    for part in rest:
        byte = _ESCAPES.get(part[:2])
        out.append("%" + part if byte is None else byte + part[2:])
    return "".join(out)

def _transfer_encoding(te: str, version: tuple[int, int], length: int | None) -> bool:
    """RFC 9112 6.1/6.3: chunked, last and once, in HTTP/1.1 only, never with Content-Length."""
    if version != _V11:
        raise BadRequest("Transfer-Encoding in an HTTP/1.0 request")
    if length is not None:
        raise BadRequest("both Content-Length and Transfer-Encoding")
    codings = [c.strip(" \t").lower() for c in te.split(",")]
    codings = [c for c in codings if c]
    if not codings or codings[-1] != "chunked":
        raise BadRequest(f"Transfer-Encoding {te!r} does not end with chunked")
    if len(codings) > 1:
        if "chunked" in codings[:-1]:
            raise BadRequest("chunked applied more than once")
        raise BadRequest(f"unsupported transfer coding in {te!r}", 501)
    return True


def _check_partial(buf: bytes | bytearray, limit: int, rules: HttpRules) -> None:
    """A head still arriving: refuse it as soon as it cannot become valid."""
    bad = _PARTIAL_BAD.search(buf)
    if bad is not None:
        raise BadRequest(_BYTE_ERRORS.get(bad.group()[:1], "control character in the request head"))
    if not _PARTIAL_START.match(buf):
        raise BadRequest("malformed request line")
    if len(buf) > limit or _request_line_length(buf) > (rules.max_line or limit):
        raise _too_large(buf, limit, rules)


_BYTE_ERRORS = {b"\n": "bare LF in the request head", b"\r": "bare CR in the request head"}


def _request_line_length(buf: bytes | bytearray) -> int:
    """The request line's length so far (leading empty lines skipped)."""
    start = 0
    while buf.startswith(b"\r\n", start):
        start += 2
    eol = buf.find(b"\r\n", start)
    return (len(buf) if eol < 0 else eol) - start


def _too_large(buf: bytes | bytearray, limit: int, rules: HttpRules) -> BadRequest:
    """414 when the request line alone is too long, else 431."""
    max_line = rules.max_line or limit
    if _request_line_length(buf) > max_line:
        name = "limit-request-line" if rules.max_line else "buffer-size"
        return BadRequest(f"request line longer than {name} ({max_line})", 414)
    return BadRequest(f"request head larger than buffer-size ({limit})", 431)


def _diagnose(head: str) -> BadRequest:
    """Why a head was refused: the slow path, for the log line."""
    bad = _PARTIAL_BAD.search(head.encode("latin-1"))
    if bad is not None and bad.group()[:1] in _BYTE_ERRORS:
        return BadRequest(_BYTE_ERRORS[bad.group()[:1]])
    lines = head.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        return BadRequest("malformed request line")
    method, target, proto = parts
    if not _TOKEN.fullmatch(method):
        return BadRequest(f"invalid method {method!r}")
    if not _TARGET.fullmatch(target):
        return BadRequest("invalid character in the request target")
    if not _HTTP_VERSION.fullmatch(proto):
        return BadRequest(f"malformed HTTP version {proto!r}")
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):
            return BadRequest("obsolete line folding (or whitespace before a header line)")
        name, colon, value = line.partition(":")
        if not colon:
            return BadRequest("header line without a colon")
        if not _TOKEN.fullmatch(name):
            return BadRequest(f"invalid header name {name!r}")
        if not _FIELD_VALUE.fullmatch(value):
            return BadRequest(f"control character in the value of {name}")
    return BadRequest("malformed request head")


def _after_empty_lines(buf: bytes | bytearray, limit: int, server_port: str,
                       remote: str, rules: HttpRules) -> Head | None:
    """Empty lines before a request line are tolerated (RFC 9112 2.2): skip them."""
    skip = 0
    while buf.startswith(b"\r\n", skip):
        skip += 2
    if skip > limit:
        raise BadRequest(f"request head larger than buffer-size ({limit})", 431)
    head = parse_http(buf[skip:], limit - skip, server_port, remote, rules)
    if head is not None:
        head.consumed += skip
    return head


def parse_uwsgi(buf: bytes | bytearray, limit: int) -> Head | None:
    """Parse one uwsgi packet: 4-byte header then the vars block (PROTO-1/2).

    Garbage closes the connection (status 0): the declared size above ``limit``
    (--buffer-size), a key or value running past the block, an empty key, a
    CONTENT_LENGTH that is not 1-19 ASCII digits or that appears twice.
    """
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
        if not klen:
            raise BadRequest("uwsgi var with an empty name", 0)
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
        if not (cl.isascii() and cl.isdigit()) or len(cl) > MAX_LENGTH_DIGITS:
            raise BadRequest(f"invalid CONTENT_LENGTH {cl!r}", 0)   # isdigit: "\xb2" too
        h.length = int(cl)
    if block.count(_CL_VAR) > 1 and _count_var(block, b"CONTENT_LENGTH") > 1:
        raise BadRequest("more than one CONTENT_LENGTH var", 0)
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


_CL_VAR = U16.pack(14) + b"CONTENT_LENGTH"   # the key as packed: a cheap test for a repeat


def _count_var(block: bytes, name: bytes) -> int:
    """How many vars of the (well-formed) block are called ``name``."""
    count = pos = 0
    while pos < len(block):
        klen = U16.unpack_from(block, pos)[0]
        count += block[pos + 2:pos + 2 + klen] == name
        pos += 2 + klen
        pos += 2 + U16.unpack_from(block, pos)[0]
    return count


def pack_uwsgi(env: dict[str, str], modifier1: int = 0, modifier2: int = 0) -> bytes:
    """Build a uwsgi request packet (used by tests and tools)."""
    block = bytearray()
    for k, v in env.items():
        kb, vb = k.encode("latin-1"), v.encode("latin-1")
        block += U16.pack(len(kb)) + kb + U16.pack(len(vb)) + vb
    return UWSGI_HEADER.pack(modifier1, len(block), modifier2) + bytes(block)


REASONS = {
    100: "Continue", 200: "OK", 400: "Bad Request", 404: "Not Found", 408: "Request Timeout",
    413: "Payload Too Large", 414: "URI Too Long", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
    501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}


def simple_response(status: int, body: str = "", extra: str = "") -> bytes:
    """The core's own response; ``extra``: header lines the response hooks add."""
    text = (body or REASONS.get(status, "Error")).encode() + b"\n"
    return (b"HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s"
            b"Connection: close\r\n\r\n" % (status, REASONS.get(status, "Error").encode(), len(text),
                                               extra.encode("latin-1"))
            + text)
