"""Request threads (--threads N > 1): N requests at once in one worker.

As in uWSGI, every request thread accepts and serves by itself: no request crosses from one
thread to another. The threads share one epoll (``Loop.ep``) that holds the listeners and the
connections waiting for a request (idle keep-alive connections, clients still sending a head).
The thread that waits in it (the poller) accepts (or takes the waiting connection), reads the
head and serves the request with its own ``Dispatcher`` (dispatch.py) and scoreboard core
(``CoreSlot``), then waits in the epoll again. A connection that has to wait again goes back
into the epoll, armed once (EPOLLONESHOT): an idle connection waits there, never in a thread.

One poller at a time: the other threads wait for the role (``role``, a lock). While the
worker's requests are quick (their running average under ``PROMOTE_AFTER``), the poller serves
what it takes and keeps the role, so the worker runs one thread, as a worker without threads
does, instead of eight that trade the GIL at every system call; should one of those requests
run ``PROMOTE_AFTER`` seconds after all (it waits on a database, a sleep), the main thread hands
the role to the next thread. Once requests are slow on average, the poller hands the role on
as soon as it has its connection (leader/follower), so every thread can serve at once with no
wait for the main thread. The main thread watches from what a request writes anyway (the
poller's dispatcher, the cores' counts), so the threads keep no books of their own for it
(``look``).

Ownership: a waiting connection is in ``conns``; whoever pops it from there (a thread woken
for it, or the main thread expiring it) owns it until it is closed or put back. A worker whose
threads are all busy has no thread in epoll_wait, so the kernel's EPOLLEXCLUSIVE wakeup passes
a new connection to another worker.

The main thread keeps what a worker's process does: signals, the control pipe and plugins'
fds (in its own epoll), deadlines (--socket-timeout, keep-alive), pause and resume, and the
drain of a stopping worker. To stop accepting it takes the listeners out of the shared epoll,
which stops every thread accepting at once; when the drain is done a byte on a pipe in the
shared epoll (level-triggered, never read) wakes each thread to exit. What a thread needs done
on the main thread (--max-requests reached) goes through ``call``.
"""
from __future__ import annotations

import collections
import os
import select
import threading
import time

from . import log
from .conn import Conn
from .dispatch import Dispatcher
from .proto import BadRequest
from .scoreboard import (CORE, CORE_DONE, CORE_STARTED, CORE_STARTED_AT, IDLE, PAUSE,
                         Scoreboard, WorkerSlot)
from .serving import EPOLLIN, EXCLUSIVE, EXPIRE_EVERY, KEEPALIVE_GRACE, Loop

ONESHOT = select.EPOLLIN | select.EPOLLONESHOT
PROMOTE_AFTER = 0.002   # a poller's request running this long hands the role to the next thread
RECENT = 1.0            # served within this long: the main thread looks every PROMOTE_AFTER
SLOW_LOOK = 0.1         # how often it looks while requests are slow (to see them quick again)


def readable(fd: int, timeout: float) -> bool:
    """Whether ``fd`` has bytes (or EOF) to read within ``timeout`` seconds."""
    p = select.poll()
    p.register(fd, select.POLLIN)
    return bool(p.poll(timeout * 1000))


