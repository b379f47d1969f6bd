"""Signal tables: signal number -> master action name (SIG-1, SIG-4, SIG-6).

The only place where master signals are mapped. Worker signals are set in
``workers.Worker.setup_signals`` (SIG-5).
"""
from __future__ import annotations

import signal

MASTER_TABLE: dict[int, str] = {
    signal.SIGHUP: "graceful_reload",
    signal.SIGTERM: "brutal_reload",
    signal.SIGINT: "immediate_shutdown",
    signal.SIGQUIT: "immediate_shutdown",
    signal.SIGUSR1: "stats",
    signal.SIGUSR2: "worker_status",      # SIG-6's fix: uWSGI's master dies of it
    signal.SIGTSTP: "toggle_pause",
    signal.SIGURG: "restore_snapshot",    # the seed's "restore a snapshot"
}

# ignored in the master: WINCH (SIG-6), PIPE
IGNORED = (signal.SIGWINCH, signal.SIGPIPE)


def master_table(die_on_term: bool) -> dict[int, str]:
    """The master's table; ``--die-on-term`` swaps TERM and QUIT (SIG-4)."""
    table = dict(MASTER_TABLE)
    if die_on_term:
        table[signal.SIGTERM], table[signal.SIGQUIT] = table[signal.SIGQUIT], table[signal.SIGTERM]
    return table
