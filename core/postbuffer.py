"""``--post-buffering``: the whole request body is read before the app runs.

A body up to the threshold stays in memory, a larger one goes to an unnamed
temporary file, as uWSGI keeps small bodies in memory and writes larger ones to
disk. The app then reads a local file: a slow client costs the read here, never
a stall in the middle of the app's work. (No ``tempfile`` module: a worker may
run as a user that can no longer read the standard library to import it.)
"""
from __future__ import annotations

import io
import os

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
    spool = io.BytesIO()
    size = 0
    while True:
        data = body.read(CHUNK)
        if not data:
            break
        size += len(data)
        if size > threshold and isinstance(spool, io.BytesIO):
            on_disk = temporary_file()
            on_disk.write(spool.getbuffer())
            spool = on_disk
        spool.write(data)
    spool.seek(0)
    return SpooledInput(spool, size)


def temporary_file():
    """An unnamed read/write file in $TMPDIR (else /tmp): gone when closed."""
    directory = os.environ.get("TMPDIR") or "/tmp"
    try:
        fd = os.open(directory, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)
    except (AttributeError, OSError):   # no O_TMPFILE here: a named file, unlinked at once
        path = os.path.join(directory, f"uwsgi-py-body-{os.getpid()}-{os.urandom(6).hex()}")
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_CLOEXEC, 0o600)
        os.unlink(path)
    return open(fd, "w+b")
