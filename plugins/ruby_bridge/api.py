"""The worker's answers to the Ruby ``UWSGI`` module (RBAPI-1..3): the core's
``Instance`` facade (the one the Python ``uwsgi`` module wraps) with Ruby's types.

Ruby's ``UWSGI.name(*args)`` crosses the channel as a CALL frame; the worker
looks ``name`` up in ``CALLS`` and sends the result back. A name that is not
in the table is answered with Ruby's NotImplementedError naming it.
"""
from __future__ import annotations

import os
import socket
from typing import Any, Callable

import uwsgi_py
from uwsgi_py import Instance

from . import wire

VERSION = uwsgi_py.UWSGI_VERSION  # the uWSGI release whose API we mirror (UWSGI::VERSION)
NOT_BUILT = "UWSGI.{name} is not available in uwsgi-py {version}'s ruby bridge"


class CallError(Exception):
    """A call that Ruby should see as ``ruby_class``."""

    def __init__(self, ruby_class: str, message: str):
        super().__init__(message)
        self.ruby_class = ruby_class


def init_constants(server) -> dict[str, Any]:
    """The INIT payload: UWSGI::OPT and friends, and the names CALLS answers."""
    settings = server.settings
    consts: dict[str, Any] = {
        "OPT": ruby_opt(settings.opt_dict()),
        "VERSION": VERSION,
        "HOSTNAME": socket.gethostname(),
        "NUMPROC": settings.processes,
        "SPOOL_OK": -2, "SPOOL_RETRY": -1, "SPOOL_IGNORE": 0,
    }
    if settings.pidfile:
        consts["PIDFILE"] = settings.pidfile
    return {"constants": consts, "functions": sorted(CALLS)}


def ruby_opt(opt: dict[str, Any]) -> dict[str, Any]:
    """RBAPI-2: flags true, values Strings, an option given twice or more an Array.

    The Python side's ``opt_dict()`` always gives a list for a repeatable
    option; uWSGI's Ruby hash holds a single occurrence as a plain String.
    """
    out: dict[str, Any] = {}
    for key, value in opt.items():
        if isinstance(value, list):
            value = value[0] if len(value) == 1 else value
        out[key] = value
    return out


# ---- the functions ---------------------------------------------------------------

def _masterpid(server) -> int:
    return Instance(server).master_pid


def _worker_id(server) -> int:
    return Instance(server).worker_id


def _request_id(server) -> int:
    return Instance(server).request_id()


def _mule_id(server) -> int:
    return 0


def _log(server, message) -> None:
    if not isinstance(message, bytes):
        raise CallError("TypeError", "UWSGI.log expects a String")
    _write_log(message + b"\n")
    return None


def _logsize(server) -> int:
    return Instance(server).log_size()


def _set_logvar(server, key, value) -> None:
    if not isinstance(key, bytes) or not isinstance(value, bytes):
        raise CallError("TypeError", "UWSGI.set_logvar expects two Strings")
    try:
        Instance(server).set_logvar(key.decode("utf-8", "surrogateescape"),
                                    value.decode("utf-8", "surrogateescape"))
    except RuntimeError as e:
        raise CallError("RuntimeError", str(e)) from None
    return None


def _get_logvar(server, key):
    if not isinstance(key, bytes):
        raise CallError("TypeError", "UWSGI.get_logvar expects a String")
    try:
        value = Instance(server).get_logvar(key.decode("utf-8", "surrogateescape"))
    except RuntimeError as e:
        raise CallError("RuntimeError", str(e)) from None
    return None if value is None else value.encode("utf-8", "surrogateescape")


def _mem(server) -> list[int]:
    """[rss, vsz] in bytes of the worker process, as uWSGI's get_memusage."""
    return list(Instance(server).memory())


def _i_am_the_spooler(server) -> bool:
    return False


def _reload(server):
    return True if Instance(server).reload("UWSGI.reload") else None


def _stop(server):
    return True if Instance(server).stop("UWSGI.stop") else None


CALLS: dict[str, Callable[..., Any]] = {
    "masterpid": _masterpid,
    "worker_id": _worker_id,
    "request_id": _request_id,
    "mule_id": _mule_id,
    "log": _log,
    "logsize": _logsize,
    "mem": _mem,
    "i_am_the_spooler": _i_am_the_spooler,
    # extensions (RBAPI-3): graceful reload (SIGHUP) and stop (SIGQUIT), as PYAPI-3/4
    "reload": _reload,
    "stop": _stop,
    # extensions: the Python API's logvars (uWSGI's rack plugin has none)
    "set_logvar": _set_logvar,
    "get_logvar": _get_logvar,
}


def _write_log(data: bytes) -> None:
    try:
        os.write(2, data)
    except OSError:
        pass


def answer(server, payload: bytes) -> tuple[bytes, bytes]:
    """Run one CALL frame; the (kind, payload) frame to send back."""
    try:
        name, args = wire.unpack(payload)
        name = name.decode("utf-8", "replace")
        func = CALLS.get(name)
        if func is None:
            raise CallError("NotImplementedError",
                            NOT_BUILT.format(name=name, version=uwsgi_py.__version__))
        expected = func.__code__.co_argcount - 1
        if len(args) != expected:
            raise CallError("ArgumentError", f"UWSGI.{name}: wrong number of arguments "
                                             f"(given {len(args)}, expected {expected})")
        return wire.RETURN, wire.pack(func(server, *args))
    except CallError as e:
        return wire.ERROR, wire.pack([e.ruby_class, str(e)])
    except wire.ProtocolError as e:
        return wire.ERROR, wire.pack(["RuntimeError", f"bad UWSGI call frame: {e}"])


def write_log(payload: bytes) -> None:
    """A WRITE frame: rack.errors output, written to the log as is."""
    if payload:
        _write_log(payload)
