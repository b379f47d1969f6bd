"""A worker process: one epoll loop over the listeners and waiting clients.

Clients waiting for a request head cost no worker time (slow clients and idle
keep-alive connections wait in epoll); a request is served synchronously once
its head is in. Worker signals (SIG-5) set flags that the loop reads through a
wakeup fd, except INT/TERM which exit at once.
"""
from __future__ import annotations

import atexit
import errno
import faulthandler
import os
import select
import signal
import socket
import sys
import time
import traceback

from . import log, proxy_protocol
from .postbuffer import spool_body
from .proto import BadRequest, HttpRules, parse_http, parse_uwsgi, simple_response
from .request import ClientGone, ClientTimeout, Conn, Request
from .scoreboard import IDLE, PAUSE, WorkerSlot
from .server import EXIT_APP_LOAD, EXIT_GRACEFUL_IDLE, EXIT_WORKER_DONE

EPOLLIN = select.EPOLLIN
EXCLUSIVE = select.EPOLLIN | getattr(select, "EPOLLEXCLUSIVE", 0)

# master -> worker control bytes
CTL_PAUSE = b"p"
CTL_RESUME = b"u"
CTL_REOPEN_LOG = b"l"
CTL_STATS = b"s"
CTL_RECYCLE = b"r"     # finish the current request, log Seeya, exit (WORKER-6)
CTL_CLOSE_LISTENERS = b"c"   # the instance stops: when stopping, make the listeners refuse
# worker -> master notifications
NOTE_ACCEPTING = b"A"
NOTE_GRACEFUL = b"G"   # "I was HUPed": exiting gracefully, no DAMN line
NOTE_RECYCLED = b"R"   # "I am exiting on purpose" (max-requests, recycle): no DAMN line
ONCE = (None,)       # accept() once per wakeup (see Worker.accept)
DRAIN_MAX = 4096     # connections taken from a listener's queue before it is shut down
EXPIRE_EVERY = 0.1   # seconds between two scans for connections past their deadline
# a stopping worker keeps an idle keep-alive connection this long (at most --socket-timeout) for
# the client's next request, answered with Connection: close (see Worker.finish_stopping)
KEEPALIVE_GRACE = 1.0
# accept() errors that mean "out of file descriptors": the worker pauses accepting
FD_EXHAUSTED = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


