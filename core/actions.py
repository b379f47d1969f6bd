"""The registry of named master actions (STYLE §4).

Signals, FIFO bytes, touch files and the in-app API all name these actions
through tables; plugins add or override actions through
``uwsgi_master_actions``. Each value is the function that does the work, in
the module that owns it; it runs on the master's loop thread, changes state,
returns a small dict saying what it did, and never blocks: the loop completes
long transitions (``Master.advance``).
"""
from __future__ import annotations

from typing import Callable

from . import master, reload, upkeep, worker_reload

Action = Callable[..., "dict | None"]

BUILTIN: dict[str, Action] = {
    f.__name__: f for f in (
        reload.graceful_reload, reload.brutal_reload,
        master.immediate_shutdown, master.graceful_shutdown,
        worker_reload.reload_workers, worker_reload.brutal_reload_workers,
        worker_reload.restore_snapshot, worker_reload.chain_reload,
        upkeep.stats, upkeep.worker_status, upkeep.toggle_pause,
        upkeep.reopen_logs, upkeep.rotate_logs, upkeep.update_pidfiles,
    )
}


def registry(extras: list[dict | None]) -> dict[str, Action]:
    """Built-in actions plus those plugins add or override (``uwsgi_master_actions``' results)."""
    table = dict(BUILTIN)
    for extra in extras:
        table.update(extra or {})
    return table
