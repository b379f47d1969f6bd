"""The master's lifecycle events (``uwsgi_master_event``): every name, its ``info`` keys,
and the reporting of worker-only reloads (``reload_workers``, chain reloads).

A full reload (exec) is reported by the master itself; a reload that only replaces
workers ends when every worker it asked to stop is gone and every slot accepts
again, which the master checks on each pass of its loop (``check``).
"""
from __future__ import annotations

import time
import weakref

# every event and the keys of its ``info`` dict (docs/plugins.md lists the same; a test checks)
OUTCOME = ("generation", "kind", "duration_ms", "workers_replaced", "refused", "error", "time")
EVENTS: dict[str, tuple[str, ...]] = {
    "ready": (),
    "reloading": ("kind",),
    "reload-refused": OUTCOME,
    "reloaded": OUTCOME,
    "stopping": ("graceful",),
    "paused": (),
    "resumed": (),
    "worker-respawned": ("id",),
}
# reload kinds: "graceful" and "brutal" exec a new image; the others replace the workers only
KINDS = ("graceful", "brutal", "workers", "brutal-workers", "chain")


class _Progress:
    __slots__ = ("kind", "started", "pids")

    def __init__(self, kind: str, pids: set[int]):
        self.kind = kind
        self.started = time.time()
        self.pids = pids


_under_way: "weakref.WeakKeyDictionary[object, _Progress]" = weakref.WeakKeyDictionary()


def emit(master, event: str, info: dict) -> None:
    master.guard.master(master.hook.uwsgi_master_event, master=master, event=event, info=info)


def workers_reloading(master, kind: str) -> None:
    """``reload_workers`` asked every worker to stop (``kind``: workers, brutal-workers)."""
    if master in _under_way:
        _under_way[master].pids.update(c.pid for c in master.children.workers.values())
        return
    _under_way[master] = _Progress(kind, {c.pid for c in master.children.workers.values()})
    emit(master, "reloading", {"kind": kind})


def chain_started(master) -> None:
    _under_way[master] = _Progress("chain", {c.pid for c in master.children.workers.values()})
    emit(master, "reloading", {"kind": "chain"})


def chain_done(master) -> None:
    progress = _under_way.pop(master, None)
    if progress is not None:
        _finish(master, progress, len(progress.pids))


def check(master) -> None:
    """Once per loop pass: a worker-only reload is over when its old workers are gone
    and every worker accepts. A full reload or a shutdown replaces it (not reported)."""
    progress = _under_way.get(master)
    if progress is None or progress.kind == "chain":
        return
    if master.state.value != "running":
        del _under_way[master]
        return
    alive = {c.pid for c in master.children.workers.values()} | set(master.children.retiring)
    if progress.pids & alive:
        return
    if not all(c.accepting for c in master.children.workers.values()):
        return
    del _under_way[master]
    _finish(master, progress, len(progress.pids))


def _finish(master, progress: _Progress, replaced: int) -> None:
    now = time.time()
    emit(master, "reloaded", {
        "generation": master.server.generation, "kind": progress.kind,
        "duration_ms": int((now - progress.started) * 1000), "workers_replaced": replaced,
        "refused": False, "error": "", "time": int(now)})
