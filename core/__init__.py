"""uwsgi-py: uWSGI's master/worker core and management interface, in Python.

Plugins import only the names in ``__all__``.
"""
from __future__ import annotations

import pluggy

from .options import Option, OptionError
from .options import boolean, choice, integer, key_value, non_negative_int, positive_int, string
from .request import ClientGone
from .server import App, Server, Watch
from .version import UWSGI_VERSION, __version__

hookimpl = pluggy.HookimplMarker("uwsgi_py")

__all__ = [
    "__version__", "UWSGI_VERSION", "hookimpl", "Option", "OptionError", "App", "Server", "Watch",
    "ClientGone",
    "boolean", "choice", "integer", "key_value", "non_negative_int", "positive_int", "string",
]
