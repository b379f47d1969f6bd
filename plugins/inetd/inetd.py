"""inetd/xinetd launch mode: the listening socket arrives on fd 0 (INETD-1..5).

inetd and xinetd in *wait* mode hand over their listening socket as fds 0, 1
and 2 and stop watching the port until the server exits; the server then runs
as a normal long-lived instance. In *nowait* mode fd 0 is one client's
connected socket, which a server cannot listen on: uWSGI adopted it anyway and
never answered (INETD-3); uwsgi-py refuses it with a clear error.
"""
from __future__ import annotations

import os
import socket
import stat

from uwsgi_py import OptionError, adopt_listener

STDIN = 0

# what fd 0 can be
CLOSED = "closed"
NOT_A_SOCKET = "not a socket"
LISTENING = "listening"
CONNECTED = "connected"
NOT_LISTENING = "not listening"
NOT_STREAM = "not a stream socket"

_HINT = (" Run uwsgi-py in wait mode (inetd.conf: 'wait'; xinetd: 'wait = yes'), which hands over the"
         " listening socket, or pass --skip-zero if fd 0 is not meant to be a server socket.")

# kind of fd 0 -> the error that refuses it (INETD-3's fix)
REFUSALS = {
    CONNECTED: ("stdin (fd 0) is a connected socket, not a listening one: inetd/xinetd run this "
                "service in nowait mode and passed a single client connection." + _HINT),
    NOT_LISTENING: "stdin (fd 0) is a stream socket that is not listening." + _HINT,
    NOT_STREAM: ("stdin (fd 0) is a datagram socket: uwsgi-py serves stream sockets only "
                 "(xinetd: socket_type = stream; inetd.conf: stream tcp)." + _HINT),
}


def classify(fd: int = STDIN) -> str:
    """What ``fd`` is, as far as inetd mode cares."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return CLOSED
    if not stat.S_ISSOCK(mode):
        return NOT_A_SOCKET
    sock = socket.socket(fileno=fd)
    try:
        if sock.type != socket.SOCK_STREAM:
            return NOT_STREAM
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            return LISTENING
        try:
            sock.getpeername()
        except OSError:
            return NOT_LISTENING
        return CONNECTED
    finally:
        sock.detach()


def adopt_stdin(settings, check: bool) -> list:
    """fd 0 as an extra listener when ``check`` and it listens; else /dev/null.

    Raises ``OptionError`` for a socket on fd 0 that cannot be served.
    """
    kind = classify(STDIN) if check else NOT_A_SOCKET
    if kind in REFUSALS:
        raise OptionError(REFUSALS[kind])
    if kind != LISTENING:
        if not settings.honour_stdin:
            _to_devnull(STDIN)
        return []
    listener = adopt_listener(STDIN, settings.protocol)
    _unshare_std_streams()
    if listener.unix_path and settings.chmod_socket is not None:
        os.chmod(listener.unix_path, settings.chmod_socket)  # INETD-1: first start only
    return [listener]


def _unshare_std_streams() -> None:
    """inetd also puts the listening socket on fds 1 and 2: writes there fail (EPIPE),
    so point them at /dev/null unless --logto already replaced them."""
    sock_id = _identity(STDIN)
    for fd in (1, 2):
        if _identity(fd) == sock_id:
            _to_devnull(fd)


def _identity(fd: int):
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _to_devnull(fd: int) -> None:
    null = os.open(os.devnull, os.O_RDWR)
    if null != fd:
        os.dup2(null, fd)
        os.close(null)
