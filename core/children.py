"""The worker table: fork, signal, reap, respawn (WORKER-1..4).

``Children.workers`` maps a slot id to the process serving it; ``retiring``
holds processes that left their slot (the previous image's workers after an
exec reload, chain-reload victims) and are draining. Each ``Child`` has one
``Life`` and, once it is told to stop, the time it was told (mercy runs from
there). The table never imports the master: ``died`` returns what a death
means (``Fate``) and the master acts on it.
"""
from __future__ import annotations

import enum
import gc
import os
import signal
import time
from typing import NamedTuple

from . import api, events, log
from .control import CTL_RECYCLE, NOTE_ACCEPTING, NOTE_GRACEFUL, NOTE_RECYCLED
from .scoreboard import CHEAP, IDLE
from .server import EXIT_APP_LOAD, EXIT_GRACEFUL_IDLE
from .workers import Worker

EXIT_BOOT_FAILURES = 1   # the instance's exit status after --max-boot-failures

ALL_SIGNALS = set(signal.Signals) - {signal.SIGKILL, signal.SIGSTOP}


class Life(enum.Enum):
    """Where a child is in its life, as the master sees it; it decides what its death means."""

    RUNNING = "running"        # in its slot, nobody asked it to go: its death is news (DAMN)
    HUPPED = "hupped"          # it got a SIGHUP from elsewhere and exits gracefully: no DAMN line
    KILLED = "killed"          # killed without a plan to retire it (brutal worker reload, evil
                               # RSS): its death is logged as a death and it is respawned
    STOPPING = "stopping"      # told to stop on purpose (reload, shutdown, recycle, cheaper)
    OLD_GENERATION = "old"     # the previous image's: serves until ours accept, then STOPPING
    CHAIN_VICTIM = "chain"     # left its slot to a chain reload's replacement, then stops


ON_PURPOSE = frozenset({Life.STOPPING, Life.OLD_GENERATION, Life.CHAIN_VICTIM})


class Child:
    """A worker process as the master tracks it."""

    def __init__(self, id: int, pid: int, ctl: int = -1, spawned: float = 0.0,
                 accepting: bool = False, life: Life = Life.RUNNING, cursed_at: float = 0.0):
        self.id = id
        self.pid = pid
        self.ctl = ctl                # write end of the master->worker control pipe
        self.spawned = spawned
        self.accepting = accepting    # it said so once (NOTE_ACCEPTING)
        self.life = life
        self.cursed_at = cursed_at    # when it was told to stop (monotonic; 0 = not told)

    def __repr__(self) -> str:
        return f"Child(id={self.id}, pid={self.pid}, life={self.life.name})"

    @property
    def on_purpose(self) -> bool:
        """Its death is expected: respawned (or not) without a DAMN line."""
        return self.life in ON_PURPOSE


class Fate(enum.Enum):
    """What a reaped child's death means to the master (``Children.died``)."""

    STRANGER = "stranger"      # not a worker: a plugin's child (``uwsgi_master_reaped``)
    RETIRED = "retired"        # a retiring worker is gone
    BURIED = "buried"          # a worker died while the instance stops or reloads: no respawn
    CHEAPED = "cheaped"        # its slot is kept empty
    RESPAWN = "respawn"        # a new worker takes the slot (``respawn_due``)
    FATAL = "fatal"            # the instance must stop with ``Death.code``


class Death(NamedTuple):
    fate: Fate
    child: Child | None = None
    code: int = 0


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


