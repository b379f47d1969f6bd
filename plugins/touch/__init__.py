"""Touch files (TOUCH-1..5): a watched file's mtime changes -> a master action.

Polled with stat() in the master's once-a-second tick, never during a reload
or shutdown. Trigger rule (TOUCH-3): whole-second mtime strictly greater, a
missing file appearing, or an existing file deleted.
"""
from __future__ import annotations

import os

from uwsgi_py import Instance, MasterView, Option, hookimpl

# option -> (action, log suffix); the order is the priority within a tick
TABLE = {
    "touch-reload": ("graceful_reload", "grace them all !!!"),
    "touch-workers-reload": ("reload_workers", "workers reload !!!"),
    "touch-chain-reload": ("chain_reload", "chain reload !!!"),
    "touch-logreopen": ("reopen_logs", "log reopen !!!"),
    "touch-logrotate": ("rotate_logs", "log rotate !!!"),
}
ENDS_TICK = {"touch-reload", "touch-workers-reload", "touch-chain-reload"}
TOUCHED = "*** {path} has been touched... {what} ***"
CHAIN_BUSY = "*** {path} has been touched... but chain reload is already running ***"
NO_STAT = "unable to stat() {path}, events will be triggered as soon as the file is created"
MISSING = None


@hookimpl
def uwsgi_add_options(registry):
    registry.add(*(
        Option(name, f"{action.replace('_', ' ')} when FILE is touched (repeatable)",
               multiple=True, master=True, metavar="FILE")
        for name, (action, _) in TABLE.items()))


def _mtime(path: str):
    try:
        return int(os.stat(path).st_mtime)
    except OSError:
        return MISSING


@hookimpl
def uwsgi_master_start(master):
    state = {}
    for name in TABLE:
        for path in getattr(master.settings, name.replace("-", "_")):
            mtime = _mtime(path)
            if mtime is MISSING:
                from uwsgi_py import log_line as log
                log(NO_STAT.format(path=path))
            state[(name, path)] = mtime
    Instance(master.server).state_for("touch")["mtimes"] = state


def check(state: dict, name: str, paths: list[str]) -> str | None:
    """The first file of ``paths`` that fires (TOUCH-3), recording new mtimes."""
    for path in paths:
        old = state.get((name, path), MISSING)
        new = _mtime(path)
        fired = (old is MISSING and new is not MISSING) or (old is not MISSING and new is MISSING) \
            or (old is not MISSING and new is not MISSING and new > old)
        state[(name, path)] = new
        if fired:
            return path
    return None


@hookimpl
def uwsgi_master_tick(master):
    from uwsgi_py import log_verbose as vlog
    view = MasterView(master)
    state = view.state_for("touch").get("mtimes")
    if not state:
        return
    s = master.settings
    for name, (action, what) in TABLE.items():
        paths = getattr(s, name.replace("-", "_"))
        if not paths:
            continue
        if name in ("touch-logreopen", "touch-logrotate") and not view.has_log_files:
            continue  # TOUCH-5: no --logto and no file logger
        path = check(state, name, paths)
        if path is None:
            continue
        if name == "touch-chain-reload" and view.chain_reloading:
            vlog(CHAIN_BUSY.format(path=path))
        else:
            vlog(TOUCHED.format(path=path, what=what))
            master.request(action)
        if name in ENDS_TICK:
            return