class CoreSlot:
    """A request thread's view of the scoreboard: its own core entry, the only thing it
    writes per request (no lock: no other thread writes there). The worker's numbers are its
    slot's plus its cores' (``Scoreboard.read``)."""

    __slots__ = ("slot", "core", "mem", "at", "started_at", "core_requests", "delta",
                 "exceptions", "tx", "running_time", "avg_rt", "loop")

    def __init__(self, slot: WorkerSlot, board: Scoreboard, core: int, loop: ThreadedLoop):
        self.slot = slot
        self.core = core
        self.mem = board.mem
        self.at = board.core_offset(slot.wid, core)
        self.started_at = self.at + CORE_STARTED_AT
        self.core_requests = CORE.unpack_from(self.mem, self.at)[0]   # over the worker's lives
        self.delta = 0         # this worker's requests on this core (the entry's delta_requests)
        self.exceptions = 0
        self.tx = 0
        self.running_time = 0
        self.avg_rt = 0
        self.loop = loop

    @property
    def worker_requests(self) -> int:
        """The worker's requests, all cores (the request line's)."""
        return self.slot.requests + self.loop.totals()[0]

    def busy(self, since: float, uri: str, env: dict | None = None) -> None:
        slot = self.slot
        if slot.owns():
            if slot.publish is not None:
                # the core's request vars (the stats plugin's) before its status flips
                slot.publish(env, self.core)
            CORE_STARTED.pack_into(self.mem, self.started_at, 1, since,
                                   uri.encode("latin-1", "replace"))

    def done(self, sent: int, us: int) -> None:
        self.core_requests += 1
        self.delta += 1
        self.tx += sent
        self.running_time += us
        self.avg_rt = avg = (self.avg_rt + us) // 2 if self.avg_rt else us
        if self.slot.owns():
            CORE_DONE.pack_into(self.mem, self.at, self.core_requests, self.delta,
                                self.exceptions, self.tx, self.running_time, avg, 0, 0.0, 0)


