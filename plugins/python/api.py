"""The in-process ``uwsgi`` module (PYAPI): uWSGI's names, types and return values."""
from __future__ import annotations

import os
import signal
import socket
import types

import uwsgi_py

VERSION = uwsgi_py.UWSGI_VERSION.encode()
_NOT_BUILT = ("register_signal", "signal", "signal_registered", "signal_wait", "signal_received",
              "add_timer", "add_rb_timer", "add_file_monitor", "add_cron", "cache_get", "cache_set",
              "cache_update", "cache_del", "cache_exists", "cache_clear", "spool", "send_to_spooler",
              "mule_msg", "mule_get_msg", "lock", "unlock", "sharedarea_read", "sharedarea_write",
              "rpc", "call", "register_rpc", "async_sleep", "suspend", "offload", "alarm",
              "chunked_read", "chunked_read_nb", "websocket_handshake", "websocket_recv",
              "websocket_send", "sendfile", "connection_fd")


def _not_built(name: str):
    def stub(*args, **kwargs):
        raise NotImplementedError(f"uwsgi.{name}() is not available in uwsgi-py "
                                  f"{uwsgi_py.__version__}")
    stub.__name__ = name
    return stub


def build(server) -> types.ModuleType:
    """A fresh ``uwsgi`` module bound to ``server`` (the process's context)."""
    mod = types.ModuleType("uwsgi", "uwsgi-py's implementation of uWSGI's Python API")
    settings = server.settings
    mod.version = VERSION
    mod.version_info = (*map(int, uwsgi_py.UWSGI_VERSION.split(".")), 0, b"")
    mod.uwsgi_py_version = uwsgi_py.__version__
    mod.hostname = socket.gethostname().encode()
    mod.numproc = settings.processes
    mod.cores = 1
    mod.buffer_size = settings.buffer_size
    mod.started_on = server.started_on
    mod.is_a_reload = server.is_reload
    mod.sockets = [lst.fd for lst in server.listeners]
    mod.opt = settings.opt_dict()
    mod.magic_table = {}
    mod.SPOOL_OK, mod.SPOOL_RETRY, mod.SPOOL_IGNORE = -2, -1, 0
    if settings.pidfile:
        mod.pidfile = settings.pidfile.encode()
    workers_cache: list[tuple] = []  # [the one tuple workers() returns]

    def worker_id() -> int:
        return server.worker_id

    def masterpid() -> int:
        return server.master_pid

    def total_requests() -> int:
        return server.scoreboard.total_requests() if server.scoreboard else 0

    def request_id() -> int:
        board = server.scoreboard
        return board.read(server.worker_id)["requests"] if board and server.worker_id else 0

    def mule_id() -> int:
        return 0

    def mem() -> tuple[int, int]:
        """PYAPI-5: (rss, vsz) of this process, in bytes."""
        from uwsgi_py.scoreboard import memory
        return memory(os.getpid())

    def logsize() -> int:
        try:
            return os.fstat(2).st_size
        except OSError:
            return 0

    def listen_queue(id: int = 0) -> int:  # noqa: A002 - uWSGI's keyword
        from uwsgi_py.sockets import queue
        if not 0 <= id < len(server.listeners):
            raise ValueError("unable to find the specified socket")
        return queue(server.listeners[id])[0]

    def workers() -> tuple:
        """PYAPI-6: a tuple of dicts, the same objects refilled on each call.

        Read from the scoreboard the stats server reads (same status rule,
        STATS-3); rss/vsz come from /proc with ``--memory-report``, else 0.
        """
        from uwsgi_py.scoreboard import memory, status_name
        board = server.scoreboard
        if not workers_cache:
            workers_cache.append(tuple({} for _ in range(settings.processes)))
        report = getattr(settings, "memory_report", False)
        for wid, d in enumerate(workers_cache[0], 1):
            slot = board.read(wid)
            rss, vsz = memory(slot["pid"]) if report else (slot["rss"], slot["vsz"])
            d.update({
                "id": wid, "pid": slot["pid"], "requests": slot["requests"],
                "delta_requests": slot["delta_requests"], "signals": slot["signals"],
                "exceptions": slot["exceptions"],
                "status": status_name(slot["status"], board.paused).encode(),
                "rss": rss, "vsz": vsz, "running_time": slot["running_time"],
                "last_spawn": slot["last_spawn"], "tx": slot["tx"], "avg_rt": slot["avg_rt"],
                "respawn_count": max(0, slot["respawn_count"] - 1),
                "apps": tuple({"id": i, "modifier1": app.modifier1,
                               "mountpoint": (getattr(app, "name", "") or "").encode(),
                               "startup_time": 0, "interpreter": 0, "callable": id(app),
                               "requests": slot["requests"], "exceptions": slot["exceptions"],
                               "chdir": b""} for i, app in enumerate(server.apps)),
            })
        return workers_cache[0]

    def log(message) -> bool:
        text = message.decode() if isinstance(message, bytes) else str(message)
        os.write(2, (text + "\n").encode("utf-8", "backslashreplace"))
        return True

    def _signal_master(sig: int):
        pid = server.master_pid or os.getpid()
        try:
            os.kill(pid, sig)
        except OSError as e:
            log(f"uwsgi: kill({pid}): {e.strerror}")
            return None
        return True

    def reload():
        """PYAPI-3: SIGHUP to the master (graceful reload); True, or None on failure."""
        return _signal_master(signal.SIGHUP)

    def stop():
        """PYAPI-4: SIGQUIT to the master; True, or None on failure."""
        return _signal_master(signal.SIGQUIT)

    def accepting(flag: bool = True) -> None:
        return None

    def ready():
        return True if server.ready or server.worker_id else None

    def set_user_harakiri(seconds: int) -> None:
        return None

    for func in (worker_id, masterpid, total_requests, request_id, mule_id, mem, logsize,
                 listen_queue, workers, log, reload, stop, accepting, ready, set_user_harakiri):
        setattr(mod, func.__name__, func)
    for name in _NOT_BUILT:
        setattr(mod, name, _not_built(name))
    for extra in server.hook.uwsgi_app_api(server=server):   # plugins fill stubs (signals, mules)
        for name, value in (extra or {}).items():
            setattr(mod, name, value)
    return mod
