"""``--post-buffering``: the whole request body is read before the app runs.

A body up to the threshold stays in memory, a larger one goes to a temporary file
(``tempfile.SpooledTemporaryFile``), as uWSGI keeps small bodies in memory and
writes larger ones to disk. The app then reads a local file: a slow client costs
the read here, never a stall in the middle of the app's work.
"""
from __future__ import annotations

import tempfile

CHUNK = 65536


class SpooledInput:
    """``wsgi.input`` over a body read in full: read, readline, iteration, seek, tell."""

    done = True   # nothing of the body is left on the connection

    def __init__(self, spool, size: int):
        self.spool = spool
        self.size = size
        self.total = 0

    def read(self, size: int | None = -1) -> bytes:
        data = self.spool.read(-1 if size is None else size)
        self.total += len(data)
        return data

    def readline(self, size: int | None = -1) -> bytes:
        data = self.spool.readline(-1 if size is None else size)
        self.total += len(data)
        return data

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines = self.spool.readlines(hint)
        self.total += sum(len(line) for line in lines)
        return lines

    def __iter__(self):
        while True:
            line = self.readline()
            if not line:
                return
            yield line

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.spool.seek(offset, whence)

    def tell(self) -> int:
        return self.spool.tell()

    def drain(self, limit: int = 0) -> bool:
        """The body was read off the connection already: nothing to discard."""
        return True

    def close(self) -> None:
        self.spool.close()


def spool_body(body, threshold: int) -> SpooledInput:
    """Read all of ``body`` (a core ``Input``) now: in memory up to ``threshold`` bytes,
    in a temporary file beyond. Raises what reading raises (ClientGone, BadRequest)."""
    spool = tempfile.SpooledTemporaryFile(max_size=threshold)
    size = 0
    while True:
        data = body.read(CHUNK)
        if not data:
            break
        spool.write(data)
        size += len(data)
    spool.seek(0)
    return SpooledInput(spool, size)
