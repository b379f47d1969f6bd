"""The master: one thread, one selector, a state machine (STYLE §5).

Signal handlers only record (CPython writes each signal number to the wakeup
pipe); the loop reads the pipe, queues action names, performs them, reaps
children and advances long transitions (reload, shutdown, chain) until their
condition holds. Nothing here sleeps. The reload is ``core/reload.py``, the
worker table ``core/children.py``; the shutdown is here.
"""
from __future__ import annotations

import collections
import os
import selectors
import signal
import time
from typing import Callable

from . import events, log, reload, signals, upkeep, worker_reload
from .children import Children, Fate, trim_heap
from .limits import Limits
from .server import Watch
from .state import State
from .control import CTL_CLOSE_LISTENERS

__all__ = ["Master", "State", "graceful_shutdown", "immediate_shutdown"]


class Master:
    def __init__(self, server, registry: Callable[[list], dict]):
        """``registry``: the built-in actions merged with the plugins' (``actions.registry``)."""
        self.server = server
        self.settings = server.settings
        self.hook = server.hook
        self.guard = server.guard      # master hooks: a plugin that raises is logged, not fatal
        self.scoreboard = server.scoreboard
        self.mercy = server.settings.worker_reload_mercy
        if server.settings.reload_mercy:
            self.mercy = min(self.mercy, server.settings.reload_mercy)
        self.children = Children(server)
        self.state = State.RUNNING
        self.exit_code = 0
        self.pending: collections.deque[str] = collections.deque()
        self.selector = selectors.DefaultSelector()
        self.wake_r = self.wake_w = -1
        self.actions = registry(self.guard.master(self.hook.uwsgi_master_actions))
        self.table = signals.master_table(self.settings.die_on_term,
                                          self.settings.hook_master_start)
        carried = server.handoff.reload
        self.reloader = reload.Reloader(again=bool(carried.get("again")))
        self.reloads: list[dict] = list(carried.get("history", []))
        self.reforked = False   # a copy made by refork() serves our listening sockets too
        # the operator's pause outlives reloads: the new workers start paused
        self.paused = bool(carried.get("paused"))
        self.scoreboard.paused = self.paused
        if self.paused:
            log.log(log.PAUSE_KEPT)
        self.next_tick = 0.0
        self.limits = Limits(self)
        # fds plugins hand to the next image (named in their own UWSGI_PY_<PLUGIN>_* variable)
        self.exec_fds: set[int] = set()

    # ---- what plugins read (the worker table's, kept here for them) ---------------
    @property
    def workers(self) -> dict:
        return self.children.workers

    @property
    def retiring(self) -> dict:
        return self.children.retiring

    @property
    def cheaped(self) -> set[int]:
        return self.children.cheaped

    @property
    def numproc(self) -> int:
        return self.children.numproc

    @property
    def private_fds(self) -> set[int]:
        return self.children.private_fds

    @property
    def notify_w(self) -> int:
        return self.children.notify_w

    @property
    def chain(self) -> int:
        return self.reloader.chain

    @property
    def reload_kind(self) -> str:
        return self.reloader.kind

    def cheap_slot(self, wid: int, sig: int = signal.SIGHUP) -> None:
        self.children.cheap_slot(wid, sig)

    def uncheap_slot(self, wid: int) -> bool:
        return self.children.uncheap_slot(wid)

    def refork(self) -> int:
        return reload.refork(self)

    def log_files(self) -> list:
        return upkeep.log_files(self.settings)

    # ---- setup -----------------------------------------------------------
    def install_signals(self) -> None:
        """Handlers that only record, then nothing blocked: what arrived since the
        image started (``signals.catch_early``) is in the pipe or delivered now."""
        r, w = self.server.wakeup
        if r < 0:
            r, w = signals.catch_early(self.table, first_start=False)
        self.wake_r, self.wake_w = r, w
        self.private_fds.update((r, w, self.selector.fileno()))
        signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        for sig in signals.caught(self.table):
            signal.signal(sig, signals.record)
        for sig in signals.IGNORED:
            if sig not in self.table:
                signal.signal(sig, signal.SIG_IGN)
        self.selector.register(r, selectors.EVENT_READ, self.read_signals)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        for text in self.settings.hook_master_start:
            signum, name = signals.parse_hook(text)
            log.log(log.HOOK_SIGNAL.format(signum=signum, name=signal.Signals(signum).name,
                                           action=name))

    def watch(self, watch: Watch) -> None:
        self.private_fds.add(watch.fd)
        events = selectors.EVENT_WRITE if watch.writable else selectors.EVENT_READ
        self.selector.register(watch.fd, events, watch.callback)

    def unwatch(self, fd: int) -> None:
        self.private_fds.discard(fd)
        try:
            self.selector.unregister(fd)
        except (KeyError, ValueError):
            pass

    def run(self) -> int:
        self.install_signals()
        self.selector.register(self.children.notify_r, selectors.EVENT_READ,
                               self.children.read_notes)
        reload.adopt(self)
        self.guard.master(self.hook.uwsgi_master_init, master=self)
        trim_heap()
        for wid in self.children.active_slots():
            self.children.spawn(wid)
        if not self.server.is_reload and not upkeep.write_pidfiles(self.settings, safe=True):
            self.fail(1)                  # PID-3: uWSGI exits when it cannot write one
        for group in self.guard.master(self.hook.uwsgi_master_watch, master=self):
            for watch in group or ():
                self.watch(watch)
        self.guard.master(self.hook.uwsgi_master_start, master=self)
        while self.state is not State.EXITED:
            timeout = self.timeout()
            for key, _ in self.selector.select(timeout):
                if not self.guard.callback(key.data, key.fd):
                    self.unwatch(key.fd)
            while self.pending and self.state is not State.EXITED:
                self.perform(self.pending.popleft())
            self.reap()
            self.advance()
            self.guard.master(self.hook.uwsgi_master_cycle, master=self)
        return self.exit_code

    # ---- triggers ------------------------------------------------------------
    def request(self, name: str) -> None:
        """Queue a named action; plugins' callbacks call this, never act directly."""
        self.pending.append(name)

    def perform(self, name: str):
        """Run action ``name`` now; what it reports it did (None if it failed)."""
        action = self.actions.get(name)
        if action is None:
            log.log(f"unknown master action {name!r}")
            return None
        try:
            return action(self)
        except Exception:  # noqa: BLE001 - a broken action must not take the master down
            log.log(f"master action {name!r} failed:\n{log.exc_text().rstrip()}")
            return None

    def read_signals(self) -> None:
        try:
            data = os.read(self.wake_r, 4096)
        except BlockingIOError:
            return
        for signum in data:
            name = self.table.get(signum)
            if name is not None:
                self.request(name)

    def timeout(self) -> float:
        now = time.monotonic()
        # the tick runs only while RUNNING: in other states its past deadline would spin the loop
        deadlines = [self.next_tick if self.state is State.RUNNING else now + 1.0]
        for child in self.children.stopping():
            deadlines.append(child.cursed_at + self.mercy)
        if self.children.respawn_at:
            deadlines.append(min(self.children.respawn_at.values()))
        if self.reloader.deadline:
            deadlines.append(self.reloader.deadline)
        return max(0.0, min(1.0, min(deadlines) - now))

    # ---- reaping -------------------------------------------------------------
    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG | os.WUNTRACED | os.WCONTINUED)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if os.WIFSTOPPED(status) or os.WIFCONTINUED(status):
                self.children.stopped_or_continued(pid, status)
                continue
            if pid == self.reloader.check_pid:
                reload.check_done(self, status)
                continue
            death = self.children.died(
                pid, status, stopping=self.state in (State.SHUTTING_DOWN, State.RELOADING))
            if death.fate is Fate.STRANGER:
                self.guard.master(self.hook.uwsgi_master_reaped, master=self, pid=pid,
                                  status=status)
            elif death.fate is Fate.RETIRED:
                reload.retired(self)
            elif death.fate is Fate.FATAL:
                self.fail(death.code)

    # ---- long transitions ------------------------------------------------------
    def advance(self) -> None:
        now = time.monotonic()
        self.children.enforce_mercy(now, self.mercy)
        if self.state is State.SHUTTING_DOWN:
            if not self.children.all():
                self.finish_shutdown()
            return
        if self.state is not State.RUNNING:
            reload.advance(self, now)
            return
        reload.again(self)
        for wid in self.children.respawn_due(now):
            self.guard.master(self.hook.uwsgi_master_event, master=self,
                              event="worker-respawned", info={"id": wid})
        reload.retire(self)
        worker_reload.advance_chain(self)
        events.check(self)     # worker-only and chain reloads report "reloaded" (events.py)
        if now >= self.next_tick:
            self.next_tick = now + 1.0
            self.limits.tick(now)
            upkeep.check_log_size(self)
            self.guard.master(self.hook.uwsgi_master_tick, master=self)

    # ---- shutdown ----------------------------------------------------------------
    def finish_shutdown(self) -> None:
        log.log(log.GOODBYE)
        self.guard.master(self.hook.uwsgi_master_cleanup, master=self, reason="exit")
        upkeep.vacuum(self.settings, self.server.listeners)
        self.state = State.EXITED

    def fail(self, code: int) -> None:
        """Stop the instance with ``code`` (a lazy app that cannot load, SHUT-5)."""
        immediate_shutdown(self)
        self.exit_code = code


