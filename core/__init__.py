"""uwsgi-py: uWSGI's master/worker core and management interface, in Python.

Plugins import only the names in ``__all__``.
"""
from __future__ import annotations

import pluggy

__version__ = "0.1.0"
UWSGI_VERSION = "2.0.31"   # the uWSGI release whose behaviour and APIs are mirrored

hookimpl = pluggy.HookimplMarker("uwsgi_py")

from .options import Option, OptionError  # noqa: E402
from .options import boolean, choice, integer, key_value, non_negative_int, positive_int, string  # noqa: E402
from .conn import ClientGone  # noqa: E402
from .server import App, Server, Watch  # noqa: E402

__all__ = [
    "__version__", "UWSGI_VERSION", "hookimpl", "Option", "OptionError", "App", "Server", "Watch",
    "ClientGone",
    "boolean", "choice", "integer", "key_value", "non_negative_int", "positive_int", "string",
]
