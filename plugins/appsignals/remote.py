"""Signals over a uwsgi socket (uWSGI's signal plugin, modifier1 110).

``uwsgi-py --signal ADDR,NUM`` (and real uWSGI's ``uwsgi --signal ADDR,NUM``)
sends a 4-byte uwsgi header ``110, 0, NUM`` to a ``--socket``; the worker that
accepts it raises the signal through the master and answers ``255, 0, 1``
(``0`` if it could not).
"""
from __future__ import annotations

import socket
import struct

from uwsgi_py import log_line as log

MODIFIER1 = 110
HEADER = struct.Struct("<BHB")
DELIVERED = "signal {sig} delivered to node {addr}"


def _connect(addr: str, timeout: float) -> socket.socket:
    if ":" in addr and not addr.startswith("/"):
        host, _, port = addr.rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        return socket.create_connection((host, int(port)), timeout=timeout)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(addr)
    return sock


def send(addr: str, sig: int, timeout: float = 4.0) -> int:
    """uWSGI's ``uwsgi_remote_signal_send``: the node's answer (1 accepted, 0 refused),
    or -1 when it could not be reached or did not answer."""
    try:
        with _connect(addr, timeout) as sock:
            sock.sendall(HEADER.pack(MODIFIER1, 0, sig))
            answer = b""
            while len(answer) < 4:
                chunk = sock.recv(4 - len(answer))
                if not chunk:
                    return -1
                answer += chunk
    except (OSError, ValueError):
        return -1
    return HEADER.unpack(answer)[2]


def command(value) -> int:
    """``--signal ADDR,NUM``: an immediate option; exit status as uWSGI's."""
    addr, comma, num = str(value).rpartition(",")
    if not comma or not addr:
        log("invalid syntax for signal, must be addr,signal")
        return 1
    if not num.strip().isdigit() or int(num) > 255:
        log("invalid signal number")
        return 3
    sig = int(num)
    code = send(addr, sig)
    if code < 0:
        log(f"unable to deliver signal {sig} to node {addr}")
        return 1
    if code == 0:
        log(f"node {addr} rejected signal {sig}")
        return 2
    log(DELIVERED.format(sig=sig, addr=addr))
    return 0


class SignalRequest:
    """Serves modifier1 110 in every worker: raise the signal, answer the header."""

    modifier1 = MODIFIER1
    name = "signal"

    def __init__(self, state):
        self.state = state

    def __call__(self, req) -> None:
        sig = req.head.modifier2
        ok = self.state.send_up(["sig", sig])
        req.conn.sendall(HEADER.pack(255, 0, 1 if ok else 0))
        req.status = 200
