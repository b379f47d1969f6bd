"""A request body: ``wsgi.input`` / ``rack.input`` over the connection's buffer.

Content-Length bodies are read here; chunked ones are decoded by chunked.py. A
request body is never read past its end, so the next request on a keep-alive
connection stays in the buffer.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .chunked import ChunkedBody
from .conn import ClientGone
from .proto import BadRequest

if TYPE_CHECKING:
    from .conn import Conn


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
