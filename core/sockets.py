"""Listening sockets: parse uWSGI addresses, bind, adopt inherited fds."""
from __future__ import annotations

import os
import socket
import stat
import struct
import sys

from . import log
from .options import Option, OptionError

ODD_PORT = ("--{option} {name}: the port is not a number; uWSGI reads its leading digits, "
            "so it binds port {port} (0: a free port)")


class Listener:
    """One listening socket.

    ``key`` names it by option and position (``http-socket#0``), which is how
    an exec reload maps it back (RELOAD-8's fix); ``name`` is the configured
    text; ``proto`` is ``http`` or ``uwsgi``.
    """

    def __init__(self, key: str, name: str, proto: str, sock: socket.socket,
                 unix_path: str | None = None, inode: int | None = None,
                 inherited: bool = False, owned: bool = True, listen: int = 100):
        self.key = key
        self.name = name
        self.proto = proto
        self.sock = sock
        self.unix_path = unix_path
        self.inode = inode
        self.inherited = inherited
        # bound by this instance; False: passed in by a launch mode (systemd, inetd), whose
        # owner keeps listening on it after we stop
        self.owned = owned
        self.listen = listen
        self.unix = False       # set by tune_listener (socket.family is a slow property)
        self.nodelay = False    # TCP_NODELAY on the listener, so on every accepted socket
        self.corked = False     # TCP_CORK likewise
        self.v6 = False         # AF_INET6: client addresses may be IPv4-mapped (::ffff:a.b.c.d)
        self.server_port = ""   # SERVER_PORT of its requests, set by tune_listener
        self.keepalive = False  # HTTP/1.1 keep-alive on its connections (--http, --http-keepalive)
        self.idle = 0.0         # seconds a kept-alive connection waits for its next request (0: --socket-timeout)
        # PROXY protocol v1 before the first request (--enable-proxy-protocol; proxy_protocol.py),
        # and fd -> (address, port) of the client a PROXY line named
        self.proxy = False
        self.proxied: dict = {}
        self.extra: dict = {}

    def __repr__(self) -> str:
        return f"Listener({self.key!r}, {self.name!r}, {self.proto!r})"

    @property
    def fd(self) -> int:
        return self.sock.fileno()

    def address(self) -> str:
        return address_text(self.sock)

    def kind(self) -> str:
        return "UNIX" if self.sock.family == socket.AF_UNIX else "INET"

    def port(self) -> str:
        """SERVER_PORT for requests on this socket (``tune_listener`` keeps it in server_port)."""
        return "80" if self.sock.family == socket.AF_UNIX else str(self.sock.getsockname()[1])


def options() -> list[Option]:
    """Socket options beside the common ones (declared with the core's in options.py)."""
    return [
        Option("http11-socket", "bind to the specified socket with the HTTP protocol and "
               "HTTP/1.1 keep-alive on it (--http-socket with --http-keepalive for this "
               "socket only; repeatable)", multiple=True, metavar="ADDR"),
        Option("enable-proxy-protocol", "read a PROXY protocol v1 line (HAProxy's) at the start "
               "of a connection on HTTP sockets other than --http: its client becomes "
               "REMOTE_ADDR/REMOTE_PORT", flag=True),
        Option("http-enable-proxy-protocol", "the same on --http sockets (uWSGI's HTTP router "
               "option: it does not change --http-socket)", flag=True),
    ]


def address_text(sock: socket.socket) -> str:
    addr = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        if isinstance(addr, bytes):
            return "@" + addr[1:].decode(errors="replace")
        return addr
    if sock.family == socket.AF_INET6:
        return f"[{addr[0]}]:{addr[1]}"
    return f"{addr[0]}:{addr[1]}"


def parse_address(text: str) -> tuple[int, object]:
    """uWSGI socket syntax -> (family, sockaddr). ``:9090`` = all interfaces."""
    if text.startswith("@"):
        return socket.AF_UNIX, "\0" + text[1:]
    if "/" in text or ":" not in text:
        return socket.AF_UNIX, text
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
        family = socket.AF_INET6
    else:
        host, _, port = text.rpartition(":")
        family = socket.AF_INET
        host = host or "0.0.0.0"
    portnum = port_number(port)
    if not 0 <= portnum <= 65535:
        raise OptionError(f"invalid socket address {text!r}: bad port")
    return family, (host, portnum)


def port_number(text: str) -> int:
    """The port as uWSGI reads it (C's atoi): its leading digits, 0 when there are none, so
    ``:$(PORT)`` with PORT unset or ``HOST:port`` binds a free port."""
    digits = len(text) - len(text.lstrip("0123456789"))
    return int(text[:digits]) if digits else 0


def odd_port(text: str) -> bool:
    """Is the port of a TCP address ``text`` something other than a plain number?"""
    if text.startswith("@") or "/" in text or ":" not in text:
        return False
    port = text.rpartition(":")[2]
    return not port.isdigit()


UNIX_MODE = 0o600   # unix sockets without --chmod-socket: only the instance's user connects


