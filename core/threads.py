"""Request threads (--threads N > 1): N requests at once in one worker.

The worker's main thread keeps its loop (serving.py): signals, the control pipe, accepting,
reading request heads, deadlines and the drain of a stopping worker. Once a whole head is
in, ``ThreadedLoop`` takes the connection out of epoll and queues it for one of N request
threads, each with its own ``Dispatcher`` (dispatch.py) and its own core in the scoreboard
(``CoreSlot``). The thread serves that one request and hands the connection back (a deque
and a byte on a pipe the loop polls): an idle keep-alive connection waits in epoll, never
in a thread. While every thread is busy the loop stops polling its listeners, so the other
workers take the new connections.
"""
from __future__ import annotations

import collections
import os
import queue
import threading
import time
import traceback

from . import log
from .api import error_headers
from .conn import ClientGone, Conn
from .dispatch import Dispatcher
from .proto import BadRequest, parse_http, parse_uwsgi, simple_response
from .scoreboard import BUSY, CORE, Scoreboard, WorkerSlot
from .serving import EPOLLIN, EXCLUSIVE, KEEPALIVE_GRACE, Loop


class CoreSlot:
    """A request thread's view of the scoreboard: its own core entry, and the worker's
    slot (shared by the threads, updated under one lock) for the worker's totals."""

    def __init__(self, slot: WorkerSlot, board: Scoreboard, core: int, lock, busy: dict):
        self.slot = slot
        self.core = core
        self.mem = board.mem
        self.at = board.core_offset(slot.wid, core)
        self.lock = lock           # the worker's: one writer of its slot at a time
        self.busy_cores = busy     # core -> busy_since, of the worker's busy cores
        self.core_requests = CORE.unpack_from(self.mem, self.at)[0]
        self.publish = None

    # the worker's counters, as a single-threaded worker's dispatcher reads them
    @property
    def requests(self) -> int:
        return self.slot.requests

    @property
    def delta(self) -> int:
        return self.slot.delta

    @property
    def exceptions(self) -> int:
        return self.slot.exceptions

    @exceptions.setter
    def exceptions(self, value: int) -> None:
        # the dispatcher's ``slot.exceptions += 1``: two threads may read the same count,
        # so each write adds at least one to what is there now
        with self.lock:
            self.slot.exceptions = max(self.slot.exceptions + 1, value)

    def busy(self, since: float, uri: str, env: dict | None = None) -> None:
        with self.lock:
            self.busy_cores[self.core] = since
            if self.slot.owns():
                CORE.pack_into(self.mem, self.at, self.core_requests, 1, since,
                               uri.encode("latin-1", "replace"))
            self.slot.busy(since, uri, env)

    def done(self, sent: int, us: int) -> None:
        with self.lock:
            self.core_requests += 1
            del self.busy_cores[self.core]
            if self.slot.owns():
                CORE.pack_into(self.mem, self.at, self.core_requests, 0, 0.0, b"")
            if self.busy_cores:
                self.slot.done(sent, us, BUSY, min(self.busy_cores.values()))
            else:
                self.slot.done(sent, us)


