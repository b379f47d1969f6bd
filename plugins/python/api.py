"""The in-process ``uwsgi`` module (PYAPI): uWSGI's names, types and return values."""
from __future__ import annotations

import socket
import types

import uwsgi_py
from uwsgi_py import Instance

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
    """A fresh ``uwsgi`` module bound to ``server`` (the process's context): the core's
    ``Instance`` facade with uWSGI's names and types (bytes where uWSGI gives bytes)."""
    inst = Instance(server)
    mod = types.ModuleType("uwsgi", "uwsgi-py's implementation of uWSGI's Python API")
    settings = server.settings
    mod.version = VERSION
    mod.version_info = (*map(int, uwsgi_py.UWSGI_VERSION.split(".")), 0, b"")
    mod.uwsgi_py_version = uwsgi_py.__version__
    mod.hostname = socket.gethostname().encode()
    mod.numproc = settings.processes
    mod.cores = settings.threads
    mod.buffer_size = settings.buffer_size
    mod.started_on = inst.started_on
    mod.is_a_reload = server.is_reload
    mod.sockets = [lst.fd for lst in server.listeners]
    mod.opt = settings.opt_dict()
    mod.magic_table = {}
    mod.SPOOL_OK, mod.SPOOL_RETRY, mod.SPOOL_IGNORE = -2, -1, 0
    if settings.pidfile:
        mod.pidfile = settings.pidfile.encode()
    workers_cache: list[tuple] = []  # [the one tuple workers() returns]

    def worker_id() -> int:
        return inst.worker_id

    def masterpid() -> int:
        return inst.master_pid

    def total_requests() -> int:
        return inst.total_requests()

    def request_id() -> int:
        return inst.request_id()

    def mule_id() -> int:
        return 0

    def mem() -> tuple[int, int]:
        """PYAPI-5: (rss, vsz) of this process, in bytes."""
        return inst.memory()

    def logsize() -> int:
        return inst.log_size()

    def listen_queue(id: int = 0) -> int:  # noqa: A002 - uWSGI's keyword
        try:
            return inst.listen_queue(id)
        except IndexError as e:
            raise ValueError(str(e)) from None

    def workers() -> tuple:
        """PYAPI-6: a tuple of dicts, the same objects refilled on each call.

        Read from the scoreboard the stats server reads (same status rule,
        STATS-3); rss/vsz come from /proc with ``--memory-report``, else 0.
        """
        if not workers_cache:
            workers_cache.append(tuple({} for _ in range(settings.processes)))
        report = getattr(settings, "memory_report", False)
        for d, slot in zip(workers_cache[0], inst.workers(report)):
            d.update({
                "id": slot["id"], "pid": slot["pid"], "requests": slot["requests"],
                "delta_requests": slot["delta_requests"], "signals": slot["signals"],
                "exceptions": slot["exceptions"], "status": slot["status"].encode(),
                "rss": slot["rss"], "vsz": slot["vsz"], "running_time": slot["running_time"],
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
        inst.log(message if isinstance(message, bytes) else str(message))
        return True

    def reload():
        """PYAPI-3: SIGHUP to the master (graceful reload); True, or None on failure."""
        return True if inst.reload("uwsgi.reload") else None

    def stop():
        """PYAPI-4: SIGQUIT to the master; True, or None on failure."""
        return True if inst.stop("uwsgi.stop") else None

    def accepting(flag: bool = True) -> None:
        return None

    def ready():
        return True if inst.ready else None

    def set_user_harakiri(seconds: int) -> None:
        return None

    def set_logvar(key: str, value: str) -> None:
        """``%(key)`` of this request's --log-format line (uWSGI's s#s# arguments)."""
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError("set_logvar() takes two strings")
        try:
            inst.set_logvar(key, value)
        except RuntimeError as e:
            raise SystemError(str(e)) from None

    def get_logvar(key: str) -> bytes | None:
        """This request's logvar ``key`` as bytes (as uWSGI returns it), None if unset."""
        if not isinstance(key, str):
            raise TypeError("get_logvar() takes a string")
        try:
            value = inst.get_logvar(key)
        except RuntimeError as e:
            raise SystemError(str(e)) from None
        return None if value is None else value.encode("utf-8", "surrogateescape")

    for func in (worker_id, masterpid, total_requests, request_id, mule_id, mem, logsize,
                 listen_queue, workers, log, reload, stop, accepting, ready, set_user_harakiri,
                 set_logvar, get_logvar):
        setattr(mod, func.__name__, func)
    for name in _NOT_BUILT:
        setattr(mod, name, _not_built(name))
    for extra in server.hook.uwsgi_app_api(server=server):   # plugins fill stubs (signals, mules)
        for name, value in (extra or {}).items():
            setattr(mod, name, value)
    return mod
