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

    Runs in the CLI process at every start (and in every exec'd image), before
    any argument is parsed. The options become flags, TOML/ini keys, ``UWSGI_*``
    variables and ``uwsgi.opt`` entries, listed under the plugin's name in
    ``--help``. Returns nothing. Must not read the environment or open files.
    """


@hookspec
def uwsgi_configure(settings: "Settings") -> None:
    """Check or derive settings once every source is applied.

    Runs in the CLI process, before launch modes and sockets. Raise
    ``uwsgi_py.OptionError`` with one clear line to refuse a value; the
    server exits 1 with that line. Returns nothing.
    """


# ---- launch ------------------------------------------------------------------

@hookspec
def uwsgi_launch(server: "Server") -> None:
    """Act before sockets are bound: daemonize, redirect logs.

    Runs in the process that becomes the master, on a first start only (never
    after an exec reload, DAEMON-4). May fork and exit the parent (daemonize).
    Returns nothing.
    """


@hookspec
def uwsgi_adopt_sockets(server: "Server") -> "list[Listener] | None":
    """Listening sockets this launch mode supplies (inetd's fd 0, systemd's fds).

    Runs in the master on a first start, after the configured sockets are bound
    (``server.listeners``). Return new ``Listener`` objects to add, or None.
    All results are used. Adopted sockets are kept across exec reloads by the
    core. Raise ``OptionError`` to refuse a socket (a connected fd 0).
    """


@hookspec
def uwsgi_post_apps(server: "Server") -> None:
    """Runs in the master after apps are loaded, before workers are forked.

    Also runs on exec reloads (check ``server.is_reload``). ``--daemonize2``
    detaches here. Returns nothing.
    """


# ---- apps and requests -----------------------------------------------------------

@hookspec
def uwsgi_load_apps(server: "Server") -> "list[App] | None":
    """Load the applications this plugin serves (``--wsgi-file``, ``--rack``).

    Runs in the master before fork, or in each worker with ``--lazy-apps``,
    and in the throwaway reload-check process. Return a list of ``App``
    objects (each with ``modifier1``, ``name`` and ``__call__(request)``), or
    None when this plugin has nothing configured. All results are used; the
    first app whose ``modifier1`` matches a request serves it. Raise to report
    a load error: the core logs the traceback (and exits 22 with
    ``--need-app``).
    """


# ---- master ------------------------------------------------------------------

@hookspec
def uwsgi_master_actions() -> "dict[str, Callable[[Master], Any]] | None":
    """Named master actions this plugin adds or overrides.

    Runs in the master once at start. Return ``{name: function(master)}``.
    Actions run on the master's only thread from its loop: change state,
    signal workers, return. Never block or sleep.
    """


@hookspec
def uwsgi_fifo_commands() -> "dict[str, str] | None":
    """Master FIFO bytes this plugin adds or overrides: ``{"r": "graceful_reload"}``.

    Runs in the master when the FIFO plugin builds its byte table (FIFO-8).
    Values are action names (``uwsgi_master_actions``). All results are
    merged; later plugins override earlier ones. Never block.
    """


@hookspec
def uwsgi_master_watch(master: "Master") -> "list[Watch] | None":
    """File descriptors the master should poll, each with a callback.

    Called in the master after its sockets are ready, and again after each
    exec reload. Callbacks run on the master's only thread: read what is there,
    call ``master.request(action_name)``, return. Never block, never act
    directly. Return a list of ``Watch(fd, callback)`` or None.
    """


@hookspec
def uwsgi_master_start(master: "Master") -> None:
    """Runs in the master once the first workers are forked (every image).

    Record file state (touch files), open control channels. Returns nothing.
    """


@hookspec
def uwsgi_master_cycle(master: "Master") -> None:
    """Runs in the master on every pass of its loop. Keep it cheap; never block."""


@hookspec
def uwsgi_master_tick(master: "Master") -> None:
    """Runs in the master about once a second (polling touch files, log size).

    Not called while a reload or shutdown is in progress. Never block.
    """


@hookspec
def uwsgi_master_event(master: "Master", event: str, info: "dict[str, Any]") -> None:
    """A lifecycle event in the master: ``ready`` (workers serve), ``reloading``,
    ``reload-refused``, ``reloaded``, ``stopping``, ``paused``, ``resumed``,
    ``worker-respawned``.

    Runs in the master on its loop thread (sd_notify, stats). Returns nothing;
    never blocks.
    """


@hookspec
def uwsgi_master_cleanup(master: "Master", reason: str) -> None:
    """Runs in the master before it execs (``reason='reload'``) or exits
    (``reason='exit'``). Close or remove what the plugin created. Never block.
    """


# ---- worker ------------------------------------------------------------------

@hookspec
def uwsgi_post_fork(worker: "Worker") -> None:
    """Runs in each new worker right after fork, after its signals are reset and
    before apps are served (lazy apps load after this). Close master-only fds,
    start per-worker helpers (the Ruby process). Returns nothing.
    """


@hookspec
def uwsgi_worker_cleanup(worker: "Worker") -> None:
    """Runs in a worker that leaves its loop normally (graceful stop,
    max-requests). Stop per-worker helpers. Returns nothing.
    """
