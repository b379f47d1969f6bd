"""The master's children: fork, respawn, retire, chain (WORKER-1..4, CHAIN).

A mixin of ``Master`` that owns the worker table. ``workers`` maps a slot id
to the process serving it; ``retiring`` holds processes that left their slot
(the previous image's workers after an exec reload, chain-reload victims)
and are draining.
"""
from __future__ import annotations

import os
import signal
import time

from . import log
from .control import CTL_RECYCLE, NOTE_ACCEPTING, NOTE_GRACEFUL, NOTE_RECYCLED
from .scoreboard import CHEAP, IDLE
from .server import EXIT_APP_LOAD, EXIT_GRACEFUL_IDLE
from .workers import Worker

EXIT_BOOT_FAILURES = 1   # the instance's exit status after --max-boot-failures

ALL_SIGNALS = set(signal.Signals) - {signal.SIGKILL, signal.SIGSTOP}


def trim_heap() -> None:
    """Give the C heap's free pages back to the kernel (glibc ``malloc_trim``) before the
    first fork: what start-up freed (imports, option parsing, loading the app) would
    otherwise stay resident in the master and in every worker (~2-3 MB of PSS on the
    bench). ctypes is needed by the workers anyway (PR_SET_PDEATHSIG)."""
    try:
        import ctypes
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def spawn_from(directory: str, path: str, args: list[str], env: dict, **kw) -> int:
    """``os.posix_spawn`` with ``directory`` as the child's working directory; the
    master's own (``--chdir``'s) is restored at once."""
    here = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.chdir(directory)
        return os.posix_spawn(path, args, env, **kw)
    finally:
        os.fchdir(here)
        os.close(here)


