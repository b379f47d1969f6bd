"""A client connection, its requests, the request body and the response.

Handler plugins (WSGI, Rack) see only ``Request``: ``vars`` (CGI variables),
``input`` (the body), ``start()``, ``write()``, ``sendfile()``.
"""
from __future__ import annotations

import os
import select
import socket
import time

from .chunked import ChunkedBody
from .api import response_lines
from .proto import BadRequest

READ_SIZE = 65536   # bytes per read(); a read that fills it may have left more in the kernel
_POLLIN = select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR
_POLLOUT = select.POLLOUT | select.POLLHUP | select.POLLERR


class ClientGone(Exception):
    """The client closed or stalled past --socket-timeout."""


class ClientTimeout(ClientGone):
    """The client stalled for --socket-timeout, or moved less than --socket-min-bytes
    in a --socket-timeout window spent waiting for it."""


def wait_fd(fd: int, events: int, timeout: float) -> None:
    p = select.poll()
    p.register(fd, events)
    if not p.poll(timeout * 1000):
        raise ClientTimeout("timeout")


try:   # shutdown() on a raw fd: Python has it only as a socket method
    import ctypes
    _libc_shutdown = ctypes.CDLL(None, use_errno=True).shutdown
    _libc_shutdown.argtypes = (ctypes.c_int, ctypes.c_int)
except (ImportError, OSError, AttributeError):
    _libc_shutdown = None


def _shutdown_wr(fd: int) -> None:
    if _libc_shutdown is not None:
        _libc_shutdown(fd, socket.SHUT_WR)
        return
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        return
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    sock.detach()


class Conn:
    """A non-blocking client socket with a read buffer."""

    __slots__ = ("_sock", "fd", "listener", "buf", "remote", "timeout", "deadline", "served",
                 "min_bytes", "moved", "waited", "window_moved", "corked", "unread")

    def __init__(self, fd: int, listener, remote: str, timeout: float, min_bytes: int = 0,
                 corked: bool = False):
        # an accepted fd, not a socket object (whose creation costs a getsockname() and an
        # allocation per connection): reads and writes go through the fd
        self._sock = None
        self.fd = fd
        self.listener = listener
        self.buf = bytearray()
        self.remote = remote
        self.timeout = timeout
        self.deadline = 0.0
        # --socket-min-bytes: bytes moved by fill_wait/sendall/sendfile, seconds spent
        # blocked on this client in the current window, ``moved`` when the window began
        self.min_bytes = min_bytes
        self.served = self.moved = self.waited = self.window_moved = 0
        # TCP_CORK inherited from the listener: what is written waits in the kernel until
        # uncork() or close(), so a response and the FIN leave in one segment
        self.corked = corked
        # bytes the client sent may wait unread in the kernel (a request body left unread,
        # a read that filled its buffer): close() must not turn them into a reset
        self.unread = False

    def wait(self, events: int) -> None:
        """Block until the socket is ready (only when a call would block).

        ClientTimeout after a stall of ``timeout`` seconds (uWSGI's per-operation
        socket-timeout) and, with ``min_bytes``, when a window of ``timeout``
        seconds spent waiting for this client moved fewer than ``min_bytes`` bytes:
        a client trickling a byte a second is dropped, not only a silent one.
        """
        if not self.min_bytes:
            wait_fd(self.fd, events, self.timeout)
            return
        p = select.poll()
        p.register(self.fd, events)
        start = time.monotonic()
        while True:
            now = time.monotonic()
            stall_left = start + self.timeout - now
            if stall_left <= 0:
                raise ClientTimeout("timeout")
            ready = p.poll(max(0.0, min(stall_left, self.timeout - self.waited)) * 1000)
            self.waited += time.monotonic() - now
            if self.waited >= self.timeout:
                if self.moved - self.window_moved < self.min_bytes:
                    raise ClientTimeout(f"moved {self.moved - self.window_moved} bytes in "
                                        f"{self.timeout:g}s (socket-min-bytes {self.min_bytes})")
                self.waited = 0.0
                self.window_moved = self.moved
            if ready:
                return

    @property
    def sock(self) -> socket.socket:
        """A socket object for the fd, made on first use (reads and writes go through the fd)."""
        if self._sock is None:
            self._sock = socket.socket(fileno=self.fd)
        return self._sock

    def fill(self) -> bool:
        """Read what is there without blocking; False at EOF."""
        try:
            data = os.read(self.fd, READ_SIZE)
        except BlockingIOError:
            return True
        except (ConnectionError, OSError):
            return False
        if not data:
            return False
        self.buf += data
        if len(data) == READ_SIZE:
            self.unread = True
        return True

    def fill_wait(self) -> None:
        """Read at least one byte, waiting up to the timeout (ClientGone otherwise)."""
        while True:
            try:
                data = os.read(self.fd, READ_SIZE)
            except BlockingIOError:
                self.wait(_POLLIN)
                continue
            except OSError as e:
                raise ClientGone(str(e)) from None
            if not data:
                raise ClientGone("eof")
            self.buf += data
            self.moved += len(data)
            if len(data) == READ_SIZE:
                self.unread = True
            return

    def sendall(self, data) -> None:
        try:
            n = os.write(self.fd, data)    # the usual case: all of it in one call
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError as e:
            raise ClientGone(str(e)) from None
        self.moved += n
        if n == len(data):
            return
        view = memoryview(data)[n:]
        while view:
            try:
                n = os.write(self.fd, view)
            except BlockingIOError:
                self.wait(_POLLOUT)
                continue
            except OSError as e:
                raise ClientGone(str(e)) from None
            self.moved += n
            view = view[n:]

    def sendfile(self, fd: int, offset: int, count: int | None) -> int:
        sent = 0
        while count is None or sent < count:
            chunk = 1 << 20 if count is None else min(1 << 20, count - sent)
            try:
                n = os.sendfile(self.fd, fd, offset + sent, chunk)
            except BlockingIOError:
                self.wait(_POLLOUT)
                continue
            except OSError as e:
                raise ClientGone(str(e)) from None
            if n == 0:
                break
            sent += n
            self.moved += n
        return sent

    def uncork(self) -> None:
        """Send what is held and stop holding: before anything that waits for the client
        (100-continue, a keep-alive connection, a streamed response)."""
        if self.corked:
            self.corked = False
            try:
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
            except OSError:
                pass

    def close(self) -> None:
        """Close the connection, once (a rejected request may be dropped twice)."""
        if self.fd < 0:
            return
        if self.corked and (self.buf or self.unread):
            # a close() with unread request bytes would reset the connection and drop the
            # held response: shutdown(SHUT_WR) sends it with the FIN first. With nothing
            # unread, close() alone sends both (one syscall less).
            _shutdown_wr(self.fd)
        try:
            if self._sock is not None:
                self._sock.close()
            else:
                os.close(self.fd)
        except OSError:
            pass
        self.fd = -1


