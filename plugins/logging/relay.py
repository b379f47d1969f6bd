"""The master's side of logging: loggers, encoders, routes, and the pipes workers write to.

With ``--log-master`` (implied by ``--logger``, ``--log-encoder``...), every
worker's fds 1 and 2 are one end of a ``SOCK_SEQPACKET`` socketpair: each
``write()`` (a log line, an app's ``print``) is one message, which the master
reads from its loop and hands to the loggers. With ``--req-logger``, request
lines go through a second pair to the request loggers. The master writes its own
lines to the loggers directly (``set_log_writer``), never into a pipe it must
drain itself. Worker ends are blocking: a worker waits for the master rather
than lose lines; the master never blocks on them.

The pipes survive exec reloads (their fds are handed to the next image by the
core's handoff, ``uwsgi_handoff_give``), so the previous generation's workers keep logging while they
drain.
"""
from __future__ import annotations

import os
import re
import socket
import stat

from . import READ_SIZE
from .encoders import Chain
from .targets import Target, parse

PIPE_BUFFER = 4 << 20     # asked for; the kernel caps it (net.core.wmem_max)
READ_BATCH = 256          # messages handled per wake-up; the rest wait for the next pass
ENCODER_REGISTERED = "[{kind}] registered {spec}"


class Route:
    def __init__(self, spec: str, option: str):
        name, _, pattern = spec.partition(" ")
        if not name or not pattern:
            raise ValueError(f"--{option}: {spec!r} is not 'LOGGER REGEXP'")
        try:
            self.regex = re.compile(pattern.encode())
        except re.error as e:
            raise ValueError(f"--{option}: {pattern!r} is not a regular expression: {e}") from None
        self.name = name
        self.target: Target | None = None


class Pipe:
    """How a stream's pipe is made: ``SOCK_SEQPACKET`` (one message per write) or, with
    ``--log-master-stream``, ``SOCK_STREAM``; ``bufsize`` bytes read at most per message."""

    def __init__(self, bufsize: int = READ_SIZE, stream: bool = False):
        self.bufsize = bufsize
        self.kind = socket.SOCK_STREAM if stream else socket.SOCK_SEQPACKET


def regexps(patterns: list[str], option: str) -> list[re.Pattern]:
    out = []
    for pattern in patterns:
        try:
            out.append(re.compile(pattern.encode()))
        except re.error as e:
            raise ValueError(f"--{option}: {pattern!r} is not a regular expression: {e}") from None
    return out


class Stream:
    """One kind of lines (server log, request log): its loggers, encoders, routes and pipe."""

    def __init__(self, loggers: list[Target], encoders: Chain, routes: list[Route],
                 route_option: str, pipe: Pipe | None = None):
        self.pipe = pipe or Pipe()
        self.drains: list[re.Pattern] = []
        self.filters: list[re.Pattern] = []
        self.loggers = loggers
        self.encoders = encoders
        self.routes = routes
        named = {t.name: t for t in loggers if t.name}
        for route in routes:
            route.target = named.get(route.name)
            if route.target is None:
                raise ValueError(f"--{route_option}: no logger named {route.name!r}")
        self.r = self.w = -1

    def select(self, drains: list[re.Pattern], filters: list[re.Pattern]) -> None:
        """``--log-drain``: drop a line that matches one; ``--log-filter``: keep only lines
        that match one (uWSGI's uwsgi_master_log, before the routes)."""
        self.drains, self.filters = drains, filters

    def emit(self, target: Target | None, msg: bytes) -> None:
        if self.encoders:
            msg = self.encoders.encode(msg, target.name if target is not None else "")
        if target is None:
            try:
                os.write(2, msg)
            except OSError:
                pass
        else:
            target.write(msg)

    def dispatch(self, msg: bytes) -> None:
        """uWSGI's uwsgi_master_log: drains and filters, then routes; else every unnamed
        logger; else fd 2."""
        if self.drains and any(regex.search(msg) for regex in self.drains):
            return
        if self.filters and not any(regex.search(msg) for regex in self.filters):
            return
        routed = False
        for route in self.routes:
            if route.regex.search(msg):
                self.emit(route.target, msg)
                routed = True
        if routed:
            return
        sent = False
        for target in self.loggers:
            if not target.name:
                self.emit(target, msg)
                sent = True
        if not sent:
            self.emit(None, msg)

    # ---- the pipe -------------------------------------------------------------------
    def open_pipe(self, inherited: tuple[int, int] | None) -> None:
        if inherited is not None and all(_is_socket(fd) for fd in inherited):
            self.r, self.w = inherited
        else:
            a, b = socket.socketpair(socket.AF_UNIX, self.pipe.kind)
            size = max(PIPE_BUFFER, self.pipe.bufsize)
            try:
                b.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
                a.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
            except OSError:
                pass
            self.r, self.w = a.detach(), b.detach()
        os.set_blocking(self.r, False)
        for fd in (self.r, self.w):
            os.set_inheritable(fd, False)

    def drain(self, limit: int = READ_BATCH) -> None:
        """Master: hand every waiting message (up to ``limit``) to the loggers."""
        size = self.pipe.bufsize
        for _ in range(limit):
            try:
                msg = os.read(self.r, size)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if not msg:
                return
            self.dispatch(msg)

    def close(self) -> None:
        for fd in (self.r, self.w):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.r = self.w = -1
        for target in self.loggers:
            target.close()


def _is_socket(fd: int) -> bool:
    try:
        return stat.S_ISSOCK(os.fstat(fd).st_mode)
    except OSError:
        return False


def build_stream(specs: list[str], encoders: list[str], routes: list[str], syslog_socket: str,
                 route_option: str, maxsize: int = 0, pipe: Pipe | None = None) -> Stream:
    return Stream([parse(spec, syslog_socket, maxsize) for spec in specs], Chain(encoders),
                  [Route(spec, route_option) for spec in routes], route_option, pipe)


def take_handoff(fds: dict[str, int]) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
    """The previous image's pipes, if it handed any over (``uwsgi_handoff_take``'s fds)."""
    pairs = []
    for kind in ("log", "req"):
        r, w = fds.get(kind + "_r", -1), fds.get(kind + "_w", -1)
        pairs.append((r, w) if r >= 0 and w >= 0 else None)
    return pairs[0], pairs[1]


def give_handoff(server_stream: Stream | None, req_stream: Stream | None) -> dict[str, int]:
    """Before exec: the pipes to hand to the next image, by name (``uwsgi_handoff_give``)."""
    fds = {}
    for kind, stream in (("log", server_stream), ("req", req_stream)):
        if stream is not None and stream.r >= 0 and stream.w >= 0:
            fds[kind + "_r"], fds[kind + "_w"] = stream.r, stream.w
    return fds
