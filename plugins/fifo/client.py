"""``uwsgi-py --reload-fifo PATH``: a graceful reload through the master FIFO that waits
for its outcome, as ``--reload PIDFILE`` does (exit 0: the new code serves; 2: refused).

``echo r > PATH`` cannot tell a deploy script whether the new code loaded. This client
finds the master that holds PATH open for reading (``/proc/PID/fd``: run it as the
instance's user or root), writes the FIFO's graceful-reload byte, and waits on the
master's status socket like ``--reload`` (``uwsgi_py.await_reload``).
"""
from __future__ import annotations

import os
import stat
import sys

from uwsgi_py import await_reload, find_master

from .table import COMMANDS

EXIT_NO_MASTER = 1        # as --reload PIDFILE's unreadable pidfile
NOT_A_FIFO = "error: {path} is not a FIFO"
NO_READER = ("error: no uwsgi-py master has {path} open for reading (is the instance running, "
             "and are you its user or root?)")
WRITE_FAILED = "error: cannot write to {path}: {error}"
RELOAD_BYTE = next(key for key, action in COMMANDS.items() if action == "graceful_reload")


def readers(path: str) -> list[int]:
    """Pids of the processes with ``path`` open (compared by device and inode)."""
    target = os.stat(path)
    key = (target.st_dev, target.st_ino)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fd_dir = f"/proc/{entry}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:          # gone, or another user's
            continue
        for fd in fds:
            try:
                st = os.stat(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == key:
                found.append(int(entry))
                break
    return found


def _write(path: str, out) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            os.write(fd, RELOAD_BYTE.encode())
        finally:
            os.close(fd)
    except OSError as e:
        print(WRITE_FAILED.format(path=path, error=e.strerror), file=out)
        return False
    return True


def reload_fifo(path: str, out=sys.stderr) -> int:
    try:
        is_fifo = stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError as e:
        print(f'stat("{path}"): {e.strerror}', file=out)
        return EXIT_NO_MASTER
    if not is_fifo:
        print(NOT_A_FIFO.format(path=path), file=out)
        return EXIT_NO_MASTER
    pid = find_master(readers(path))
    if pid is None:
        print(NO_READER.format(path=path), file=out)
        return EXIT_NO_MASTER
    return await_reload(pid, lambda: _write(path, out), out)
