"""Every option the core declares: ``options.core_options()`` and the options of the core
modules that declare their own (hooks, limits, sockets, privileges). Those modules import
``options`` for ``Option``, so the list is put together here, not in ``options.py``."""
from __future__ import annotations

from . import hooks, limits, options, privileges, sockets


def core_options() -> list[options.Option]:
    return [*options.core_options(), *hooks.options(), *limits.options(), *sockets.options(),
            *privileges.options()]
