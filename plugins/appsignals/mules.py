"""Mules (``--mule``, ``--mules N``): processes of the master that run signal handlers,
``@mulefunc`` messages or a program of their own (uWSGI's core/mule.c).

The master forks them once its workers are up, respawns one that dies, stops
them with the instance and replaces them at every reload (the old ones get
SIGHUP when the master execs; the new image SIGKILLs any still alive after
``--mule-reload-mercy``).
"""
from __future__ import annotations

import os
import select
import signal
import sys
import time
import traceback

_BLOCKABLE = signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP}   # around fork

from uwsgi_py import MasterView, die_with_master, vacate_master_fds
from uwsgi_py import log_line as log, log_verbose as vlog

from . import api, table

# blocked across fork, as the core does for workers (the child installs its own handlers)
ALL_SIGNALS = set(signal.Signals) - {signal.SIGKILL, signal.SIGSTOP}

SPAWNED = "spawned uWSGI mule {id} (pid: {pid})"
CRIPPLED = "OOOPS mule {id} (pid: {pid}) crippled...trying respawn..."
ANNIHILATED = "mule {id} (pid: {pid}) annihilated"
NO_MERCY = "mule {id} (pid: {pid}) is taking too much time to die...NO MERCY !!!"
BRAYING = "uWSGI mule {id} braying: my master died, i will follow him..."
MESSAGE = "*** mule {id} received a {size} bytes message ***"
TOUCHED = "*** {path} has been touched... mules reload !!! ***"
RESPAWN_GAP = 1.0   # a mule that dies at once is respawned at most once a second


class Mule:
    __slots__ = ("id", "patch", "pid", "cursed_at", "spawned", "respawn_at")

    def __init__(self, mid: int, patch: str):
        self.id, self.patch = mid, patch
        self.pid = 0
        self.cursed_at = self.spawned = self.respawn_at = 0.0


class Mules:
    """The master's mule table."""

    def __init__(self, state):
        self.state = state
        s = state.settings
        patches = [p or "" for p in s.mule] + [""] * (s.mules or 0)
        self.mules = [Mule(i, p) for i, p in enumerate(patches, 1)]
        # mules of the previous image, told to stop: (pid, id) -> when (wall clock)
        self.old = {(pid, mid): when for pid, mid, when in state.carried.get("mules", [])}
        self.master = None

    def start(self, master) -> None:
        self.master = master
        for mule in self.mules:
            self.spawn(mule)

    def spawn(self, mule: Mule) -> None:
        master = self.master
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _BLOCKABLE)
        try:
            pid = os.fork()
        except OSError as e:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            log(f"fork() of mule {mule.id}: {e.strerror}")
            mule.respawn_at = time.monotonic() + RESPAWN_GAP
            return
        if pid == 0:
            run(master, self.state, mule)   # never returns
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        mule.pid, mule.cursed_at, mule.respawn_at = pid, 0.0, 0.0
        mule.spawned = time.monotonic()
        log(SPAWNED.format(id=mule.id, pid=pid))

    def curse(self, sig: int) -> None:
        now = time.monotonic()
        for mule in self.mules:
            if mule.pid > 0:
                mule.cursed_at = now
                try:
                    os.kill(mule.pid, sig)
                except ProcessLookupError:
                    pass

    def reaped(self, pid: int) -> bool:
        for key in list(self.old):
            if key[0] == pid:
                del self.old[key]
                return True
        mule = next((m for m in self.mules if m.pid == pid), None)
        if mule is None:
            return False
        running = MasterView(self.master).state in ("running", "reload-check")
        if not running:
            log(ANNIHILATED.format(id=mule.id, pid=pid))
        elif not mule.cursed_at:
            log(CRIPPLED.format(id=mule.id, pid=pid))
        mule.pid = 0
        if running:
            gap = mule.spawned + RESPAWN_GAP - time.monotonic()
            mule.respawn_at = time.monotonic() + max(0.0, gap)
        return True

    def cycle(self) -> None:
        """Every pass of the master's loop: due respawns, the reload mercy."""
        now = time.monotonic()
        if MasterView(self.master).state in ("running", "reload-check"):
            for mule in self.mules:
                if not mule.pid and mule.respawn_at and now >= mule.respawn_at:
                    self.spawn(mule)
        mercy = self.state.settings.mule_reload_mercy
        for mule in self.mules:
            if mule.pid > 0 and mule.cursed_at and now - mule.cursed_at > mercy:
                vlog(NO_MERCY.format(id=mule.id, pid=mule.pid))
                mule.cursed_at = now
                _kill(mule.pid)
        wall = time.time()
        for (pid, mid), when in list(self.old.items()):
            if wall - when > mercy:
                vlog(NO_MERCY.format(id=mid, pid=pid))
                _kill(pid)
                del self.old[(pid, mid)]

    def export(self) -> list:
        """Mules told to stop by this image, for the next one to finish off."""
        now = time.time()
        alive = [[m.pid, m.id, now] for m in self.mules if m.pid > 0]
        return alive + [[pid, mid, when] for (pid, mid), when in self.old.items()]


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# ---- in the mule ---------------------------------------------------------------------------