class Input:
    """``wsgi.input`` / ``rack.input``: never blocks past the body's end."""

    def __init__(self, conn: Conn, length: int, chunked: bool, expect_continue: bool,
                 limit: int = 0):
        self.conn = conn
        self.remaining = length
        self.chunked = chunked
        self.chunks = ChunkedBody(limit) if chunked else None
        self.expect = expect_continue
        self.limit = limit
        self.done = not chunked and length == 0
        self.pending = bytearray()  # decoded chunked bytes not yet returned
        self.total = 0
        if limit and not chunked and length > limit:
            raise BadRequest(f"request body of {length} bytes exceeds limit-post ({limit})", 413)

    def _continue(self) -> None:
        if self.expect:
            self.expect = False
            self.conn.uncork()
            self.conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _raw(self, want: int) -> bytes:
        """Up to ``want`` raw bytes of the stream, waiting for at least one."""
        conn = self.conn
        if not conn.buf:
            self._continue()
            conn.fill_wait()
        data = bytes(conn.buf[:want])
        del conn.buf[:want]
        return data

    def _read_chunked(self, want: int) -> None:
        """Decode chunks into ``pending`` until it holds ``want`` bytes or the body ends."""
        if not self.done:
            self.chunks.decode(self.conn, self.pending, want, self._continue)
            self.done = self.chunks.done

    def read(self, size: int | None = -1) -> bytes:
        if size is None:
            size = -1
        if self.chunked:
            self._read_chunked(size)
            if size < 0:
                size = len(self.pending)
            out = bytes(self.pending[:size])
            del self.pending[:size]
            self.total += len(out)
            return out
        if size < 0 or size > self.remaining:
            size = self.remaining
        parts = []
        while size > 0:
            data = self._raw(size)
            parts.append(data)
            size -= len(data)
            self.remaining -= len(data)
        if self.remaining == 0:
            self.done = True
        out = b"".join(parts)
        self.total += len(out)
        return out

    def readline(self, size: int | None = -1) -> bytes:
        if size is None:
            size = -1
        out = bytearray()
        while size < 0 or len(out) < size:
            if self.chunked:
                if not self.pending:
                    self._read_chunked(1)
                    if not self.pending:
                        break
                source = self.pending
            else:
                if self.remaining == 0:
                    break
                if not self.conn.buf:
                    self._continue()
                    self.conn.fill_wait()
                source = None
            buf = self.pending if source is not None else self.conn.buf
            limit = len(buf) if source is not None else min(len(buf), self.remaining)
            if size >= 0:
                limit = min(limit, size - len(out))
            nl = buf.find(b"\n", 0, limit)
            take = nl + 1 if nl >= 0 else limit
            out += buf[:take]
            del buf[:take]
            if source is None:
                self.remaining -= take
            if nl >= 0:
                break
        self.total += len(out)
        return bytes(out)

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                break
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                break
        return lines

    def __iter__(self):
        while True:
            line = self.readline()
            if not line:
                return
            yield line

    def drain(self, limit: int = 1 << 16) -> bool:
        """Discard the rest of the body; False if more than ``limit`` was left or the
        client went away. BadRequest (a malformed chunked body) propagates."""
        if self.done:
            return True
        if not self.chunked and self.remaining > limit:
            return False
        drained = 0
        try:
            while drained <= limit:
                data = self.read(limit)
                if not data:
                    return True
                drained += len(data)
        except ClientGone:
            pass
        return False


NO_BODY = Input(None, 0, False, False)   # the body of every request that has none

_NO_BODY = {204, 304}

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
                 "extra", "hooks")

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
        self.pending = self.length = self.prepared = None
        self.chunked = self.no_body = self.started = False

    @property
    def committed(self) -> bool:
        """True once bytes of the response are on the wire."""
        return self.started and self.pending is None

    @property
    def nheaders(self) -> int:
        """Header lines in the response head (for the request log line)."""
        return len(self.prepared[0]) - 3 if self.started else 0

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
        lines, has_connection = self.prepared
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
            data += body[0] if len(body) == 1 else b"".join(body)
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
