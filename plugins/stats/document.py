"""The stats document (STATS-2/3): the master's accounting in uWSGI 2.0's keys, order and types.

Built on demand in the master, from the shared scoreboard the workers update
once per request, the master's worker table and its listeners. Nothing here
runs on the request path. Keys after ``workers`` are uwsgi-py's own
(``generation``, ``state``, ``reloads``), placed where uWSGI puts optional
sections so that tools reading uWSGI's keys are not disturbed.
"""
from __future__ import annotations

import array
import fcntl
import os
import termios
import time

from uwsgi_py import UWSGI_VERSION as VERSION_COMPAT
from uwsgi_py import __version__
from uwsgi_py.scoreboard import BUSY, memory, status_name
from uwsgi_py.sockets import queue

from .requestvars import stable_vars

# uWSGI 2.0 registers these locks; uwsgi-py has none, so every holder pid is 0
LOCKS = ("user 0", "signal", "filemon", "timer", "rbtimer", "cron", "rpc", "snmp")
# reload outcome keys as the master records them (Master.outcome)
RELOAD_KEYS = ("generation", "kind", "duration_ms", "workers_replaced", "refused", "error", "time")


def pending_bytes(fd: int) -> int:
    """Bytes waiting in a pipe (FIONREAD): a worker's unread control commands."""
    if fd < 0:
        return 0
    buf = array.array("i", [0])
    try:
        fcntl.ioctl(fd, termios.FIONREAD, buf)
    except OSError:
        return 0
    return buf[0]


def socket_name(listener) -> str:
    """The configured address, or the resolved one when the port was auto-assigned."""
    if listener.name.endswith(":0"):
        return listener.address()
    return listener.name


def sockets(listeners) -> tuple[list[dict], int]:
    """``sockets[]`` and the largest current queue (uWSGI's ``listen_queue``)."""
    out, backlog = [], 0
    for lst in listeners:
        waiting, max_queue = queue(lst)
        backlog = max(backlog, waiting)
        out.append({"name": socket_name(lst), "proto": lst.proto, "queue": waiting,
                    "max_queue": max_queue, "shared": 0, "can_offload": 0})
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


def cores(board, state, wid: int, slot: dict) -> list[dict]:
    """The worker's ``cores``: one without --threads, else one per request thread."""
    if board.cores > 1:
        entries = [(c["id"], c["requests"], c["busy_since"] if c["in_request"] else None)
                   for c in board.read_cores(wid)]
    else:
        since = slot["busy_since"] if slot["status"] == BUSY else None
        entries = [(0, slot["requests"], since)]
    out = []
    for cid, requests, since in entries:
        request_vars = None
        if since is not None and state.request_vars is not None:
            request_vars = stable_vars(state.request_vars, board, wid, cid)
        out.append(core(cid, requests, since, request_vars))
    return out


def worker(master, state, wid: int) -> dict:
    board = master.scoreboard
    slot = board.read(wid)
    child = master.workers.get(wid)
    rss, vsz = memory(slot["pid"]) if state.memory_report else (slot["rss"], slot["vsz"])
    entry = {
        "id": wid, "pid": slot["pid"], "accepting": slot["accepting"],
        "requests": slot["requests"], "delta_requests": slot["delta_requests"],
        "exceptions": slot["exceptions"], "harakiri_count": slot["harakiri_count"],
        "signals": slot["signals"],
        "signal_queue": pending_bytes(child.ctl if child is not None else -1),
        "status": status_name(slot["status"], board.paused),
        "rss": rss, "vsz": vsz, "running_time": slot["running_time"],
        "last_spawn": slot["last_spawn"], "respawn_count": slot["respawn_count"],
        "tx": slot["tx"], "avg_rt": slot["avg_rt"], "apps": apps(master.server, slot),
    }
    if state.cores:
        entry["cores"] = cores(board, state, wid, slot)
    return entry


def reloads(master) -> list[dict]:
    return [{key: outcome.get(key) for key in RELOAD_KEYS} for outcome in master.reloads]


def build(master, state) -> dict:
    """The whole document, in uWSGI's key order, then uwsgi-py's keys."""
    server = master.server
    socks, backlog = sockets(server.listeners)
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
        "workers": [worker(master, state, wid) for wid in range(1, master.numproc + 1)],
        # ---- beyond uWSGI -------------------------------------------------
        "uwsgi_py_version": __version__,
        "generation": server.generation,
        "state": getattr(master.state, "value", str(master.state)),
        "reloads": reloads(master),
        "time": int(time.time()),
    }
    return doc


def _cwd() -> str:
    try:
        return os.getcwd()
    except OSError:
        return ""
