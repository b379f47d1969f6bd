"""``--daemonize`` / ``--daemonize2``: detach from the terminal (DAEMON-1..4).

The launcher forks and exits 0 at once; the child starts a new session and
forks again, so the daemon is not a session leader and can never reacquire a
controlling terminal. The daemon keeps its working directory, reads
/dev/null and writes fds 1 and 2 to the log file. Unlike uWSGI it keeps the
inherited umask (DAEMON-2's fix); ``--umask`` sets one explicitly.
"""
from __future__ import annotations

import os
import sys

from uwsgi_py import redirect_stdio

DAEMONIZING = "*** daemonizing uWSGI ***"


def detach(logfd: int = -1) -> None:
    """Fork twice around ``setsid()``; only the grandchild returns.

    ``logfd``: the log file (``open_log_file``), opened before the first fork so
    that a file that cannot be opened is reported by the launcher; the daemon
    points fds 1 and 2 at it (``--daemonize`` had ``--logto`` open it already,
    before any line was written, and passes none).
    """
    _flush()
    if os.fork() != 0:
        os._exit(0)  # the launcher: the command returns at once (DAEMON-1)
    os.setsid()
    if os.fork() != 0:
        os._exit(0)  # the session leader: the daemon must not be one
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    if logfd >= 0:
        redirect_stdio(logfd)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
