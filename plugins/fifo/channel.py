"""One master FIFO control channel: slots, creation and reading (FIFO-1, -2, -5, -9).

Only the current slot's path exists as a FIFO. The master reads it without
blocking; each known byte queues its action, an unknown byte queues the
``fifo_unknown`` action (so its log line keeps its place among the commands).
At EOF (the last writer closed) the ``fifo_recreate`` action creates the FIFO
again at the current slot's path (a digit written earlier takes effect there,
FIFO-5), then reads what a writer that opened the old FIFO between the EOF and
the new path put in it, and only then closes the old one: a command written
right after another writer closed is carried out, not lost.
"""
from __future__ import annotations

import collections
import errno
import os
import stat

from uwsgi_py import Watch

from .table import RECREATE_ACTION, UNKNOWN_ACTION, decode

ACTIVE = "active master fifo is now {path}"
CREATE_FAILED = "uwsgi_master_fifo()/{call}(): {error} [{path}]"
UNKNOWN = "master fifo: unknown command byte {text} ignored"

READ_SIZE = 4096
OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC


class FifoError(Exception):
    """Creating the FIFO failed; the message is the log line (the master exits 1)."""


def _failed(call: str, path: str, err: OSError) -> FifoError:
    return FifoError(CREATE_FAILED.format(call=call, error=err.strerror or err, path=path))


def create(path: str) -> int:
    """FIFO-1: remove whatever is at ``path`` (a planted symlink is removed, never
    followed), ``mkfifo(path, 0600)``, open it ``O_RDONLY|O_NONBLOCK|O_NOFOLLOW``
    and check that what was opened is a FIFO we own."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise _failed("unlink", path, e) from None
    try:
        os.mkfifo(path, 0o600)
    except OSError as e:
        raise _failed("mkfifo", path, e) from None
    try:
        fd = os.open(path, OPEN_FLAGS)
    except OSError as e:
        raise _failed("open", path, e) from None
    st = os.fstat(fd)
    if not stat.S_ISFIFO(st.st_mode) or st.st_uid != os.geteuid():
        os.close(fd)
        raise _failed("open", path, OSError(errno.EPERM, "replaced while opening, not our FIFO"))
    return fd


def describe(byte: int) -> str:
    """``'x' (0x78)``: a byte as an operator can read it in the log."""
    return f"{chr(byte)!r} (0x{byte:02x})"


class Channel:
    """The FIFO paths of ``--master-fifo``, the current slot and its open fd."""

    def __init__(self, paths: list[str], table: dict[int, str], master):
        self.paths = list(paths)
        self.table = table
        self.master = master
        self.slot = 0
        self.fd = -1
        self.at_eof = False
        self.unknown: collections.deque[int] = collections.deque()

    def path(self) -> str:
        """The current slot's path; FIFO-5 QUIRK: a slot with no path uses the first."""
        return self.paths[self.slot] if self.slot < len(self.paths) else self.paths[0]

    def open(self) -> Watch:
        self.fd = create(self.path())
        self.at_eof = False
        return Watch(self.fd, self.readable)

    # ---- the watch callback: read and queue, nothing else ------------------------------
    def readable(self) -> None:
        if self.at_eof:
            return  # EOF already seen; fifo_recreate is queued
        try:
            data = os.read(self.fd, READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.at_eof = True
            self.master.request(RECREATE_ACTION)
            return
        self.dispatch(data)

    def dispatch(self, data: bytes) -> None:
        for name, byte in decode(data, self.table):
            if name is None:
                self.unknown.append(byte)
                name = UNKNOWN_ACTION
            self.master.request(name)

    # ---- what the channel's actions do --------------------------------------------------
    def recreate(self) -> None:
        """FIFO-2: after EOF, a new FIFO at the current slot's path. From the moment the path
        names the new FIFO no writer can open the old one, so what is left in the old one
        is read (and its commands queued) before it is closed."""
        old = self.fd
        if old >= 0:
            self.master.unwatch(old)
        try:
            self.master.watch(self.open())
        finally:
            if old >= 0:
                self.dispatch(_drain(old))
                os.close(old)

    def select(self, slot: int) -> str:
        """FIFO-5: remember the slot; the switch happens at the next EOF."""
        self.slot = slot
        return self.path()

    def next_unknown(self) -> int | None:
        return self.unknown.popleft() if self.unknown else None


def _drain(fd: int) -> bytes:
    """Everything readable now from a non-blocking fd (b"" at EOF or when empty)."""
    chunks = []
    while True:
        try:
            data = os.read(fd, READ_SIZE)
        except (BlockingIOError, InterruptedError):
            break
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)
