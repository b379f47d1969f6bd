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
from .errors import OptionError

EXIT_SENT = 0
EXIT_UNREADABLE = 1
EXIT_RELOAD_REFUSED = 2      # --reload: the reload check refused the new code
EXIT_RELOAD_TIMEOUT = 3      # --reload: no outcome within RELOAD_WAIT seconds
EXIT_NOT_READY = 1           # --status: the instance does not take traffic (or does not answer)
EXIT_KILL_FAILED = 255
RELOAD_WAIT = 300.0          # the reload check may take --worker-reload-mercy (60 s by default)
POLL = 0.1

RELOAD_REFUSED = "reload refused: {error}; generation {generation} keeps serving"
RELOAD_GONE = "the instance exited during the reload"
RELOAD_STOPPING = "the instance is stopping: a reload would be ignored"
RELOAD_TIMED_OUT = "no reload outcome after {secs:.0f} s; see the instance's log"

COMMAND_SIGNALS = {
    "reload": signal.SIGHUP,
    "stop": signal.SIGINT,
    "pause": signal.SIGTSTP,
}


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
    if b"uwsgi_py" in cmdline or b"uwsgi-py" in cmdline or b"uWSGI" in cmdline:
        return True
    # a title set by --procname-master replaced the command line: a master answers on its
    # status socket (the health plugin) with its own pid
    from . import health
    doc = health.query(pid, timeout=1.0)
    return doc is not None and doc.get("pid") == pid


def find_master(pids: list[int]) -> int | None:
    """The uwsgi-py master among ``pids`` (say, the processes holding a file open): the one
    that answers on its status socket with its own pid, else one that looks like a master."""
    from . import health
    candidates = [pid for pid in pids if looks_like_master(pid) is not False]
    for pid in candidates:
        if (health.query(pid) or {}).get("pid") == pid:
            return pid
    return candidates[0] if candidates else None


def master_in(path: str, out=sys.stderr) -> int | None:
    """The master pid in ``path``, or None after saying why not (CLI-2/3)."""
    try:
        pid = read_pid(path)
    except OSError as e:
        print(f'open("{path}"): {e.strerror}', file=out)
        return None
    except ValueError:
        print(f"error: invalid pidfile {path}", file=out)
        return None
    if looks_like_master(pid) is False:
        print(f"error: pid {pid} in {path} is not a uwsgi-py master; not signalling it", file=out)
        return None
    return pid


def kill(pid: int, sig: int, out=sys.stderr) -> int:
    try:
        os.kill(pid, sig)
    except OSError as e:
        print(f"signal_pidfile()/kill(): {os.strerror(e.errno or errno.ESRCH)}", file=out)
        return EXIT_KILL_FAILED
    return EXIT_SENT


def send(path: str, sig: int, out=sys.stderr) -> int:
    """Signal the instance in ``path``; returns the process exit code."""
    pid = master_in(path, out)
    if pid is None:
        return EXIT_UNREADABLE
    return kill(pid, sig, out)


def reload_and_wait(path: str, out=sys.stderr, wait: float = RELOAD_WAIT) -> int:
    """``--reload PIDFILE``: SIGHUP, then wait for the outcome (``await_reload``)."""
    pid = master_in(path, out)
    if pid is None:
        return EXIT_UNREADABLE
    return await_reload(pid, lambda: kill(pid, signal.SIGHUP, out) == EXIT_SENT, out, wait)


def await_reload(pid: int, trigger: Callable[[], bool], out=sys.stderr,
                 wait: float = RELOAD_WAIT) -> int:
    """Ask master ``pid`` for a graceful reload with ``trigger()`` (SIGHUP, a FIFO write;
    False, after saying why, when it could not ask), then wait for the outcome on its
    status socket. Returns the exit code of ``--reload``:

    0: the new generation serves (nothing printed); 2: the reload was refused (the
    old code keeps serving); 3: no outcome in time; 255: ``trigger`` failed; 1: the
    instance is stopping or exited. Without a status socket the request is sent and 0
    returned, as uWSGI does.
    """
    import time

    from . import health
    before = health.query(pid)
    if before is None or not before.get("reload_waitable", True):
        return EXIT_SENT if trigger() else EXIT_KILL_FAILED   # as uWSGI: sent is all it can tell
    if before["state"] == "stopping":
        print(RELOAD_STOPPING, file=out)
        return EXIT_UNREADABLE
    mark = (before["reloads"], before["last_reload"])
    if not trigger():
        return EXIT_KILL_FAILED
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        time.sleep(POLL)
        now = health.query(pid)
        if now is None:
            if not os.path.exists(f"/proc/{pid}"):
                print(RELOAD_GONE, file=out)
                return EXIT_UNREADABLE
            continue       # between the exec and the new image's loop
        if (now["reloads"], now["last_reload"]) == mark:
            continue
        outcome = now["last_reload"] or {}
        if outcome.get("refused"):
            print(RELOAD_REFUSED.format(error=outcome.get("error", "?"),
                                        generation=now["generation"]), file=out)
            return EXIT_RELOAD_REFUSED
        return EXIT_SENT          # quiet, as uWSGI's --reload: the exit status tells
    print(RELOAD_TIMED_OUT.format(secs=wait), file=out)
    return EXIT_RELOAD_TIMEOUT


def print_status(path: str, out=sys.stdout) -> int:
    """``--status PIDFILE``: the instance's readiness as one JSON line; 0 when ready."""
    from . import health
    pid = master_in(path, sys.stderr)
    if pid is None:
        return EXIT_UNREADABLE
    doc = health.query(pid)
    if doc is None:
        print(f"pid {pid} does not answer on its status socket", file=sys.stderr)
        return EXIT_NOT_READY
    out.write(health.encode(doc).decode())
    return EXIT_SENT if doc.get("ready") else EXIT_NOT_READY


def signal_command(command: str) -> Callable[[str], int]:
    sig = COMMAND_SIGNALS[command]

    def run(path: str) -> int:
        if command == "reload":
            return reload_and_wait(path)
        return send(path, sig)

    run.__name__ = f"{command}_pidfile"
    return run
