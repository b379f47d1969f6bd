"""uWSGI's signal framework for apps: ``uwsgi.register_signal``, timers, crons, file
monitors, locks and mules, so that the real ``uwsgidecorators`` module runs unmodified.

Who does what (docs/signals.md has the user's view):

- the in-app functions are in ``api.py`` (given to the ``uwsgi`` module through
  ``uwsgi_app_api``); registrations made in the master (a preloaded app) are
  inherited by the workers at fork; those made in a worker (``--lazy-apps``)
  are sent to the master;
- the master routes every signal (``scheduler.route``) over pipes made before
  the first fork (``state.py``); workers run handlers between requests
  (``uwsgi_worker_watch``), mules in their own loop (``mules.py``);
- across an exec reload the ``up`` channel, the lock file, every timer's
  deadline, every cron's last run and the mules still stopping are handed to
  the next image by the core's handoff (``uwsgi_handoff_give``/``_take``).
"""
from __future__ import annotations

import os
import signal

from uwsgi_py import Option, Watch, hookimpl, non_negative_int

from . import api, remote, table
from .scheduler import read_up, schedule_of
from .state import HANDED, mine, shared


def _checked(parse):
    def convert(raw):
        parse(raw)
        return str(raw)
    convert.__name__ = parse.__name__
    return convert


def _refuse_spooler(raw):
    raise ValueError("needs the uWSGI spooler, which is not part of uwsgi-py (@spool and "
                     "uwsgi.spool are not available)")


@hookimpl
def uwsgi_add_options(registry):
    O = Option
    timer, cron, cron2 = _checked(table.parse_timer), _checked(table.parse_cron), \
        _checked(table.parse_cron2)
    file_signal = _checked(table.parse_file_signal)
    registry.add(
        O("timer", "add a timer raising SIGNAL every SECONDS (syntax: <signal> <seconds>)",
          aliases=("signal-timer",), multiple=True, master=True, convert=timer,
          metavar="'SIG SECS'"),
        O("rbtimer", "add a redblack timer (syntax: <signal> <seconds>)",
          aliases=("signal-rbtimer",), multiple=True, master=True, convert=timer,
          metavar="'SIG SECS'"),
        O("cron", "add a cron task run by the master (syntax: minute hour day month weekday "
          "command; -1 = every, -N = every Nth)", multiple=True, master=True, convert=cron,
          metavar="'M H D MON WD CMD'"),
        O("cron2", "add a cron task (key=val syntax: minute=,hour=,day=,month=,week=,unique=,"
          "harakiri= then the command)", multiple=True, master=True, convert=cron2,
          metavar="'K=V,... CMD'"),
        O("unique-cron", "add a cron task that never runs twice at once (syntax as --cron)",
          multiple=True, master=True, convert=cron, metavar="'M H D MON WD CMD'"),
        O("cron-harakiri", "seconds a cron command may run before it is SIGKILLed",
          convert=non_negative_int, default=0, metavar="SECS"),
        O("touch-signal", "raise a uwsgi signal when FILE is touched (syntax: file signal)",
          multiple=True, master=True, convert=file_signal, metavar="'FILE SIG'"),
        O("fs-signal", "raise a uwsgi signal when FILE (or directory) is modified "
          "(syntax: file signal)", multiple=True, master=True, convert=file_signal,
          metavar="'FILE SIG'"),
        O("fs-reload", "graceful reload when FILE (or directory) is modified", multiple=True,
          master=True, metavar="FILE"),
        O("fs-brutal-reload", "brutal reload when FILE (or directory) is modified",
          multiple=True, master=True, metavar="FILE"),
        O("signal", "send a uwsgi signal to a server's uwsgi socket and exit",
          metavar="ADDR,SIG", immediate=remote.command),
        O("signal-bufsize", "buffer size of the queue of signals raised by workers and mules",
          aliases=("signals-bufsize",), convert=non_negative_int, default=0, metavar="BYTES"),
        O("locks", "create N user locks besides lock 0 (uwsgi.lock(0..N))",
          convert=non_negative_int, default=0, metavar="N"),
        O("mule", "add a mule (FILE.py or module:callable runs in it; empty: a plain mule)",
          multiple=True, master=True, metavar="[FILE]"),
        O("mules", "add N plain mules", convert=non_negative_int, default=0, master=True,
          metavar="N"),
        O("mule-msg-size", "buffer size of mule message queues", convert=non_negative_int,
          default=0, metavar="BYTES"),
        O("mule-reload-mercy", "seconds a mule may take to stop at a reload or shutdown",
          convert=non_negative_int, default=60, metavar="SECS"),
        O("touch-mules-reload", "reload the mules when FILE is touched", multiple=True,
          master=True, metavar="FILE"),
        O("spooler", "not available: the spooler is not part of uwsgi-py", short="Q",
          multiple=True, convert=_refuse_spooler, metavar="DIR"),
    )