def _stopping(master, graceful: bool) -> bool:
    """Enter SHUTTING_DOWN (False if already there: SIG-2) and say so."""
    if master.state is State.SHUTTING_DOWN:
        return False
    if master.state is State.RELOAD_CHECK:
        reload.cancel_check(master)
    master.state = State.SHUTTING_DOWN
    master.guard.master(master.hook.uwsgi_master_event, master=master, event="stopping",
                        info={"graceful": graceful})
    return True


def graceful_shutdown(master) -> dict:
    """uWSGI ``gracefully_kill_them_all``, with mercy applied (SHUT-2, SHUT-3's fix)."""
    if not _stopping(master, graceful=True):
        return worker_reload.ignored(master)
    log.vlog(log.GRACEFUL_SHUTDOWN)
    children = master.children.all()
    for child in children:
        if not master.reforked:
            # stop accepting at once (connects are refused, a balancer retries elsewhere);
            # what the kernel already accepted is still served. Not when a refork copy
            # serves the same sockets.
            master.children.tell(child, CTL_CLOSE_LISTENERS)
        master.children.stop(child, signal.SIGHUP)
    return {"signalled": [c.pid for c in children], "signal": "SIGHUP"}


def immediate_shutdown(master) -> dict:
    """uWSGI ``kill_them_all``: SIGINT every worker, exit 0 once they are gone (SHUT-1)."""
    if not _stopping(master, graceful=False):
        return worker_reload.ignored(master)
    log.log(log.SHUTDOWN)
    return {"signalled": master.children.stop_all(signal.SIGINT), "signal": "SIGINT"}
