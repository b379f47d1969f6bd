"""The stats document (STATS-2/3): the master's accounting in uWSGI 2.0's keys, order and types.

Built on demand in the master from a ``MasterView``: the workers' counters (the
shared scoreboard they update once per request), the state and the listeners. Nothing here
runs on the request path. Keys after ``workers`` are uwsgi-py's own
(``generation``, ``state``, ``reloads``), placed where uWSGI puts optional
sections so that tools reading uWSGI's keys are not disturbed.
"""
from __future__ import annotations

import os
import time

from uwsgi_py import UWSGI_VERSION as VERSION_COMPAT
from uwsgi_py import __version__

from .requestvars import stable_vars

# uWSGI 2.0 registers these locks; uwsgi-py has none, so every holder pid is 0
LOCKS = ("user 0", "signal", "filemon", "timer", "rbtimer", "cron", "rpc", "snmp")
# reload outcome keys as the master records them (MasterView.reloads)
RELOAD_KEYS = ("generation", "kind", "duration_ms", "workers_replaced", "refused", "error", "time")


def sockets(view) -> tuple[list[dict], int]:
    """``sockets[]`` and the largest current queue (uWSGI's ``listen_queue``)."""
    out, backlog = [], 0
    for sock in view.sockets():
        backlog = max(backlog, sock["queue"])
        out.append({"name": sock["name"], "proto": sock["proto"], "queue": sock["queue"],
                    "max_queue": sock["max_queue"], "shared": 0, "can_offload": 0})
    return out, backlog


def apps(server, slot: dict) -> list[dict]:
    """Per-app entries. Requests are counted per worker, not per app: each app shows
    its worker's totals (exact with one app, the usual case)."""
    return [{"id": i, "modifier1": getattr(app, "modifier1", 0),
             "mountpoint": getattr(app, "name", "") or "", "startup_time": 0,
             "requests": slot["requests"], "exceptions": slot["exceptions"], "chdir": ""}
            for i, app in enumerate(server.apps)]


def core(cid: int, requests: int, since: float | None, request_vars: list[str] | None) -> dict:
    """One core: the worker's only one, or a request thread's (--threads). ``since``: when
    its request started (None: idle); ``vars`` ends with uWSGI's empty string while busy."""
    entry = {"id": cid, "requests": requests, "static_requests": 0, "routed_requests": 0,
             "offloaded_requests": 0, "write_errors": 0, "read_errors": 0,
             "in_request": 0 if since is None else 1, "vars": [], "req_info": {}}
    if since is not None:
        if request_vars is not None:
            entry["vars"] = [*request_vars, ""]
        entry["req_info"] = {"request_start": int(since)}
    return entry


def cores(view, state, wid: int) -> list[dict]:
    """The worker's ``cores``: one without --threads, else one per request thread, each with
    the vars of the request it serves."""
    out = []
    for entry in view.cores(wid):
        since = entry["busy_since"] if entry["in_request"] else None
        request_vars = None
        if since is not None and state.request_vars is not None:
            request_vars = stable_vars(state.request_vars, view, wid, entry["id"])
        out.append(core(entry["id"], entry["requests"], since, request_vars))
    return out


def worker(view, state, wid: int) -> dict:
    slot = view.worker(wid, state.memory_report)
    entry = {key: slot[key] for key in ("id", "pid", "accepting", "requests", "delta_requests",
                                        "exceptions", "harakiri_count", "signals")}
    entry["signal_queue"] = view.control_backlog(wid)
    for key in ("status", "rss", "vsz", "running_time", "last_spawn", "respawn_count", "tx",
                "avg_rt"):
        entry[key] = slot[key]
    entry["apps"] = apps(view.server, slot)
    if state.cores:
        entry["cores"] = cores(view, state, wid)
    return entry


def build(view, state) -> dict:
    """The whole document, in uWSGI's key order, then uwsgi-py's keys (``view``: a
    ``MasterView``)."""
    socks, backlog = sockets(view)
    doc = {
        "version": VERSION_COMPAT,
        "listen_queue": backlog,
        "listen_queue_errors": state.listen_queue_errors,
        "signal_queue": 0,
        "load": backlog,
        "pid": os.getpid(),
        "uid": os.getuid(),
        "gid": os.getgid(),
        "cwd": _cwd(),
        "locks": [{name: 0} for name in LOCKS],
        "sockets": socks,
        "workers": [worker(view, state, wid) for wid in range(1, view.numproc + 1)],
        # ---- beyond uWSGI -------------------------------------------------
        "uwsgi_py_version": __version__,
        "generation": view.generation,
        "state": view.state,
        "reloads": [{key: outcome.get(key) for key in RELOAD_KEYS} for outcome in view.reloads],
        "time": int(time.time()),
    }
    return doc


def _cwd() -> str:
    try:
        return os.getcwd()
    except OSError:
        return ""
