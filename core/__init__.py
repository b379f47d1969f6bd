"""uwsgi-py: uWSGI's master/worker core and management interface, in Python.

Plugins import only the names in ``__all__``.
"""
from __future__ import annotations

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("uwsgi_py")

from .options import Option, OptionError  # noqa: E402
from .options import boolean, choice, integer, key_value, non_negative_int, positive_int, string  # noqa: E402
from .request import ClientGone  # noqa: E402
from .server import App, Server, Watch  # noqa: E402

__all__ = [
    "__version__", "hookimpl", "Option", "OptionError", "App", "Server", "Watch", "ClientGone",
    "boolean", "choice", "integer", "key_value", "non_negative_int", "positive_int", "string",
]