def _end_me(signum, frame):
    raise SystemExit(table.END_CODE)


def run(master, state, mule: Mule) -> None:
    """The mule process, right after fork (signals blocked); never returns."""
    code = table.END_CODE
    try:
        signal.set_wakeup_fd(-1)
        vacate_master_fds(master)
        for lst in master.server.listeners:   # a mule serves no request (uwsgi_close_all_sockets)
            lst.sock.close()
        state.enter_mule(mule.id)
        for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, _end_me)
        for sig in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGPIPE, signal.SIGALRM,
                    signal.SIGTSTP):
            signal.signal(sig, signal.SIG_IGN)
        for sig in (signal.SIGCHLD, signal.SIGQUIT, signal.SIGWINCH, signal.SIGURG):
            signal.signal(sig, signal.SIG_DFL)
        die_with_master(signal.SIGKILL)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        if os.getppid() != MasterView(master).master_pid:
            return
        api.call_hook("post_fork_hook")
        if program(mule.patch):
            return          # uWSGI: a mule whose program returns ends, and is respawned
        loop(state)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:  # noqa: BLE001 - never unwind into the master's code
        log(traceback.format_exc().rstrip())
        code = 1
    finally:
        try:
            api.call_hook("atexit")
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def program(patch: str) -> bool:
    """Run ``--mule FILE.py`` (as ``__main__``) or ``--mule module:callable``; False if the
    mule has no program of its own (a plain mule)."""
    if patch.endswith(".py"):
        import runpy   # in the mule only
        runpy.run_path(patch, run_name="__main__")
        return True
    if ":" in patch:
        import importlib
        module, _, name = patch.partition(":")
        func = importlib.import_module(module)
        for part in name.split("."):
            func = getattr(func, part)
        func()
        return True
    return False


def loop(state) -> None:
    """uWSGI's ``uwsgi_mule_handler``: signals and messages, forever."""
    ep = select.epoll()
    signals, queues = state.signal_fds(), state.queue_fds()
    for fd in signals + queues:
        ep.register(fd, select.EPOLLIN)
    while True:
        for fd, _ in ep.poll():
            if fd in signals:
                if not api.read_signals(state, fd, one=True):
                    vlog(BRAYING.format(id=state.mule_id))
                    raise SystemExit(0)
            else:
                deliver(state, fd, 65536)


def deliver(state, fd: int, size: int) -> None:
    try:
        message = os.read(fd, size)
    except BlockingIOError:
        return
    hook = getattr(sys.modules.get("uwsgi"), "mule_msg_hook", None)
    if hook is None:
        log(MESSAGE.format(id=state.mule_id, size=len(message)))
        return
    try:
        hook(message)
    except Exception:  # noqa: BLE001 - as uWSGI: print the traceback, carry on
        log(traceback.format_exc().rstrip())


def get_message(state, signals: bool, size: int, timeout) -> bytes | None:
    """``uwsgi.mule_get_msg()``: the next message (None on timeout or after a signal)."""
    poller = select.poll()
    queues, sigs = state.queue_fds(), state.signal_fds() if signals else []
    for fd in queues + sigs:
        poller.register(fd, select.POLLIN)
    wait = None if timeout is None or timeout < 0 else timeout * 1000
    while True:
        events = poller.poll(wait)
        if not events:
            return None
        for fd, _ in events:
            if fd in sigs:
                if not api.read_signals(state, fd, one=True):
                    vlog(BRAYING.format(id=state.mule_id))
                    raise SystemExit(0)
                return None
            try:
                return os.read(fd, size)
            except BlockingIOError:
                continue