class Spawner:
    def __init__(self, server):
        from .master import Child  # noqa: F401 - the record type
        self.server = server
        self.settings = server.settings
        self.hook = server.hook
        self.guard = server.guard      # master hooks: a plugin that raises is logged, not fatal
        self.scoreboard = server.scoreboard
        self.numproc = server.settings.processes
        self.mercy = server.settings.worker_reload_mercy
        if server.settings.reload_mercy:
            self.mercy = min(self.mercy, server.settings.reload_mercy)
        self.workers: dict = {}
        self.retiring: dict = {}
        self.respawn_at: dict[int, float] = {}
        self.cheaped: set[int] = set()   # slots kept empty on purpose (cheaper mode)
        self.respawns: list[float] = []
        self.boot_failures = 0           # workers in a row that died before accepting
        self.private_fds: set[int] = set()
        self.notify_r = self.notify_w = -1
        self.chain = 0
        self.chain_wait = None
        self.chain_logged = 0.0
        self.ready_sent = False
        self.reload_reported = False
        self.old_deadline = 0.0

    # ---- setup ---------------------------------------------------------------
    def open_notify(self) -> None:
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.notify_r, self.notify_w = r, w
        self.private_fds.add(r)

    def adopt_old_workers(self) -> None:
        """Workers of the previous image keep serving until ours accept."""
        from .master import Child
        for entry in self.server.handoff.old_workers:
            child = Child(entry["id"], entry["pid"], entry.get("ctl", -1), time.time())
            child.asked = True
            if entry.get("cursed"):
                child.cursed_at = time.monotonic()
            else:
                child.retire_when_ready = True
            self.retiring[child.pid] = child
            if child.ctl >= 0:
                self.private_fds.add(child.ctl)
        self.old_deadline = time.monotonic() + max(self.mercy, 1)

    # ---- fork ------------------------------------------------------------------
    def spawn(self, wid: int, respawn: bool = False) -> None:
        from .master import Child
        slot = self.scoreboard.read(wid)
        self.scoreboard.write(wid, respawn_count=slot["respawn_count"] + 1,
                              last_spawn=int(time.time()), delta_requests=0, accepting=0,
                              status=IDLE)
        ctl_r, ctl_w = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(ctl_w, False)
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, ALL_SIGNALS)
        pid = os.fork()
        if pid == 0:
            signal.set_wakeup_fd(-1)
            for fd in self.private_fds | {ctl_w}:
                try:
                    os.close(fd)
                except OSError:
                    pass
            if self.settings.master_as_root:
                self.drop_in_worker()
            Worker(self.server, wid, ctl_r, self.notify_w).run()
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.close(ctl_r)
        self.private_fds.add(ctl_w)
        self.scoreboard.set_pid(wid, pid)
        self.workers[wid] = Child(wid, pid, ctl_w, time.monotonic())
        if respawn:
            log.log(log.RESPAWNED.format(id=wid, pid=pid))
        else:
            log.log(log.WORKER_SPAWNED.format(id=wid, pid=pid))

    def drop_in_worker(self) -> None:
        """--master-as-root: the new worker drops to --uid/--gid before anything else."""
        from . import privileges
        from .options import OptionError
        try:
            privileges.drop(self.settings)
        except OptionError as e:
            log.log(f"worker cannot drop privileges: {e}")
            os._exit(EXIT_BOOT_FAILURES)

    # ---- queries ---------------------------------------------------------------
    def all_children(self) -> list:
        return [*self.workers.values(), *self.retiring.values()]

    def stopping_children(self) -> list:
        return [c for c in self.all_children() if c.cursed_at]

    def alive(self) -> bool:
        return bool(self.workers or self.retiring)

    def workers_alive(self) -> bool:
        return bool(self.workers)

    def kill(self, child, sig: int) -> None:
        try:
            os.kill(child.pid, sig)
        except ProcessLookupError:
            pass

    def curse(self, child, sig: int) -> None:
        """Tell a child to stop; mercy runs from now (MERCY-1)."""
        child.cursed_at = time.monotonic()
        self.kill(child, sig)

    def tell_workers(self, data: bytes) -> None:
        for child in self.all_children():
            self.tell(child, data)

    def tell(self, child, data: bytes) -> None:
        """A control byte down ``child``'s pipe (see ``control.CTL_*``)."""
        if child.ctl >= 0:
            try:
                os.write(child.ctl, data)
            except OSError:
                pass

    def read_notes(self) -> None:
        """Workers' notes: ``A<id>`` accepting, ``R<id> <pid>`` exiting on purpose (WORKER-6),
        ``G<id> <pid>`` HUPed (a graceful exit, WORKER-3)."""
        try:
            data = os.read(self.notify_r, 4096)
        except (BlockingIOError, OSError):
            return
        for line in data.split(b"\n"):
            kind, (wid, _, pid) = line[:1], line[1:].partition(b" ")
            if not wid.isdigit():
                continue
            child = self.workers.get(int(wid))
            if child is None or (pid.isdigit() and int(pid) != child.pid):
                continue   # from a worker that left the slot (retiring, chain victim)
            if kind == NOTE_ACCEPTING:
                child.accepting = True
                self.boot_failures = 0
            elif kind == NOTE_GRACEFUL:
                child.hupped = True
            elif kind == NOTE_RECYCLED and not child.asked:
                child.asked = True
                child.cursed_at = time.monotonic()   # mercy applies, as to any worker told to stop

    def recycle(self, child, line: str) -> None:
        """Ask a worker to finish its request and exit (WORKER-6): max-worker-lifetime,
        reload-on-rss. It is respawned as ``worker N killed successfully``."""
        if child.asked or child.cursed_at:
            return
        log.log(line)
        child.asked = True
        child.cursed_at = time.monotonic()
        if child.ctl >= 0:
            try:
                os.write(child.ctl, CTL_RECYCLE)
                return
            except OSError:
                pass
        self.kill(child, signal.SIGHUP)

    # ---- deaths ------------------------------------------------------------------
    def child_died(self, pid: int, status: int) -> None:
        now = time.monotonic()
        child = self.retiring.pop(pid, None)
        if child is not None:
            self.close_ctl(child)
            if getattr(child, "chain_victim", False):
                log.log(log.KILLED_OK.format(id=child.id, pid=pid))
            else:
                log.log(log.BURIED.format(id=child.id, secs=int(now - (child.cursed_at or now))))
            self.after_retired()
            return
        child = next((c for c in self.workers.values() if c.pid == pid), None)
        if child is None:
            self.guard.master(self.hook.uwsgi_master_reaped, master=self, pid=pid, status=status)
            return
        # its last notes (accepting, recycled) may still be in the pipe: read them while
        # the slot is still its own, never let them reach the replacement
        self.read_notes()
        del self.workers[child.id]
        self.close_ctl(child)
        self.scoreboard.write(child.id, pid=0, accepting=0, status=IDLE)
        from .master import State
        if self.state in (State.SHUTTING_DOWN, State.RELOADING):
            log.log(log.BURIED.format(id=child.id, secs=int(now - (child.cursed_at or now))))
            return
        if child.id in self.cheaped:
            log.log(log.CHEAPED.format(id=child.id))
            self.scoreboard.write(child.id, status=CHEAP)
            return
        code = os.waitstatus_to_exitcode(status)
        if code == EXIT_APP_LOAD and (self.settings.lazy_apps or self.settings.lazy):
            if self.settings.need_app:
                log.log(log.NO_APP_FATAL)
                self.fail(EXIT_APP_LOAD)
                return
            log.log(log.OOPS.format(id=child.id, pid=pid))
        elif child.asked:
            log.log(log.KILLED_OK.format(id=child.id, pid=pid))
        elif code < 0:
            log.log(log.DAMN_SIGNAL.format(id=child.id, pid=pid, sig=-code))
        elif code != EXIT_GRACEFUL_IDLE and not child.hupped:
            log.log(log.DAMN.format(id=child.id, pid=pid))
            log.log(log.EXIT_STATUS.format(id=child.id, pid=pid, code=code))
        if not child.accepting and not child.asked:
            self.boot_failures += 1
            log.log(log.BOOT_FAILURE.format(id=child.id, pid=pid, count=self.boot_failures))
            limit = self.settings.max_boot_failures
            if limit and self.boot_failures >= limit:
                log.log(log.BOOT_FATAL.format(count=self.boot_failures, limit=limit))
                self.fail(EXIT_BOOT_FAILURES)
                return
        self.schedule_respawn(child.id, now)

    def close_ctl(self, child) -> None:
        if child.ctl >= 0:
            self.private_fds.discard(child.ctl)
            try:
                os.close(child.ctl)
            except OSError:
                pass
            child.ctl = -1

    def schedule_respawn(self, wid: int, now: float) -> None:
        """Respawn at once, unless workers respawn too fast (WORKER-4)."""
        self.respawns = [t for t in self.respawns if now - t < 1.0] + [now]
        delay = self.settings.forkbomb_delay
        if delay and len(self.respawns) > self.numproc:
            log.log(log.TOO_FAST.format(secs=delay))
            self.respawn_at[wid] = now + delay
        else:
            self.respawn_at[wid] = now

    def respawn_due(self, now: float) -> None:
        for wid, when in list(self.respawn_at.items()):
            if when <= now:
                del self.respawn_at[wid]
                if wid not in self.workers and wid not in self.cheaped:
                    self.spawn(wid, respawn=True)
                    self.guard.master(self.hook.uwsgi_master_event, master=self,
                                      event="worker-respawned", info={"id": wid})

    # ---- generations -------------------------------------------------------------
    def all_accepting(self) -> bool:
        return all(wid in self.workers and self.workers[wid].accepting for wid in self.active_slots())

    def retire_old_generation(self) -> None:
        ready = self.all_accepting()
        if ready and not self.ready_sent:
            self.ready_sent = True
            self.server.ready = True
            self.guard.master(self.hook.uwsgi_master_event, master=self, event="ready", info={})
            if self.server.is_reload and not self.retiring:
                self.reloaded()
        waiting = [c for c in self.retiring.values() if c.retire_when_ready and not c.cursed_at]
        if waiting and (ready or time.monotonic() > self.old_deadline):
            for child in waiting:
                child.retire_when_ready = False
                self.curse(child, signal.SIGHUP)

    def after_retired(self) -> None:
        if self.server.is_reload and not self.retiring and self.ready_sent and not self.chain:
            self.reloaded()

    def reloaded(self) -> None:
        if self.reload_reported:
            return
        self.reload_reported = True
        outcome = self.outcome(refused=False, replaced=len(self.server.handoff.old_workers))
        self.guard.master(self.hook.uwsgi_master_event, master=self, event="reloaded", info=outcome)

    # ---- cheaped slots (cheaper mode, FIFO C) ----------------------------------------------
    def active_slots(self) -> list[int]:
        """Slot ids that should have a worker: every slot not cheaped."""
        return [wid for wid in range(1, self.numproc + 1) if wid not in self.cheaped]

    def cheap_slot(self, wid: int, sig: int = signal.SIGHUP) -> None:
        """Keep slot ``wid`` empty until ``uncheap_slot``: its worker (if any) is
        told to stop with ``sig`` and not respawned; stats show it ``cheap``, pid 0."""
        self.cheaped.add(wid)
        self.respawn_at.pop(wid, None)
        child = self.workers.get(wid)
        if child is None:
            self.scoreboard.write(wid, pid=0, accepting=0, status=CHEAP)
            return
        child.asked = True
        self.curse(child, sig)

    def uncheap_slot(self, wid: int) -> bool:
        """Give slot ``wid`` a worker again; True if one was spawned now (False while
        its cheaped worker is still stopping: it is then respawned when it dies)."""
        self.cheaped.discard(wid)
        if wid in self.workers:
            return False
        self.spawn(wid, respawn=self.scoreboard.read(wid)["respawn_count"] > 0)
        return True

    # ---- worker-only reloads -----------------------------------------------------------
    def reload_workers(self, brutal: bool, snapshot: bool = False) -> None:
        from .master import State
        if self.state is not State.RUNNING:
            return
        if snapshot:
            log.log(log.SNAPSHOT)
        for child in list(self.workers.values()):
            if brutal:
                log.vlog(log.KILLING_WORKER.format(id=child.id, pid=child.pid))
                self.curse(child, signal.SIGINT)
            else:
                child.asked = True
                self.curse(child, signal.SIGHUP)

    # ---- chain reload (CHAIN-2, without dead time) --------------------------------------
    def begin_chain(self) -> None:
        from .master import State
        if self.chain:
            log.vlog(log.CHAIN_RUNNING)
            return
        if self.state is not State.RUNNING:
            return
        log.vlog(log.CHAIN_START)
        self.chain = 1

    def advance_chain(self) -> None:
        if not self.chain:
            return
        if self.chain_wait is not None:
            wid, old = self.chain_wait
            new = self.workers.get(wid)
            if new is None or not new.accepting:
                now = time.monotonic()
                if now - self.chain_logged >= 1.0:
                    self.chain_logged = now
                    log.vlog(log.CHAIN_WAITING.format(id=wid))
                return
            self.curse(old, signal.SIGHUP)
            self.chain_wait = None
            self.chain += 1
        while self.chain <= self.numproc and self.chain not in self.workers:
            self.chain += 1
        if self.chain > self.numproc:
            log.vlog(log.CHAIN_DONE)
            self.chain = 0
            return
        wid = self.chain
        old = self.workers.pop(wid)
        old.chain_victim = True
        old.asked = True
        self.retiring[old.pid] = old
        log.vlog(log.CHAIN_VICTIM.format(id=wid))
        # the replacement serves before the victim is told to stop: no dead time
        self.spawn(wid, respawn=True)
        self.chain_wait = (wid, old)
