"""Named master actions. Signals, FIFO bytes, touch files and the in-app API
all route here through tables (STYLE §4); plugins add or override actions
through ``uwsgi_master_actions``.

Each action runs on the master's loop thread, changes state and returns; the
loop completes long transitions (``Master.advance``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # pragma: no cover
    from .master import Master


def graceful_reload(master: "Master") -> None:
    """uWSGI ``grace_them_all``: check the new code, then exec; workers drain (RELOAD-1)."""
    master.begin_reload("graceful")


def brutal_reload(master: "Master") -> None:
    """uWSGI ``reap_them_all``: SIGTERM the workers, then exec (RELOAD-2, SIG-3)."""
    master.begin_reload("brutal")


def immediate_shutdown(master: "Master") -> None:
    """uWSGI ``kill_them_all``: SIGINT every worker, exit 0 once they are gone (SHUT-1)."""
    master.begin_shutdown(graceful=False)


def graceful_shutdown(master: "Master") -> None:
    """uWSGI ``gracefully_kill_them_all``, with mercy applied (SHUT-2, SHUT-3's fix)."""
    master.begin_shutdown(graceful=True)


def reload_workers(master: "Master") -> None:
    """uWSGI ``uwsgi_reload_workers``: HUP every worker, respawn each (RELOAD-4)."""
    master.reload_workers(brutal=False)


def brutal_reload_workers(master: "Master") -> None:
    """uWSGI ``uwsgi_brutally_reload_workers``: SIGINT every worker (RELOAD-4)."""
    master.reload_workers(brutal=True)


def restore_snapshot(master: "Master") -> None:
    """The seed's SIGURG: fresh forks of the master's loaded app, no exec."""
    master.reload_workers(brutal=False, snapshot=True)


def chain_reload(master: "Master") -> None:
    """uWSGI ``uwsgi_master_check_chain``: replace workers one at a time (CHAIN-1)."""
    master.begin_chain()


def stats(master: "Master") -> None:
    """uWSGI ``stats``: config dump and counters to the log (SIG-7)."""
    master.log_stats()


def worker_status(master: "Master") -> None:
    """SIG-6's fix: USR2 makes every worker log its status (what_i_am_doing)."""
    master.signal_workers_usr2()


def toggle_pause(master: "Master") -> None:
    """uWSGI ``suspend_resume_them_all`` (SIG-8)."""
    master.toggle_pause()


def reopen_logs(master: "Master") -> None:
    """Reopen the log file in every process (LOG-3, FIFO-7's fix)."""
    master.reopen_logs(rotate=False)


def rotate_logs(master: "Master") -> None:
    """Rename the log to PATH.EPOCH and reopen it in every process (LOG-3)."""
    master.reopen_logs(rotate=True)


def update_pidfiles(master: "Master") -> None:
    """FIFO ``P``: rewrite every pidfile with the current pid (PID-5)."""
    master.write_pidfiles(every=True)


BUILTIN: dict[str, Callable[["Master"], None]] = {
    f.__name__: f for f in (
        graceful_reload, brutal_reload, immediate_shutdown, graceful_shutdown, reload_workers,
        brutal_reload_workers, restore_snapshot, chain_reload, stats, worker_status, toggle_pause,
        reopen_logs, rotate_logs, update_pidfiles,
    )
}


def registry(extras: list[dict | None]) -> dict[str, Callable[["Master"], None]]:
    """Built-in actions plus those plugins add or override (``uwsgi_master_actions``' results)."""
    table = dict(BUILTIN)
    for extra in extras:
        table.update(extra or {})
    return table
