"""Every hook a uwsgi-py plugin can implement; the only place hooks are declared.

Hooks are grouped by phase. Each docstring says when the hook runs, in which
process (CLI, master or worker), what it returns and whether the first
non-None result wins. Call sites pass keywords, so an implementation may
accept a subset of the arguments. Plugins import ``hookimpl`` from
``uwsgi_py``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    from .config import Settings
    from .master import Master
    from .options import Registry
    from .server import App, Server, Watch
    from .sockets import Listener
    from .workers import Worker

hookspec = pluggy.HookspecMarker("uwsgi_py")


# ---- configure ----------------------------------------------------------------

@hookspec
def uwsgi_add_options(registry: "Registry") -> None:
    """Declare this plugin's options with ``registry.add(Option(...), ...)``.

    Runs in the CLI process (the one that becomes the master) at every start,
    in every exec'd image and in the reload-check process, before any argument
    is parsed. The options become flags, TOML/ini keys, ``UWSGI_*`` variables
    and ``uwsgi.opt`` entries, listed under the plugin's name in ``--help`` and
    docs/options.md. Every implementation runs; returns nothing. A name another
    plugin owns is an error naming both; an exception is a one-line startup
    error naming the plugin. Never read values, the environment or files here:
    nothing is parsed yet (read ``settings`` in ``uwsgi_configure``).
    """


@hookspec
def uwsgi_configure(settings: "Settings") -> None:
    """Check or derive settings once every source is applied.

    Runs in the CLI process (the future master) once the command line, config
    files and environment are merged, before launch modes and sockets; also in
    the reload-check process. Every implementation runs; returns nothing.
    Raise ``uwsgi_py.OptionError`` with one clear line to refuse a value; the
    server exits 1 with that line. Never bind sockets, fork or start threads
    here: the process may still daemonize.
    """


# ---- launch ------------------------------------------------------------------

@hookspec
def uwsgi_launch(server: "Server") -> None:
    """Act before sockets are bound: daemonize, redirect logs.

    Runs in the process that becomes the master (or worker 1 without
    ``--master``), after ``--logto`` is opened, on a first start only (never
    after an exec reload, DAEMON-4). Every implementation runs; returns
    nothing. The only hook that may fork and exit the parent (daemonize).
    Never bind sockets or load apps here: the core does both next.
    """


@hookspec
def uwsgi_adopt_sockets(server: "Server") -> "list[Listener] | None":
    """Listening sockets this launch mode supplies (inetd's fd 0, systemd's fds).

    Runs in the master (or worker 1 without ``--master``) on a first start
    only, before the configured sockets are bound. Return a list of listeners
    made by ``adopt_listener(fd, proto)``, or None. Every implementation runs and all results
    are used (not first-result-wins). A returned listener bound at a
    configured socket's address becomes that socket, with its protocol,
    instead of being bound again (SYSD-4's fix); the others are added after
    the configured ones. The core keeps them all across exec reloads. Raise
    ``OptionError`` to refuse a socket (a connected fd 0). Never accept
    connections on the sockets you return.
    """


@hookspec
def uwsgi_post_apps(server: "Server") -> None:
    """Runs in the master after apps are loaded, before workers are forked.

    Also runs after exec reloads (check ``server.is_reload``), and without
    ``--master`` in the process that becomes worker 1. With lazy apps nothing
    is loaded yet. Every implementation runs; returns nothing.
    ``--daemonize2`` detaches here. Never fork workers or serve requests, and
    remember every worker inherits what is opened here.
    """


# ---- apps and requests -----------------------------------------------------------

@hookspec
def uwsgi_load_apps(server: "Server") -> "list[App] | None":
    """Load the applications this plugin serves (``--wsgi-file``, ``--rack``).

    Runs in the master before it forks workers, or in each worker after
    ``uwsgi_post_fork`` with ``--lazy-apps``/``--lazy``, and in the throwaway
    reload-check process. Return a list of ``App`` objects (each with
    ``modifier1``, ``name`` and ``__call__(request)``), or None when this
    plugin has nothing configured. Every implementation runs and all results
    are used (not first-result-wins): a request goes to the first app whose
    ``modifier1`` matches it; HTTP requests and modifier1 0 fall back to the
    first app. Raise to report a load error: the core logs the traceback (and
    exits 22 with ``--need-app``). Never start threads or open shared
    connections here unless apps are lazy: workers are forked afterwards.
    """


@hookspec
def uwsgi_request_handler(worker: "Worker") -> "Callable[[Any], bool] | None":
    """A function that sees every request before its app (static files).

    Runs once in each worker, after its apps are loaded and before it serves.
    Return ``handler(request) -> bool``, or None when nothing of this plugin is
    configured (then it costs no request anything). Every implementation runs;
    the worker calls the handlers in turn for each request: the first that
    returns True has answered it (with ``request.start()``, ``write()``,
    ``sendfile()``), and the app is not called; False passes the request on.
    A handler runs in the worker's request path like an app: its exceptions
    are logged as the app's (500). Never block on anything but the client,
    never read the body unless you answer, and never keep the request.
    """


@hookspec
def uwsgi_app_api(server: "Server") -> "dict[str, Any] | None":
    """Functions (or values) this plugin adds to the in-app ``uwsgi`` module.

    Called each time the python plugin builds that module: in the master
    before it loads apps, in each worker with ``--lazy-apps``, and in the
    reload-check process. Return ``{name: function}`` or None. Every
    implementation runs; the results are set on the module after its own
    functions and the not-implemented stubs, so a plugin can replace a stub
    (``register_signal``) or a built-in (``mule_id``); when two plugins give
    one name, which wins is unspecified. Never fork, start threads or talk to
    the master here: apps have not been imported yet.
    """


@hookspec(firstresult=True)
def uwsgi_request_logger(worker: "Worker") -> "Callable[..., None] | None":
    """The function that logs this worker's requests in place of the core's line.

    Called in each worker once, after ``uwsgi_post_fork`` (and lazy app
    loading), before it accepts. Return a callable
    ``log_request(worker, request, uri, started, micros)``, or None to keep the
    core's default line (and ``--disable-logging``); the first non-None result
    wins. The callable runs in the worker after every request, once the
    response is sent: ``started`` is the request's start (``time.time()``),
    ``micros`` its duration, ``request`` the core ``Request`` (``vars``,
    ``status``, ``sent``, ``hsize``, ``nheaders``); it decides whether the
    request is logged at all. It must never raise, block or write more than
    one line per request; it costs every request, so precompute what you can
    here.
    """


@hookspec
def uwsgi_response_headers(worker: "Worker") -> "Callable[[Any, int], Any] | None":
    """A function that sees every response this worker sends and may add headers.

    Runs once in each worker, after its apps are loaded and before it serves.
    Return ``on_response(request, status) -> [(name, value), ...] | None``, or
    None when nothing of this plugin is configured (then it costs no response
    anything). Every implementation runs; each function is called for every
    response the worker sends, once its status is known and before its head is
    written: an app's or a request handler's (``request`` is the core request,
    ``status`` an int), and the core's own error responses (400, 408, 413, 500,
    ...; ``request`` is None when the request could not be parsed). The pairs
    it returns are added to the head in order. It must never raise (a function
    that raises is logged and adds nothing), block, or write to the client.
    """


@hookspec
def uwsgi_request_start(worker: "Worker") -> "Callable[[dict | None, int], None] | None":
    """A function called as each request of this worker starts being served.

    Runs once in each worker, after its apps are loaded and before it serves.
    Return ``on_start(env, core)`` or None (then no request pays anything).
    Every implementation runs; each function is called on every request, before
    the worker shows busy: ``env`` is the request's variables (None or empty if
    it has none), ``core`` the thread that serves it (0 without ``--threads``).
    It must be cheap and never raise or block.
    """


# ---- master ------------------------------------------------------------------
# An exception raised by an implementation of a master hook (actions, init, watch, start,
# cycle, tick, event, cleanup) is logged with the plugin's name; the other
# implementations still run and the master carries on (plugins.HookGuard).

@hookspec
def uwsgi_master_actions() -> "dict[str, Callable[[Master], Any]] | None":
    """Named master actions this plugin adds or overrides.

    Runs in the master once per image (at start and after each exec reload),
    before any trigger is read. Return ``{name: function(master)}`` or None.
    Every implementation runs; the dicts are merged over the built-in actions
    (``core/actions.py``), so a plugin may override one; when two plugins
    define one name, which wins is unspecified. Actions run on the master's
    only thread from its loop: change state, signal workers, log, return
    (the built-in ones return a dict saying what they did; None is fine).
    Never block, sleep or wait for a child in an action; a long operation is
    a state that ``uwsgi_master_cycle`` completes.
    """


@hookspec
def uwsgi_fifo_commands() -> "dict[str, str] | None":
    """Master FIFO bytes this plugin adds or overrides: ``{"r": "graceful_reload"}``.

    Runs in the master when the FIFO plugin builds its byte table (FIFO-8),
    once per image; never called without the fifo plugin. Return
    ``{byte: action_name}`` (one-character keys, names from
    ``uwsgi_master_actions`` or the built-ins; None removes a byte) or None.
    Every implementation runs; all results are merged over the built-in
    table, and when two plugins claim one byte, which wins is unspecified.
    Never act here or touch the FIFO: the fifo plugin reads bytes and
    requests the action.
    """


@hookspec
def uwsgi_master_init(master: "Master") -> None:
    """Runs in the master once per image (at start and after each exec reload),
    after its signal and notify pipes exist and before the first workers are
    forked.

    Prepare per-master state that decides how the first workers start, e.g.
    keep worker slots empty with ``master.cheap_slot(wid)`` (cheaper mode).
    Every implementation runs; returns nothing. Never fork, block or open fds
    here (workers would inherit them); open control channels in
    ``uwsgi_master_watch``.
    """


@hookspec
def uwsgi_master_watch(master: "Master") -> "list[Watch] | None":
    """File descriptors the master should poll, each with a callback.

    Runs in the master once per image (at start and after each exec reload),
    after the first workers are forked and before ``uwsgi_master_start``.
    Return a list of ``Watch(fd, callback)`` or None; every implementation
    runs and all watches are registered (the core closes them in workers
    forked later). Open the fd inside this hook. Callbacks run on the
    master's only thread when the fd is readable: read what is there
    (non-blocking), call ``master.request(action_name)``, return. Never
    block, never act directly. A callback that raises is logged with the
    plugin's name and its fd is no longer watched.
    """


@hookspec
def uwsgi_master_start(master: "Master") -> None:
    """Runs in the master once per image, after the first workers are forked
    and ``uwsgi_master_watch`` has run, just before the loop starts.

    Record file state (touch files), open control channels. Every
    implementation runs; returns nothing. Never block or wait for workers:
    readiness is the ``ready`` event of ``uwsgi_master_event``.
    """


@hookspec
def uwsgi_master_cycle(master: "Master") -> None:
    """Runs in the master on every pass of its loop, at least once a second.

    Called after pending actions ran, children were reaped and transitions
    advanced, in every state (also during reloads and shutdown). Every
    implementation runs; returns nothing. Keep it cheap: never block, sleep
    or perform actions directly (``master.request(name)`` queues one).
    """


@hookspec
def uwsgi_master_tick(master: "Master") -> None:
    """Runs in the master about once a second (polling touch files, log size).

    Only while the master is running normally: not while a reload (or its
    check) or a shutdown is in progress. Every implementation runs; returns
    nothing. Never block; queue actions with ``master.request(name)``.
    """


@hookspec
def uwsgi_master_event(master: "Master", event: str, info: "dict[str, Any]") -> None:
    """A lifecycle event in the master: ``ready`` (workers serve), ``reloading``,
    ``reload-refused``, ``reloaded``, ``stopping``, ``paused``, ``resumed``,
    ``worker-respawned``.

    Runs in the master on its loop thread as the event happens (sd_notify,
    stats). ``info`` keys per event are in ``core/events.py`` (``EVENTS``) and
    docs/plugins.md: ``kind`` for ``reloading``; the reload outcome
    (``generation``, ``kind``, ``duration_ms``, ``workers_replaced``,
    ``refused``, ``error``, ``time``) for ``reloaded`` and ``reload-refused``;
    every reload kind is reported (``graceful``, ``brutal``, ``workers``,
    ``brutal-workers``, ``chain``). Every implementation runs; returns
    nothing. Never block, and never perform actions from here: queue them with
    ``master.request(name)``.
    """


@hookspec
def uwsgi_master_reaped(master: "Master", pid: int, status: int) -> None:
    """A child of the master that is not a worker was reaped (a mule, a daemon,
    a cron command).

    Runs in the master on its loop thread, from ``Master.reap()``, once per
    reaped pid that is neither a current worker, a retiring worker nor the
    reload-check process, in every state (also during reloads and shutdown);
    ``status`` is the raw ``waitpid`` status. Every implementation runs;
    returns nothing. Ignore pids you did not start (a child of a previous
    image may be reaped after an exec reload). Never block or wait for
    another child; respawn by forking at once or at a deadline checked in
    ``uwsgi_master_cycle``.
    """


@hookspec
def uwsgi_master_cleanup(master: "Master", reason: str) -> None:
    """Runs in the master before it execs (``reason='reload'``) or exits
    (``reason='exit'``).

    Close or remove what the plugin created (its FIFO, helper processes);
    after a reload the new image calls ``uwsgi_master_watch`` again. Every
    implementation runs; returns nothing. Never block and never raise.
    """


# ---- handoff across an exec reload ---------------------------------------------

@hookspec
def uwsgi_handoff_give(master: "Master") -> "dict[str, Any] | None":
    """What this plugin hands to the next image of the master: state and fds.

    Runs in the master just before it execs for a graceful or brutal reload,
    after ``uwsgi_master_cleanup(reason='reload')`` (never for a refork, an
    ``--exit-on-reload`` or a shutdown). Return ``{"state": <JSON-able value>,
    "fds": {"name": fd, ...}}`` or None. Every implementation runs; the core
    keys each result by the plugin's name, keeps the fds open across the exec
    (and only those, besides its own) and gives both to the same plugin's
    ``uwsgi_handoff_take`` in the next image. A result that is not JSON-able or
    names a closed fd is logged and dropped. Never close a handed-off fd
    afterwards, and never use the environment to carry state yourself.
    """


@hookspec
def uwsgi_handoff_take(server: "Server", state: Any, fds: "dict[str, int]") -> None:
    """What this plugin's previous image handed off (``uwsgi_handoff_give``).

    Runs in the master of an image started by an exec reload, once, right
    after the listening sockets are adopted and before ``uwsgi_app_api``,
    ``uwsgi_load_apps`` and ``uwsgi_post_apps``; only for a plugin that gave
    something. ``state`` is the JSON value given; ``fds`` maps each name to an
    fd that is open, close-on-exec again and owned by the plugin from now on
    (a named fd that did not survive is left out and logged). The fds of a
    plugin that is no longer loaded are closed by the core. Keep what you
    need in module state (one master image per process). An exception is
    logged with the plugin's name and the reload carries on. Every
    implementation runs (each gets only its own plugin's state); returns nothing.
    Never fork, start threads or serve here: apps have not loaded yet.
    """


# ---- worker ------------------------------------------------------------------

@hookspec
def uwsgi_post_fork(worker: "Worker") -> None:
    """Runs in each new worker right after fork, after its signals are reset and
    before apps are served (lazy apps load after this); without ``--master``
    also in the main process, which becomes worker 1.

    Close master-only fds, start per-worker helpers (the Ruby process). Every
    implementation runs; returns nothing. Never touch the master's pipes or
    replace the signal handlers the core installed.
    """


@hookspec
def uwsgi_worker_watch(worker: "Worker") -> "list[Watch] | None":
    """File descriptors the worker should poll between requests, each with a callback.

    Runs in each worker once, after apps are loaded and just before its loop
    starts (``worker.id``, ``worker.server`` are set). Return a list of
    ``Watch(fd, callback)`` or None; every implementation runs and all
    watches are registered in the worker's epoll. A callback runs on the
    worker's only thread when its fd is readable, never while a request is
    being served: read what is there (non-blocking) and act. Remove a watch
    with ``worker.unwatch(fd)`` (e.g. at EOF). Never block in a callback: the
    worker serves nothing meanwhile.
    """


@hookspec
def uwsgi_worker_cleanup(worker: "Worker") -> None:
    """Runs in a worker that leaves its loop normally (graceful stop, reload,
    max-requests); not in one that is killed.

    Stop per-worker helpers. Every implementation runs; returns nothing.
    Never block past ``--worker-reload-mercy``: the master then SIGKILLs the
    worker.
    """
