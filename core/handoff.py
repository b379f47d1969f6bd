"""What one image hands to the next across an exec reload (STYLE §6).

All of it travels in ``UWSGI_PY_*`` environment variables that the new image
pops at start, so no worker or app ever sees them (RELOAD-9's fix). The exec
itself is ``reload.exec_image``.
"""
from __future__ import annotations

import os

FDS = "UWSGI_PY_FDS"            # listeners by option and position
GENERATION = "UWSGI_PY_GENERATION"  # uWSGI's UWSGI_RELOADS
OLD_WORKERS = "UWSGI_PY_OLD_WORKERS"  # workers of the previous image still serving
RELOAD = "UWSGI_PY_RELOAD"      # kind and start time of the reload in progress
START_DIR = "UWSGI_PY_START_DIR"
PREFLIGHT = "UWSGI_PY_PREFLIGHT"  # set in the throwaway reload-check process
PLUGINS = "UWSGI_PY_PLUGINS"    # each plugin's uwsgi_handoff_give result (api.give_handoffs)


class Handoff:
    """What the previous image left in the environment (nothing, on a first start)."""

    def __init__(self) -> None:
        self.is_reload = False
        self.generation = 0
        self.fds: list[dict] = []
        self.old_workers: list[dict] = []
        self.reload: dict = {}
        self.start_dir: str | None = None
        self.preflight = False
        self.plugins: dict = {}


def take(environ=os.environ) -> Handoff:
    """Pop every handoff variable; a first start has none of them."""
    h = Handoff()
    h.preflight = environ.pop(PREFLIGHT, None) == "1"
    gen = environ.pop(GENERATION, None)
    fds = environ.pop(FDS, None)
    old = environ.pop(OLD_WORKERS, None)
    reload = environ.pop(RELOAD, None)
    h.start_dir = environ.pop(START_DIR, None)
    carried = environ.pop(PLUGINS, None)
    if gen is not None:
        h.is_reload = True
        try:
            h.generation = int(gen)
        except ValueError:
            h.generation = 1
    if carried or fds or old or reload:
        import json   # only a reload carries state: a first start does not import json
        if carried:
            h.plugins = json.loads(carried)
        if fds:
            h.fds = json.loads(fds)
        if old:
            h.old_workers = json.loads(old)
        if reload:
            h.reload = json.loads(reload)
    return h


def give(environ: dict, *, generation: int, fds: list[dict], old_workers: list[dict],
         reload: dict, start_dir: str) -> dict:
    import json
    env = dict(environ)
    env[GENERATION] = str(generation)
    env[FDS] = json.dumps(fds)
    env[OLD_WORKERS] = json.dumps(old_workers)
    env[RELOAD] = json.dumps(reload)
    env[START_DIR] = start_dir
    return env
