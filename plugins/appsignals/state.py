"""One process's view of the signal framework, and the channels the master makes before it forks.

uWSGI keeps its signal table in shared memory; here every process keeps its own
handlers (a preloaded app registers in the master, so workers inherit them at
fork) and everything crosses processes over these channels:

| channel | made | writers | readers |
| --- | --- | --- | --- |
| ``up`` (datagram socketpair) | once, kept across exec reloads | workers, mules, the master's own app code | the master (routes, records registrations) |
| ``any worker`` (pipe) | per image | the master | every worker: the first to read gets it |
| ``worker N`` (pipe per slot) | per image | the master | the worker in slot N (its respawns too) |
| ``any mule`` / ``mule N`` (pipes) | per image | the master | the mules |
| mule queues (datagram socketpairs, shared + one per mule) | per image | anyone (``uwsgi.mule_msg``) | the mules |

The lock file (``--locks``) is also kept across exec reloads.
"""
from __future__ import annotations

import os
import socket
import stat

from uwsgi_py import Instance

from .locks import Locks

# what the previous image handed off (uwsgi_handoff_take): {"state": ..., "fds": ...}
HANDED: dict = {}


def _pipe() -> tuple[int, int]:
    return os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)


def _dgram(bufsize: int = 0) -> tuple[int, int]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    for sock in (a, b):
        sock.setblocking(False)
        if bufsize:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, bufsize)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, bufsize)
    return a.detach(), b.detach()


def _close(fds) -> None:
    for fd in fds:
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass


def _is_socket(fd: int) -> bool:
    try:
        return stat.S_ISSOCK(os.fstat(fd).st_mode)
    except OSError:
        return False


