"""The master's status socket (docs/health.md): readiness for scripts, without signals.

The master listens on an abstract unix socket named after its pid
(``status_address``) and answers every connection with one JSON line
(``MasterView.readiness``), then closes it. ``uwsgi-py --status PIDFILE``
prints it (exit 0 when ready) and ``uwsgi-py --reload PIDFILE`` reads it before
and after the SIGHUP to report the reload's outcome. The socket is closed before
an exec reload and bound again by the new image (same pid, same name).
"""
from __future__ import annotations

import os
import socket

from uwsgi_py import Instance, MasterView, Watch, hookimpl, log_line, status_address

BACKLOG = 16
ACCEPT_BATCH = 16
BIND_FAILED = "status socket: bind(): {error}; --reload and --status cannot read this instance"


class StatusSocket:
    def __init__(self, master):
        self.view = MasterView(master)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.sock.bind(status_address(os.getpid()))
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
                import json     # only once a client (--status, --reload PIDFILE) connects
                data = (json.dumps(self.view.readiness(), sort_keys=True) + "\n").encode()
            try:
                client.setblocking(False)
                client.send(data)   # a few hundred bytes: always fits the socket buffer
            except OSError:
                pass
            client.close()

    def close(self) -> None:
        self.view.unwatch(self.sock.fileno())
        self.sock.close()


@hookimpl
def uwsgi_master_watch(master):
    try:
        status = StatusSocket(master)
    except OSError as e:
        log_line(BIND_FAILED.format(error=e.strerror))
        return None
    Instance(master.server).state_for("health")["socket"] = status
    return [Watch(status.sock.fileno(), status.on_readable)]


@hookimpl
def uwsgi_master_cleanup(master, reason):
    status = Instance(master.server).state_for("health").pop("socket", None)
    if status is not None:
        status.close()
