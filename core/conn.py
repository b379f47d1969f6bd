"""A client connection: non-blocking socket I/O on the accepted fd, with a read buffer.

Reads and writes that would block wait here, bounded by --socket-timeout (and
--socket-min-bytes); a client that vanishes or stalls raises ``ClientGone``.
"""
from __future__ import annotations

import os
import select
import socket
import time
from typing import Any

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


_libc_shutdown: Any
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
                 "min_bytes", "moved", "waited", "window_moved", "corked", "unread", "read_errors",
                 "write_errors")

    def __init__(self, fd: int, listener, remote: str, timeout: float, min_bytes: int = 0,
                 corked: bool = False):
        # an accepted fd, not a socket object (whose creation costs a getsockname() and an
        # allocation per connection): reads and writes go through the fd
        self._sock: socket.socket | None = None
        self.fd = fd
        self.listener = listener
        self.buf = bytearray()
        self.remote = remote
        self.timeout = timeout
        self.deadline = 0.0
        # --socket-min-bytes: bytes moved by fill_wait/sendall/sendfile, seconds spent
        # blocked on this client in the current window, ``moved`` when the window began
        self.min_bytes = min_bytes
        self.served = self.moved = self.window_moved = 0
        self.waited = 0.0
        # TCP_CORK inherited from the listener: what is written waits in the kernel until
        # uncork() or close(), so a response and the FIN leave in one segment
        self.corked = corked
        # bytes the client sent may wait unread in the kernel (a request body left unread,
        # a read that filled its buffer): close() must not turn them into a reset
        self.unread = False
        # the current request's failed reads and writes (%(rerr), %(werr), --log-ioerror)
        self.read_errors = self.write_errors = 0

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
                try:
                    self.wait(_POLLIN)
                except ClientGone:
                    self.read_errors += 1
                    raise
                continue
            except OSError as e:
                self.read_errors += 1
                raise ClientGone(str(e)) from None
            if not data:
                self.read_errors += 1
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
            self.write_errors += 1
            raise ClientGone(str(e)) from None
        self.moved += n
        if n == len(data):
            return
        try:
            self._send_rest(memoryview(data)[n:])
        except ClientGone:
            self.write_errors += 1
            raise

    def _send_rest(self, view: memoryview) -> None:
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
        try:
            return self._sendfile(fd, offset, count)
        except ClientGone:
            self.write_errors += 1
            raise

    def _sendfile(self, fd: int, offset: int, count: int | None) -> int:
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

