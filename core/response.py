"""The request an app sees, and its response: head validation and framing.

Handler plugins (WSGI, Rack) see only ``Request``: ``vars`` (CGI variables),
``input`` (the body), ``start()``, ``write()``, ``sendfile()``.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .api import response_lines
from .body import NO_BODY, Input

if TYPE_CHECKING:
    from .conn import Conn


_NO_BODY = {204, 304}
VIA_SENDFILE = "sendfile"    # Request.via: uWSGI's UWSGI_VIA_SENDFILE

# Response headers: (name, value) -> (the header line, its framing kind), validated and
# formatted once per distinct pair. Responses repeat their headers (content types, constant
# header tuples), so most are one dict lookup; the table stops growing at _LINES_MAX pairs.
_PLAIN, _LENGTH, _CONNECTION, _TRANSFER = range(4)
_FRAMING = {"content-length": _LENGTH, "connection": _CONNECTION, "transfer-encoding": _TRANSFER}
_LINES: dict[tuple[str, str], tuple[str, int]] = {}
_LINES_MAX = 1024


def header_line(item) -> tuple[str, int]:
    """``(line, kind)`` of a response header ``(name, value)``: str name and value, no CR or
    LF (response splitting) and no colon in the name, else TypeError / ValueError."""
    try:
        entry = _LINES.get(item)
    except TypeError:              # unhashable: not a (str, str) pair
        entry = None
    if entry is not None:
        return entry
    if type(item) is not tuple or len(item) != 2:
        raise TypeError(f"invalid response header {item!r}")
    name, value = item
    if type(name) is not str or type(value) is not str:
        raise TypeError(f"invalid response header {item!r}")
    line = f"{name}: {value}\r\n"
    if ":" in name or line.count("\n") != 1 or line.count("\r") != 1:
        raise ValueError(f"invalid character in response header {name!r}")
    entry = (line, _FRAMING.get(name.lower(), _PLAIN))
    if len(_LINES) < _LINES_MAX:
        _LINES[item] = entry
    return entry


_STATUS: dict[str, int] = {}   # status line -> code, for the status lines seen before


def status_code(status: str) -> int:
    """The code of a ``"200 OK"`` status: three digits, a space, no CR or LF (else ValueError)."""
    code = _STATUS.get(status) if type(status) is str else None
    if code is None:
        if type(status) is not str or status[3:4] != " " or not status[:3].isdigit() \
                or "\r" in status or "\n" in status:
            raise ValueError(f"invalid response status {status!r}")
        code = int(status[:3])
        if len(_STATUS) < 256:
            _STATUS[status] = code
    return code


class Request:
    """One request on a connection, and its response.

    The response head is made in two steps: ``prepare(status, headers)`` checks and
    formats it (raising TypeError or ValueError for a bad status or header, and callable
    again to replace it until ``begin()``), ``begin(body_length)`` adds the framing
    headers and queues it to go out with the first body bytes. ``start()`` does both.
    """

    __slots__ = ("conn", "vars", "input", "head", "http", "keepalive", "status", "sent",
                 "pending", "chunked", "length", "hsize", "no_body", "started", "prepared",
                 "extra", "hooks", "via", "logvars", "core")
    core: int          # the request thread's core id, set by the dispatcher
    input: Any         # body.Input, NO_BODY, or postbuffer's spooled body

    def __init__(self, conn: Conn, head, http: bool, keepalive_allowed: bool, limit_post: int,
                 extra: tuple[str, ...] = (), hooks: tuple = ()):
        self.conn = conn
        self.extra = extra      # header lines added to every response (--add-header)
        self.hooks = hooks      # uwsgi_response_headers functions (api.response_lines)
        self.head = head
        self.vars = head.vars
        self.http = http
        self.keepalive = http and keepalive_allowed and head.keepalive
        if head.length or head.chunked:
            self.input = Input(conn, head.length, head.chunked, head.expect_continue, limit_post)
        else:
            self.input = NO_BODY   # shared: reading an empty body changes nothing in it
        self.status = self.sent = self.hsize = 0
        self.pending: bytes | None = None
        self.length: int | None = None
        self.prepared: tuple[list[str], bool] | None = None
        self.chunked = self.no_body = self.started = False
        self.via = ""           # "sendfile" once the app or a handler sent a file (the log line)
        self.logvars: dict | None = None   # uwsgi.set_logvar()'s values for --log-format, once one is set

    @property
    def committed(self) -> bool:
        """True once bytes of the response are on the wire."""
        return self.started and self.pending is None

    @property
    def nheaders(self) -> int:
        """Header lines in the response head (for the request log line)."""
        return len(self.prepared[0]) - 3 if self.started else 0   # type: ignore[index]

    def prepare(self, status: str, headers: list[tuple[str, str]]) -> None:
        """Check and format the status line and headers; nothing is sent yet.

        Headers are checked by ``header_line``, the status by ``status_code`` (TypeError or
        ValueError). A Content-Length header is the body's length; a ``Connection: close``
        or a Transfer-Encoding header of the app's ends keep-alive.
        """
        code = status_code(status)
        lines = [status, "\r\n"]
        length = None
        has_connection = False
        lookup = _LINES.get
        for item in headers:
            try:
                entry = lookup(item)
            except TypeError:      # unhashable: not a (str, str) pair (header_line says so)
                entry = None
            if entry is None:
                entry = header_line(item)
            line, kind = entry
            if kind:
                value = item[1]
                if kind == _LENGTH:
                    length = int(value)
                elif kind == _CONNECTION:
                    has_connection = True
                    if value.lower() == "close":
                        self.keepalive = False
                else:
                    self.keepalive = False
            lines.append(line)
        self.status = code
        self.length = length
        self.prepared = (lines, has_connection)

    def begin(self, body_length: int | None = None) -> None:
        """Queue the prepared head to go out with the first body bytes. ``body_length``: the
        size of a body known in full, announced as Content-Length when the headers did not."""
        lines, has_connection = self.prepared   # type: ignore[misc]   # prepare() came first
        if self.extra:
            lines.extend(self.extra)
        if self.hooks:
            lines.extend(response_lines(self.hooks, self, self.status))
        length = self.length
        if length is None and body_length is not None:
            self.length = length = body_length
            lines.append(f"Content-Length: {length}\r\n")
        code = self.status
        if code < 200 or code in _NO_BODY:
            self.no_body = True
            if length is None:
                self.length = length = 0
        elif self.vars.get("REQUEST_METHOD") == "HEAD":
            self.no_body = True
        if self.http:
            if self.head.version == (1, 1):
                proto = "HTTP/1.1 "
                if self.keepalive:
                    if length is None and not self.no_body:
                        self.chunked = True
                        lines.append("Transfer-Encoding: chunked\r\n")
                elif not has_connection:
                    lines.append("Connection: close\r\n")
            else:
                proto = "HTTP/1.0 "
                if self.keepalive:
                    if length is None and not self.no_body:
                        self.keepalive = False          # HTTP/1.0 has no chunked framing
                    elif not has_connection:
                        lines.append("Connection: keep-alive\r\n")
            if self.keepalive and self.conn.corked:
                self.conn.uncork()
        else:
            proto = (self.vars.get("SERVER_PROTOCOL") or "HTTP/1.0") + " "
        lines.append("\r\n")
        head = (proto + "".join(lines)).encode("latin-1")
        self.hsize = len(head)
        self.started = True
        self.pending = head

    def start(self, status: str, headers: list[tuple[str, str]], body_length: int | None = None) -> None:
        """``prepare()`` then ``begin()``: the head goes out with the first body bytes."""
        self.prepare(status, headers)
        self.begin(body_length)

    def respond(self, body) -> None:
        """The whole prepared response at once (a list or tuple of bytes): head and body in
        one write, with a Content-Length."""
        size = 0
        for chunk in body:
            if type(chunk) is not bytes:
                raise TypeError("response body items must be bytes")
            size += len(chunk)
        self.begin(size)
        data = self.pending
        self.pending = None
        if size and not self.no_body:
            data += body[0] if len(body) == 1 else b"".join(body)   # type: ignore[operator]
            self.sent = size
        self.conn.sendall(data)

    def write(self, data: bytes) -> None:
        if self.no_body:
            data = b""
        if self.chunked and data:
            data = b"%x\r\n%b\r\n" % (len(data), data)
        self.sent += len(data)
        if self.pending is not None:
            data = self.pending + data
            self.pending = None
        conn = self.conn
        if conn.corked and not self.no_body and (self.length is None or self.sent < self.length):
            conn.uncork()   # more may follow, maybe slowly: do not hold this part back
        if data:
            conn.sendall(data)

    def sendfile(self, fd: int, offset: int = 0, count: int | None = None) -> None:
        """Send a file with ``os.sendfile`` (``wsgi.file_wrapper``)."""
        self.via = VIA_SENDFILE
        if self.pending is not None:
            self.conn.sendall(self.pending)
            self.pending = None
        if self.no_body:
            return
        if self.chunked:
            # sendfile cannot frame chunks; fall back to reads
            if count is None:
                count = os.fstat(fd).st_size - offset
            while count > 0:
                data = os.pread(fd, min(count, 1 << 16), offset)
                if not data:
                    break
                self.write(data)
                offset += len(data)
                count -= len(data)
            return
        self.sent += self.conn.sendfile(fd, offset, count)

    def finish(self) -> None:
        data = self.pending or b""
        self.pending = None
        if self.chunked:
            data += b"0\r\n\r\n"
        if data:
            self.conn.sendall(data)
        if self.length is not None and self.sent != self.length and not self.no_body:
            self.keepalive = False
