"""A worker's serving loop: one epoll over its listeners, waiting clients and watched fds.

Clients waiting for a request head cost no worker time (slow clients and idle keep-alive
connections wait in epoll); once a head is in, the request is served synchronously by the
dispatcher (dispatch.py). Here: accepting (pausing when out of file descriptors), reading
heads, deadlines (--socket-timeout, keep-alive), pause and resume, and the drain of a
stopping worker.
"""
from __future__ import annotations

import errno
import os
import select
import socket
import time
from typing import Any

from . import log, proxy_protocol
from .api import error_headers
from .conn import ClientGone, Conn
from .dispatch import Dispatcher
from .proto import BadRequest, HttpRules, parse_http, parse_uwsgi, simple_response
from .scoreboard import IDLE, PAUSE

EPOLLIN = select.EPOLLIN
EXCLUSIVE = select.EPOLLIN | getattr(select, "EPOLLEXCLUSIVE", 0)
ONCE = (None,)       # accept() once per wakeup (see Loop.accept)
DRAIN_MAX = 4096     # connections taken from a listener's queue before it is shut down
EXPIRE_EVERY = 0.1   # seconds between two scans for connections past their deadline
# a stopping worker keeps an idle keep-alive connection this long (at most --socket-timeout) for
# the client's next request, answered with Connection: close (see Loop.drain)
KEEPALIVE_GRACE = 1.0
# accept() errors that mean "out of file descriptors": the worker pauses accepting
FD_EXHAUSTED = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class Loop:
    """A worker's epoll loop: ``start()``, then ``run()`` until ``stop()``, then ``drain()``."""

    def __init__(self, worker) -> None:
        settings = worker.settings
        self.server = worker.server
        self.id = worker.id
        self.pid = 0                 # set by start(), in the child
        self.slot: Any = None        # the worker's WorkerSlot (start())
        self.http_rules = HttpRules(settings.limit_request_fields, settings.limit_request_line,
                                    settings.http_allow_underscore_headers)
        self.limit = settings.buffer_size      # the largest request head (uwsgi packet) read
        self.timeout = float(settings.socket_timeout)
        self.min_bytes = settings.socket_min_bytes
        self.stopping = False        # stop(): run() returns, drain() serves what was accepted
        self.paused = False          # neither accepting nor reading clients (CTL_PAUSE)
        self.ep: Any = None          # the epoll object (start())
        self.listeners: dict = {}    # fd -> Listener, while polled
        self.conns: dict[int, Conn] = {}   # fd -> open client connection
        self.registered: set[int] = set()  # fds of the connections waiting in epoll
        self.watches: dict = {}      # other fds (the worker's pipes, plugins') -> callbacks
        self.starved = False         # listeners unwatched after accept() ran out of fds
        self.fd_failures = 0         # failed accept() calls in the current burst (0 = none)
        self.starved_at = 0.0
        self.next_expire = 0.0       # when the loop next looks for connections past their deadline
        self.dispatcher = Dispatcher(worker, self.reject)
        self.response_hooks: tuple = ()   # plugins' uwsgi_response_headers functions (the 4xx)
        self.serve = self.dispatcher.serve   # bound once: called for every request
        # one per request thread (threads.py)
        self.dispatchers: tuple[Dispatcher, ...] = (self.dispatcher,)

    def start(self, pid: int, slot) -> None:
        """In the child, apps loaded: make the epoll and poll the listeners."""
        self.pid = pid
        self.slot = slot
        ep = self.ep = select.epoll()
        self.listeners = {lst.fd: lst for lst in self.server.listeners}
        for fd in self.listeners:
            ep.register(fd, EXCLUSIVE)

    def watch(self, fd: int, callback) -> None:
        """Poll ``fd`` too; ``callback()`` runs when it is readable, between requests."""
        self.watches[fd] = callback
        self.ep.register(fd, EPOLLIN)

    def unwatch(self, fd: int) -> None:
        """Stop polling a watched fd; its owner closes it."""
        if self.watches.pop(fd, None) is not None:
            try:
                self.ep.unregister(fd)
            except OSError:
                pass

    def in_request(self) -> bool:
        """Whether a request is being served now."""
        return self.dispatcher.req is not None

    # ---- the loop --------------------------------------------------------------
    def run(self) -> None:
        """Serve until ``stop()``."""
        ep = self.ep
        while not self.stopping:
            timeout = 1.0 if self.conns or self.starved else -1
            events = ep.poll(timeout, 64)
            for fd, ev in events:
                lst = self.listeners.get(fd)
                if lst is not None:
                    if not self.paused:
                        # even when stopping: the kernel woke this worker alone for the
                        # connection (EPOLLEXCLUSIVE), and left in the queue it would wait for
                        # another client's connection to wake a worker (with a lone client,
                        # until its timeout)
                        self.accept(lst)
                    continue
                conn = self.conns.get(fd)
                if conn is not None:
                    self.readable(conn)
                else:
                    callback = self.watches.get(fd)
                    if callback is not None:
                        callback()
            if self.conns:
                # deadlines are --socket-timeout seconds away: scanning every waiting
                # connection after each wakeup would cost more than the requests under
                # keep-alive load; ten scans a second are as timely as needed
                now = time.monotonic()
                if now >= self.next_expire:
                    self.next_expire = now + EXPIRE_EVERY
                    self.expire()
            if self.starved:
                self.listen_again(time.monotonic())

    def stop(self) -> None:
        """The worker stops: ``run()`` returns, and no connection takes another request."""
        self.stopping = True
        self.dispatcher.end_keepalive()

    def pause(self) -> None:
        if self.paused:
            return
        self.paused = True
        for fd in list(self.listeners) + list(self.registered):
            try:
                self.ep.unregister(fd)
            except OSError:
                pass
        self.registered.clear()
        self.slot.flush(PAUSE, 0)
        log.vlog(log.WORKER_SUSPENDED.format(id=self.id))

    def resume(self) -> None:
        if not self.paused:
            return
        self.paused = False
        for fd in self.listeners:
            self.ep.register(fd, EXCLUSIVE)
        for fd in self.conns:
            self.ep.register(fd, EPOLLIN)
            self.registered.add(fd)
        self.slot.flush(IDLE, 1)
        log.vlog(log.WORKER_RESUMED.format(id=self.id))

    def drain(self, refuse: bool) -> None:
        """After ``stop()``: serve the clients that already sent a request, close the rest.
        ``refuse`` (a graceful shutdown): first make the listeners refuse connections."""
        self.stop_accepting(refuse)
        # Clients that started a request get --socket-timeout to finish sending it. An idle
        # keep-alive connection gets KEEPALIVE_GRACE for one more request, answered with
        # Connection: close: closed at once, it would fail the request a client sends at
        # that moment (a client sending back to back always does), and the client would
        # never have been told the connection was ending.
        start = time.monotonic()
        deadline = start + self.timeout
        grace_end = start + min(self.timeout, KEEPALIVE_GRACE)
        while self.conns:
            now = time.monotonic()
            if now >= deadline:
                break
            if now >= grace_end:
                for idle in list(self.conns.values()):
                    if idle.served and not idle.buf:
                        self.drop(idle)
                if not self.conns:
                    break
            for fd, ev in self.ep.poll(0.05):
                conn = self.conns.get(fd)
                if conn is not None:
                    self.readable(conn)
        for conn in list(self.conns.values()):
            self.drop(conn)

    def stop_accepting(self, refuse: bool) -> None:
        """The first step of a drain: no more connections (``refuse``: the kernel refuses
        them too); what was accepted while paused is still answered."""
        if self.paused:
            # told to stop while paused (a reload, a stop): what it accepted is still answered
            self.paused = False
            for conn in list(self.conns.values()):
                self.process(conn)   # serves what is buffered, else waits in epoll for the rest
        for lst in list(self.listeners):
            try:
                self.ep.unregister(lst)
            except OSError:
                pass
        self.listeners = {}
        if refuse:
            self.refuse_connections()

    # ---- accepting -------------------------------------------------------------
    def accept(self, lst) -> None:
        # One connection per wakeup: a client accepted before its request arrived waits
        # in epoll, and a long accept run would keep it waiting behind every connection
        # still queued (Connection: close p99 halved on the bench). After accept() ran
        # out of fds, drain the queue so the burst's end (EAGAIN) is seen.
        for _ in range(64) if self.fd_failures else ONCE:
            conn = self.accept_one(lst)
            if conn is None:
                return
            self.take(conn)
            if self.stopping:
                return

    def take(self, conn: Conn) -> None:
        """A connection just accepted: serve what it sent, or wait for it."""
        self.conns[conn.fd] = conn   # its deadline is set if it has to wait (process)
        conn.fill()
        self.process(conn)

    def accept_one(self, lst) -> Conn | None:
        """One connection from ``lst``'s queue, not yet in ``conns``, or None (empty, or an
        error handled here)."""
        while True:
            try:
                fd, addr = lst.sock._accept()   # an fd, not a socket object (see Conn)
            except (BlockingIOError, InterruptedError):
                if self.fd_failures:
                    self.end_fd_burst()
                return None
            except OSError as e:
                if e.errno in FD_EXHAUSTED:
                    self.out_of_fds(e)
                elif e.errno == errno.EINVAL:
                    self.forget_listener(lst)   # shut down by a stopping worker (graceful stop)
                else:
                    log.log(f"accept(): {e.strerror}")
                return None
            try:
                os.set_blocking(fd, False)
            except OSError:
                os.close(fd)
                continue
            if lst.unix:
                remote = ""
            else:
                remote = addr[0]
                if lst.v6 and remote.startswith("::ffff:"):
                    remote = remote[7:]
            conn = Conn(fd, lst, remote, self.timeout, self.min_bytes, lst.corked)
            if not (lst.unix or lst.nodelay):
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return conn

    def forget_listener(self, lst) -> None:
        """A listener that no longer listens: stop polling it (it would be readable forever)."""
        if self.listeners.pop(lst.fd, None) is not None:
            try:
                self.ep.unregister(lst.fd)
            except OSError:
                pass

    def refuse_connections(self) -> None:
        """Graceful shutdown (CTL_CLOSE_LISTENERS): take every connection the kernel has
        already accepted, then ``shutdown()`` each listener. That acts on the socket, not
        on this process's fd, so connects are refused at once although the master and
        busy workers still hold copies; the connections taken are served as in-flight."""
        taken = []
        for lst in self.server.listeners:
            if not lst.owned:
                continue   # its owner (systemd) keeps it: what is queued waits for the next start
            for _ in range(DRAIN_MAX):
                conn = self.accept_one(lst)
                if conn is None:
                    break
                taken.append(conn)
            try:
                lst.sock.shutdown(socket.SHUT_RD)
            except OSError:
                continue   # already shut down by another worker
            log.vlog(log.LISTENERS_CLOSED.format(id=self.id, pid=self.pid, name=lst.name))
        for conn in taken:
            self.take(conn)

    # ---- out of file descriptors: log once per burst, stop polling the listeners ----------
    def out_of_fds(self, err: OSError) -> None:
        """accept() failed for lack of fds: the connection stays in the listen queue.

        Unwatch the listeners (a level-triggered listener would spin) until a
        connection closes or a second passes; log the first failure of a burst only.
        """
        if not self.fd_failures:
            log.log(log.ACCEPT_NO_FDS.format(id=self.id, pid=self.pid, error=err.strerror,
                                             conns=len(self.conns)))
        self.fd_failures += 1
        self.starved = True
        self.starved_at = time.monotonic()
        for fd in self.listeners:
            try:
                self.ep.unregister(fd)
            except OSError:
                pass

    def listen_again(self, now: float, freed: bool = False) -> None:
        if not freed and now - self.starved_at < 1.0:
            return
        self.starved = False
        if self.paused or self.stopping:
            return
        for fd in self.listeners:
            try:
                self.ep.register(fd, EXCLUSIVE)
            except OSError:
                pass

    def end_fd_burst(self) -> None:
        """The listen queue was drained again: the burst is over."""
        log.log(log.ACCEPT_FDS_BACK.format(id=self.id, pid=self.pid, failures=self.fd_failures))
        self.fd_failures = 0

    # ---- clients ---------------------------------------------------------------
    def readable(self, conn: Conn) -> None:
        if not conn.fill():
            self.drop(conn)
            return
        self.process(conn)

    def expire(self) -> None:
        if self.paused:
            return   # the clients are not late: this worker is not reading (SIG-8)
        now = time.monotonic()
        for conn in list(self.conns.values()):
            if conn.deadline < now:
                # a worker busy serving others may not have read what this client sent in
                # time: read it now, and serve it if it is complete (the client was not late)
                if conn.fd not in self.conns:
                    continue
                if conn.fill() and conn.buf:
                    self.process(conn)
                    if conn.fd not in self.conns or conn.deadline >= time.monotonic():
                        continue
                if conn.fd not in self.conns:
                    continue
                if conn.buf and conn.listener.proto == "http":
                    self.reject(conn, BadRequest("timeout waiting for the request", 408))
                else:
                    self.drop(conn)

    def drop(self, conn: Conn) -> None:
        if self.starved:
            self.listen_again(0.0, freed=True)
        self.conns.pop(conn.fd, None)
        if conn.fd in self.registered:
            self.registered.discard(conn.fd)
            try:
                self.ep.unregister(conn.fd)
            except OSError:
                pass
        conn.close()

    def reject(self, conn: Conn, err: BadRequest, req=None) -> None:
        """A bad request (or a client too slow to send one): the error response, if the
        protocol has one, and the connection is closed."""
        log.log(log.BAD_REQUEST.format(addr=conn.remote or "-", why=err))
        if err.status and conn.listener.proto == "http":
            try:
                conn.sendall(simple_response(err.status, "",
                                             error_headers(self.response_hooks, req, err.status)))
            except ClientGone:
                pass
        self.drop(conn)

    def process(self, conn: Conn) -> None:
        """Serve every complete request in ``conn``'s buffer, then wait for more."""
        if self.paused or not self.serve_buffered(conn, self.serve):
            return
        if conn.fd in self.conns and conn.fd not in self.registered:
            if not conn.served:   # a new connection still sending its first head
                conn.deadline = time.monotonic() + self.timeout
            self.ep.register(conn.fd, EPOLLIN)
            self.registered.add(conn.fd)

    def serve_buffered(self, conn: Conn, serve) -> bool:
        """Serve every complete request in ``conn``'s buffer with ``serve`` (a dispatcher's);
        False once the connection is closed."""
        lst = conn.listener
        http = lst.proto == "http"
        while conn.buf:
            try:
                if http:
                    # PROXY protocol v1 line first (--enable-proxy-protocol): proxy_protocol.py
                    if lst.proxy and not conn.served and not proxy_protocol.take(conn):
                        break
                    head = parse_http(conn.buf, self.limit, lst.server_port, conn.remote,
                                      self.http_rules)
                else:
                    head = parse_uwsgi(conn.buf, self.limit)
            except BadRequest as e:
                self.reject(conn, e)
                return False
            if head is None:
                break
            del conn.buf[:head.consumed]
            if lst.proxy and (port := proxy_protocol.port(conn)):   # proxy_protocol.py
                head.vars["REMOTE_PORT"] = port
            if not http:
                head.vars.setdefault("REMOTE_ADDR", conn.remote)
            if not serve(conn, head, http):
                self.drop(conn)
                return False
            conn.deadline = time.monotonic() + (lst.idle or self.timeout)
        return True
