"""Launch modes: inetd/xinetd (fd 0), systemd/Upstart socket activation and
sd_notify, ``--daemonize``/``--daemonize2`` (SPEC §10-12).

Each mode lives in its own module; this one declares the options and wires
them to the core's hooks. Which process runs what:

- ``uwsgi_launch`` (first start only): ``--umask``, ``--daemonize``, sd_notify "initializing",
  and ``--systemd-extend-timeout``'s renewals until READY=1;
- ``uwsgi_adopt_sockets`` (first start only, before the configured sockets are bound):
  activated fds, then fd 0 unless activation supplied sockets or ``--skip-zero``;
- ``uwsgi_post_apps`` (every image): ``--daemonize2`` on a first start;
- ``uwsgi_master_event`` (master): sd_notify READY/RELOADING/STOPPING and STATUS lines;
- ``uwsgi_master_cycle`` (master): ``WATCHDOG=1`` when systemd set WATCHDOG_USEC.
"""
from __future__ import annotations

import os
import time

from uwsgi_py import (Instance, MasterView, Option, OptionError, daemonized, hookimpl, log_line,
                      non_negative_int, open_log_file, redirect_stdio)

from . import inetd, systemd

BOTH_DAEMONIZE = "--daemonize and --daemonize2 exclude each other: give one"
_extension: systemd.StartupExtension | None = None   # --systemd-extend-timeout, until READY=1


def umask_mode(raw) -> int:
    text = str(raw).strip()
    try:
        value = int(text, 8)
    except ValueError:
        raise ValueError("is not an octal umask (like 022)") from None
    if not 0 <= value <= 0o777:
        raise ValueError("is not an octal umask (like 022)")
    return value


@hookimpl
def uwsgi_add_options(registry):
    registry.add(
        Option("daemonize", "detach from the terminal and log to FILE, before loading apps",
               short="d", metavar="FILE"),
        Option("daemonize2", "detach from the terminal and log to FILE, after loading apps",
               metavar="FILE"),
        Option("umask", "set the process umask (octal); by default the inherited one is kept",
               convert=umask_mode, metavar="MODE"),
        Option("honour-stdin", "keep stdin as it is when it is not an inherited socket "
               "(default: replace it with /dev/null)", flag=True),
        Option("systemd-extend-timeout", "under systemd (Type=notify), ask for SECS more "
               "start-up time (EXTEND_TIMEOUT_USEC) while a slow app loads, again every SECS/2 "
               "until READY=1",
               convert=non_negative_int, default=0, metavar="SECS"),
    )


@hookimpl
def uwsgi_configure(settings):
    if settings.daemonize and settings.daemonize2:
        raise OptionError(BOTH_DAEMONIZE)
    if settings.daemonize:
        # uWSGI: the daemonize file wins over --logto and is what log reopen acts on
        settings.logto = settings.daemonize


@hookimpl(tryfirst=True)  # detach before any other plugin acts in the launcher
def uwsgi_launch(server):
    s = server.settings
    if s.umask is not None:
        os.umask(s.umask)
    if s.daemonize:
        from . import daemon
        daemon.detach()
    systemd.notify(systemd.STARTING)
    if s.systemd_extend_timeout and systemd.notify_address() is not None:
        global _extension
        _extension = systemd.StartupExtension(s.systemd_extend_timeout)
        _extension.start_thread()


@hookimpl
def uwsgi_adopt_sockets(server):
    s = server.settings
    activated = systemd.adopt_activated(s)
    # INETD-1: activation implies --skip-zero
    return activated + inetd.adopt_stdin(s, check=not (s.skip_zero or activated))


@hookimpl(tryfirst=True)  # other plugins then see the daemon's pid
def uwsgi_post_apps(server):
    if _extension is not None:
        _extension.stop_thread()   # the app is loaded; nothing may fork with a thread running
    s = server.settings
    if s.daemonize2:
        s.logto = s.daemonize2  # the file log reopen acts on
        if not server.is_reload:
            _daemonize2(server)
        elif s.log_reopen:
            redirect_stdio(open_log_file(s.daemonize2, "daemonize2"))
    if server.is_reload:
        systemd.notify(systemd.RESTARTING)
    if not s.master:
        if _extension is not None:
            _extension.done()
        systemd.notify(systemd.READY_NO_MASTER)


def _daemonize2(server) -> None:
    """DAEMON-3: detach, then the pidfiles name the daemon."""
    from . import daemon
    log_line(daemon.DAEMONIZING)
    # opened in the launcher, before forking: a file that cannot be opened is one error line
    daemon.detach(open_log_file(server.settings.daemonize2, "daemonize2"))
    daemonized(server)


@hookimpl
def uwsgi_master_start(master):
    interval = systemd.watchdog_interval()
    Instance(master.server).state_for("inetd")["watchdog"] = (
        systemd.Watchdog(interval) if interval else None)


@hookimpl
def uwsgi_master_cycle(master):
    watchdog = Instance(master.server).state_for("inetd").get("watchdog")
    if watchdog is not None:
        watchdog.cycle(time.monotonic())
    if _extension is not None:
        _extension.cycle(time.monotonic())


@hookimpl
def uwsgi_master_event(master, event, info):
    view = MasterView(master)
    context = {"workers": view.numproc, "generation": view.generation, **info}
    if _extension is not None and event == "ready":
        _extension.done()
    lines = systemd.event_message(event, context, view.is_reload)
    if lines is not None:
        systemd.notify(lines)