class ThreadedLoop(Loop):
    """The serving loop of a worker with request threads (see the module's docstring)."""

    def __init__(self, worker):
        super().__init__(worker)
        settings = worker.settings
        self.worker = worker
        self.stacksize = settings.threads_stacksize * 1024
        self.dispatchers = tuple(Dispatcher(worker, self.reject) for _ in range(settings.threads))
        self.dispatcher = self.dispatchers[0]
        for core, d in enumerate(self.dispatchers):
            d.core = core
        # checked by the thread after each request, acted on by the main thread (call):
        # Worker.recycle acts on the loop
        self.max_requests = self.dispatcher.max_requests
        for d in self.dispatchers:
            d.max_requests = 0
        self.lock = threading.Lock()   # arming vs pause
        self.working: dict[int, bool] = {}   # core -> True while its thread is not in epoll
        self.main_ep = None            # the main thread's epoll: watched fds only (start)
        self.calls: collections.deque = collections.deque()   # for the main thread (call)
        self.kick_r = self.kick_w = -1   # wakes the main thread for ``calls``
        self.stop_r = self.stop_w = -1   # in the shared epoll: written once, the threads exit
        self.threads: list[threading.Thread] = []
        self.role = threading.Lock()          # held by the poller (see the module docstring)
        self.role_lock = threading.Lock()     # who the poller is; handing the role on
        self.poller: int | None = None
        self.cores: tuple = ()                # the threads' CoreSlots (start)
        self.main_asleep = False              # the main thread sleeps past PROMOTE_AFTER
        self.active_at = 0.0                  # when the main thread last saw requests served
        self.seen = (0, 0)                    # the worker's (requests, running_time) it saw
        self.average = 0.0                    # seconds per request, a running average
        self.slow = False                     # average >= PROMOTE_AFTER: hand the role on first

    def start(self, pid: int, slot) -> None:
        super().start(pid, slot)       # self.ep: the listeners, shared by the threads
        self.main_ep = select.epoll()
        board = self.server.scoreboard
        for core, d in enumerate(self.dispatchers):
            d.slot = CoreSlot(slot, board, core, self)
        self.cores = tuple(d.slot for d in self.dispatchers)
        self.seen = self.totals()
        self.kick_r, self.kick_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.watch(self.kick_r, self.run_calls)
        self.stop_r, self.stop_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.ep.register(self.stop_r, EPOLLIN)
        if self.stacksize:
            threading.stack_size(self.stacksize)
        for d in self.dispatchers:
            t = threading.Thread(target=self.work, args=(d,), name=f"uwsgi-core-{d.core}",
                                 daemon=True)
            t.start()
            self.threads.append(t)

    def watch(self, fd: int, callback) -> None:
        self.watches[fd] = callback
        self.main_ep.register(fd, EPOLLIN)

    def unwatch(self, fd: int) -> None:
        if self.watches.pop(fd, None) is not None:
            try:
                self.main_ep.unregister(fd)
            except OSError:
                pass

    def in_request(self) -> bool:
        return bool(self.working)

    # ---- in a request thread -------------------------------------------------------
    def work(self, d: Dispatcher) -> None:
        """A request thread: become the poller, then take the next event of the shared
        epoll and serve it, for as long as the role stays with this thread."""
        ep, conns, working, core, stop_r = self.ep, self.conns, self.working, d.core, self.stop_r
        while True:
            self.role.acquire()
            self.poller = core
            while self.poller == core:
                events = ep.poll(-1, 1)
                working[core] = True   # before anything is taken: the drain waits for it
                for fd, _ in events:
                    if fd == stop_r:
                        del working[core]
                        self.resign(core)   # the next thread sees the byte too, and exits
                        return
                    lst = self.listeners.get(fd)
                    if lst is not None:
                        conn = self.accept_one(lst)
                        if conn is not None:
                            conn.deadline = time.monotonic() + self.timeout
                    else:
                        conn = conns.pop(fd, None)   # None: the main thread took it meanwhile
                    if conn is not None:
                        if self.slow:
                            self.resign(core)   # the next thread polls while this one serves
                        elif self.main_asleep:
                            self.kick()   # the main thread is to watch this request (look)
                        self.serve_conn(conn, d)
                del working[core]
                if self.stopping:
                    self.kick()   # the drain waits for the threads to be done

    def resign(self, core: int) -> None:
        """Give up the poller's role if ``core`` still has it."""
        with self.role_lock:
            if self.poller == core:
                self.poller = None
                self.role.release()

    def serve_conn(self, conn: Conn, d: Dispatcher) -> None:
        """Serve what ``conn`` sent (this thread owns it), then put it back to wait."""
        try:
            if not conn.fill():
                self.drop(conn)
            elif self.serve_buffered(conn, d.serve):
                self.release(conn)
        except BaseException:  # noqa: BLE001 - the thread must serve the next request
            log.log(log.exc_text().rstrip())
            d.req = None
            self.drop(conn)
        if self.max_requests and not self.stopping and self.totals()[0] >= self.max_requests:
            self.call(self.worker.max_requests_reached)

    def release(self, conn: Conn) -> None:
        """An open connection waits for its next bytes in the shared epoll."""
        if conn.fd >= 0:
            self.conns[conn.fd] = conn
            self.arm(conn)

    def arm(self, conn: Conn) -> None:
        fd = conn.fd
        with self.lock:
            if self.paused:
                return    # resume() arms it
            if fd in self.registered:
                self.ep.modify(fd, ONESHOT)
            else:
                self.ep.register(fd, ONESHOT)
                self.registered.add(fd)

    def drop(self, conn: Conn) -> None:
        if self.starved:
            self.listen_again(0.0, freed=True)
        self.conns.pop(conn.fd, None)
        self.registered.discard(conn.fd)
        conn.close()   # the last reference to the socket: it leaves the epoll too

    def call(self, fn) -> None:
        """Have ``fn()`` run on the main thread."""
        self.calls.append(fn)
        self.kick()

    def kick(self) -> None:
        try:
            os.write(self.kick_w, b".")
        except OSError:
            pass   # the pipe is full: the main thread is woken already

    # ---- on the main thread --------------------------------------------------------
    def run_calls(self) -> None:
        try:
            os.read(self.kick_r, 4096)
        except OSError:
            pass
        while self.calls:
            self.calls.popleft()()

    def run(self) -> None:
        ep = self.main_ep
        while not self.stopping:
            timeout = EXPIRE_EVERY if self.conns or self.starved else 1.0
            now = time.time()   # the dispatcher's clock (busy_since)
            since = self.look(now)
            if since:
                timeout = min(timeout, max(0.0, since + PROMOTE_AFTER - now))
            elif now - self.active_at < RECENT:
                timeout = min(timeout, SLOW_LOOK if self.slow else PROMOTE_AFTER)
            else:
                self.main_asleep = True    # the next connection kicks (work); checked after:
                poller = self.poller
                if poller is not None and poller in self.working:
                    timeout = 0.0
            for fd, _ in ep.poll(timeout):
                callback = self.watches.get(fd)
                if callback is not None:
                    callback()
            self.main_asleep = False
            now = time.monotonic()
            if self.conns and now >= self.next_expire:
                self.next_expire = now + EXPIRE_EVERY
                self.expire()
            if self.starved:
                self.listen_again(now)

    def totals(self) -> tuple[int, int]:
        """The worker's (requests, running time in us) since it started, all cores."""
        requests = spent = 0
        for c in self.cores:
            requests += c.delta
            spent += c.running_time
        return requests, spent

    def look(self, now: float) -> float:
        """On the main thread: the requests served since it last looked update the running
        average (from the cores' counts, ``totals``); a poller whose request has run
        PROMOTE_AFTER loses the role to the next thread (it finishes its request, then waits
        for the role again). Returns when the poller's request began (0.0: none)."""
        requests, spent = self.totals()
        seen_requests, seen_spent = self.seen
        if requests != seen_requests:
            n = requests - seen_requests
            self.seen = (requests, spent)
            mean = (spent - seen_spent) / n / 1e6
            self.average += (mean - self.average) * min(1.0, n / 8)
            self.slow = self.average >= PROMOTE_AFTER
            self.active_at = now
        core = self.poller
        if core is None or core not in self.working:
            return 0.0
        self.active_at = now
        d = self.dispatchers[core]
        since = d.busy_since
        if d.req is None or not since:
            return 0.0
        if now - since < PROMOTE_AFTER:
            return since
        with self.role_lock:
            if self.poller == core and d.req is not None and d.busy_since == since:
                self.poller = None
                self.role.release()
        return 0.0

    def take(self, conn: Conn) -> None:
        """A connection accepted by the main thread (a graceful stop): for the threads."""
        conn.deadline = time.monotonic() + self.timeout
        self.release(conn)

    def process(self, conn: Conn) -> None:
        """A waiting connection that was not polled (paused): poll it again."""
        self.arm(conn)

    def expire(self) -> None:
        if self.paused:
            return
        now = time.monotonic()
        for conn in list(self.conns.values()):
            if conn.deadline >= now or self.conns.pop(conn.fd, None) is not conn:
                continue
            if readable(conn.fd, 0):
                # the client sent more, but every thread was busy: it is not late
                self.release(conn)
            elif conn.buf and conn.listener.proto == "http":
                self.reject(conn, BadRequest("timeout waiting for the request", 408))
            else:
                self.drop(conn)

    def pause(self) -> None:
        if self.paused:
            return
        with self.lock:
            self.paused = True
            for fd in list(self.listeners):
                try:
                    self.ep.unregister(fd)
                except OSError:
                    pass
            for fd in list(self.conns):
                if fd in self.registered:
                    try:
                        self.ep.modify(fd, 0)
                    except OSError:
                        pass
            self.slot.flush(PAUSE, 0)
        log.vlog(log.WORKER_SUSPENDED.format(id=self.id))

    def resume(self) -> None:
        if not self.paused:
            return
        with self.lock:
            self.paused = False
            if not (self.starved or self.stopping):
                for fd in self.listeners:
                    self.ep.register(fd, EXCLUSIVE)
            self.slot.flush(IDLE, 1)
        for conn in list(self.conns.values()):
            self.arm(conn)
        log.vlog(log.WORKER_RESUMED.format(id=self.id))

    def stop(self) -> None:
        self.stopping = True
        for d in self.dispatchers:
            d.end_keepalive()

    def drain(self, refuse: bool) -> None:
        """Loop.drain's, for the threads: they stop accepting at once, answer every request
        they have, and exit once no connection is left."""
        self.stop_accepting(refuse)
        start = time.monotonic()
        deadline = start + self.timeout
        grace_end = start + min(self.timeout, KEEPALIVE_GRACE)
        wait = select.poll()
        wait.register(self.kick_r, select.POLLIN)
        while self.conns or self.working:
            now = time.monotonic()
            for conn in list(self.conns.values()):
                if now >= deadline or (now >= grace_end and conn.served and not conn.buf):
                    if self.conns.pop(conn.fd, None) is conn:
                        self.drop(conn)
            if wait.poll(50):
                self.run_calls()
        os.write(self.stop_w, b"x")
        for t in self.threads:
            t.join()
        for conn in list(self.conns.values()):
            self.drop(conn)
