"""The stats socket (STATS-1): bind, accept, write one document, close.

Everything runs on the master's only thread. A client gets the whole document
from one non-blocking ``send`` in the common case (the send buffer is sized
for it); what does not fit is written when the socket turns writable, through
the master's selector, and a client that stops reading is dropped after
``SEND_TIMEOUT``. The request is never parsed; whatever the client sent is
read and discarded so that closing does not reset the connection (an HTTP
client would otherwise lose the response).

With ``--stats-http`` the request line is read first (from the master's
selector, never blocking) and picks the answer: ``/metrics`` is the same
numbers in Prometheus' text format, ``/ready`` the instance's readiness (200 or
503, ``MasterView.readiness``), anything else the JSON document. A client that sends
nothing within ``SEND_TIMEOUT`` gets the JSON document, as before.
"""
from __future__ import annotations

import json
import os
import socket
import stat
import time
from dataclasses import dataclass

from uwsgi_py import address_text, log_line, log_verbose, parse_address

from . import document, metrics, render

ENABLED = "*** Stats server enabled on {address} fd: {fd} ***"
QUEUE_FULL = '*** uWSGI listen queue of socket "{name}" (fd: {fd}) full !!! ({queue}/{max}) ***'
HTTP_HEAD = (b"HTTP/1.0 200 OK\r\nConnection: close\r\nAccess-Control-Allow-Origin: *\r\n"
             b"Content-Type: application/json\r\n\r\n")
HTTP_RESPONSE = "HTTP/1.0 {status}\r\nConnection: close\r\nContent-Type: {type}\r\n\r\n"
PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
HEAD_LIMIT = 8192        # a request head longer than this is answered as it stands
UNIX_MODE = 0o600        # without --chmod-socket: only the instance's user may read stats
BACKLOG = 100
ACCEPT_BATCH = 16        # connections served per wake-up; the rest wait for the next pass
SEND_TIMEOUT = 4.0       # uWSGI's default socket-timeout
DRAIN = 65536
DRAIN_READS = 4


@dataclass
class Pending:
    sock: socket.socket
    data: memoryview
    deadline: float


def bind(address: str, chmod: int | None, backlog: int = BACKLOG) -> socket.socket:
    """A listening, non-blocking socket on ``address`` (TCP, unix path or ``@abstract``)."""
    family, addr = parse_address(address)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family == socket.AF_UNIX:
            if not addr.startswith("\0"):
                _remove_stale(addr)
            old = os.umask(0o177)  # no window in which others may connect
            try:
                sock.bind(addr)
            finally:
                os.umask(old)
            if not addr.startswith("\0"):
                os.chmod(addr, chmod if chmod is not None else UNIX_MODE)
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _remove_stale(path: str) -> None:
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass


