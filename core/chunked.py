"""Chunked request bodies (RFC 9112 7.1), decoded strictly and in one pass.

    chunked-body = *( chunk-size [ chunk-ext ] CRLF chunk-data CRLF )
                   "0" [ chunk-ext ] CRLF *( field-line CRLF ) CRLF

Every line ends with CRLF, and so does every chunk's data: a decoder that skips two
bytes after the data instead of checking them reads ``5\\r\\nhelloXX0\\r\\n\\r\\n`` as
"hello" (h11's CVE-2025-43859), and a front-end that disagrees about where the body
ends has been handed a second request. Sizes are 1 to 16 hex digits; extensions
follow the grammar (no bare CR or LF, no control characters); trailer lines are
field lines, bounded, never a Content-Length, Transfer-Encoding or Host, and never
passed to the app.

The decoder reads the connection's buffer from an offset and compacts it only before
it is refilled, so its work is linear in the body, whatever the chunk sizes.
"""
from __future__ import annotations

import re

from .proto import FIELD_CHARS, TCHAR, BadRequest

MAX_LINE = 4096          # a chunk-size line with its extensions, or one trailer line
MAX_TRAILERS = 65536     # all trailer lines together
_QUOTED = r'"(?:[\t\x20\x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t\x20-\x7e\x80-\xff])*"'
_EXTENSION = rf"[ \t]*;[ \t]*[{TCHAR}]+(?:[ \t]*=[ \t]*(?:[{TCHAR}]+|{_QUOTED}))?"
SIZE_LINE = re.compile(rf"([0-9A-Fa-f]{{1,16}})(?:{_EXTENSION})*".encode("latin-1"))
TRAILER_LINE = re.compile(rf"([{TCHAR}]+):[{FIELD_CHARS}]*".encode("latin-1"))
FORBIDDEN_TRAILERS = {b"content-length", b"transfer-encoding", b"host"}

SIZE, DATA, DATA_END, TRAILER, DONE = range(5)


class ChunkedBody:
    """Where a chunked body's decoding stands, between reads of the app."""

    __slots__ = ("state", "remaining", "trailers", "decoded", "limit")

    def __init__(self, limit: int = 0):
        self.state = SIZE
        self.remaining = 0      # data bytes left in the current chunk
        self.trailers = 0       # trailer bytes seen
        self.decoded = 0        # data bytes decoded
        self.limit = limit      # --limit-post (0: none)

    @property
    def done(self) -> bool:
        return self.state == DONE

    def decode(self, conn, out: bytearray, want: int, before_wait) -> None:
        """Append decoded data to ``out`` until it holds ``want`` bytes (``want`` < 0:
        the whole body) or the body ends. ``before_wait()`` runs before blocking for
        more bytes (100 Continue). BadRequest for anything RFC 9112 does not allow and
        (413) for a body over ``limit``; ClientGone from the reads."""
        buf = conn.buf
        pos = 0
        size_line = SIZE_LINE.fullmatch
        try:
            while self.state != DONE and (want < 0 or len(out) < want):
                state = self.state
                if state == DATA:
                    n = min(self.remaining, len(buf) - pos)
                    if n:
                        out += buf[pos:pos + n]
                        pos += n
                        self.remaining -= n
                        self.decoded += n
                        if self.limit and self.decoded > self.limit:
                            raise BadRequest(f"request body exceeds limit-post ({self.limit})", 413)
                        if not self.remaining:
                            if buf.startswith(b"\r\n", pos):   # the usual case, one step
                                pos += 2
                                self.state = SIZE
                            else:
                                self.state = DATA_END
                        continue
                elif state == DATA_END:
                    if not buf.startswith(b"\r\n"[:len(buf) - pos], pos):
                        raise BadRequest("chunk data not followed by CRLF")
                    if len(buf) - pos >= 2:
                        pos += 2
                        self.state = SIZE
                        continue
                else:
                    eol = buf.find(b"\r\n", pos, pos + MAX_LINE + 2)
                    if eol >= 0:
                        if state == SIZE:
                            m = size_line(buf, pos, eol)
                            if m is None:
                                raise BadRequest("invalid chunk size line "
                                                 f"{bytes(buf[pos:min(eol, pos + 40)])!r}")
                            self.remaining = int(m.group(1), 16)
                            self.state = DATA if self.remaining else TRAILER
                            pos = eol + 2
                        elif eol == pos:
                            pos += 2
                            self.state = DONE
                        else:
                            pos = self._trailer_line(buf, pos, eol)
                        continue
                    if len(buf) - pos > MAX_LINE:
                        raise BadRequest("chunk size or trailer line too long")
                # more bytes needed: drop the decoded ones first (linear, not per chunk)
                del buf[:pos]
                pos = 0
                before_wait()
                conn.fill_wait()
        finally:
            if pos:
                del buf[:pos]

    def _trailer_line(self, buf: bytearray, pos: int, eol: int) -> int:
        self.trailers += eol - pos + 2
        if self.trailers > MAX_TRAILERS:
            raise BadRequest("chunked trailers too large")
        m = TRAILER_LINE.fullmatch(buf, pos, eol)
        if m is None:
            raise BadRequest("invalid trailer line")
        name = m.group(1).lower()
        if name in FORBIDDEN_TRAILERS:
            raise BadRequest(f"{name.decode()} in the chunked trailers")
        return eol + 2
