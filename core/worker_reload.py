"""Reloads that replace the workers and keep the master's image (RELOAD-4, CHAIN).

``reload_workers`` HUPs every worker (each is respawned as it exits),
``brutal_reload_workers`` SIGINTs them, ``restore_snapshot`` is the former with
a log line, and ``chain_reload`` replaces them one at a time, each victim
serving until its replacement accepts. The exec reload is ``core/reload.py``.
"""
from __future__ import annotations

import signal
import time

from . import events, log
from .state import State


def ignored(master) -> dict:
    """What an action that does nothing in the master's state reports."""
    return {"ignored": master.state.value}


def reload_workers(master) -> dict:
    """uWSGI ``uwsgi_reload_workers``: HUP every worker, respawn each (RELOAD-4)."""
    if master.state is not State.RUNNING:
        return ignored(master)
    workers = list(master.children.workers.values())
    for child in workers:
        master.children.stop(child, signal.SIGHUP)
    events.workers_reloading(master, "workers")
    return {"signalled": [c.pid for c in workers], "signal": "SIGHUP"}


def brutal_reload_workers(master) -> dict:
    """uWSGI ``uwsgi_brutally_reload_workers``: SIGINT every worker (RELOAD-4)."""
    if master.state is not State.RUNNING:
        return ignored(master)
    workers = list(master.children.workers.values())
    for child in workers:
        log.vlog(log.KILLING_WORKER.format(id=child.id, pid=child.pid))
        master.children.stop(child, signal.SIGINT, on_purpose=False)
    events.workers_reloading(master, "brutal-workers")
    return {"signalled": [c.pid for c in workers], "signal": "SIGINT"}


def restore_snapshot(master) -> dict:
    """The seed's SIGURG: fresh forks of the master's loaded app, no exec."""
    if master.state is not State.RUNNING:
        return ignored(master)
    log.log(log.SNAPSHOT)
    return reload_workers(master)


def chain_reload(master) -> dict:
    """uWSGI ``uwsgi_master_check_chain``: replace workers one at a time (CHAIN-1)."""
    r = master.reloader
    if r.chain:
        log.vlog(log.CHAIN_RUNNING)
        return {"ignored": "a chain reload is running"}
    if master.state is not State.RUNNING:
        return ignored(master)
    log.vlog(log.CHAIN_START)
    r.chain = 1
    events.chain_started(master)
    return {"chain": True}


def advance_chain(master) -> None:
    """CHAIN-2, without dead time: the next victim leaves its slot once the previous
    replacement accepts, and is told to stop once its own replacement does."""
    r, children = master.reloader, master.children
    if not r.chain:
        return
    if r.chain_wait is not None:
        wid, old = r.chain_wait
        new = children.workers.get(wid)
        if new is None or not new.accepting:
            now = time.monotonic()
            if now - r.chain_logged >= 1.0:
                r.chain_logged = now
                log.vlog(log.CHAIN_WAITING.format(id=wid))
            return
        children.stop(old, signal.SIGHUP)
        r.chain_wait = None
        r.chain += 1
    while r.chain <= children.numproc and r.chain not in children.workers:
        r.chain += 1
    if r.chain > children.numproc:
        log.vlog(log.CHAIN_DONE)
        r.chain = 0
        events.chain_done(master)
        return
    r.chain_wait = (r.chain, children.replace(r.chain))
