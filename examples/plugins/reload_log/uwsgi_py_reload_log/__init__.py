"""--reload-log PATH: one JSON line per reload of any kind, and per refused reload.

Built only on the public plugin API: the ``reloading``, ``reloaded`` and
``reload-refused`` events, whose ``info`` keys docs/plugins.md lists.
"""
import json
import os

from uwsgi_py import Option, hookimpl, log_line

EVENTS = ("reloaded", "reload-refused")


@hookimpl
def uwsgi_add_options(registry):
    registry.add(Option("reload-log", "append one JSON line per reload to PATH", master=True,
                        metavar="PATH"))


@hookimpl
def uwsgi_master_event(master, event, info):
    path = master.settings.reload_log
    if not path:
        return
    if event == "reloading":
        log_line(f"reload-log: a {info['kind']} reload starts")
        return
    if event not in EVENTS:
        return
    line = json.dumps({"event": event, **info}, sort_keys=True) + "\n"
    # a small append: O_APPEND writes one line atomically, never blocks on a pipe
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
