"""Loggers (``--logger``/``--req-logger`` values), as uWSGI's logfile, syslog, rsyslog and
logsocket plugins define them. Each one is opened in the master and written from
the master only, one message (line) per call; a failed write is dropped, never raised.

- ``file:PATH`` or ``file:logfile=PATH,backupname=B,maxsize=N``: append to PATH
  (rotated by the master: ``--log-maxsize``, ``maxsize=``, ``L``, ``--touch-logrotate``)
- ``stdio``: the server's own log (fd 2 of the master: ``--logto``, the terminal)
- ``fd:N``: an inherited file descriptor
- ``socket:ADDR[,PREFIX]``: one datagram per line to ``HOST:PORT`` (UDP) or a unix path
- ``syslog[:IDENT[,FACILITY]]``: the local syslog socket (``--syslog-socket``, default
  ``/dev/log``) in glibc ``syslog(3)``'s format, priority info, facility daemon
- ``rsyslog:HOST:PORT|/PATH[,PREFIX[,PRI]]``: RFC 3164 datagrams, uWSGI's rsyslog format

A spec may start with ``NAME `` (letters and digits): a named logger gets only the
lines a ``--log-route``/``--log-req-route`` sends to it.
"""
from __future__ import annotations

import os
import socket
import time

from uwsgi_py import add_log_file, log_line, remove_log_file

FACILITIES = {
    "auth": 4, "authpriv": 10, "cron": 9, "daemon": 3, "ftp": 11, "kern": 0, "lpr": 6,
    "mail": 2, "news": 7, "security": 4, "syslog": 5, "user": 1, "uucp": 8,
    **{f"local{n}": 16 + n for n in range(8)},
}
LOG_INFO = 6
RSYSLOG_PACKET = 1024     # uWSGI's default --rsyslog-packet-size (RFC 3164 4.1)


FILE_UNAVAILABLE = ("uwsgi-py: warning: --logger: cannot open {path} ({error}): its lines are "
                    "dropped until it can be opened, as uWSGI does")


class TargetError(ValueError):
    pass


class Target:
    name = ""

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class FdTarget(Target):
    def __init__(self, fd: int):
        self.fd = fd

    def write(self, data: bytes) -> None:
        try:
            os.write(self.fd, data)
        except OSError:
            pass


class StdioTarget(FdTarget):
    """The master's fd 2 at write time (it follows --logto reopens)."""

    def __init__(self):
        super().__init__(2)


