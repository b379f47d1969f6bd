"""The master's status socket (docs/health.md): readiness for scripts, without signals.

The master listens on an abstract unix socket named after its pid
(``uwsgi_py.health.address``) and answers every connection with one JSON line
(``uwsgi_py.health.status``), then closes it. ``uwsgi-py --status PIDFILE``
prints it (exit 0 when ready) and ``uwsgi-py --reload PIDFILE`` reads it before
and after the SIGHUP to report the reload's outcome. The socket is closed before
an exec reload and bound again by the new image (same pid, same name).
"""
from __future__ import annotations

import os
import socket

from uwsgi_py import Watch, hookimpl, log_line
from uwsgi_py import health

BACKLOG = 16
ACCEPT_BATCH = 16
BIND_FAILED = "status socket: bind(): {error}; --reload and --status cannot read this instance"


class StatusSocket:
    def __init__(self, master):
        self.master = master
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.sock.bind(health.address(os.getpid()))
        self.sock.listen(BACKLOG)
        self.sock.setblocking(False)

    def on_readable(self) -> None:
        data = None
        for _ in range(ACCEPT_BATCH):
            try:
                client, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if data is None:
                data = health.encode(health.status(self.master))
            try:
                client.setblocking(False)
                client.send(data)   # a few hundred bytes: always fits the socket buffer
            except OSError:
                pass
            client.close()

    def close(self) -> None:
        self.master.unwatch(self.sock.fileno())
        self.sock.close()


@hookimpl
def uwsgi_master_watch(master):
    try:
        status = StatusSocket(master)
    except OSError as e:
        log_line(BIND_FAILED.format(error=e.strerror))
        return None
    master.status_socket = status
    return [Watch(status.sock.fileno(), status.on_readable)]


@hookimpl
def uwsgi_master_cleanup(master, reason):
    status = getattr(master, "status_socket", None)
    if status is not None:
        status.close()
        master.status_socket = None