class StatsServer:
    """The stats socket of one image, and the state the document needs."""

    def __init__(self, settings, sock: socket.socket, request_vars=None):
        self.settings = settings
        self.sock = sock
        self.fd = sock.fileno()
        self.identity = _identity(self.fd)
        self.http = settings.stats_http
        self.minified = settings.stats_minified
        self.cores = not settings.stats_no_cores
        self.memory_report = settings.memory_report
        self.request_vars = request_vars
        self.listen_queue_errors = 0
        self.pending: dict[int, Pending] = {}
        self.heads: dict[int, tuple] = {}     # --stats-http clients still sending their request
        self.view = None     # the MasterView, once the master watches the socket
        self.unix_path = None
        name = sock.getsockname()
        if sock.family == socket.AF_UNIX and isinstance(name, str) and name:
            self.unix_path = name
            self.inode = os.stat(name).st_ino
        self.address = address_text(sock)

    def shown_address(self) -> str:
        """What the log line shows: as configured, resolved when the port was auto-assigned."""
        configured = self.settings.stats
        return self.address if configured.endswith(":0") else configured

    def auto_port(self) -> bool:
        return self.sock.family != socket.AF_UNIX and self.settings.stats.endswith(":0")

    # ---- master side ---------------------------------------------------------
    def document(self) -> bytes:
        text = render.render(document.build(self.view, self), self.minified)
        data = text.encode("utf-8", "replace")
        return HTTP_HEAD + data if self.http else data

    def answer(self, path: str) -> bytes:
        """--stats-http: the response for a request of ``path``."""
        path = path.split("?", 1)[0]
        if path == "/metrics":
            doc = document.build(self.view, self)
            body = metrics.render(doc, self.view.readiness())
            return HTTP_RESPONSE.format(status="200 OK", type=PROMETHEUS_TYPE).encode() + body.encode()
        if path in ("/ready", "/health"):
            status = self.view.readiness()
            code = "200 OK" if status["ready"] else "503 Service Unavailable"
            return (HTTP_RESPONSE.format(status=code, type="application/json").encode()
                    + (json.dumps(status, sort_keys=True) + "\n").encode())
        return self.document()

    def on_readable(self) -> None:
        """Watch callback: serve every waiting client (up to a batch), never block."""
        data = None
        for _ in range(ACCEPT_BATCH):
            try:
                client, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                log_line(f"stats server accept(): {e.strerror}")
                return
            if self.http:
                self.read_request(client)
                continue
            if data is None:
                try:
                    data = self.document()
                except Exception as e:  # noqa: BLE001 - a stats bug must not take the master down
                    log_line(f"stats server: cannot build the document: {e!r}")
                    client.close()
                    return
            self.send(client, data)

    # ---- --stats-http: read the request line first ------------------------------------
    def read_request(self, client: socket.socket) -> None:
        client.setblocking(False)
        fd = client.fileno()
        self.heads[fd] = (client, bytearray(), time.monotonic() + SEND_TIMEOUT)
        self.view.watch(fd, lambda: self.on_request(fd))
        self.on_request(fd)

    def on_request(self, fd: int, timed_out: bool = False) -> None:
        entry = self.heads.get(fd)
        if entry is None:
            return
        client, buf, _ = entry
        eof = timed_out
        while not eof:
            try:
                chunk = client.recv(DRAIN)
            except BlockingIOError:
                break
            except OSError:
                chunk = b""
            if not chunk:
                eof = True
                break
            buf += chunk
        head_done = b"\r\n\r\n" in buf or b"\n\n" in buf or len(buf) >= HEAD_LIMIT
        if not (head_done or eof):
            return
        del self.heads[fd]
        self.view.unwatch(fd)
        words = bytes(buf).split(b"\r\n", 1)[0].split()
        path = words[1].decode("latin-1") if len(words) >= 2 else "/"
        try:
            data = self.answer(path)
        except Exception as e:  # noqa: BLE001 - a stats bug must not take the master down
            log_line(f"stats server: cannot answer {path!r}: {e!r}")
            client.close()
            return
        self.send(client, data)

    def send(self, client: socket.socket, data: bytes) -> None:
        client.setblocking(False)
        _discard_input(client)
        try:
            if client.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) < len(data):
                client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, len(data) + 4096)
        except OSError:
            pass
        view = memoryview(data)
        try:
            sent = client.send(view)
        except BlockingIOError:
            sent = 0
        except OSError:
            client.close()
            return
        if sent >= len(view):
            _finish(client)
            return
        pending = Pending(client, view[sent:], time.monotonic() + SEND_TIMEOUT)
        fd = client.fileno()
        self.pending[fd] = pending
        self.view.watch(fd, lambda: self.on_writable(fd), writable=True)  # the master's now

    def on_writable(self, fd: int) -> None:
        pending = self.pending.get(fd)
        if pending is None:
            return
        try:
            sent = pending.sock.send(pending.data)
        except BlockingIOError:
            return
        except OSError:
            self.drop(fd, finish=False)
            return
        pending.data = pending.data[sent:]
        if not pending.data:
            self.drop(fd, finish=True)

    def drop(self, fd: int, finish: bool) -> None:
        pending = self.pending.pop(fd, None)
        if pending is None:
            return
        self.view.unwatch(fd)
        if finish:
            _finish(pending.sock)
        else:
            pending.sock.close()

    def sweep(self) -> None:
        """Drop clients that stopped reading (runs on every master loop pass; cheap)."""
        now = time.monotonic()
        for fd, (_, _, deadline) in list(self.heads.items()):
            if deadline < now:
                self.on_request(fd, timed_out=True)
        if not self.pending:
            return
        for fd, pending in list(self.pending.items()):
            if pending.deadline < now:
                self.drop(fd, finish=False)

    def check_listen_queue(self, view) -> None:
        """uWSGI's once-a-second check: count (and log) full listen queues."""
        for sock in view.sockets():
            waiting, max_queue = sock["queue"], sock["max_queue"]
            if waiting > 0 and waiting >= max_queue:
                self.listen_queue_errors += 1
                log_verbose(QUEUE_FULL.format(name=sock["configured"], fd=sock["fd"],
                                              queue=waiting, max=max_queue))

    def close(self) -> None:
        """Master cleanup (exit or exec reload): close everything, remove the unix path."""
        for fd in list(self.pending):
            self.drop(fd, finish=False)
        for fd, (client, _, _) in list(self.heads.items()):
            self.view.unwatch(fd)
            client.close()
        self.heads.clear()
        self.sock.close()
        if self.unix_path:
            try:
                if os.stat(self.unix_path).st_ino == self.inode:
                    os.unlink(self.unix_path)
            except OSError:
                pass

    # ---- worker side -------------------------------------------------------------
    def forget_in_worker(self) -> None:
        """After fork: close the inherited stats socket, or forget its number if the
        core already closed it (the fd may be reused by now, so never close blindly)."""
        if _identity(self.fd) == self.identity:
            self.sock.close()
        else:
            self.sock.detach()
        for pending in self.pending.values():
            pending.sock.detach()  # the spawner closed these (master private fds)
        self.pending.clear()
        for client, _, _ in self.heads.values():
            client.detach()
        self.heads.clear()


def _identity(fd: int):
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _discard_input(client: socket.socket) -> None:
    try:
        for _ in range(DRAIN_READS):
            if not client.recv(DRAIN):
                return
    except OSError:
        pass


def _finish(client: socket.socket) -> None:
    """Close after the data: read what the client sent meanwhile, then FIN."""
    _discard_input(client)
    try:
        client.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    client.close()