class FileTarget(FdTarget):
    def __init__(self, arg: str, default_maxsize: int = 0):
        path, backup, maxsize = arg, None, default_maxsize
        if "=" in arg:
            fields = dict(item.partition("=")[::2] for item in arg.split(","))
            unknown = set(fields) - {"logfile", "backupname", "maxsize"}
            if unknown or "logfile" not in fields:
                raise TargetError("file: takes PATH or logfile=PATH[,backupname=B][,maxsize=N]")
            path, backup = fields["logfile"], fields.get("backupname") or None
            try:
                maxsize = int(fields.get("maxsize") or default_maxsize)
            except ValueError:
                raise TargetError(f"maxsize={fields['maxsize']!r} is not a number") from None
        if not path:
            raise TargetError("file: needs a path")
        super().__init__(-1)
        self.path, self.maxsize, self.backup = path, maxsize, backup
        self.file = None        # the add_log_file handle: the master rotates and reopens it
        error = self.open()
        if error:
            # uWSGI's logfile plugin opens the file at each write until it can: the
            # server starts, and the lines written meanwhile are dropped
            log_line(FILE_UNAVAILABLE.format(path=path, error=error))

    def open(self) -> str | None:
        """Open the file; None, or why it cannot be opened (it is tried again at each write)."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        except OSError as e:
            return e.strerror
        self.fd = fd
        self.file = add_log_file(self.path, fd, self.maxsize, self.backup)
        return None

    def write(self, data: bytes) -> None:
        if self.fd < 0 and self.open() is not None:
            return
        super().write(data)

    def close(self) -> None:
        if self.file is not None:
            remove_log_file(self.file)
        if self.fd >= 0:
            try:
                os.close(self.fd)
            except OSError:
                pass


def _address(text: str) -> tuple[int, object]:
    """``HOST:PORT`` (UDP) or a unix path."""
    if ":" in text and not text.startswith("/"):
        host, _, port = text.rpartition(":")
        if not port.isdigit():
            raise TargetError(f"{text!r}: the port is not a number")
        return socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET, \
            (host.strip("[]") or "127.0.0.1", int(port))
    return socket.AF_UNIX, text


class DatagramTarget(Target):
    def __init__(self, address: str):
        family, self.address = _address(address)
        self.sock = socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.sock.setblocking(False)

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendto(data, self.address)
        except OSError:   # no listener, a full buffer: syslog(3) drops it too
            pass

    def close(self) -> None:
        self.sock.close()


class SocketTarget(DatagramTarget):
    def __init__(self, arg: str):
        address, _, prefix = arg.partition(",")
        super().__init__(address)
        self.prefix = prefix.encode()

    def write(self, data: bytes) -> None:
        self.send(self.prefix + data)


class SyslogTarget(DatagramTarget):
    """``syslog(3)`` with ``openlog(ident, 0, facility)`` and LOG_INFO, as uWSGI's syslog plugin."""

    def __init__(self, arg: str | None, path: str):
        ident, _, facility = (arg or "uwsgi").partition(",")
        self.pri = FACILITIES.get(facility, 3) * 8 + LOG_INFO
        self.ident = ident or "uwsgi"
        super().__init__(path)

    def write(self, data: bytes) -> None:
        stamp = time.strftime("%b %e %H:%M:%S").encode()
        self.send(b"<%d>%s %s: %s" % (self.pri, stamp, self.ident.encode(), data.rstrip(b"\n")))


class RsyslogTarget(DatagramTarget):
    """uWSGI's rsyslog plugin: ``<PRI>Mmm dd hh:mm:ss PREFIX: message`` (default prefix
    ``HOSTNAME uwsgi``, priority 29), one packet of at most 1024 bytes."""

    def __init__(self, arg: str | None):
        if not arg:
            raise TargetError("rsyslog: needs HOST:PORT or a unix path")
        address, _, rest = arg.partition(",")
        prefix, _, pri = rest.partition(",")
        if not address.startswith("/") and ":" not in address:
            address += ":514"
        super().__init__(address)
        self.prefix = (prefix or f"{socket.gethostname()} uwsgi").encode()
        self.pri = int(pri) if pri.isdigit() else 29

    def write(self, data: bytes) -> None:
        stamp = time.ctime()[4:19].encode()
        head = b"<%d>%s %s: " % (self.pri, stamp, self.prefix)
        self.send((head + data.rstrip(b"\n"))[:RSYSLOG_PACKET - 1])


KINDS = ("file", "stdio", "fd", "socket", "syslog", "rsyslog")


def parse(spec: str, syslog_socket: str = "/dev/log", maxsize: int = 0) -> Target:
    """One ``--logger`` value: ``[NAME ]KIND[:ARG]``."""
    name = ""
    head, space, rest = spec.partition(" ")
    if space and head.isalnum():
        name, spec = head, rest
    kind, colon, arg = spec.partition(":")
    arg = arg if colon and arg else None
    if kind == "file":
        if arg is None:
            raise TargetError("file: needs a path")
        target: Target = FileTarget(arg, maxsize)
    elif kind == "stdio":
        target = StdioTarget()
    elif kind == "fd":
        if arg is None or not arg.isdigit():
            raise TargetError("fd: needs a file descriptor number")
        target = FdTarget(int(arg))
    elif kind == "socket":
        if arg is None:
            raise TargetError("socket: needs an address")
        target = SocketTarget(arg)
    elif kind == "syslog":
        target = SyslogTarget(arg, syslog_socket)
    elif kind == "rsyslog":
        target = RsyslogTarget(arg)
    else:
        raise TargetError(f"unknown logger {kind!r} (uwsgi-py has: {', '.join(KINDS)})")
    target.name = name
    return target
