"""Starting and stopping external processes from the master (uWSGI's core/daemons.c).

A daemon runs ``/bin/sh -c COMMAND`` in its own session (so its process group
is its own), with stdin on /dev/null unless ``--daemons-honour-stdin``. The
master forks it like a worker: every signal blocked across ``fork()``, the
child resets what the master installed before it execs.
"""
from __future__ import annotations

import os
import select
import signal
import time

ALL_SIGNALS = set(signal.Signals) - {signal.SIGKILL, signal.SIGSTOP}
PR_SET_PDEATHSIG = 1
POLL_EVERY = 0.1      # seconds between two looks of the stopper process


def _pdeathsig(sig: int) -> None:
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def spawn(command: str, honour_stdin: bool, death_signal: int | None) -> int:
    """Fork and exec ``/bin/sh -c command`` in a new session; the child's pid (0 if fork failed).

    ``death_signal``: what the daemon gets if the master dies without stopping it
    (PR_SET_PDEATHSIG), None to let it outlive the master (smart daemons)."""
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, ALL_SIGNALS)
    try:
        pid = os.fork()
    except OSError:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        return 0
    if pid:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        return pid
    try:
        signal.set_wakeup_fd(-1)      # never write into the master's signal pipe
        for sig in ALL_SIGNALS:
            try:
                signal.signal(sig, signal.SIG_DFL)   # the master ignores PIPE, WINCH: not the daemon
            except (OSError, ValueError):
                pass
        os.setsid()
        if death_signal is not None:
            _pdeathsig(death_signal)
        if not honour_stdin:
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.close(null)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        os.execv("/bin/sh", ["/bin/sh", "-c", command])
    except BaseException:  # noqa: BLE001 - the child must never return into the master's code
        pass
    os._exit(127)


def pidfd(pid: int) -> int:
    """A pidfd for ``pid`` (readable once it exited), or -1."""
    try:
        return os.pidfd_open(pid)
    except (OSError, AttributeError):
        return -1


def exited(pid: int, fd: int) -> bool:
    """True once ``pid`` has exited (its pidfd is readable, or it no longer exists)."""
    if fd >= 0:
        p = select.poll()
        p.register(fd, select.POLLIN)
        return bool(p.poll(0))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def pid_from_file(path: str) -> int:
    """The live pid a pidfile names, or 0 (uWSGI's uwsgi_check_pidfile)."""
    try:
        with open(path) as f:
            pid = int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0
    if pid <= 0:
        return 0
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return 0
    except PermissionError:
        pass
    return pid


def stop_later(victims: list[tuple[int, int]], mercy: float) -> int:
    """Fork a short-lived process that SIGKILLs the groups of ``victims`` ((pid, pidfd), already
    sent their stop signal) still alive after ``mercy`` seconds, so the exiting master need
    not wait. Its pid, or 0."""
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, ALL_SIGNALS)
    try:
        pid = os.fork()
    except OSError:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        return 0
    if pid:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        return pid
    try:
        signal.set_wakeup_fd(-1)
        for sig in ALL_SIGNALS:
            try:
                signal.signal(sig, signal.SIG_DFL)
            except (OSError, ValueError):
                pass
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        deadline = time.monotonic() + mercy
        left = list(victims)
        while left and time.monotonic() < deadline:
            time.sleep(POLL_EVERY)     # this helper is not the master: it may wait
            left = [(p, fd) for p, fd in left if not exited(p, fd)]
        for p, _ in left:
            os.write(2, f"[uwsgi-daemons] daemon did not die in time, killing (pid: {p})\n".encode())
            kill_group(p, signal.SIGKILL)
    except BaseException:  # noqa: BLE001
        pass
    os._exit(0)
