"""uwsgi-py: uWSGI's master/worker core and management interface, in Python.

Plugins import only the names in ``__all__``.
"""
from __future__ import annotations

import pluggy

from .options import Option, OptionError
from .options import boolean, choice, integer, key_value, non_negative_int, positive_int, string
from .conn import ClientGone
from .server import App, Server, Watch
from .version import UWSGI_VERSION, __version__
from .pidfile import await_reload, find_master

hookimpl = pluggy.HookimplMarker("uwsgi_py")

from .instance import Instance  # noqa: E402
from .api import (MasterView, WorkerInfo, add_log_file, die_with_master, log_line,  # noqa: E402
                  log_verbose, open_log_file, redirect_stdio, remove_log_file, set_log_writer,
                  status_address, unlinked_file, vacate_master_fds)
from .launch import adopt_listener, daemonized, write_pidfile  # noqa: E402
from .sockets import address_text, parse_address  # noqa: E402

__all__ = [
    "__version__", "UWSGI_VERSION", "hookimpl", "Option", "OptionError", "App", "Server", "Watch",
    "ClientGone", "Instance", "MasterView", "WorkerInfo", "log_line", "log_verbose",
    "vacate_master_fds", "die_with_master", "await_reload", "find_master", "unlinked_file",
    "set_log_writer", "add_log_file", "remove_log_file", "open_log_file", "redirect_stdio",
    "status_address", "adopt_listener", "write_pidfile", "daemonized", "parse_address",
    "address_text",
    "boolean", "choice", "integer", "key_value", "non_negative_int", "positive_int", "string",
]