class Shared:
    """Created in the first process of an image that needs it (the master, or the reload
    check) and inherited by every worker and mule forked from it."""

    def __init__(self, server):
        self.instance = Instance(server)
        self.settings = s = server.settings
        self.mule_id = 0
        self.handlers: dict[int, object] = {}   # signal -> callable, in this process
        self.targets: dict[int, str] = {}       # signal -> target (the master routes by it)
        self.received = -1                      # uwsgi.signal_received()
        self.schedule = None                    # the master's Schedule (scheduler.py)
        self.watching = False                   # the master watches its fds (core closes them at fork)
        self.up_master = self.up_proc = -1
        self.any_worker = (-1, -1)
        self.workers: dict[int, tuple[int, int]] = {}
        self.any_mule = (-1, -1)
        self.mules: dict[int, tuple[int, int]] = {}
        self.queue_any = (-1, -1)               # (reader, writer)
        self.queues: dict[int, tuple[int, int]] = {}
        self.nmules = len(s.mule) + (s.mules or 0)
        self.carried: dict = {}
        self.handoff: dict | None = None        # what uwsgi_handoff_give returns (set at cleanup)
        lock_fd = -1
        if HANDED and not self.instance.reload_check:
            self.carried = HANDED.pop("state") or {}
            fds = HANDED.pop("fds")
            if _is_socket(fds.get("up_master", -1)) and _is_socket(fds.get("up_proc", -1)):
                self.up_master, self.up_proc = fds["up_master"], fds["up_proc"]
            lock_fd = fds.get("locks", -1)
            try:
                os.fstat(lock_fd)
            except OSError:
                lock_fd = -1
            for fd in (self.up_master, self.up_proc, lock_fd):
                if fd >= 0:
                    os.set_inheritable(fd, False)
        self.locks = Locks(s.locks or 0, lock_fd)
        if self.up_master < 0 and self.role == "master":
            # now: app code importing in the master may already raise signals
            self.up_master, self.up_proc = _dgram(s.signal_bufsize or 0)

    # ---- who am I --------------------------------------------------------------------
    @property
    def role(self) -> str:
        """``master``, ``worker``, ``mule``, ``check`` (the reload check) or ``alone``
        (no master: worker 1 is the first process)."""
        if self.mule_id:
            return "mule"
        if self.instance.worker_id:
            return "worker"
        if self.instance.reload_check:
            return "check"
        if self.settings.master:
            return "master"
        return "alone"

    # ---- channels ----------------------------------------------------------------------
    def open_channels(self) -> None:
        """In the master, before the first workers of this image are forked."""
        self.any_worker = _pipe()
        self.workers = {wid: _pipe() for wid in range(1, self.settings.processes + 1)}
        if self.nmules:
            size = self.settings.mule_msg_size or 0
            self.any_mule = _pipe()
            self.mules = {mid: _pipe() for mid in range(1, self.nmules + 1)}
            self.queue_any = _dgram(size)
            self.queues = {mid: _dgram(size) for mid in range(1, self.nmules + 1)}

    def carry(self) -> dict:
        """The fds the next image adopts (also made inheritable by the core)."""
        return {"up_master": self.up_master, "up_proc": self.up_proc, "locks": self.locks.fd}

    def enter_worker(self, wid: int) -> None:
        """In a new worker: close what belongs to the master, other workers and the mules."""
        drop = [self.any_worker[1], self.any_mule[0], self.any_mule[1], self.queue_any[0]]
        if not self.watching:   # forked before the master watched it: still open here
            drop.append(self.up_master)
        for other, (r, w) in self.workers.items():
            drop.append(w)
            if other != wid:
                drop.append(r)
        for r, w in self.mules.values():
            drop += [r, w]
        drop += [reader for reader, _ in self.queues.values()]
        _close(drop)
        self.any_mule = (-1, -1)
        self.mules = {}
        self.queue_any = (-1, self.queue_any[1])
        self.queues = {mid: (-1, w) for mid, (_, w) in self.queues.items()}
        self.workers = {wid: (self.workers[wid][0], -1)} if wid in self.workers else {}
        self.any_worker = (self.any_worker[0], -1)
        self.up_master = -1
        self.locks.after_fork()

    def enter_mule(self, mid: int) -> None:
        """In a new mule (the master's own fds are closed already)."""
        drop = [r for r, _ in self.workers.values()] + [w for _, w in self.workers.values()]
        drop += list(self.any_worker) + [self.any_mule[1]]
        for other, (r, w) in self.mules.items():
            drop.append(w)
            if other != mid:
                drop.append(r)
        for other, (reader, _) in self.queues.items():
            if other != mid:
                drop.append(reader)
        _close(drop)
        self.workers = {}
        self.any_worker = (-1, -1)
        self.any_mule = (self.any_mule[0], -1)
        self.mules = {mid: (self.mules[mid][0], -1)}
        self.queues = {other: (reader if other == mid else -1, w)
                       for other, (reader, w) in self.queues.items()}
        self.up_master = -1
        self.mule_id = mid
        self.locks.after_fork()

    def signal_fds(self) -> list[int]:
        """The fds this worker or mule reads signals from: its own, then the shared one."""
        if self.mule_id:
            return [fd for fd in (self.mules[self.mule_id][0], self.any_mule[0]) if fd >= 0]
        own = self.workers.get(self.instance.worker_id, (-1, -1))[0]
        return [fd for fd in (own, self.any_worker[0]) if fd >= 0]

    def queue_fds(self) -> list[int]:
        """A mule's message queues: its own, then the shared one."""
        if not self.mule_id:
            return []
        return [fd for fd in (self.queues[self.mule_id][0], self.queue_any[0]) if fd >= 0]

    def send_up(self, message: list) -> bool:
        """A datagram to the master (a signal to route, a registration)."""
        if self.up_proc < 0:
            return False
        import json   # the first signal an app raises imports it, not the start
        try:
            os.write(self.up_proc, json.dumps(message).encode())
        except BlockingIOError:
            from uwsgi_py import log_line as log
            from .table import QUEUE_FULL
            log(QUEUE_FULL.format(what="the master is not reading"))
            return False
        except OSError as e:
            from uwsgi_py import log_line as log
            log(f"uwsgi_signal_send(): {e.strerror}")
            return False
        return True

    def close_all(self) -> None:
        """The master exits: nothing of this is needed any more."""
        fds = [self.up_master, self.up_proc, *self.any_worker, *self.any_mule,
               *self.queue_any]
        for pair in (*self.workers.values(), *self.mules.values(), *self.queues.values()):
            fds += list(pair)
        _close(fds)


def mine(server) -> dict:
    """This plugin's state in this image: ``shared`` (the ``Shared``), and in the master
    ``mules`` and ``touch`` (``--touch-mules-reload`` paths -> mtime)."""
    return Instance(server).state_for("appsignals")


def shared(server) -> Shared:
    """This image's ``Shared``, made on first use (the master before it forks)."""
    state = mine(server).get("shared")
    if state is None:
        state = mine(server)["shared"] = Shared(server)
    return state
