"""The process-wide context every plugin sees: settings, sockets, apps, identity."""
from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable, Protocol

from . import hooks, log, privileges, sockets
from .handoff import Handoff
from .options import OptionError
from .scoreboard import Scoreboard

# exit codes (WORKER-5, SHUT-5)
EXIT_GRACEFUL_IDLE = 17
EXIT_APP_LOAD = 22
EXIT_WORKER_DONE = 30


class App(Protocol):
    """A loaded application: what a handler plugin returns from uwsgi_load_apps."""

    modifier1: int
    name: str

    def __call__(self, request) -> None: ...


class Watch:
    """An fd the master polls and the callback it runs when the fd is readable (or,
    with ``writable``, when it can be written: a reply that did not fit in one send; the
    master's watches only, a worker polls its watches for reading)."""

    __slots__ = ("fd", "callback", "writable")

    def __init__(self, fd: int, callback: Callable[[], Any], writable: bool = False):
        self.fd = fd
        self.callback = callback
        self.writable = writable

    def __repr__(self) -> str:
        return f"Watch({self.fd}, {self.callback!r}, writable={self.writable})"


class Server:
    """The instance: its settings, plugin hooks, listeners and apps (in the master and,
    inherited, in each worker)."""

    def __init__(self, settings: Any, hook: Any, handoff: Handoff, start_dir: str,
                 guard: Any = None):
        self.settings = settings
        self.hook = hook
        self.handoff = handoff
        self.start_dir = start_dir
        self.listeners: list = []
        self.apps: list = []
        self.scoreboard: Scoreboard | None = None
        self.worker_id = 0
        self.master_pid = 0
        self.started_on = int(time.time())
        self.app_error: str | None = None
        self.ready = False
        self.wakeup = (-1, -1)     # the master's signal pipe (signals.catch_early)
        self.guard = guard         # plugins.HookGuard: calls plugin code, names a plugin that raises
        # in a worker, each thread's request being served (``req``, unset or None when idle):
        # what the in-app API's calls about "this request" act on (uwsgi.set_logvar)
        self.current = threading.local()
        self.plugin_state: dict = {}   # Instance.state_for(plugin): one dict each

    @property
    def is_reload(self) -> bool:
        return self.handoff.is_reload

    @property
    def generation(self) -> int:
        return self.handoff.generation

    @property
    def numproc(self) -> int:
        return self.settings.processes

    # ---- sockets ---------------------------------------------------------
    def setup_sockets(self) -> None:
        """Adopt handed-off fds (by option and position), take launch-mode fds, bind the rest.

        A launch-mode socket (systemd's) bound where a configured socket would
        bind becomes that socket, with its protocol, instead of a bind that
        would fail (SYSD-4's fix).
        """
        s = self.settings
        backlog = s.listen or _default_backlog()
        wanted = [("http-socket", i, name, "http") for i, name in enumerate(s.http_socket)]
        wanted += [("http11-socket", i, name, "http") for i, name in enumerate(s.http11_socket)]
        wanted += [("http", i, name, "http") for i, name in enumerate(s.http)]
        wanted += [("socket", i, name, s.protocol) for i, name in enumerate(s.socket)]
        inherited = {entry["key"]: entry for entry in self.handoff.fds}
        used = set()
        supplied = [] if self.is_reload else [
            lst for group in self.guard.startup(self.hook.uwsgi_adopt_sockets, server=self)
            for lst in group or ()]
        for listener in supplied:
            listener.owned = False
        for option, i, name, proto in wanted:
            key = f"{option}#{i}"
            entry = inherited.get(key)
            listener = None
            if entry is not None and entry["name"] == name:
                listener = sockets.adopt(key, name, proto, entry["fd"], backlog)
                if listener is not None:
                    used.add(entry["fd"])
                    listener.sock.listen(backlog)
                    listener.owned = entry.get("owned", True)
            if listener is None:
                listener = sockets.claim(supplied, name)
                if listener is not None:
                    listener.key, listener.name, listener.proto = key, name, proto
            if listener is None:
                chown = privileges.owner(s.chown_socket) if s.chown_socket else None
                listener = sockets.bind(key, name, proto, backlog, s.chmod_socket, chown)
            self.listeners.append(listener)
        # sockets that came from a launch mode (inetd fd 0, systemd) survive reloads
        for entry in self.handoff.fds:
            if entry["fd"] in used or not entry["key"].startswith("extra#"):
                continue
            listener = sockets.adopt(entry["key"], entry["name"], entry["proto"], entry["fd"], backlog)
            if listener is not None:
                used.add(entry["fd"])
                listener.owned = False
                self.listeners.append(listener)
        # close handed-off fds the new configuration no longer wants (RELOAD-7)
        for entry in self.handoff.fds:
            if entry["fd"] not in used and entry["fd"] > 2:
                try:
                    os.close(entry["fd"])
                except OSError:
                    pass
        for listener in supplied:  # launch-mode sockets no configured socket claimed
            n = sum(1 for lst in self.listeners if lst.key.startswith("extra#"))
            listener.key = f"extra#{n}"
            self.listeners.append(listener)
        if not self.listeners and self.numproc > 0:
            # a plugin that runs the master without workers (the emperor) sets processes to 0
            raise OptionError(log.NO_SOCKET)
        for index, listener in enumerate(self.listeners):
            sockets.tune_listener(listener, 0 if s.no_defer_accept else s.socket_timeout)
            sockets.log_bound(index, listener)
            set_keepalive(listener, s)
        if s.http_websockets:
            log.log(log.HTTP_NO_WEBSOCKETS)
        log.log(log.LISTEN_QUEUE.format(listen=backlog, somaxconn=_somaxconn()))

    def handoff_fds(self) -> list[dict]:
        return [{"key": lst.key, "name": lst.name, "proto": lst.proto, "fd": lst.fd,
                 "owned": lst.owned} for lst in self.listeners]

    # ---- apps --------------------------------------------------------------
    def load_apps(self) -> bool:
        """Ask every handler plugin for its apps; log and remember failures."""
        self.apps = []
        self.app_error = None
        phases = not self.handoff.preflight   # the reload check runs no --exec/--hook-*-app
        if phases:
            hooks.run(self.settings, "pre-app", worker=self.worker_id > 0,
                      master_pid=self.master_pid)
        try:
            results = self.hook.uwsgi_load_apps(server=self)
        except Exception:  # noqa: BLE001 - an app that fails to import is reported, not fatal
            self.app_error = log.exc_text()
            log.log(self.app_error.rstrip())
            results = []
        for group in results:
            self.apps.extend(group or ())
        if phases:
            hooks.run(self.settings, "post-app", worker=self.worker_id > 0,
                      master_pid=self.master_pid)
        return bool(self.apps)

    def app_for(self, modifier1: int):
        for app in self.apps:
            if app.modifier1 == modifier1:
                return app
        if modifier1 == 0 and len(self.apps) == 1:
            return self.apps[0]
        return None


def set_keepalive(listener, s) -> None:
    """HTTP keep-alive: always on an --http socket (where uWSGI runs its router) and on an
    --http11-socket, with --http-keepalive on the others. An idle connection waits
    --http-keepalive N seconds (N > 1), else --http-timeout on an --http socket, else
    --socket-timeout. The PROXY protocol: --http-enable-proxy-protocol on --http sockets
    (uWSGI's router option), --enable-proxy-protocol on the other HTTP sockets."""
    if listener.proto != "http":
        return
    router = listener.key.startswith("http#")
    listener.proxy = bool(s.http_enable_proxy_protocol if router else s.enable_proxy_protocol)
    listener.keepalive = router or listener.key.startswith("http11-socket#") \
        or bool(s.http_keepalive)
    if s.http_keepalive > 1:
        listener.idle = float(s.http_keepalive)
    elif router:
        listener.idle = float(s.http_timeout)
    if router:
        log.log(log.HTTP_NO_ROUTER.format(address=listener.address()))


def _somaxconn() -> int:
    try:
        with open("/proc/sys/net/core/somaxconn") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 0


def _default_backlog() -> int:
    from .options import default_listen
    return default_listen()