# ---- every process that loads apps ----------------------------------------------------------

@hookimpl
def uwsgi_app_api(server):
    return api.build(shared(server))


@hookimpl
def uwsgi_post_apps(server):
    """Before the first workers of this image are forked: the channels they inherit."""
    state = shared(server)
    if state.role == "master":
        state.open_channels()
        schedule_of(state)


# ---- master ----------------------------------------------------------------------------------

def _state(master):
    state = shared(master.server)
    return state if state.role == "master" else None


@hookimpl
def uwsgi_master_watch(master):
    state = _state(master)
    if state is None:
        return None
    state.watching = True
    schedule = schedule_of(state)
    if state.nmules or state.carried.get("mules") or master.settings.touch_mules_reload:
        # mules to start or to reload, or the previous image's to finish off
        from .mules import Mules
        mine(master.server)["mules"] = Mules(state)
    timer = schedule.start(master)
    return [Watch(state.up_master, lambda: read_up(master, state)), Watch(timer, schedule.fire)]


@hookimpl
def uwsgi_master_start(master):
    mules = mine(master.server).get("mules")
    if mules is not None:
        mules.start(master)
        mine(master.server)["touch"] = {p: _mtime(p) for p in master.settings.touch_mules_reload}


def _mtime(path):
    try:
        return int(os.stat(path).st_mtime)
    except OSError:
        return None


@hookimpl
def uwsgi_master_tick(master):
    state = _state(master)
    if state is None or state.schedule is None:
        return
    state.schedule.tick()
    touched = mine(master.server).get("touch", {})
    for path, old in touched.items():
        new = touched[path] = _mtime(path)
        if (old is None) != (new is None) or (old is not None and new > old):
            from uwsgi_py import log_verbose as vlog
            from .mules import TOUCHED
            vlog(TOUCHED.format(path=path))
            mine(master.server)["mules"].curse(signal.SIGHUP)
            break


@hookimpl
def uwsgi_master_cycle(master):
    mules = mine(master.server).get("mules")
    if mules is not None:
        mules.cycle()


@hookimpl
def uwsgi_master_event(master, event, info):
    mules = mine(master.server).get("mules")
    if event == "stopping" and mules is not None:
        mules.curse(signal.SIGHUP if info.get("graceful") else signal.SIGINT)


@hookimpl
def uwsgi_master_reaped(master, pid, status):
    state = _state(master)
    if state is None:
        return
    mules = mine(master.server).get("mules")
    if mules is not None and mules.reaped(pid):
        return
    if state.schedule is not None:
        state.schedule.reaped(pid)


@hookimpl
def uwsgi_master_cleanup(master, reason):
    state = _state(master)
    if state is None:
        return
    mules = mine(master.server).get("mules")
    if reason == "reload":
        if mules is not None:
            mules.curse(signal.SIGHUP)
        state.handoff = {"fds": {k: fd for k, fd in state.carry().items() if fd >= 0},
                         "state": {"mules": mules.export() if mules else [],
                                   "schedule": state.schedule.export() if state.schedule else {}}}
        return
    if state.schedule is not None:
        state.schedule.close()
    state.close_all()


@hookimpl
def uwsgi_handoff_give(master):
    state = _state(master)
    return state.handoff if state is not None else None


@hookimpl
def uwsgi_handoff_take(state, fds):
    HANDED.update(state=state, fds=fds)


# ---- workers ----------------------------------------------------------------------------------

@hookimpl
def uwsgi_post_fork(worker):
    state = mine(worker.server).get("shared")
    if state is not None and state.instance.master_pid:
        state.enter_worker(worker.id)
    elif state is not None:
        state.locks.after_fork()
    api.call_hook("post_fork_hook")


@hookimpl
def uwsgi_worker_watch(worker):
    state = mine(worker.server).get("shared")
    if state is None or not state.instance.master_pid:
        return None
    # uWSGI's signal plugin: a uwsgi packet with modifier1 110 raises a signal. Put in this
    # worker's modifier1 table directly: as a loaded app it could become the default app
    worker.apps.setdefault(remote.MODIFIER1, remote.SignalRequest(state))
    fds = state.signal_fds()

    def watch(fd: int, one: bool):
        def readable():
            if not api.read_signals(state, fd, one):
                worker.unwatch(fd)       # the master exec'd: this worker is retiring
                os.close(fd)
        return Watch(fd, readable)

    return [watch(fd, one=(fd == state.any_worker[0])) for fd in fds]


@hookimpl
def uwsgi_worker_cleanup(worker):
    api.call_hook("atexit")
