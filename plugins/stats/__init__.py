"""The stats server (STATS-1..5): uWSGI 2.0's JSON document on a socket, read by uwsgitop.

``--stats ADDR`` binds in the master before the workers are forked (so a bad
address stops a first start with one line), closes the socket in every worker,
and serves one document per connection from the master's loop. The document
is built on demand from the shared scoreboard the workers fill once per
request; the only per-request addition is publishing the current request's
CGI vars for ``cores[].vars`` (skip it with ``--stats-no-cores``).

Across an exec reload the socket is closed (a unix path is removed) and the new
image binds it again; an auto-assigned TCP port (``127.0.0.1:0``) is handed
to the new image so the address stays the same.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

from uwsgi_py import Instance, MasterView, Option, OptionError, Watch, hookimpl, positive_int

if TYPE_CHECKING:
    from .endpoint import StatsServer
# .endpoint and .requestvars are imported only by an instance that enables --stats (the
# master's modules are shared by every worker and count in the instance's memory), and then
# in uwsgi_configure: before --uid/--gid drop privileges, after which the modules (and the
# stdlib ones they import) may no longer be readable

# the resolved auto-assigned address, across an exec reload (uwsgi_handoff_give/_take)
CARRIED: dict = {}
BIND_FAILED = "--stats: bind(): {why} ({address})"
BIND_FAILED_RELOAD = "*** stats server disabled: bind(): {why} ({address}) ***"


@hookimpl
def uwsgi_add_options(registry):
    registry.add(
        Option("stats", "enable the stats server on ADDR (host:port, unix path or @abstract)",
               aliases=("stats-server",), master=True, metavar="ADDR"),
        Option("stats-http", "answer HTTP: the JSON document, /metrics in Prometheus' text "
               "format, /ready (200 or 503) for load balancers and probes", flag=True),
        Option("stats-minified", "send the stats document without whitespace", flag=True,
               aliases=("stats-min",)),
        Option("stats-no-cores", "leave cores (and current request vars) out of the stats",
               flag=True),
        Option("memory-report", "report workers' rss/vsz in stats and uwsgi.workers()", flag=True),
        Option("stats-push", "push uWSGI's metrics to statsd:HOST:PORT[,PREFIX] (UDP)",
               multiple=True, master=True, metavar="statsd:HOST:PORT[,PREFIX]"),
        Option("stats-pusher-default-freq", "seconds between two stats pushes",
               aliases=("stats-pushers-default-freq",), convert=positive_int, default=3,
               metavar="SECS"),
    )


@hookimpl
def uwsgi_configure(settings):
    if settings.stats:
        from . import endpoint, metrics, requestvars  # noqa: F401 - see above
    if settings.stats_push:
        from . import push
        for spec in settings.stats_push:
            try:
                push.StatsdPusher(spec).close()
            except push.PushError as e:
                raise OptionError(f"--stats-push: {e}") from None


@hookimpl
def uwsgi_master_start(master):
    s = master.settings
    if s.stats_push:
        from .push import Pushers
        _mine(master.server)["pushers"] = Pushers(s.stats_push, s.stats_pusher_default_freq,
                                                  s.memory_report)


def _mine(server) -> dict:
    """This plugin's state in this image: ``server`` (the StatsServer), ``pushers``."""
    return Instance(server).state_for("stats")


def _state(server) -> StatsServer | None:
    return _mine(server).get("server")


@hookimpl
def uwsgi_post_apps(server):
    """Master, before fork: bind the stats socket and make the request-vars area."""
    settings = server.settings
    inherited = CARRIED.pop("address", None)
    if not settings.stats:
        return
    from .endpoint import ENABLED, StatsServer, bind
    from .requestvars import RequestVars
    address = inherited or settings.stats
    try:
        sock = bind(address, settings.chmod_socket, settings.listen or 100)
    except OSError as e:
        if not server.is_reload:
            raise OptionError(BIND_FAILED.format(why=e.strerror, address=address)) from None
        from uwsgi_py import log_line as log
        log(BIND_FAILED_RELOAD.format(why=e.strerror, address=address))
        return
    request_vars = None if settings.stats_no_cores else RequestVars(settings.processes,
                                                                   settings.threads)
    state = StatsServer(settings, sock, request_vars)
    _mine(server)["server"] = state
    from uwsgi_py import log_line as log
    log(ENABLED.format(address=state.shown_address(), fd=state.fd))


@hookimpl
def uwsgi_post_fork(worker):
    """Worker: drop the stats socket."""
    state = _state(worker.server)
    if state is not None:
        state.forget_in_worker()


@hookimpl
def uwsgi_request_start(worker):
    """Worker: publish each request's vars for ``cores[].vars``."""
    state = _state(worker.server)
    if state is None or state.request_vars is None:
        return None
    return state.request_vars.writer(worker.id)


@hookimpl
def uwsgi_master_watch(master):
    state = _state(master.server)
    if state is None:
        return None
    state.view = MasterView(master)
    return [Watch(state.fd, state.on_readable)]


@hookimpl
def uwsgi_master_cycle(master):
    state = _state(master.server)
    if state is not None and (state.pending or state.heads):
        state.sweep()


@hookimpl
def uwsgi_master_tick(master):
    state = _state(master.server)
    view = MasterView(master)
    if state is not None:
        state.check_listen_queue(view)
    pushers = _mine(master.server).get("pushers")
    if pushers is not None:
        pushers.tick(view, time.monotonic(), state)


@hookimpl
def uwsgi_master_cleanup(master, reason):
    pushers = _mine(master.server).pop("pushers", None)
    if pushers is not None:
        pushers.close()
    state = _state(master.server)
    if state is None:
        return
    master.unwatch(state.fd)
    if reason == "reload" and state.auto_port():
        CARRIED["address"] = state.address  # for the next image's uwsgi_post_apps
    state.close()
    _mine(master.server).pop("server", None)


@hookimpl
def uwsgi_handoff_give():
    address = CARRIED.pop("address", None)
    return {"state": {"address": address}} if address else None


@hookimpl
def uwsgi_handoff_take(state):
    if isinstance(state, dict) and isinstance(state.get("address"), str):
        CARRIED["address"] = state["address"]
