"""A worker process, from fork to exit: signals, the control pipe, its lifecycle.

``Worker.run`` resets the signals, loads lazy apps, wires the plugins' request handlers,
request logger and watched fds into the serving loop (serving.py), serves until told to
stop, finishes what it accepted and exits. Worker signals (SIG-5) set flags that the loop
reads through a wakeup fd, except INT/TERM, which exit at once. The master's commands
arrive on the control pipe and the worker's notes leave on the notify pipe (control.py).
"""
from __future__ import annotations

import atexit
import faulthandler
import os
import signal
import sys
import time

from . import log
from .api import set_pdeathsig
from .control import (CTL_CLOSE_LISTENERS, CTL_PAUSE, CTL_RECYCLE, CTL_REOPEN_LOG, CTL_RESUME,
                      NOTE_ACCEPTING, NOTE_GRACEFUL, NOTE_RECYCLED, note)
from .scoreboard import IDLE, WorkerSlot
from .server import EXIT_APP_LOAD, EXIT_GRACEFUL_IDLE, EXIT_WORKER_DONE
from .serving import Loop
from .threads import ThreadedLoop


class Worker:
    """One worker process. Plugins get it as ``worker``: ``id``, ``pid``, ``server``,
    ``settings``, ``slot``, ``apps``, ``unwatch(fd)``, ``request_line(...)``."""

    def __init__(self, server, wid: int, ctl_r: int, notify_w: int):
        # runs in the new child before run(): an exception here would unwind into the
        # master's code, so nothing here may raise
        self.server = server
        self.settings = settings = server.settings
        self.id = wid
        self.pid = 0                 # set in the child (run)
        self.ctl_r = ctl_r           # the master's commands (control.CTL_*); -1 without a master
        self.notify_w = notify_w     # notes to the master (control.NOTE_*); -1 without a master
        self.wake_r = -1             # read end of the signal wakeup pipe (made in the child)
        self.slot = None             # this worker's WorkerSlot in the scoreboard (made in the child)
        self.apps: dict = {}         # modifier1 -> app, once apps are loaded; plugins may add to it
        self.born = 0.0              # when it started serving (--min-worker-lifetime)
        self.min_lifetime = settings.min_worker_lifetime
        self.stop_code = EXIT_WORKER_DONE   # exit status of a graceful stop (HUPed while idle: its own)
        self.close_listeners = False  # graceful shutdown: stop the kernel accepting too
        self.graceful = False        # the loop returned: atexit handlers run (never on a brutal exit)
        # the epoll loop over listeners and clients; with --threads N, N request threads
        self.loop = ThreadedLoop(self) if settings.threads > 1 else Loop(self)
        self.dispatcher = self.loop.dispatcher   # serves each request; the signals read its current one
        self.commands = {            # the master's commands (control.CTL_*), by byte
            CTL_PAUSE: self.loop.pause,
            CTL_RESUME: self.loop.resume,
            CTL_REOPEN_LOG: self.reopen_log,
            CTL_RECYCLE: self.recycle,
            CTL_CLOSE_LISTENERS: self.refuse_when_stopping,
        }

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
        loop = self.loop
        if not loop.stopping:
            loop.stop()
            self.stop_code = EXIT_WORKER_DONE if loop.in_request() else EXIT_GRACEFUL_IDLE
            # a graceful exit, even if busy now: no DAMN line (WORKER-3)
            self.tell_master(note(NOTE_GRACEFUL, self.id, self.pid))
            log.log(log.GRACEFUL_WORKER.format(id=self.id, pid=self.pid))

    def _on_die(self, signum, frame) -> None:
        if self.server.master_pid and os.getppid() != self.server.master_pid:
            log.vlog(log.MASTER_GONE.format(id=self.id))
        os._exit(EXIT_WORKER_DONE)

    def _on_usr1(self, signum, frame) -> None:
        total = self.server.scoreboard.total_requests() if self.server.scoreboard else 0
        lines = [f"worker {self.id} total requests: {total}"]
        # the scoreboard's numbers: with --threads they add the cores'
        own = self.server.scoreboard.read(self.id) if self.slot else {"requests": 0, "exceptions": 0}
        for i, app in enumerate(self.server.apps):
            lines.append(f"\tapp {i} [{getattr(app, 'name', '')}] requests: {own['requests']} "
                         f"exceptions: {own['exceptions']}")
        lines.append("-" * 17)
        log.log("\n".join(lines))

    def _on_usr2(self, signum, frame) -> None:
        # one write for the whole block: every worker answers the master's USR2 at once
        import traceback   # asked for by an operator: not imported at start-up
        lines = [f"*** backtrace of {self.pid} ***"]
        for tid, top in sys._current_frames().items():   # every thread, like faulthandler
            lines.append(f"Thread 0x{tid:016x}:")
            lines.extend(entry.rstrip("\n") for entry in traceback.format_stack(top))
        lines.append("*** end of backtrace ***")
        dispatchers = self.loop.dispatchers
        for core, busy in enumerate(dispatchers):
            if busy.req is not None:
                where = f"worker {self.id} core {core}" if len(dispatchers) > 1 else f"worker {self.id}"
                lines.append(f"SIGUSR2: --- uWSGI {where} (pid: {self.pid}) is managing "
                             f"request {busy.current_uri} since {time.ctime(busy.busy_since)} ---")
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
            log.log(log.exc_text().rstrip())
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
        code = self.serve()
        self.graceful = True
        self.server.hook.uwsgi_worker_cleanup(worker=self)
        return code

    def serve(self) -> int:
        """Wire the plugins into the loop, serve until told to stop, finish; the exit code."""
        hook = self.server.hook
        loop = self.loop
        # plugins that may answer a request before its app (static files)
        handlers = [h for h in hook.uwsgi_request_handler(worker=self) if h]
        self.born = time.monotonic()
        # a plugin's request logger (--log-format, --req-logger...) replaces the core's line
        request_logger = hook.uwsgi_request_logger(worker=self)
        # plugins that see every response and may add headers (api.response_lines)
        hooks = tuple(h for h in hook.uwsgi_response_headers(worker=self) if h)
        loop.response_hooks = hooks
        starts = [h for h in hook.uwsgi_request_start(worker=self) if h]
        self.slot.publish = starts[0] if len(starts) == 1 else _each(starts) if starts else None
        for app in self.server.apps:
            self.apps.setdefault(app.modifier1, app)
        for dispatcher in loop.dispatchers:
            dispatcher.response_hooks = hooks
            dispatcher.start(self.pid, self.slot, handlers, request_logger)
        loop.start(self.pid, self.slot)
        loop.watch(self.wake_r, self.woken)
        if self.ctl_r >= 0:
            os.set_blocking(self.ctl_r, False)   # read to the end, never wait (finish_stopping)
            loop.watch(self.ctl_r, self.control)
        for group in hook.uwsgi_worker_watch(worker=self):
            for watch in group or ():
                loop.watch(watch.fd, watch.callback)
        self.slot.flush(IDLE, 1)
        self.tell_master(note(NOTE_ACCEPTING, self.id))
        if self.server.scoreboard.paused:
            loop.pause()
        loop.run()
        return self.finish_stopping()

    def finish_stopping(self) -> int:
        """Graceful stop: serve clients that already sent a request, then exit."""
        if self.ctl_r >= 0:
            self.control()   # a CTL_CLOSE_LISTENERS sent with the HUP
        self.loop.drain(self.close_listeners)
        return self.stop_code

    # ---- plugins' view ---------------------------------------------------------
    def unwatch(self, fd: int) -> None:
        """Stop polling a plugin's fd (``uwsgi_worker_watch``); the plugin closes it."""
        self.loop.unwatch(fd)

    def request_line(self, req, uri: str, started: float, us: int, addr: str = "",
                     micros: bool = False) -> str:
        """uWSGI's default request line (LOG-2); ``micros``: the time in microseconds."""
        return self.dispatcher.request_line(req, uri, started, us, addr, micros)

    # ---- the master's commands, and the worker's own decisions -----------------------
    def woken(self) -> None:
        """A signal arrived: its handler already ran, the byte only woke the loop."""
        try:
            os.read(self.wake_r, 512)
        except OSError:
            pass

    def control(self) -> None:
        """Commands from the master (control.CTL_*); at EOF the master is gone: exit."""
        try:
            data = os.read(self.ctl_r, 512)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            log.vlog(log.MASTER_GONE.format(id=self.id))
            os._exit(EXIT_WORKER_DONE)
        commands = self.commands
        for i in range(len(data)):
            command = commands.get(data[i:i + 1])
            if command is not None:
                command()

    def reopen_log(self) -> None:
        if self.settings.logto:
            log.follow(self.settings.logto)

    def refuse_when_stopping(self) -> None:
        self.close_listeners = True

    def max_requests_reached(self) -> None:
        """--max-requests: recycle, once --min-worker-lifetime has passed (WORKER-6)."""
        if time.monotonic() - self.born >= self.min_lifetime:
            self.recycle()

    def recycle(self) -> None:
        """WORKER-6: finish what was accepted, exit; the master respawns without a DAMN line."""
        if self.loop.stopping:
            return
        log.log(log.WORK_DONE.format(pid=self.pid))
        self.loop.stop()
        self.tell_master(note(NOTE_RECYCLED, self.id, self.pid))

    def tell_master(self, data: bytes) -> None:
        if self.notify_w >= 0:
            try:
                os.write(self.notify_w, data)
            except OSError:
                pass


def _noop(signum, frame) -> None:
    pass


def _each(functions):
    """One ``uwsgi_request_start`` callable for several plugins' (the common case is one)."""
    def on_start(env, core):
        for function in functions:
            function(env, core)
    return on_start
