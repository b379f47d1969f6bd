"""The master's states (STYLE §5: long operations are states, not loops).

::

    RUNNING -graceful_reload-> RELOAD_CHECK -passed-> RELOADING -> exec (old workers still serve)
       ^                            | failed
       +----------------------------+
    RUNNING -brutal_reload-> RELOADING -workers gone-> exec
    any -graceful/immediate_shutdown-> SHUTTING_DOWN -children gone-> EXITED

``core/reload.py`` moves between the first three, ``core/master.py`` to the last
two. The next image starts RUNNING. Plugins read ``master.state`` (its ``value``
is what stats and health show).
"""
from __future__ import annotations

import enum


class State(enum.Enum):
    RUNNING = "running"
    RELOAD_CHECK = "reload-check"       # a throwaway process loads the new code
    RELOADING = "reloading"             # about to exec (a brutal reload: once the workers are gone)
    SHUTTING_DOWN = "shutting-down"
    EXITED = "exited"