def set_pdeathsig(sig: int) -> None:
    """Linux: get ``sig`` when the master dies (no orphans after kill -9)."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, sig, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError, ImportError):  # ImportError: unreadable after --uid
        pass


class Worker:
    def __init__(self, server, wid: int, ctl_r: int, notify_w: int):
        self.server = server
        self.settings = settings = server.settings
        self.http_rules = HttpRules(settings.limit_request_fields, settings.limit_request_line,
                                    settings.http_allow_underscore_headers)
        self.id = wid
        self.ctl_r = ctl_r
        self.notify_w = notify_w
        self.pid = 0
        self.stopping = False
        self.stop_code = EXIT_WORKER_DONE
        self.paused = False
        self.req = None            # the request being served (None: idle)
        self.current_uri = ""
        self.busy_since = 0.0
        self.conns: dict[int, Conn] = {}
        self.registered: set[int] = set()
        self.slot = None
        self.starved = False       # listeners unwatched after accept() ran out of fds
        self.fd_failures = 0       # failed accept() calls in the current burst (0 = none)
        self.starved_at = 0.0
        self.next_expire = 0.0     # when the loop next looks for connections past their deadline
        self.close_listeners = False   # graceful shutdown: stop the kernel accepting too
        self.graceful = False      # the loop returned: atexit handlers run (never on a brutal exit)
        self.watches: dict = {}    # plugins' fds -> callbacks, run between requests

    # ---- process setup -----------------------------------------------------
    def setup_signals(self, wake_w: int) -> None:
        """First act after fork (WORKER-2's fix): reset every disposition."""
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        for sig in (signal.SIGQUIT, signal.SIGURG, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, self._on_hup)
        signal.signal(signal.SIGINT, self._on_die)
        signal.signal(signal.SIGTERM, self._on_die)
        signal.signal(signal.SIGUSR1, self._on_usr1)
        signal.signal(signal.SIGUSR2, self._on_usr2)
        signal.signal(signal.SIGWINCH, _noop)
        signal.signal(signal.SIGTSTP, _noop)
        faulthandler.enable()
        signal.pthread_sigmask(signal.SIG_SETMASK, set())

    def _on_hup(self, signum, frame) -> None:
        if not self.server.master_pid:
            log.log(log.NO_MASTER_RELOAD)
        if not self.stopping:
            self.stopping = True
            self.end_keepalive()
            self.stop_code = EXIT_WORKER_DONE if self.req is not None else EXIT_GRACEFUL_IDLE
            if self.notify_w >= 0:   # a graceful exit, even if busy now: no DAMN line (WORKER-3)
                try:
                    os.write(self.notify_w, NOTE_GRACEFUL + b"%d %d\n" % (self.id, self.pid))
                except OSError:
                    pass
            log.log(log.GRACEFUL_WORKER.format(id=self.id, pid=self.pid))

    def _on_die(self, signum, frame) -> None:
        if self.server.master_pid and os.getppid() != self.server.master_pid:
            log.vlog(log.MASTER_GONE.format(id=self.id))
        os._exit(EXIT_WORKER_DONE)

    def _on_usr1(self, signum, frame) -> None:
        total = self.server.scoreboard.total_requests() if self.server.scoreboard else 0
        lines = [f"worker {self.id} total requests: {total}"]
        for i, app in enumerate(self.server.apps):
            lines.append(f"\tapp {i} [{getattr(app, 'name', '')}] requests: {self.slot.requests if self.slot else 0} "
                         f"exceptions: {self.slot.exceptions if self.slot else 0}")
        lines.append("-" * 17)
        log.log("\n".join(lines))

    def _on_usr2(self, signum, frame) -> None:
        # one write for the whole block: every worker answers the master's USR2 at once
        lines = [f"*** backtrace of {self.pid} ***"]
        for tid, top in sys._current_frames().items():   # every thread, like faulthandler
            lines.append(f"Thread 0x{tid:016x}:")
            lines.extend(entry.rstrip("\n") for entry in traceback.format_stack(top))
        lines.append("*** end of backtrace ***")
        if self.req is not None:
            lines.append(f"SIGUSR2: --- uWSGI worker {self.id} (pid: {self.pid}) is managing "
                         f"request {self.current_uri} since {time.ctime(self.busy_since)} ---")
        log.log("\n".join(lines))

    # ---- entry point -----------------------------------------------------------
    def run(self) -> None:
        """In the child right after fork; never returns."""
        code = EXIT_WORKER_DONE
        try:
            code = self._run()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:  # noqa: BLE001 - a worker must never unwind into the master's code
            log.log(traceback.format_exc().rstrip())
            code = EXIT_WORKER_DONE
        finally:
            if self.graceful:
                # what a normal interpreter exit would do: error-reporting and tracing SDKs
                # send their last events from atexit (never run by os._exit)
                atexit._run_exitfuncs()
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            except Exception:  # noqa: BLE001
                pass
        os._exit(code)

    def _run(self) -> int:
        self.pid = os.getpid()
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.wake_r = wake_r
        self.setup_signals(wake_w)
        set_pdeathsig(signal.SIGKILL if self.settings.no_orphans else signal.SIGTERM)
        if self.server.master_pid and os.getppid() != self.server.master_pid:
            log.vlog(log.MASTER_GONE.format(id=self.id))
            return EXIT_WORKER_DONE
        self.server.worker_id = self.id
        self.slot = WorkerSlot(self.server.scoreboard, self.id)
        self.server.hook.uwsgi_post_fork(worker=self)
        if self.settings.lazy_apps or self.settings.lazy:
            if not self.server.load_apps() and self.settings.need_app:
                return EXIT_APP_LOAD
        if self.settings.chdir2:
            try:
                os.chdir(self.settings.chdir2)
            except OSError as e:
                log.log(log.CHDIR2_FAILED.format(path=self.settings.chdir2, error=e.strerror))
                return EXIT_APP_LOAD
        # False once stopping; each listener says whether its connections may be kept alive
        self.http_keepalive = True
        self.post_buffering = self.settings.post_buffering
        self.add_headers = tuple(f"{h}\r\n" for h in self.settings.add_header)
        self.quiet_write_errors = self.settings.ignore_write_errors
        # plugins that may answer a request before its app (static files)
        self.handlers = [h for h in self.server.hook.uwsgi_request_handler(worker=self) if h]
        self.limit = self.settings.buffer_size
        self.timeout = float(self.settings.socket_timeout)
        self.limit_post = self.settings.limit_post
        self.max_requests = self.settings.max_requests
        if self.max_requests:
            self.max_requests += (self.id - 1) * self.settings.max_requests_delta
        self.min_lifetime = self.settings.min_worker_lifetime
        self.born = time.monotonic()
        self.min_bytes = self.settings.socket_min_bytes
        self.logging = not self.settings.disable_logging
        # a plugin's request logger (--log-format, --req-logger...) replaces the line below
        self.request_logger = self.server.hook.uwsgi_request_logger(worker=self)
        self.apps = {}
        for app in self.server.apps:
            self.apps.setdefault(app.modifier1, app)
        self.default_app = self.server.apps[0] if self.server.apps else None
        # the app of every HTTP request: --http-socket-modifier1's, else the first one loaded
        self.http_app = self.apps.get(self.settings.http_socket_modifier1 or 0) or self.default_app
        code = self.loop()
        self.graceful = True
        self.server.hook.uwsgi_worker_cleanup(worker=self)
        return code

    # ---- the loop --------------------------------------------------------------
    def loop(self) -> int:
        ep = self.ep = select.epoll()
        self.listeners = {lst.fd: lst for lst in self.server.listeners}
        for fd in self.listeners:
            ep.register(fd, EXCLUSIVE)
        ep.register(self.wake_r, EPOLLIN)
        if self.ctl_r >= 0:
            os.set_blocking(self.ctl_r, False)   # read to the end, never wait (finish_stopping)
            ep.register(self.ctl_r, EPOLLIN)
        for group in self.server.hook.uwsgi_worker_watch(worker=self):
            for watch in group or ():
                self.watches[watch.fd] = watch.callback
                ep.register(watch.fd, EPOLLIN)
        self.slot.flush(IDLE, 1)
        if self.notify_w >= 0:
            try:
                os.write(self.notify_w, NOTE_ACCEPTING + b"%d\n" % self.id)
            except OSError:
                pass
        if self.server.scoreboard.paused:
            self.pause()
        while True:
            if self.stopping:
                return self.finish_stopping()
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
                elif fd == self.wake_r:
                    try:
                        os.read(fd, 512)
                    except OSError:
                        pass
                elif fd == self.ctl_r:
                    self.control()
                else:
                    conn = self.conns.get(fd)
                    if conn is not None:
                        self.readable(conn)
                    elif fd in self.watches:
                        self.watches[fd]()
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

    def unwatch(self, fd: int) -> None:
        """Stop polling a plugin's fd (``uwsgi_worker_watch``); the plugin closes it."""
        if self.watches.pop(fd, None) is not None:
            try:
                self.ep.unregister(fd)
            except OSError:
                pass

    def max_requests_reached(self) -> None:
        """--max-requests: recycle, once --min-worker-lifetime has passed (WORKER-6)."""
        if not self.stopping and time.monotonic() - self.born >= self.min_lifetime:
            self.recycle()

    def end_keepalive(self) -> None:
        """Stopping: no connection takes another request, and the responses say so
        (Connection: close), from the one being made if its head is not out yet."""
        self.http_keepalive = False
        req = self.req
        if req is not None and not req.started:
            req.keepalive = False

    def recycle(self) -> None:
        """WORKER-6: finish what was accepted, exit; the master respawns without a DAMN line."""
        log.log(log.WORK_DONE.format(pid=self.pid))
        self.stopping = True
        self.end_keepalive()
        if self.notify_w >= 0:
            try:
                os.write(self.notify_w, NOTE_RECYCLED + b"%d %d\n" % (self.id, self.pid))
            except OSError:
                pass

    def finish_stopping(self) -> int:
        """Graceful stop: serve clients that already sent a request, then exit."""
        if self.ctl_r >= 0:
            self.control()   # a CTL_CLOSE_LISTENERS sent with the HUP
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
        if self.close_listeners:
            self.refuse_connections()
        code = self.stop_code
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
                for conn in list(self.conns.values()):
                    if conn.served and not conn.buf:
                        self.drop(conn)
                if not self.conns:
                    break
            for fd, ev in self.ep.poll(0.05):
                conn = self.conns.get(fd)
                if conn is not None:
                    self.readable(conn)
        for conn in list(self.conns.values()):
            self.drop(conn)
        return code

    def control(self) -> None:
        try:
            data = os.read(self.ctl_r, 512)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            log.vlog(log.MASTER_GONE.format(id=self.id))
            os._exit(EXIT_WORKER_DONE)
        for byte in data:
            cmd = bytes([byte])
            if cmd == CTL_PAUSE:
                self.pause()
            elif cmd == CTL_RESUME:
                self.resume()
            elif cmd == CTL_REOPEN_LOG and self.settings.logto:
                log.follow(self.settings.logto)
            elif cmd == CTL_STATS:
                self._on_usr1(None, None)
            elif cmd == CTL_RECYCLE and not self.stopping:
                self.recycle()
            elif cmd == CTL_CLOSE_LISTENERS:
                self.close_listeners = True

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

    def accept(self, lst) -> None:
        # One connection per wakeup: a client accepted before its request arrived waits
        # in epoll, and a long accept run would keep it waiting behind every connection
        # still queued (Connection: close p99 halved on the bench). After accept() ran
        # out of fds, drain the queue so the burst's end (EAGAIN) is seen.
        for _ in range(64) if self.fd_failures else ONCE:
            conn = self.accept_one(lst)
            if conn is None:
                return
            conn.fill()
            self.process(conn)
            if self.stopping:
                return

    def accept_one(self, lst) -> Conn | None:
        """One connection from ``lst``'s queue, or None (empty, or an error handled here)."""
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
            self.conns[fd] = conn   # its deadline is set if it has to wait (process)
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
            conn.fill()
            self.process(conn)

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

    def client_gone(self, conn: Conn, req: Request, err: ClientGone) -> None:
        """The client vanished or was too slow (--socket-timeout, --socket-min-bytes)."""
        if self.quiet_write_errors and req.started and not isinstance(err, ClientTimeout):
            return   # --ignore-write-errors: gone while its response was being written
        log.log(log.CLIENT_GONE.format(addr=conn.remote or "-", uri=self.current_uri, why=err))
        if isinstance(err, ClientTimeout) and not req.committed and conn.listener.proto == "http":
            try:
                conn.sendall(simple_response(408))
                req.status = 408
            except ClientGone:
                pass

    def reject(self, conn: Conn, err: BadRequest) -> None:
        log.log(log.BAD_REQUEST.format(addr=conn.remote or "-", why=err))
        if err.status and conn.listener.proto == "http":
            try:
                conn.sendall(simple_response(err.status))
            except ClientGone:
                pass
        self.drop(conn)

    def process(self, conn: Conn) -> None:
        """Serve every complete request in ``conn``'s buffer, then wait for more."""
        lst = conn.listener
        http = lst.proto == "http"
        while conn.buf and not self.paused:
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
                return
            if head is None:
                break
            del conn.buf[:head.consumed]
            if lst.proxy and (port := proxy_protocol.port(conn)):   # proxy_protocol.py
                head.vars["REMOTE_PORT"] = port
            if not http:
                head.vars.setdefault("REMOTE_ADDR", conn.remote)
            keep = self.serve(conn, head, http)
            if not keep:
                self.drop(conn)
                return
            conn.deadline = time.monotonic() + (lst.idle or self.timeout)
        if conn.fd in self.conns and conn.fd not in self.registered and not self.paused:
            if not conn.served:   # a new connection still sending its first head
                conn.deadline = time.monotonic() + self.timeout
            self.ep.register(conn.fd, EPOLLIN)
            self.registered.add(conn.fd)

    def serve(self, conn: Conn, head, http: bool) -> bool:
        """Run one request through its app; True if the connection stays open."""
        try:
            req = Request(conn, head, http, self.http_keepalive and conn.listener.keepalive,
                          self.limit_post, self.add_headers)
        except BadRequest as e:
            self.reject(conn, e)
            return False
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
        self.req = req
        self.busy_since = started = time.time()
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
        except ClientGone as e:
            req.keepalive = False
            self.client_gone(conn, req, e)
        except BadRequest as e:          # a malformed body (chunked), or one over --limit-post
            req.keepalive = False
            if req.committed:
                log.log(log.BAD_REQUEST.format(addr=conn.remote or "-", why=e))
            else:
                self.reject(conn, e)
                req.status = e.status
        except Exception:  # noqa: BLE001 - a broken handler must not kill the worker
            slot.exceptions += 1
            log.log(traceback.format_exc().rstrip())
            req.keepalive = False
            if not req.committed:
                try:
                    conn.sendall(simple_response(500))
                    req.status = 500
                except ClientGone:
                    pass
        elapsed = time.time() - started      # wall clock, as uWSGI times requests
        us = int(elapsed * 1_000_000) if elapsed > 0 else 0
        self.req = None
        slot.done(req.sent + req.hsize, us)
        if self.request_logger is not None:
            self.request_logger(self, req, uri, started, us)
        elif self.logging:
            log.raw(self.request_line(req, uri, started, us))
        conn.served += 1
        if self.max_requests and slot.delta >= self.max_requests:
            self.max_requests_reached()
        if req.keepalive:
            try:
                return req.input.drain()
            except BadRequest as e:     # the unread rest of the body was malformed
                log.log(log.BAD_REQUEST.format(addr=conn.remote or "-", why=e))
                return False
        if not req.input.done:
            conn.unread = True
        return False

    def request_line(self, req: Request, uri: str, started: float, us: int, addr: str = "",
                     micros: bool = False) -> str:
        """uWSGI's default request line (LOG-2); ``micros``: the time in microseconds."""
        env = req.vars
        return log.REQUEST.format(
            pid=self.pid, wreq=self.slot.requests, treq=self.slot.requests,
            addr=addr or req.conn.remote or "-", user=env.get("REMOTE_USER", ""),
            nvars=len(env), vsize=sum(len(k) + len(v) for k, v in env.items() if isinstance(v, str)),
            date=time.ctime(started), method=env.get("REQUEST_METHOD", "-"), uri=uri,
            size=req.sent, time=us if micros else us // 1000, unit="micros" if micros else "msecs",
            via=" ", proto=env.get("SERVER_PROTOCOL", "-"), status=req.status,
            nheaders=req.nheaders, hsize=req.hsize)


def _noop(signum, frame) -> None:
    pass
