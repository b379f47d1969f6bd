"""A plugin that raises in every hook named by ``--faulty-fail HOOK`` (repeatable).

HOOK is a hook name without ``uwsgi_`` (``configure``, ``launch``, ``adopt_sockets``,
``post_apps``, ``master_actions``, ``master_init``, ``master_start``, ``master_cycle``, ``master_tick``,
``master_event``, ``master_cleanup``) or ``watch``: with ``--faulty-fifo PATH``
the master watches that FIFO and the callback raises on the first byte read.
Every hook it did run logs ``faulty-plugin: ran HOOK`` once per image.
"""
from __future__ import annotations

import os

from uwsgi_py import Option, Watch, hookimpl


SEEN: set[str] = set()   # hooks already logged by this image
FAIL: set[str] = set()   # --faulty-fail, kept at configure: uwsgi_master_actions gets no settings


def _run(hook: str) -> None:
    if hook not in SEEN:
        SEEN.add(hook)
        os.write(2, f"faulty-plugin: ran {hook}\n".encode())
    if hook in FAIL:
        raise RuntimeError(f"faulty plugin fails in {hook} on purpose")


@hookimpl
def uwsgi_add_options(registry):
    registry.add(
        Option("faulty-fail", "raise in HOOK (repeatable)", multiple=True, metavar="HOOK"),
        Option("faulty-fifo", "a FIFO the master watches for this plugin", metavar="PATH"),
    )


@hookimpl
def uwsgi_configure(settings):
    FAIL.update(settings.faulty_fail)
    _run("configure")


@hookimpl
def uwsgi_launch(server):
    _run("launch")


@hookimpl
def uwsgi_adopt_sockets(server):
    _run("adopt_sockets")


@hookimpl
def uwsgi_post_apps(server):
    _run("post_apps")


@hookimpl
def uwsgi_master_actions():
    _run("master_actions")
    return None


@hookimpl
def uwsgi_master_init(master):
    _run("master_init")


@hookimpl
def uwsgi_master_watch(master):
    path = master.settings.faulty_fifo
    if not path:
        return None
    if not os.path.exists(path):
        os.mkfifo(path, 0o600)
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)   # RDWR: never at EOF

    def readable():
        data = os.read(fd, 4096)
        _run("watch")
        os.write(2, f"faulty-plugin: read {data!r}\n".encode())

    return [Watch(fd, readable)]


@hookimpl
def uwsgi_master_start(master):
    _run("master_start")


@hookimpl
def uwsgi_master_cycle(master):
    _run("master_cycle")


@hookimpl
def uwsgi_master_tick(master):
    _run("master_tick")


@hookimpl
def uwsgi_master_event(master, event, info):
    _run("master_event")


@hookimpl
def uwsgi_master_cleanup(master, reason):
    _run("master_cleanup")
