"""One request in a worker: its handler or app, its error responses and its log line.

The serving loop (serving.py) hands every complete request head to ``Dispatcher.serve``,
which runs it to its end and says whether the connection may take another request.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

from . import log
from .api import error_headers
from .conn import ClientGone, ClientTimeout
from .postbuffer import spool_body
from .proto import BadRequest, simple_response
from .response import VIA_SENDFILE, Request

if TYPE_CHECKING:
    from .conn import Conn

VIA = {VIA_SENDFILE: " via sendfile() "}    # the default line's note of how a body was sent


class Dispatcher:
    """Serves a worker's requests one at a time (``serve``), and knows the current one."""

    def __init__(self, worker, reject):
        settings = worker.settings
        self.worker = worker        # what a plugin's request logger is given
        self.server = worker.server
        self.current = worker.server.current   # this thread's request, for the in-app API
        self.reject = reject        # the loop's: answer a bad request and drop its connection
        self.pid = 0                # set by start(), in the child
        self.slot = None            # the worker's WorkerSlot (start())
        self.req = None             # the request being served (None: idle)
        self.core = 0               # its request thread's core id (--threads, threads.py)
        self.current_uri = ""       # its URI and its start (SIGUSR2's report)
        self.busy_since = 0.0
        # False once the worker stops; each listener says whether its connections may be kept alive
        self.http_keepalive = True
        self.post_buffering = settings.post_buffering
        self.add_headers = tuple(f"{h}\r\n" for h in settings.add_header)
        self.quiet_write_errors = settings.ignore_write_errors
        self.limit_post = settings.limit_post
        self.max_requests = settings.max_requests
        if self.max_requests:
            self.max_requests += (worker.id - 1) * settings.max_requests_delta
        self.logging = not settings.disable_logging
        self.handlers: list = []     # plugins' handlers, tried before the app (static files)
        self.response_hooks: tuple = ()   # plugins' uwsgi_response_headers functions
        self.request_logger = None   # a plugin's (--log-format, --req-logger...), else the core's line
        self.apps: dict = worker.apps   # modifier1 -> app, shared with the worker (plugins add to it)
        self.default_app = None      # the first app loaded
        self.http_app = None         # the app of every HTTP request

    def start(self, pid: int, slot, handlers: list, request_logger) -> None:
        """In the child, once its apps are loaded (``worker.apps`` filled)."""
        self.pid = pid
        self.slot = slot
        self.handlers = handlers
        self.request_logger = request_logger
        self.default_app = self.server.apps[0] if self.server.apps else None
        # --http-socket-modifier1's app, else the first one loaded
        modifier1 = self.server.settings.http_socket_modifier1 or 0
        self.http_app = self.apps.get(modifier1) or self.default_app

    def end_keepalive(self) -> None:
        """The worker stops: no connection takes another request, and the responses say so
        (Connection: close), from the one being made if its head is not out yet."""
        self.http_keepalive = False
        req = self.req
        if req is not None and not req.started:
            req.keepalive = False

    def serve(self, conn: Conn, head, http: bool) -> bool:
        """Run one request through its app; True if the connection stays open."""
        try:
            req = Request(conn, head, http, self.http_keepalive and conn.listener.keepalive,
                          self.limit_post, self.add_headers, self.response_hooks)
        except BadRequest as e:
            self.reject(conn, e)
            return False
        req.core = self.core
        if http:
            app = self.http_app
        else:
            app = self.apps.get(head.modifier1)
            if app is None:
                if head.modifier1 == 0:
                    app = self.default_app
                if app is None and self.server.apps:
                    log.log(log.UNAVAILABLE_MODIFIER.format(modifier=head.modifier1))
                    return False
        env = head.vars
        # busy_since before req: whoever sees req set sees its start (threads.py's look)
        self.busy_since = started = time.time()
        self.req = self.current.req = req
        conn.read_errors = conn.write_errors = 0
        self.current_uri = uri = env.get("REQUEST_URI") or env.get("PATH_INFO", "")
        slot = self.slot
        slot.busy(started, uri, env)
        try:
            if self.post_buffering and not req.input.done:
                req.input = spool_body(req.input, self.post_buffering)
            for handler in self.handlers:
                if handler(req):
                    break
            else:
                if app is None:
                    log.log(log.NO_APP_REQUEST)
                    req.start("500 Internal Server Error", [("Content-Type", "text/plain")])
                    req.write(b"Internal Server Error\n")
                else:
                    app(req)
            req.finish()
        except ClientGone as gone:       # (not ``e``: a compiled build gives a name one type)
            req.keepalive = False
            self.client_gone(conn, req, gone)
        except BadRequest as e:          # a malformed body (chunked), or one over --limit-post
            req.keepalive = False
            if req.committed:
                log.log(log.BAD_REQUEST.format(addr=conn.remote or "-", why=e))
            else:
                self.reject(conn, e, req)
                req.status = e.status
        except Exception:  # noqa: BLE001 - a broken handler must not kill the worker
            slot.exceptions += 1
            log.log(log.exc_text().rstrip())
            req.keepalive = False
            if not req.committed:
                try:
                    conn.sendall(simple_response(500, "", error_headers(self.response_hooks, req, 500)))
                    req.status = 500
                except ClientGone:
                    pass
        elapsed = time.time() - started      # wall clock, as uWSGI times requests
        us = int(elapsed * 1_000_000) if elapsed > 0 else 0
        self.req = self.current.req = None
        slot.done(req.sent + req.hsize, us)
        if self.request_logger is not None:
            self.request_logger(self.worker, req, uri, started, us)
        elif self.logging:
            log.raw(self.request_line(req, uri, started, us))
        conn.served += 1
        if self.max_requests and slot.delta >= self.max_requests:
            self.worker.max_requests_reached()
        if req.keepalive:
            try:
                return req.input.drain()
            except BadRequest as e:     # the unread rest of the body was malformed
                log.log(log.BAD_REQUEST.format(addr=conn.remote or "-", why=e))
                return False
        if not req.input.done:
            conn.unread = True
        return False

    def client_gone(self, conn: Conn, req: Request, err: ClientGone) -> None:
        """The client vanished or was too slow (--socket-timeout, --socket-min-bytes)."""
        if self.quiet_write_errors and req.started and not isinstance(err, ClientTimeout):
            return   # --ignore-write-errors: gone while its response was being written
        log.log(log.CLIENT_GONE.format(addr=conn.remote or "-", uri=self.current_uri, why=err))
        if isinstance(err, ClientTimeout) and not req.committed and conn.listener.proto == "http":
            try:
                conn.sendall(simple_response(408, "", error_headers(self.response_hooks, req, 408)))
                req.status = 408
            except ClientGone:
                pass

    def request_line(self, req: Request, uri: str, started: float, us: int, addr: str = "",
                     micros: bool = False) -> str:
        """uWSGI's default request line (LOG-2); ``micros``: the time in microseconds."""
        env = req.vars
        return log.REQUEST.format(
            pid=self.pid, wreq=self.slot.worker_requests, treq=self.slot.worker_requests,
            addr=addr or req.conn.remote or "-", user=env.get("REMOTE_USER", ""),
            nvars=len(env), vsize=sum(len(k) + len(v) for k, v in env.items() if isinstance(v, str)),
            date=time.ctime(started), method=env.get("REQUEST_METHOD", "-"), uri=uri,
            size=req.sent, time=us if micros else us // 1000, unit="micros" if micros else "msecs",
            via=VIA.get(req.via, " "), proto=env.get("SERVER_PROTOCOL", "-"), status=req.status,
            nheaders=req.nheaders, hsize=req.hsize, core=self.core)
