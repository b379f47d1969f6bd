"""External processes managed by the master: ``--attach-daemon``, ``--smart-attach-daemon``.

As in uWSGI 2.0 (core/daemons.c):

- a *dumb* daemon (``--attach-daemon CMD``) must stay in the foreground; it is
  started with the instance, started again when it dies (throttled when it dies
  within 3 s of its start), stopped (SIGTERM to its process group, SIGKILL after
  --reload-mercy, default 3 s) on shutdown and on every reload, then started again
  by the new image. A ``--attach-control-daemon`` that dies stops the instance.
- a *smart* daemon (``--smart-attach-daemon PIDFILE[,FREQ] CMD``) daemonizes
  itself and writes PIDFILE; it is started when PIDFILE names no live process and
  started again when that process goes away; it survives reloads and shutdown.
  ``--smart-attach-daemon2`` is for a command that stays in the foreground: the
  master writes PIDFILE itself.

The master never waits: deaths and pidfiles are looked at in its once-a-second
tick; at exit a short-lived helper process enforces the SIGKILL deadline. Across
an exec reload, the dumb daemons being stopped are handed to the new image by the core's
handoff (``uwsgi_handoff_give``), which starts each replacement once its predecessor is gone.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from uwsgi_py import Instance, Option, hookimpl

if TYPE_CHECKING:
    from .supervisor import Daemons

HANDED: list = []   # the previous image's dumb daemons still stopping (uwsgi_handoff_take)
INVALID_SMART = "is not PIDFILE[,FREQ] COMMAND"


def _smart_value(raw) -> str:
    text = str(raw).strip()
    head, sep, command = text.partition(" ")
    pidfile, _, freq = head.partition(",")
    if not sep or not pidfile or not command.strip() or (freq and not freq.isdigit()):
        raise ValueError(INVALID_SMART)
    return text


@hookimpl
def uwsgi_add_options(registry):
    registry.add(
        Option("attach-daemon", "run COMMAND (via /bin/sh -c) with the instance: restarted when "
               "it dies, stopped on shutdown and restarted on reload (repeatable)",
               multiple=True, master=True, metavar="COMMAND"),
        Option("attach-control-daemon", "like --attach-daemon, but the instance stops when "
               "COMMAND dies (repeatable)", multiple=True, master=True, metavar="COMMAND"),
        Option("smart-attach-daemon", "run COMMAND, which daemonizes and writes PIDFILE, "
               "whenever PIDFILE names no live process (checked each second; FREQ: seconds to "
               "wait for the pidfile, default 10); it survives reloads and shutdown (repeatable)",
               multiple=True, master=True, convert=_smart_value,
               metavar="PIDFILE[,FREQ] COMMAND"),
        Option("smart-attach-daemon2", "like --smart-attach-daemon for a COMMAND that stays in "
               "the foreground: the master writes PIDFILE (repeatable)", multiple=True,
               master=True, convert=_smart_value, metavar="PIDFILE[,FREQ] COMMAND"),
        Option("daemons-honour-stdin", "give daemons the instance's stdin (default /dev/null)",
               flag=True),
    )


def _state(master) -> Daemons | None:
    return Instance(master.server).state_for("daemons").get("daemons")


@hookimpl
def uwsgi_master_start(master):
    try:
        carried = {entry["key"]: entry for entry in HANDED}
    except (TypeError, KeyError):
        carried = {}
    HANDED.clear()
    s = master.settings
    if not (carried or s.attach_daemon or s.attach_control_daemon or s.smart_attach_daemon
            or s.smart_attach_daemon2):
        return
    from .supervisor import Daemons, configured     # only a master with daemons loads it
    state = Daemons(master, configured(s))
    Instance(master.server).state_for("daemons")["daemons"] = state
    state.start(carried)


@hookimpl
def uwsgi_master_tick(master):
    state = _state(master)
    if state is not None:
        state.tick()


@hookimpl
def uwsgi_master_event(master, event, info):
    state = _state(master)
    if state is not None and event == "stopping":
        state.victims = state.stop()   # they get the workers' shutdown time, then the mercy


@hookimpl
def uwsgi_master_cleanup(master, reason):
    state = _state(master)
    if state is None:
        return
    from . import process
    victims = state.victims if state.victims is not None else state.stop()
    alive = [d for d in victims if not process.exited(d.pid, d.fd)]
    if reason == "reload" and not master.settings.exit_on_reload:
        # the new image starts each one again once its predecessor is gone
        state.handoff = [{"key": d.key, "pid": d.pid, "left": state.mercy} for d in alive]
        return
    if alive:
        process.stop_later([(d.pid, d.fd) for d in alive], state.mercy)


@hookimpl
def uwsgi_handoff_give(master):
    state = _state(master)
    return {"state": state.handoff} if state is not None and state.handoff else None


@hookimpl
def uwsgi_handoff_take(state):
    if isinstance(state, list):
        HANDED[:] = state
