"""What one image hands to the next across an exec reload (STYLE §6).

All of it travels in ``UWSGI_PY_*`` environment variables that the new image
pops at start, so no worker or app ever sees them (RELOAD-9's fix).
"""
from __future__ import annotations

import json
import os
import signal
import sys
from dataclasses import dataclass, field

from . import log, signals

FDS = "UWSGI_PY_FDS"            # listeners by option and position
GENERATION = "UWSGI_PY_GENERATION"  # uWSGI's UWSGI_RELOADS
OLD_WORKERS = "UWSGI_PY_OLD_WORKERS"  # workers of the previous image still serving
RELOAD = "UWSGI_PY_RELOAD"      # kind and start time of the reload in progress
START_DIR = "UWSGI_PY_START_DIR"
PREFLIGHT = "UWSGI_PY_PREFLIGHT"  # set in the throwaway reload-check process
PLUGINS = "UWSGI_PY_PLUGINS"    # each plugin's uwsgi_handoff_give result (api.give_handoffs)


@dataclass
class Handoff:
    is_reload: bool = False
    generation: int = 0
    fds: list[dict] = field(default_factory=list)
    old_workers: list[dict] = field(default_factory=list)
    reload: dict = field(default_factory=dict)
    start_dir: str | None = None
    preflight: bool = False
    plugins: dict = field(default_factory=dict)


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
    if carried:
        h.plugins = json.loads(carried)
    if gen is not None:
        h.is_reload = True
        try:
            h.generation = int(gen)
        except ValueError:
            h.generation = 1
    if fds:
        h.fds = json.loads(fds)
    if old:
        h.old_workers = json.loads(old)
    if reload:
        h.reload = json.loads(reload)
    return h


def give(environ: dict, *, generation: int, fds: list[dict], old_workers: list[dict],
         reload: dict, start_dir: str) -> dict:
    env = dict(environ)
    env[GENERATION] = str(generation)
    env[FDS] = json.dumps(fds)
    env[OLD_WORKERS] = json.dumps(old_workers)
    env[RELOAD] = json.dumps(reload)
    env[START_DIR] = start_dir
    return env


def exec_image(server, table: dict[int, str], old_workers: list[dict], reload: dict,
               extra_fds: set[int] = frozenset()) -> None:
    """RELOAD-5 steps 4-6: start directory, keep the listeners (and the old workers'
    control pipes), close every other fd, exec the original argv with the handoff.
    The master's signals stay blocked across the exec (``signals.block_for_exec``)."""
    log.log(log.CHDIR.format(path=server.start_dir))
    os.chdir(server.start_dir)
    log.log(log.CLOSING_FDS.format(max_fd=os.sysconf("SC_OPEN_MAX")))
    keep = {0, 1, 2} | {w["ctl"] for w in old_workers if w.get("ctl", -1) >= 0}
    for fd in extra_fds:          # plugins' fds that the next image adopts (Master.exec_fds)
        os.set_inheritable(fd, True)
        keep.add(fd)
    for index, lst in enumerate(server.listeners):
        os.set_inheritable(lst.fd, True)
        keep.add(lst.fd)
        log.log(log.FD_MAPPED.format(fd=lst.fd, index=index, name=lst.name))
    signals.block_for_exec(table)
    close_unrelated_fds(keep)
    args = [sys.executable, *sys.orig_argv[1:]]
    env = give(os.environ, generation=server.generation + 1, fds=server.handoff_fds(),
               old_workers=old_workers, reload=reload, start_dir=server.start_dir)
    log.log(log.RUNNING.format(path=" ".join(args)))
    signal.set_wakeup_fd(-1)
    try:
        os.execve(sys.executable, args, env)
    except OSError as e:
        # nothing is left to serve with (fds closed): say why and stop
        log.log(f"execve({sys.executable}): {e.strerror}; the instance cannot reload and exits")
        os._exit(1)


def close_unrelated_fds(keep: set[int]) -> None:
    """RELOAD-6: close every fd but the listeners, fds 0-2 and what the next image adopts,
    including inheritable fds an app or a C extension opened in the master."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 1024))
    for fd in fds:
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass
