"""The master: one thread, one selector, a state machine (STYLE §5).

Signal handlers only record (CPython writes each signal number to the wakeup
pipe); the loop reads the pipe, queues action names, performs them, reaps
children and advances long transitions (reload, shutdown, chain) until their
condition holds. Nothing here sleeps.
"""
from __future__ import annotations

import collections
import enum
import os
import selectors
import signal
import sys
import time
import traceback
from dataclasses import dataclass

from . import actions, log, signals
from .control import CTL_CLOSE_LISTENERS
from .handoff import PREFLIGHT, exec_image
from .limits import Limits
from .server import Watch
from .spawner import ALL_SIGNALS, Spawner, spawn_from, trim_heap
from .upkeep import Upkeep


class State(enum.Enum):
    RUNNING = "running"
    RELOAD_CHECK = "reload-check"       # a throwaway process loads the new code
    RELOADING = "reloading"             # waiting for workers to die before exec
    SHUTTING_DOWN = "shutting-down"
    EXITED = "exited"


@dataclass
class Child:
    """A worker process as the master tracks it."""

    id: int
    pid: int
    ctl: int = -1                 # write end of the master->worker control pipe
    spawned: float = 0.0
    cursed_at: float = 0.0        # when it was told to stop (0 = not told)
    asked: bool = False           # stopped on purpose: respawn without a DAMN line
    accepting: bool = False
    retire_when_ready: bool = False  # previous generation: HUP once the new one accepts
    chain_victim: bool = False    # replaced by a chain reload
    hupped: bool = False          # got SIGHUP: exits gracefully, never a DAMN line