class ThreadedLoop(Loop):
    """The serving loop of a worker with request threads (see the module's docstring)."""

    def __init__(self, worker):
        super().__init__(worker)
        settings = worker.settings
        self.worker = worker
        self.nthreads = settings.threads
        self.stacksize = settings.threads_stacksize * 1024
        # every thread's dispatcher answers a bad request without closing the connection:
        # the connection belongs to the loop again once the thread hands it back
        self.dispatchers = tuple(Dispatcher(worker, self.answer_bad) for _ in range(self.nthreads))
        self.dispatcher = self.dispatchers[0]
        for core, d in enumerate(self.dispatchers):
            d.core = core
        # counted here, on the loop's thread, once the request is back (Worker.recycle acts
        # on the loop): not in the thread that served it
        self.max_requests = self.dispatcher.max_requests
        for d in self.dispatchers:
            d.max_requests = 0
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()   # (conn, head, http) or None
        self.back: collections.deque = collections.deque()   # (conn, keep) handed back
        self.back_r = self.back_w = -1    # the pipe that wakes the loop for ``back``
        self.working: dict[int, Conn] = {}   # fd -> connection queued for or in a thread
        self.throttled = False            # listeners unpolled: every thread is busy
        self.threads: list[threading.Thread] = []

    def start(self, pid: int, slot) -> None:
        super().start(pid, slot)
        board = self.server.scoreboard
        board.clear_cores(slot.wid)
        lock, busy = threading.Lock(), {}
        for core, d in enumerate(self.dispatchers):
            d.slot = CoreSlot(slot, board, core, lock, busy)
        self.back_r, self.back_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.watch(self.back_r, self.returned)
        if self.stacksize:
            threading.stack_size(self.stacksize)
        for core, d in enumerate(self.dispatchers):
            t = threading.Thread(target=self.work, args=(d,), name=f"uwsgi-core-{core}",
                                 daemon=True)
            t.start()
            self.threads.append(t)

    # ---- in a request thread -------------------------------------------------------
    def work(self, dispatcher: Dispatcher) -> None:
        jobs, back, wake = self.jobs, self.back, self.back_w
        while True:
            job = jobs.get()
            if job is None:
                return
            conn, head, http = job
            try:
                keep = dispatcher.serve(conn, head, http)
            except BaseException:  # noqa: BLE001 - the thread must serve the next request
                log.log(traceback.format_exc().rstrip())
                dispatcher.req = None
                keep = False
            back.append((conn, keep))
            try:
                os.write(wake, b".")
            except OSError:
                pass   # the pipe is full: the loop is already woken

    def answer_bad(self, conn: Conn, err: BadRequest, req=None) -> None:
        """A bad request seen by a thread: the error response; the loop closes the connection."""
        log.log(log.BAD_REQUEST.format(addr=conn.remote or "-", why=err))
        if err.status and conn.listener.proto == "http":
            try:
                conn.sendall(simple_response(err.status, "",
                                             error_headers(self.response_hooks, req, err.status)))
            except ClientGone:
                pass

    # ---- on the loop's thread ------------------------------------------------------
    def in_request(self) -> bool:
        return bool(self.working)

    def process(self, conn: Conn) -> None:
        """Hand the next complete request in ``conn``'s buffer to a thread, or wait for it."""
        lst = conn.listener
        http = lst.proto == "http"
        if conn.buf and not self.paused:
            try:
                if http:
                    head = parse_http(conn.buf, self.limit, lst.server_port, conn.remote,
                                      self.http_rules)
                else:
                    head = parse_uwsgi(conn.buf, self.limit)
            except BadRequest as e:
                self.reject(conn, e)
                return
            if head is not None:
                del conn.buf[:head.consumed]
                if not http:
                    head.vars.setdefault("REMOTE_ADDR", conn.remote)
                self.hand_off(conn, head, http)
                return
        if conn.fd in self.conns and conn.fd not in self.registered and not self.paused:
            if not conn.served:
                conn.deadline = time.monotonic() + self.timeout
            self.ep.register(conn.fd, EPOLLIN)
            self.registered.add(conn.fd)

    def hand_off(self, conn: Conn, head, http: bool) -> None:
        fd = conn.fd
        del self.conns[fd]
        if fd in self.registered:
            self.registered.discard(fd)
            try:
                self.ep.unregister(fd)
            except OSError:
                pass
        self.working[fd] = conn
        if len(self.working) >= self.nthreads and not self.throttled:
            self.throttle()
        self.jobs.put((conn, head, http))

    def returned(self) -> None:
        """Connections handed back by the threads: wait for their next request, or close."""
        try:
            os.read(self.back_r, 4096)
        except OSError:
            pass
        back = self.back
        now = time.monotonic()
        while back:
            conn, keep = back.popleft()
            self.working.pop(conn.fd, None)
            if keep and conn.fd >= 0:
                self.conns[conn.fd] = conn
                conn.deadline = now + (conn.listener.idle or self.timeout)
                self.process(conn)
            else:
                self.drop(conn)
        if self.throttled and len(self.working) < self.nthreads:
            self.unthrottle()
        if self.max_requests and self.slot.delta >= self.max_requests:
            self.worker.max_requests_reached()

    def throttle(self) -> None:
        self.throttled = True
        for fd in self.listeners:
            try:
                self.ep.unregister(fd)
            except OSError:
                pass

    def unthrottle(self) -> None:
        self.throttled = False
        if self.paused or self.starved or self.stopping:
            return
        for fd in self.listeners:
            try:
                self.ep.register(fd, EXCLUSIVE)
            except OSError:
                pass

    def resume(self) -> None:
        super().resume()
        if self.throttled:
            self.throttle()

    def listen_again(self, now: float, freed: bool = False) -> None:
        if self.throttled:
            self.starved = False   # unthrottle() polls the listeners again
            return
        super().listen_again(now, freed)

    def stop(self) -> None:
        self.stopping = True
        for d in self.dispatchers:
            d.end_keepalive()

    def drain(self, refuse: bool) -> None:
        """Loop.drain's, and every request queued for or in a thread is answered first."""
        self.stop_accepting(refuse)
        start = time.monotonic()
        deadline = start + self.timeout
        grace_end = start + min(self.timeout, KEEPALIVE_GRACE)
        while self.conns or self.working:
            now = time.monotonic()
            for conn in list(self.conns.values()):
                if now >= deadline or (now >= grace_end and conn.served and not conn.buf):
                    self.drop(conn)
            if not (self.conns or self.working):
                break
            for fd, ev in self.ep.poll(0.05):
                if fd == self.back_r:
                    self.returned()
                    continue
                conn = self.conns.get(fd)
                if conn is not None:
                    self.readable(conn)
        for _ in self.threads:
            self.jobs.put(None)
