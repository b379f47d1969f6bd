"""The instance as a plugin or an in-app API sees it, from any process of the instance.

``Instance(server)`` is the one facade that the Python ``uwsgi`` module and the Ruby
``UWSGI`` module wrap (they only convert types), and what the stats plugin reads:
identity, the workers' counters from the shared scoreboard, the listening sockets'
queues, the log, and the two requests an app may make of the master (reload, stop).
Everything is read-only but ``log``, ``reload``, ``stop`` and the current request's
logvars.
"""
from __future__ import annotations

import os
import signal

from . import log
from .scoreboard import BUSY, memory, status_name
from .sockets import queue

LOG_KILL_FAILED = "{caller}: kill({pid}): {why}"
# the counters every worker entry has (uWSGI's stats keys), then uwsgi-py's: busy_since, uri
WORKER_KEYS = ("id", "pid", "accepting", "requests", "delta_requests", "exceptions",
               "harakiri_count", "signals", "status", "rss", "vsz", "running_time",
               "last_spawn", "respawn_count", "tx", "avg_rt", "busy", "busy_since", "uri")


class Instance:
    """Read-only facts about this instance, plus ``log``, ``reload`` and ``stop``."""

    __slots__ = ("server",)

    def __init__(self, server):
        self.server = server

    # ---- identity ---------------------------------------------------------------
    @property
    def worker_id(self) -> int:
        """This process's worker id; 0 in the master, a mule or without a slot."""
        return self.server.worker_id

    @property
    def master_pid(self) -> int:
        """The master's pid; 0 without ``--master``."""
        return self.server.master_pid

    @property
    def numproc(self) -> int:
        return self.server.settings.processes

    @property
    def generation(self) -> int:
        """0 on a first start, +1 for every exec reload (uWSGI's UWSGI_RELOADS)."""
        return self.server.generation

    @property
    def is_reload(self) -> bool:
        return self.server.is_reload

    @property
    def started_on(self) -> int:
        return self.server.started_on

    @property
    def reload_check(self) -> bool:
        """True in the throwaway process a graceful reload starts to load the new code."""
        return self.server.handoff.preflight

    @property
    def ready(self) -> bool:
        """True once the workers of this image accept (in a worker: always)."""
        return bool(self.server.ready or self.server.worker_id)

    # ---- workers ----------------------------------------------------------------
    def worker(self, wid: int, memory_report: bool = False) -> dict:
        """Worker slot ``wid``'s counters (``WORKER_KEYS``), as the stats server shows
        them; ``status`` is ``idle``, ``busy``, ``pause`` or ``cheap``. With
        ``memory_report`` rss and vsz are read from /proc now."""
        board = self.server.scoreboard
        slot = board.read(wid)
        rss, vsz = memory(slot["pid"]) if memory_report else (slot["rss"], slot["vsz"])
        return {
            "id": wid, "pid": slot["pid"], "accepting": slot["accepting"],
            "requests": slot["requests"], "delta_requests": slot["delta_requests"],
            "exceptions": slot["exceptions"], "harakiri_count": slot["harakiri_count"],
            "signals": slot["signals"], "status": status_name(slot["status"], board.paused),
            "rss": rss, "vsz": vsz, "running_time": slot["running_time"],
            "last_spawn": slot["last_spawn"], "respawn_count": slot["respawn_count"],
            "tx": slot["tx"], "avg_rt": slot["avg_rt"], "busy": slot["status"] == BUSY,
            "busy_since": slot["busy_since"], "uri": slot["uri"],
        }

    def cores(self, wid: int) -> list[dict]:
        """Worker ``wid``'s cores (one per ``--threads`` thread, one without threads):
        ``id``, ``requests``, ``in_request`` (0 or 1), ``busy_since`` (epoch seconds of the
        request it serves, 0 when idle), ``uri``; with --threads also this worker process's
        ``delta_requests``, ``exceptions``, ``tx``, ``running_time`` and ``avg_rt`` on it."""
        board = self.server.scoreboard
        return board.read_cores(wid) if board is not None else []

    def workers(self, memory_report: bool = False) -> list[dict]:
        """Every worker slot, 1 to ``numproc`` (``worker()`` each)."""
        if self.server.scoreboard is None:
            return []
        return [self.worker(wid, memory_report) for wid in range(1, self.numproc + 1)]

    def total_requests(self) -> int:
        board = self.server.scoreboard
        return board.total_requests() if board is not None else 0

    def request_id(self) -> int:
        """Requests this worker has served (uWSGI's request_id); 0 outside a worker."""
        board = self.server.scoreboard
        wid = self.server.worker_id
        return board.read(wid)["requests"] if board is not None and wid else 0

    def count_signal(self) -> None:
        """In a worker: one more uWSGI signal handled (its ``signals`` counter)."""
        board, wid = self.server.scoreboard, self.server.worker_id
        if board is not None and board.read(wid)["pid"] == os.getpid():
            board.write(wid, signals=board.read(wid)["signals"] + 1)

    @staticmethod
    def memory(pid: int = 0) -> tuple[int, int]:
        """(rss, vsz) in bytes of ``pid`` (this process by default)."""
        return memory(pid or os.getpid())

    # ---- sockets -------------------------------------------------------------------
    @property
    def listener_fds(self) -> list[int]:
        return [lst.fd for lst in self.server.listeners]

    def sockets(self) -> list[dict]:
        """Each listening socket: ``name`` (the resolved address for an auto-assigned
        port), ``configured`` (the address as given: ``127.0.0.1:0``), ``proto``, ``fd``,
        and its accept queue now: ``queue``, ``max_queue``."""
        out = []
        for lst in self.server.listeners:
            waiting, backlog = queue(lst)
            name = lst.address() if lst.name.endswith(":0") else lst.name
            out.append({"name": name, "configured": lst.name, "proto": lst.proto, "fd": lst.fd,
                        "queue": waiting, "max_queue": backlog})
        return out

    def listen_queue(self, index: int = 0) -> int:
        """Connections waiting on listening socket ``index``; IndexError if there is none."""
        if not 0 <= index < len(self.server.listeners):
            raise IndexError("unable to find the specified socket")
        return queue(self.server.listeners[index])[0]

    # ---- plugins' own state -------------------------------------------------------------
    def state_for(self, plugin: str) -> dict:
        """The dict where plugin ``plugin`` keeps its state for this image (use your plugin's
        name). The same dict on every call in this process; a process forked later gets a
        copy as it was at the fork; an exec reload starts empty (carry what must survive
        with ``uwsgi_handoff_give``)."""
        return self.server.plugin_state.setdefault(plugin, {})

    # ---- the log --------------------------------------------------------------------
    @staticmethod
    def log(text: str | bytes) -> None:
        """One line on the instance's log, as written (no ``--log-date`` prefix)."""
        if isinstance(text, bytes):
            text = text.decode("utf-8", "backslashreplace")
        log.raw(text)

    @staticmethod
    def log_size() -> int:
        try:
            return os.fstat(2).st_size
        except OSError:
            return 0

    # ---- the request being served ------------------------------------------------------
    def set_logvar(self, key: str, value: str) -> None:
        """Set ``%(key)`` of the current request's ``--log-format`` line (uWSGI's
        uwsgi_logvar_add); RuntimeError outside a request."""
        req = self._request("set_logvar")
        if req.logvars is None:
            req.logvars = {}
        req.logvars[key] = value

    def get_logvar(self, key: str) -> str | None:
        """The current request's logvar ``key``, or None if the app has not set it."""
        return (self._request("get_logvar").logvars or {}).get(key)

    def _request(self, caller: str):
        req = getattr(self.server.current, "req", None)   # unset in a thread that never served
        if req is None:
            raise RuntimeError(f"{caller}() can only be called while a request is being served")
        return req

    # ---- asking the master -------------------------------------------------------------
    def reload(self, caller: str = "uwsgi.reload") -> bool:
        """A graceful reload (SIGHUP to the master); False, logged, if it cannot be asked."""
        return self._signal_master(signal.SIGHUP, caller)

    def stop(self, caller: str = "uwsgi.stop") -> bool:
        """Stop the instance (SIGQUIT to the master); False, logged, on failure."""
        return self._signal_master(signal.SIGQUIT, caller)

    def _signal_master(self, sig: int, caller: str) -> bool:
        pid = self.server.master_pid or os.getpid()
        try:
            os.kill(pid, sig)
        except OSError as e:
            log.raw(LOG_KILL_FAILED.format(caller=caller, pid=pid, why=e.strerror))
            return False
        return True

