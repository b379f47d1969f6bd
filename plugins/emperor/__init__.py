"""uWSGI's Emperor, basic mode: ``--emperor DIR|GLOB`` runs one uwsgi-py instance (a vassal) per
config file and follows the files: a new file starts a vassal, a touched one reloads it
(SIGHUP), a removed one stops it (SIGINT), a vassal that dies is started again (throttled
with ``--emperor-throttle`` when it dies young).

uWSGI runs the Emperor as a process of its own (forked by the master when the instance also
has workers). Here the master's loop runs it: the scan is a tick, the vassals are the
master's children, reaped by its loop. ``--emperor`` without any socket runs a master with
no workers. An exec reload of the master keeps the vassals running: the new image adopts
them through the handoff (same pid, so still their parent). A shutdown stops every vassal
(SIGINT; SIGKILL after --reload-mercy, from a helper process so that the master never waits).
"""
from __future__ import annotations

import os
import signal
import time
from typing import TYPE_CHECKING

from uwsgi_py import Instance, Option, hookimpl, non_negative_int, positive_int, vacate_master_fds
from uwsgi_py import log_line as log

if TYPE_CHECKING:
    from .vassals import Emperor

HANDED: dict = {}        # the previous image's vassals (uwsgi_handoff_take)
DEFAULT_MERCY = 60       # seconds the vassals get to stop at shutdown without --reload-mercy
POLL_EVERY = 0.1         # seconds between two looks of the stopper process


@hookimpl
def uwsgi_add_options(registry):
    registry.add(
        Option("emperor", "run the Emperor: one uwsgi-py instance (vassal) per .ini/.toml file "
               "in PATH (a directory) or matching PATH (a glob), started, reloaded and stopped "
               "as the files come, change and go", multiple=True, master=True, metavar="PATH"),
        Option("emperor-freq", "seconds between two scans of the Emperor's directories",
               convert=positive_int, default=3, metavar="SECS"),
        Option("emperor-throttle", "milliseconds a vassal that died young waits before its "
               "next start, growing with each such death",
               convert=non_negative_int, default=1000, metavar="MS"),
        Option("emperor-max-throttle", "the most a vassal's throttle grows to, in "
               "milliseconds", convert=non_negative_int, default=180000,
               metavar="MS"),
    )


@hookimpl
def uwsgi_configure(settings):
    s = settings
    if s.emperor and not (s.socket or s.http_socket or s.http11_socket or s.http):
        # nothing to serve: the master runs the Emperor and forks no worker
        s.processes = 0


def _state(master) -> Emperor | None:
    return Instance(master.server).state_for("emperor").get("emperor")


@hookimpl
def uwsgi_master_start(master):
    s = master.settings
    carried = HANDED.get("vassals") or []
    if not s.emperor:
        if carried:      # the new configuration has no Emperor: its vassals stop
            stop_later(master, [e["pid"] for e in carried if e.get("pid")], _mercy(s))
        return
    from . import vassals     # only a master that runs the Emperor loads it
    emperor = vassals.Emperor(list(s.emperor), master.server.start_dir, s.emperor_freq,
                              s.emperor_throttle, s.emperor_max_throttle)
    emperor.adopt(carried)
    for name, entry in (HANDED.get("blacklist") or {}).items():
        emperor.blacklist[name] = vassals.Throttle(**entry)
    HANDED.clear()
    Instance(master.server).state_for("emperor")["emperor"] = emperor
    log(vassals.STARTING)
    emperor.scan()
    emperor.next_scan = time.monotonic() + emperor.freq


@hookimpl
def uwsgi_master_tick(master):
    emperor = _state(master)
    if emperor is not None:
        emperor.tick()


@hookimpl
def uwsgi_master_cycle(master):
    emperor = _state(master)
    # a vassal that died is started again at once, not a tick later
    if emperor is not None and emperor.next_scan == 0.0 and not emperor.ragnarok:
        emperor.tick()


@hookimpl
def uwsgi_master_reaped(master, pid, status):
    emperor = _state(master)
    if emperor is not None:
        emperor.reaped(pid)


@hookimpl
def uwsgi_master_event(master, event, info):
    emperor = _state(master)
    if emperor is not None and event == "stopping":
        emperor.stop_all()


@hookimpl
def uwsgi_master_cleanup(master, reason):
    emperor = _state(master)
    if emperor is None or (reason == "reload" and not master.settings.exit_on_reload):
        return
    emperor.stop_all()
    stop_later(master, [v.pid for v in emperor.vassals.values()], _mercy(master.settings))


@hookimpl
def uwsgi_handoff_give(master):
    emperor = _state(master)
    if emperor is None or master.settings.exit_on_reload:
        return None
    return {"state": {
        "vassals": [v.to_json() for v in emperor.vassals.values()],
        "blacklist": {n: {"level_ms": t.level_ms, "last": t.last, "attempts": t.attempts}
                      for n, t in emperor.blacklist.items()}}}


@hookimpl
def uwsgi_handoff_take(state):
    if isinstance(state, dict):
        HANDED.clear()
        HANDED.update(state)


def _mercy(s) -> float:
    return float(s.reload_mercy or DEFAULT_MERCY)


def stop_later(master, pids: list[int], mercy: float) -> None:
    """The exiting master does not wait for its vassals: a short-lived process it forks
    SIGKILLs those still alive after ``mercy`` seconds, then says the Emperor is buried."""
    from . import vassals
    fds = [(pid, _pidfd(pid)) for pid in pids]
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, vassals.ALL_SIGNALS)
    try:
        child = os.fork()
    except OSError:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        return
    if child:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for _, fd in fds:
            if fd >= 0:
                os.close(fd)
        return
    try:
        keep = {fd for _, fd in fds}
        vacate_master_fds(master)
        signal.set_wakeup_fd(-1)
        for sig in vassals.ALL_SIGNALS:
            try:
                signal.signal(sig, signal.SIG_DFL)
            except (OSError, ValueError):
                pass
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        deadline = time.monotonic() + mercy
        left = [(p, fd) for p, fd in fds if fd in keep]
        while left and time.monotonic() < deadline:
            time.sleep(POLL_EVERY)     # this helper is not the master: it may wait
            left = [(p, fd) for p, fd in left if not _exited(p, fd)]
        for p, _ in left:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log(vassals.BURIED)
    except BaseException:  # noqa: BLE001 - the helper must never return into the master's code
        pass
    os._exit(0)


def _pidfd(pid: int) -> int:
    try:
        return os.pidfd_open(pid)
    except OSError:
        return -1


def _exited(pid: int, fd: int) -> bool:
    if fd >= 0:
        import select
        p = select.poll()
        p.register(fd, select.POLLIN)
        return bool(p.poll(0))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False
