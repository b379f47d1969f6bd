"""uwsgi-py-hello-plugin: a complete third-party plugin in one module.

- ``--hello-greeting TEXT`` (an option): what the plugin says;
- ``--hello-app NAME`` (a request handler): serve the hello app for modifier1 42,
  e.g. behind ``--http-socket-modifier1 42`` or from a uwsgi packet with modifier1 42;
- ``--hello-fifo PATH`` (a control channel): writing ``h`` to that FIFO runs the
  master action ``hello``; so does ``h`` on ``--master-fifo`` when the fifo plugin
  is loaded (``uwsgi_fifo_commands``).

It imports nothing from uwsgi-py but the names in ``uwsgi_py.__all__``.
"""
from __future__ import annotations

import os

from uwsgi_py import MasterView, Option, OptionError, Watch, hookimpl

MODIFIER1 = 42
ACTION = "hello"
FIFO_BYTE = "h"


def say(line: str) -> None:
    """One log line, written with a single write() to fd 2 (where uwsgi-py logs)."""
    os.write(2, f"hello-plugin: {line}\n".encode())


# ---- configure ---------------------------------------------------------------------------
@hookimpl
def uwsgi_add_options(registry):
    registry.add(
        Option("hello-greeting", "what the hello plugin says", default="hello", metavar="TEXT"),
        Option("hello-app", "serve the hello app NAME for modifier1 42", metavar="NAME"),
        Option("hello-fifo", "control FIFO of the hello plugin: write 'h' to greet from the master",
               master=True, metavar="PATH"),
    )


@hookimpl
def uwsgi_configure(settings):
    if not settings.hello_greeting.strip():
        raise OptionError("--hello-greeting: the greeting must not be empty")


# ---- the request handler -------------------------------------------------------------------
class HelloApp:
    """An app type of its own: uwsgi-py routes modifier1 42 requests here."""

    modifier1 = MODIFIER1

    def __init__(self, name: str, greeting: str):
        self.name = name
        self.greeting = greeting

    def __call__(self, req) -> None:
        body = req.input.read()
        text = (f"{self.greeting} from {self.name} (modifier1 {self.modifier1}, pid {os.getpid()}) "
                f"path={req.vars.get('PATH_INFO', '')} body={len(body)}\n").encode()
        req.start("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(text)))])
        req.write(text)


@hookimpl
def uwsgi_load_apps(server):
    s = server.settings
    if not s.hello_app:
        return None
    return [HelloApp(s.hello_app, s.hello_greeting)]


# ---- the master: an action and a control channel -----------------------------------------------
def _mine(master) -> dict:
    """This plugin's state in this master image (``hello_count``, ``fd``)."""
    return MasterView(master).state_for("hello")


def hello(master) -> None:
    """Master action ``hello``: log the greeting; runs on the master's loop, returns at once."""
    mine = _mine(master)
    mine["hello_count"] = mine.get("hello_count", 0) + 1
    say(f"master action hello #{mine['hello_count']}: {master.settings.hello_greeting} "
        f"(master pid {os.getpid()}, generation {master.server.generation})")


@hookimpl
def uwsgi_master_actions():
    return {ACTION: hello}


@hookimpl
def uwsgi_fifo_commands():
    return {FIFO_BYTE: ACTION}


@hookimpl
def uwsgi_master_watch(master):
    path = master.settings.hello_fifo
    if not path:
        return None
    if not os.path.exists(path):
        os.mkfifo(path, 0o600)
    # O_RDWR keeps a writer open, so the FIFO never reads EOF when clients leave
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    _mine(master)["fd"] = fd

    def readable() -> None:
        try:
            data = os.read(fd, 512)
        except BlockingIOError:
            return
        for _ in range(data.count(FIFO_BYTE.encode())):
            master.request(ACTION)      # queue it; the loop performs it

    say(f"control FIFO {path} ready")
    return [Watch(fd, readable)]


@hookimpl
def uwsgi_master_cleanup(master, reason):
    fd = _mine(master).pop("fd", None)
    if fd is None:
        return
    master.unwatch(fd)
    os.close(fd)
    if reason == "exit":
        try:
            os.unlink(master.settings.hello_fifo)
        except OSError:
            pass