class Children:
    def __init__(self, server):
        self.server = server
        self.settings = server.settings
        self.scoreboard = server.scoreboard
        self.numproc = server.settings.processes
        self.workers: dict[int, Child] = {}
        self.retiring: dict[int, Child] = {}     # pid -> child that left its slot
        self.respawn_at: dict[int, float] = {}
        self.cheaped: set[int] = set()   # slots kept empty on purpose (cheaper mode)
        self.respawns: list[float] = []
        self.boot_failures = 0           # workers in a row that died before accepting
        self.private_fds: set[int] = set()   # closed in every worker after fork
        self.notify_r, self.notify_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.private_fds.add(self.notify_r)

    # ---- fork ------------------------------------------------------------------
    def spawn(self, wid: int, respawn: bool = False) -> Child:
        slot = self.scoreboard.read(wid)
        self.scoreboard.write(wid, respawn_count=slot["respawn_count"] + 1,
                              last_spawn=int(time.time()), delta_requests=0, accepting=0,
                              status=IDLE)
        ctl_r, ctl_w = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(ctl_w, False)
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, ALL_SIGNALS)
        # what the master holds now is never collected by a worker: a full collection there
        # would write into every object it inherited and copy each page (about 3 MB per
        # worker on the bench's hello app)
        gc.freeze()
        pid = os.fork()
        if pid == 0:
            signal.set_wakeup_fd(-1)
            api.vacate(self.private_fds | {ctl_w})   # numbers stay taken: no fd-reuse trap
            if self.settings.master_as_root:
                self.drop_in_worker()
            Worker(self.server, wid, ctl_r, self.notify_w).run()
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.close(ctl_r)
        self.private_fds.add(ctl_w)
        self.scoreboard.set_pid(wid, pid)
        child = self.workers[wid] = Child(wid, pid, ctl_w, time.monotonic())
        if respawn:
            log.log(log.RESPAWNED.format(id=wid, pid=pid))
        else:
            log.log(log.WORKER_SPAWNED.format(id=wid, pid=pid, cores=self.server.settings.threads))
        return child

    def drop_in_worker(self) -> None:
        """--master-as-root: the new worker drops to --uid/--gid before anything else."""
        from . import privileges
        from .options import OptionError
        try:
            privileges.drop(self.settings)
        except OptionError as e:
            log.log(f"worker cannot drop privileges: {e}")
            os._exit(EXIT_BOOT_FAILURES)

    def adopt(self, entries: list[dict]) -> None:
        """The previous image's workers (``handoff``): they serve until ours accept,
        or were already told to stop."""
        for entry in entries:
            child = Child(entry["id"], entry["pid"], entry.get("ctl", -1), time.monotonic(),
                          life=Life.OLD_GENERATION)
            if entry.get("cursed"):
                child.life, child.cursed_at = Life.STOPPING, time.monotonic()
            self.retiring[child.pid] = child
            if child.ctl >= 0:
                self.private_fds.add(child.ctl)

    # ---- queries ---------------------------------------------------------------
    def all(self) -> list[Child]:
        return [*self.workers.values(), *self.retiring.values()]

    def stopping(self) -> list[Child]:
        return [c for c in self.all() if c.cursed_at]

    def find(self, pid: int) -> Child | None:
        return next((c for c in self.all() if c.pid == pid), None)

    def active_slots(self) -> list[int]:
        """Slot ids that should have a worker: every slot not cheaped."""
        return [wid for wid in range(1, self.numproc + 1) if wid not in self.cheaped]

    def all_accepting(self) -> bool:
        return all(wid in self.workers and self.workers[wid].accepting
                   for wid in self.active_slots())

    # ---- signals and control bytes ----------------------------------------------
    def kill(self, child: Child, sig: int) -> None:
        try:
            os.kill(child.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, child: Child, sig: int, on_purpose: bool = True) -> None:
        """Tell ``child`` to stop with ``sig``; mercy runs from now (MERCY-1). Not
        ``on_purpose``: its death is still logged as a death, and its slot respawned."""
        if on_purpose and child.life is not Life.CHAIN_VICTIM:
            child.life = Life.STOPPING
        elif not on_purpose and child.life is Life.RUNNING:
            child.life = Life.KILLED
        child.cursed_at = time.monotonic()
        self.kill(child, sig)

    def stop_all(self, sig: int) -> list[int]:
        """Every child told to stop with ``sig``, on purpose; their pids."""
        children = self.all()
        for child in children:
            self.stop(child, sig)
        return [c.pid for c in children]

    def tell(self, child: Child, data: bytes) -> None:
        """A control byte down ``child``'s pipe (see ``control.CTL_*``)."""
        if child.ctl >= 0:
            try:
                os.write(child.ctl, data)
            except OSError:
                pass

    def tell_all(self, data: bytes) -> list[int]:
        children = self.all()
        for child in children:
            self.tell(child, data)
        return [c.pid for c in children if c.ctl >= 0]

    def recycle(self, child: Child, line: str) -> bool:
        """Ask a worker to finish its request and exit (WORKER-6): max-worker-lifetime,
        reload-on-rss. It is respawned as ``worker N killed successfully``."""
        if child.on_purpose or child.cursed_at:
            return False
        log.log(line)
        child.life, child.cursed_at = Life.STOPPING, time.monotonic()
        if child.ctl >= 0:
            try:
                os.write(child.ctl, CTL_RECYCLE)
                return True
            except OSError:
                pass
        self.kill(child, signal.SIGHUP)
        return True

    def enforce_mercy(self, now: float, mercy: float) -> None:
        for child in self.stopping():
            if now - child.cursed_at > mercy:
                log.vlog(log.NO_MERCY.format(id=child.id, pid=child.pid))
                self.kill(child, signal.SIGKILL)
                child.cursed_at = now

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
                if child.life is Life.RUNNING:
                    child.life = Life.HUPPED
            elif kind == NOTE_RECYCLED and not child.on_purpose:
                # mercy applies, as to any worker told to stop
                child.life, child.cursed_at = Life.STOPPING, time.monotonic()

    # ---- deaths ------------------------------------------------------------------
    def died(self, pid: int, status: int, stopping: bool) -> Death:
        """Account for reaped ``pid`` and log its death; ``stopping``: the instance
        stops or execs, so a worker is not respawned."""
        now = time.monotonic()
        child = self.retiring.pop(pid, None)
        if child is not None:
            self.close_ctl(child)
            if child.life is Life.CHAIN_VICTIM:
                log.log(log.KILLED_OK.format(id=child.id, pid=pid))
            else:
                log.log(log.BURIED.format(id=child.id, secs=int(now - (child.cursed_at or now))))
            return Death(Fate.RETIRED, child)
        child = next((c for c in self.workers.values() if c.pid == pid), None)
        if child is None:
            return Death(Fate.STRANGER)
        # its last notes (accepting, recycled) may still be in the pipe: read them while
        # the slot is still its own, never let them reach the replacement
        self.read_notes()
        del self.workers[child.id]
        self.close_ctl(child)
        self.scoreboard.write(child.id, pid=0, accepting=0, status=IDLE)
        if stopping:
            log.log(log.BURIED.format(id=child.id, secs=int(now - (child.cursed_at or now))))
            return Death(Fate.BURIED, child)
        if child.id in self.cheaped:
            log.log(log.CHEAPED.format(id=child.id))
            self.scoreboard.write(child.id, status=CHEAP)
            return Death(Fate.CHEAPED, child)
        code = os.waitstatus_to_exitcode(status)
        if code == EXIT_APP_LOAD and (self.settings.lazy_apps or self.settings.lazy):
            if self.settings.need_app:
                log.log(log.NO_APP_FATAL)
                return Death(Fate.FATAL, child, EXIT_APP_LOAD)
            log.log(log.OOPS.format(id=child.id, pid=pid))
        elif child.on_purpose:
            log.log(log.KILLED_OK.format(id=child.id, pid=pid))
        elif code < 0:
            log.log(log.DAMN_SIGNAL.format(id=child.id, pid=pid, sig=-code))
        elif code != EXIT_GRACEFUL_IDLE and child.life is not Life.HUPPED:
            log.log(log.DAMN.format(id=child.id, pid=pid))
            log.log(log.EXIT_STATUS.format(id=child.id, pid=pid, code=code))
        if not child.accepting and not child.on_purpose:
            self.boot_failures += 1
            log.log(log.BOOT_FAILURE.format(id=child.id, pid=pid, count=self.boot_failures))
            limit = self.settings.max_boot_failures
            if limit and self.boot_failures >= limit:
                log.log(log.BOOT_FATAL.format(count=self.boot_failures, limit=limit))
                return Death(Fate.FATAL, child, EXIT_BOOT_FAILURES)
        self.schedule_respawn(child.id, now)
        return Death(Fate.RESPAWN, child)

    def stopped_or_continued(self, pid: int, status: int) -> None:
        """A worker was stopped (SIGSTOP, SIGTTIN...) or continued: say so in the log."""
        child = self.find(pid)
        if child is None:
            return
        if os.WIFSTOPPED(status):
            log.log(log.WORKER_STOPPED.format(id=child.id, pid=pid, sig=os.WSTOPSIG(status)))
        else:
            log.log(log.WORKER_CONTINUED.format(id=child.id, pid=pid))

    def close_ctl(self, child: Child) -> None:
        if child.ctl >= 0:
            self.private_fds.discard(child.ctl)
            try:
                os.close(child.ctl)
            except OSError:
                pass
            child.ctl = -1

    # ---- respawn ---------------------------------------------------------------------
    def schedule_respawn(self, wid: int, now: float) -> None:
        """Respawn at once, unless workers respawn too fast (WORKER-4)."""
        self.respawns = [t for t in self.respawns if now - t < 1.0] + [now]
        delay = self.settings.forkbomb_delay
        if delay and len(self.respawns) > self.numproc:
            log.log(log.TOO_FAST.format(secs=delay))
            self.respawn_at[wid] = now + delay
        else:
            self.respawn_at[wid] = now

    def respawn_due(self, now: float) -> list[int]:
        """Spawn what is due; the slot ids respawned."""
        done = []
        for wid, when in list(self.respawn_at.items()):
            if when <= now:
                del self.respawn_at[wid]
                if wid not in self.workers and wid not in self.cheaped:
                    self.spawn(wid, respawn=True)
                    done.append(wid)
        return done

    # ---- cheaped slots (cheaper mode, FIFO C) ----------------------------------------------
    def cheap_slot(self, wid: int, sig: int = signal.SIGHUP) -> None:
        """Keep slot ``wid`` empty until ``uncheap_slot``: its worker (if any) is
        told to stop with ``sig`` and not respawned; stats show it ``cheap``, pid 0."""
        self.cheaped.add(wid)
        self.respawn_at.pop(wid, None)
        child = self.workers.get(wid)
        if child is None:
            self.scoreboard.write(wid, pid=0, accepting=0, status=CHEAP)
            return
        self.stop(child, sig)

    def uncheap_slot(self, wid: int) -> bool:
        """Give slot ``wid`` a worker again; True if one was spawned now (False while
        its cheaped worker is still stopping: it is then respawned when it dies)."""
        self.cheaped.discard(wid)
        if wid in self.workers:
            return False
        self.spawn(wid, respawn=self.scoreboard.read(wid)["respawn_count"] > 0)
        return True

    # ---- chain reload (CHAIN-2) ------------------------------------------------------------
    def replace(self, wid: int) -> Child:
        """Slot ``wid``'s worker leaves it for a new one and retires once told (the chain
        reload's victim); the replacement serves before the victim stops: no dead time."""
        old = self.workers.pop(wid)
        old.life = Life.CHAIN_VICTIM
        self.retiring[old.pid] = old
        log.vlog(log.CHAIN_VICTIM.format(id=wid))
        self.spawn(wid, respawn=True)
        return old