class Master(Spawner, Upkeep):
    def __init__(self, server):
        super().__init__(server)
        self.state = State.RUNNING
        self.exit_code = 0
        self.pending: collections.deque[str] = collections.deque()
        self.selector = selectors.DefaultSelector()
        self.actions = actions.registry(self.guard.master(self.hook.uwsgi_master_actions))
        self.table = signals.master_table(self.settings.die_on_term,
                                          self.settings.hook_master_start)
        self.reload_kind = ""
        self.reload_started = 0.0
        self.reload_deadline = 0.0
        self.preflight_pid = 0
        self.shutdown_graceful = False
        self.reforked = False   # a copy made by refork() serves our listening sockets too
        # a graceful reload asked for while one is under way: done once it is (coalesced)
        self.reload_again = bool(server.handoff.reload.get("again"))
        # the operator's pause outlives reloads: the new workers start paused
        self.paused = bool(server.handoff.reload.get("paused"))
        self.scoreboard.paused = self.paused
        if self.paused:
            log.log(log.PAUSE_KEPT)
        self.next_tick = 0.0
        self.reloads: list[dict] = list(server.handoff.reload.get("history", []))
        self.limits = Limits(self)
        # fds plugins hand to the next image (named in their own UWSGI_PY_<PLUGIN>_* variable)
        self.exec_fds: set[int] = set()

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
        self.selector.register(watch.fd, selectors.EVENT_READ, watch.callback)

    def unwatch(self, fd: int) -> None:
        self.private_fds.discard(fd)
        try:
            self.selector.unregister(fd)
        except (KeyError, ValueError):
            pass

    def run(self) -> int:
        self.install_signals()
        self.open_notify()
        self.selector.register(self.notify_r, selectors.EVENT_READ, self.read_notes)
        self.adopt_old_workers()
        self.guard.master(self.hook.uwsgi_master_init, master=self)
        trim_heap()
        for wid in self.active_slots():
            self.spawn(wid)
        if not self.server.is_reload and not self.write_pidfiles(safe=True):
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

    def perform(self, name: str) -> None:
        action = self.actions.get(name)
        if action is None:
            log.log(f"unknown master action {name!r}")
            return
        try:
            action(self)
        except Exception:  # noqa: BLE001 - a broken action must not take the master down
            log.log(f"master action {name!r} failed:\n{traceback.format_exc().rstrip()}")

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
        for child in self.stopping_children():
            deadlines.append(child.cursed_at + self.mercy)
        if self.respawn_at:
            deadlines.append(min(self.respawn_at.values()))
        if self.reload_deadline:
            deadlines.append(self.reload_deadline)
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
                self.child_paused(pid, status)
                continue
            if pid == self.preflight_pid:
                self.preflight_done(status)
                continue
            self.child_died(pid, status)

    # ---- long transitions ------------------------------------------------------
    def advance(self) -> None:
        now = time.monotonic()
        self.check_mercy(now)
        if self.state is State.SHUTTING_DOWN:
            if not self.alive():
                self.finish_shutdown()
            return
        if self.state is State.RELOAD_CHECK:
            if self.reload_deadline and now > self.reload_deadline:
                self.refuse_reload("the reload check did not finish within the mercy")
                os.kill(self.preflight_pid, signal.SIGKILL)
            return
        if self.state is State.RELOADING:
            if self.settings.exit_on_reload:
                if not self.alive():
                    self.exec_reload()
            elif not self.workers_alive() or self.reload_kind == "graceful":
                self.exec_reload()
            return
        if self.reload_again and not self.reload_busy():
            self.reload_again = False
            self.begin_reload("graceful")
        self.respawn_due(now)
        self.retire_old_generation()
        self.advance_chain()
        if now >= self.next_tick:
            self.next_tick = now + 1.0
            self.check_harakiri()
            self.limits.tick(now)
            self.check_log_size()
            self.guard.master(self.hook.uwsgi_master_tick, master=self)

    def check_mercy(self, now: float) -> None:
        for child in self.stopping_children():
            if now - child.cursed_at > self.mercy:
                log.vlog(log.NO_MERCY.format(id=child.id, pid=child.pid))
                self.kill(child, signal.SIGKILL)
                child.cursed_at = now

    # ---- reload ------------------------------------------------------------------
    def begin_reload(self, kind: str) -> None:
        if self.state is State.SHUTTING_DOWN and kind == "graceful":
            return  # SIG-2, SHUT-4
        if kind == "graceful" and self.reload_busy():
            # SIG-2 would drop it; the code may have changed since this reload loaded it
            if not self.reload_again:
                self.reload_again = True
                log.log(log.RELOAD_AGAIN)
            return
        if self.state is not State.SHUTTING_DOWN and not os.access(sys.executable, os.X_OK):
            # after --uid the interpreter may be out of reach: never tear down for an exec that fails
            log.log(log.RELOAD_REFUSED.format(why=f"{sys.executable} is not executable by this user"))
            return
        if kind == "brutal":
            if self.state is State.SHUTTING_DOWN:
                # SIG-3: TERM hurries a graceful shutdown; the death check still wins
                log.log(log.BRUTAL_RELOAD)
                for child in self.all_children():
                    self.kill(child, signal.SIGTERM)
                return
            if self.state in (State.RELOADING,):
                return
            if self.state is State.RELOAD_CHECK:
                self.cancel_preflight()
        if self.settings.lazy and kind == "graceful":
            self.reload_workers(brutal=False)   # RELOAD-3
            return
        self.reload_kind = kind
        self.reload_started = time.time()
        self.guard.master(self.hook.uwsgi_master_event, master=self, event="reloading",
                          info={"kind": kind})
        if kind == "brutal":
            log.log(log.BRUTAL_RELOAD)
            self.state = State.RELOADING
            for child in self.all_children():
                child.asked = True
                self.curse(child, signal.SIGTERM)
            return
        log.log(log.GRACEFUL_RELOAD)
        if self.settings.exit_on_reload:
            # RELOAD-5: the instance exits once every worker has finished its request
            self.state = State.RELOADING
            for child in self.all_children():
                child.asked = True
                self.curse(child, signal.SIGHUP)
            return
        if self.settings.no_reload_check:
            self.state = State.RELOADING
            return
        self.start_preflight()

    def reload_busy(self) -> bool:
        """A reload is under way: checking, exec'ing, or (in the new image) its
        workers are not all accepting and the previous generation not retired yet."""
        if self.state in (State.RELOAD_CHECK, State.RELOADING):
            return True
        return (self.server.is_reload and not self.reload_reported
                and time.monotonic() < self.old_deadline)

    def start_preflight(self) -> None:
        log.log(log.RELOAD_CHECKING)
        env = dict(os.environ)
        env[PREFLIGHT] = "1"
        args = [sys.executable, *sys.orig_argv[1:]]
        try:
            # the start directory, as the exec would; its own signal mask, whatever the
            # master's is: the check is a separate process
            self.preflight_pid = spawn_from(
                self.server.start_dir, sys.executable, args, env, setsigmask=(),
                file_actions=[(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0)])
        except OSError as e:
            self.refuse_reload(f"cannot start the reload check: {e.strerror}")
            return
        self.state = State.RELOAD_CHECK
        self.reload_deadline = time.monotonic() + max(self.mercy, 1)

    def preflight_done(self, status: int) -> None:
        self.preflight_pid = 0
        self.reload_deadline = 0.0
        if self.state is not State.RELOAD_CHECK:
            return
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            self.refuse_reload(f"the new code or configuration failed to load (exit status {code})")
            return
        self.state = State.RELOADING

    def cancel_preflight(self) -> None:
        if self.preflight_pid:
            try:
                os.kill(self.preflight_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.reload_deadline = 0.0

    def refuse_reload(self, why: str) -> None:
        log.log(log.RELOAD_REFUSED.format(why=why))
        self.state = State.RUNNING
        self.reload_deadline = 0.0
        outcome = self.outcome(refused=True, error=why)
        self.guard.master(self.hook.uwsgi_master_event, master=self, event="reload-refused",
                          info=outcome)

    def outcome(self, refused: bool, error: str = "", replaced: int = 0) -> dict:
        started = self.server.handoff.reload.get("started", self.reload_started) or time.time()
        result = {
            "generation": self.server.generation if not refused else self.server.generation,
            "kind": self.reload_kind or self.server.handoff.reload.get("kind", "graceful"),
            "duration_ms": int((time.time() - started) * 1000),
            "workers_replaced": replaced,
            "refused": refused,
            "error": error,
            "time": int(time.time()),
        }
        self.reloads.append(result)
        del self.reloads[:-20]
        log.log(log.RELOAD_OUTCOME.format(
            generation=result["generation"], kind=result["kind"], ms=result["duration_ms"],
            replaced=replaced, refused="yes" if refused else "no",
            error=f" error={error!r}" if error else ""))
        return result

    def exec_reload(self) -> None:
        """RELOAD-5: clean up, return to the start directory, exec the original argv."""
        self.guard.master(self.hook.uwsgi_master_cleanup, master=self, reason="reload")
        if self.settings.exit_on_reload:
            log.log(log.GAME_OVER)
            self.vacuum()
            self.state = State.EXITED
            self.exit_code = 0
            return
        # from here on a signal waits for the next image (pending across execve)
        signals.block_for_exec(self.table)
        signals.requeue(self.wake_r, self.table)
        log.log(log.BINARY_RELOADING)
        old = []
        for child in self.all_children():
            # still serving: the next image retires them once its workers accept
            if child.ctl >= 0:
                os.set_inheritable(child.ctl, True)
            old.append({"id": child.id, "pid": child.pid, "ctl": child.ctl,
                        "cursed": child.cursed_at > 0})
        self.exec_image(old, {"kind": self.reload_kind, "started": self.reload_started,
                              "again": self.reload_again})

    def exec_image(self, old_workers: list[dict], reload: dict) -> None:
        exec_image(self.server, self.table, old_workers,
                   {**reload, "history": self.reloads, "paused": self.paused}, self.exec_fds)

    # ---- refork (FIFO-11) ----------------------------------------------------------
    def refork(self) -> int:
        """uWSGI ``uwsgi_refork_master``: fork a copy of the master that detaches
        (``setsid``) and execs as a reload keeping the listeners. Our workers stay
        ours; the copy starts its own. Returns the copy's pid (0 if fork failed)."""
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, ALL_SIGNALS)
        try:
            pid = os.fork()
        except OSError as e:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            log.log(log.REFORK_FAILED.format(error=e.strerror))
            return 0
        if pid:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            log.vlog(log.REFORKED.format(pid=pid))
            self.reforked = True
            return pid
        try:
            signal.set_wakeup_fd(-1)   # never write into the old master's pipe
            os.setsid()
            log.log(log.FORKING)
            self.exec_image([], {"kind": "refork", "started": time.time()})
        finally:
            os._exit(1)

    # ---- shutdown ----------------------------------------------------------------
    def begin_shutdown(self, graceful: bool) -> None:
        if self.state is State.SHUTTING_DOWN:
            return  # SIG-2
        if self.state is State.RELOAD_CHECK:
            self.cancel_preflight()
        self.state = State.SHUTTING_DOWN
        self.shutdown_graceful = graceful
        self.guard.master(self.hook.uwsgi_master_event, master=self, event="stopping",
                          info={"graceful": graceful})
        if graceful:
            log.vlog(log.GRACEFUL_SHUTDOWN)
        else:
            log.log(log.SHUTDOWN)
        for child in self.all_children():
            child.asked = True
            if graceful and not self.reforked:
                # stop accepting at once (connects are refused, a balancer retries elsewhere);
                # what the kernel already accepted is still served. Not when a refork copy
                # serves the same sockets.
                self.tell(child, CTL_CLOSE_LISTENERS)
            self.curse(child, signal.SIGHUP if graceful else signal.SIGINT)

    def finish_shutdown(self) -> None:
        log.log(log.GOODBYE)
        self.guard.master(self.hook.uwsgi_master_cleanup, master=self, reason="exit")
        self.vacuum()
        self.state = State.EXITED

    def fail(self, code: int) -> None:
        """Stop the instance with ``code`` (a lazy app that cannot load, SHUT-5)."""
        self.begin_shutdown(graceful=False)
        self.exit_code = code
