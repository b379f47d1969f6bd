"""Limits the master enforces on its 1 s tick (MASTER-3, WORKER-6; docs/hardening.md).

- ``--max-worker-lifetime``: a worker older than that is asked to finish its
  request and exit (``worker %d lifetime reached ...``); it is respawned.
- ``--reload-on-rss``: the same for a worker whose RSS is above the limit, once
  it has lived ``--min-worker-lifetime`` seconds. uWSGI checks the RSS in the
  worker after each request; here the master reads ``/proc/PID/statm`` once a
  second, so the request path pays nothing.
- ``--evil-reload-on-rss``: a worker above that RSS is SIGKILLed at once.
- ``--reload-on-as`` / ``--evil-reload-on-as``: the same with the worker's address space
  (its virtual size, VSZ) instead of its RSS.
- Listen queues: a TCP listener whose accept queue is full is logged once when
  it fills and once when it drains (one pair per burst, not one line per tick).
- ``--harakiri``: a worker busy with one request for longer is SIGKILLed
  (``HARAKIRI ON WORKER ...``; ``--harakiri-verbose`` adds what it is blocked in).
"""
from __future__ import annotations

import signal
import time

from . import log, sockets
from .options import Option, non_negative_int
from .scoreboard import BUSY, DEAD, memory

MB = 1024 * 1024
MEASURES = {"rss": "RSS", "as": "address space"}


def options() -> list[Option]:
    """The address-space limits (the RSS ones are declared with the other worker limits)."""
    return [
        Option("reload-on-as", "recycle a worker (after its request) whose address space (VSZ) "
               "is above MB megabytes", convert=non_negative_int, default=0, metavar="MB"),
        Option("evil-reload-on-as", "the master SIGKILLs a worker whose address space (VSZ) is "
               "above MB megabytes", convert=non_negative_int, default=0, master=True,
               metavar="MB"),
    ]


class Limits:
    def __init__(self, master):
        self.master = master
        self.children = master.children
        s = master.settings
        self.harakiri = s.harakiri
        self.harakiri_verbose = s.harakiri_verbose
        self.lifetime = s.max_worker_lifetime
        self.min_lifetime = s.min_worker_lifetime
        self.rss = s.reload_on_rss * MB
        self.evil_rss = s.evil_reload_on_rss * MB
        self.as_limit = s.reload_on_as * MB
        self.evil_as = s.evil_reload_on_as * MB
        self.memory = bool(self.rss or self.evil_rss or self.as_limit or self.evil_as)
        self.full: dict[int, list] = {}   # listener fd -> [since (monotonic), peak]

    def tick(self, now: float) -> None:
        if self.harakiri:
            self.check_harakiri()
        if self.lifetime or self.memory:
            for child in list(self.children.workers.values()):
                if not child.cursed_at:
                    self.check_worker(child, now)
        self.check_listen_queues(now)

    def check_harakiri(self) -> None:
        now = time.time()
        scoreboard = self.master.scoreboard
        threaded = scoreboard.cores > 1
        for child in list(self.children.workers.values()):
            slot = scoreboard.read(child.id)
            if slot["status"] != BUSY or not slot["busy_since"]:
                continue
            # with --threads each core's request is timed; one overrunning kills the worker
            late = [core for core in scoreboard.read_cores(child.id)
                    if core["in_request"] and core["busy_since"]
                    and now - core["busy_since"] > self.harakiri]
            if late:
                log.log(log.HARAKIRI.format(id=child.id, pid=child.pid))
                for core in late:
                    line = log.HARAKIRI_CORE if threaded else log.HARAKIRI_REQUEST
                    log.log(line.format(id=child.id, pid=child.pid, core=core["id"], uri=core["uri"],
                                        since=time.ctime(core["busy_since"])))
                if self.harakiri_verbose:
                    log_stuck_worker(child.pid)
                scoreboard.write(child.id, harakiri_count=slot["harakiri_count"] + 1, status=DEAD)
                self.children.kill(child, signal.SIGKILL)

    def check_worker(self, child, now: float) -> None:
        age = now - child.spawned
        if self.lifetime and age > self.lifetime:
            self.children.recycle(child, log.LIFETIME.format(id=child.id, secs=int(age)))
            return
        if not self.memory:
            return
        rss, vsz = memory(child.pid)
        for kind, used, evil, limit in (("rss", rss, self.evil_rss, self.rss),
                                         ("as", vsz, self.evil_as, self.as_limit)):
            if evil and used > evil:
                log.log(log.EVIL_MEMORY.format(kind=kind, what=MEASURES[kind], id=child.id,
                                               pid=child.pid, used=used // MB, limit=evil // MB))
                # once: mercy kills it again if it somehow survives
                self.children.stop(child, signal.SIGKILL, on_purpose=False)
                return
            if limit and used > limit and age >= self.min_lifetime:
                self.children.recycle(child, log.MEMORY_RECYCLE.format(
                    kind=kind, what=MEASURES[kind], id=child.id, pid=child.pid,
                    used=used // MB, limit=limit // MB))
                return

    def check_listen_queues(self, now: float) -> None:
        for lst in self.master.server.listeners:
            queued, backlog = sockets.queue(lst)
            state = self.full.get(lst.fd)
            if backlog and queued >= backlog:
                if state is None:
                    self.full[lst.fd] = [now, queued]
                    log.log(log.LISTEN_FULL.format(name=lst.name, fd=lst.fd, queue=queued,
                                                   max=backlog))
                else:
                    state[1] = max(state[1], queued)
            elif state is not None:
                del self.full[lst.fd]
                log.log(log.LISTEN_DRAINED.format(name=lst.name, fd=lst.fd,
                                                  secs=int(now - state[0]), peak=state[1],
                                                  max=backlog))


def log_stuck_worker(pid: int) -> None:
    """--harakiri-verbose: what the worker is blocked in, as the kernel says (Linux)."""
    for line, name in ((log.HARAKIRI_SYSCALL, "syscall"), (log.HARAKIRI_WCHAN, "wchan")):
        try:
            with open(f"/proc/{pid}/{name}") as f:
                text = f.read(4096).strip()
        except OSError:
            continue
        if text:
            log.log(line.format(text=text))