def bind(key: str, name: str, proto: str, backlog: int, chmod: int | None,
         chown: tuple[int, int] | None = None) -> Listener:
    """Bind and listen. A unix socket is created 0600 (umask 0177 around bind(),
    so there is no window with a wider mode), then ``chmod``/``chown`` if asked."""
    family, addr = parse_address(name)
    if odd_port(name):
        log.log(log.CONFIG_WARNING.format(message=ODD_PORT.format(
            option=key.partition("#")[0], name=name, port=addr[1])))
    sock = socket.socket(family, socket.SOCK_STREAM)
    unix_path = None
    inode = None
    try:
        if family == socket.AF_UNIX:
            path = addr
            if not path.startswith("\0"):
                unix_path = path
                try:
                    if stat.S_ISSOCK(os.lstat(path).st_mode):
                        os.unlink(path)
                except FileNotFoundError:
                    pass
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        if unix_path is not None:
            old_umask = os.umask(0o777 & ~UNIX_MODE)
            try:
                sock.bind(addr)
            finally:
                os.umask(old_umask)
            if chmod is not None:
                os.chmod(unix_path, chmod)
            if chown is not None:
                os.chown(unix_path, *chown)
            inode = os.stat(unix_path).st_ino
        else:
            sock.bind(addr)
        sock.listen(backlog)
    except OSError as e:
        sock.close()
        raise OptionError(f"--{key.partition('#')[0]}: bind(): {e.strerror} ({name})") from None
    sock.setblocking(False)
    listener = Listener(key, name, proto, sock, unix_path, inode, listen=backlog)
    return listener


def adopt(key: str, name: str, proto: str, fd: int, listen: int = 100) -> Listener | None:
    """Wrap an inherited fd if it is a listening stream socket, else None."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        return None
    try:
        if sock.type != socket.SOCK_STREAM or not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            sock.detach()
            return None
    except OSError:
        sock.detach()
        return None
    sock.setblocking(False)
    unix_path = None
    inode = None
    if sock.family == socket.AF_UNIX:
        path = sock.getsockname()
        if isinstance(path, str) and path:
            unix_path = path
            try:
                inode = os.stat(path).st_ino
            except OSError:
                pass
    return Listener(key, name, proto, sock, unix_path, inode, inherited=True, listen=listen)


def tune_listener(listener: Listener, defer: int) -> None:
    """TCP options on a TCP listener, set in the master before any worker accepts, and again
    on a listener kept across a reload (a changed ``--no-defer-accept`` applies).

    TCP_DEFER_ACCEPT (``defer`` seconds, 0 = off), as uWSGI sets it by default: accept() hands
    over a connection only once its first bytes have arrived (or ``defer`` seconds have passed),
    so a worker never wakes for a connection it cannot read yet. TCP_NODELAY and TCP_CORK: Linux
    copies both to every connection the listener creates, which saves a setsockopt() per
    connection; a corked response leaves with the connection's FIN in one segment
    (``Conn.close``); a connection that stays open or streams is uncorked before it could wait
    (``Conn.uncork``). A connection made before they are set would not inherit them.
    """
    listener.unix = listener.sock.family == socket.AF_UNIX
    listener.v6 = listener.sock.family == socket.AF_INET6
    listener.server_port = listener.port()   # read once here, not by every worker
    if listener.unix or not sys.platform.startswith("linux"):
        return
    sock = listener.sock
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, defer)
    except (OSError, AttributeError):
        pass
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        listener.nodelay = True
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        listener.corked = True
    except (OSError, AttributeError):
        pass


def same_address(sock: socket.socket, name: str) -> bool:
    """Is ``sock`` bound where the configured ``name`` would bind? (``:80`` = ``0.0.0.0:80``)"""
    try:
        family, wanted = parse_address(name)
        actual = sock.getsockname()
    except (OptionError, OSError):
        return False
    if family != sock.family:
        return False
    if family == socket.AF_UNIX:
        actual = os.fsdecode(actual)
        if wanted.startswith("\0") or actual.startswith("\0"):
            return wanted == actual
        return os.path.abspath(wanted) == os.path.abspath(actual)
    return wanted[1] != 0 and wanted[1] == actual[1] and _same_host(family, wanted[0], actual[0])


def _same_host(family: int, a: str, b: str) -> bool:
    try:
        return socket.inet_pton(family, a) == socket.inet_pton(family, b)
    except OSError:
        return a == b


def claim(supplied: list[Listener], name: str) -> Listener | None:
    """Remove and return the launch-mode listener (systemd's fds) bound at ``name``."""
    for listener in supplied:
        if same_address(listener.sock, name):
            supplied.remove(listener)
            return listener
    return None


def log_bound(index: int, listener: Listener) -> None:
    text = listener.address()
    if listener.inherited:
        line = log.ATTACHED if listener.extra.get("activated") else log.INHERITED
        log.log(line.format(index=index, kind=listener.kind(), address=text, fd=listener.fd))
        return
    _, addr = parse_address(listener.name)
    if listener.sock.family != socket.AF_UNIX and addr[1] == 0:
        log.log(log.BOUND_AUTO.format(address=text, fd=listener.fd))
    log.log(log.BOUND.format(index=index, kind=listener.kind(), address=text, fd=listener.fd))


_TCP_INFO = struct.Struct("<8xIIIIII")


def queue(listener: Listener) -> tuple[int, int]:
    """(connections waiting in the accept queue, backlog) as Linux reports them."""
    if listener.sock.family == socket.AF_UNIX:
        return 0, listener.listen
    try:
        info = listener.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
        _, _, _, _, unacked, sacked = _TCP_INFO.unpack_from(info)
        return unacked, sacked
    except OSError:
        return 0, listener.listen
