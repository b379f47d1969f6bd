"""Pidfiles: written atomically from the master; read by --reload/--stop/--pause.

Client exit codes follow uWSGI (CLI-2): 0 sent, 1 cannot read or invalid
content (CLI-3's fix: never ``kill(0, ...)``), 255 the kill failed.
"""
from __future__ import annotations

import errno
import os
import signal
import sys
from typing import Callable

from . import log
from .options import OptionError

EXIT_SENT = 0
EXIT_UNREADABLE = 1
EXIT_KILL_FAILED = 255

COMMAND_SIGNALS = {
    "reload": signal.SIGHUP,
    "stop": signal.SIGINT,
    "pause": signal.SIGTSTP,
}

# The master sets this marker in its /proc/PID/environ so that a client can
# tell a uwsgi-py master from whatever process recycled its pid.
MASTER_MARKER = "UWSGI_PY_MASTER_MARK"


def write(path: str, pid: int | None = None) -> None:
    """``"%d\\n"`` through a temp file and rename() (PID-4), never following a
    symlink planted at the temp path."""
    pid = os.getpid() if pid is None else pid
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, b"%d\n" % pid)
    finally:
        os.close(fd)
    os.rename(tmp, path)


def write_for(option: str, path: str) -> None:
    """Log ``writing pidfile to PATH`` and write it; an OptionError naming ``--option``
    and the path if it cannot be written."""
    log.log(log.PIDFILE.format(path=path))
    try:
        write(path)
    except OSError as e:
        raise OptionError(log.PIDFILE_FAILED.format(option=option, path=path, error=e.strerror)) from None


def read_pid(path: str) -> int:
    """The pid in ``path``; OSError if unreadable, ValueError if not a pid > 0."""
    with open(path, "rb") as f:
        text = f.read(64)
    pid = int(text.strip() or b"x")
    if pid <= 0:
        raise ValueError(pid)
    return pid


def looks_like_master(pid: int) -> bool | None:
    """True/False when /proc tells, None when it cannot (another user's process)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
    except FileNotFoundError:
        return None
    except OSError:
        return None
    return b"uwsgi_py" in cmdline or b"uwsgi-py" in cmdline


def send(path: str, sig: int, out=sys.stderr) -> int:
    """Signal the instance in ``path``; returns the process exit code."""
    try:
        pid = read_pid(path)
    except OSError as e:
        print(f'open("{path}"): {e.strerror}', file=out)
        return EXIT_UNREADABLE
    except ValueError:
        print(f"error: invalid pidfile {path}", file=out)
        return EXIT_UNREADABLE
    if looks_like_master(pid) is False:
        print(f"error: pid {pid} in {path} is not a uwsgi-py master; not signalling it", file=out)
        return EXIT_UNREADABLE
    try:
        os.kill(pid, sig)
    except OSError as e:
        print(f"signal_pidfile()/kill(): {os.strerror(e.errno or errno.ESRCH)}", file=out)
        return EXIT_KILL_FAILED
    return EXIT_SENT


def signal_command(command: str) -> Callable[[str], int]:
    sig = COMMAND_SIGNALS[command]

    def run(path: str) -> int:
        return send(path, sig)

    run.__name__ = f"{command}_pidfile"
    return run
