"""The in-app ``uwsgi`` functions of the signal framework, locks and mules (PYAPI-8).

Names, arguments, return values and errors follow uWSGI 2.0's python plugin
(``uwsgi_pymodule.c``); docs/signals.md lists every difference.
"""
from __future__ import annotations

import os
import select
import sys

from uwsgi_py import log_line as log, log_verbose as vlog

from . import table
from .state import Shared


def run_handler(state: Shared, sig: int) -> None:
    """Run this process's handler for ``sig`` (uWSGI's ``uwsgi_signal_handler``)."""
    state.received = sig
    handler = state.handlers.get(sig)
    kind, ident = ("mule", state.mule_id) if state.mule_id else ("worker", state.instance.worker_id)
    if handler is None:
        vlog(table.ERROR_MANAGING.format(sig=sig, kind=kind, id=ident))
        return
    if kind == "worker":
        count_signal(state)
    try:
        handler(sig)
    except Exception:  # noqa: BLE001 - as uWSGI: print the traceback, carry on
        import traceback   # an error path: not imported at start-up
        log(traceback.format_exc().rstrip())
        vlog(table.ERROR_MANAGING.format(sig=sig, kind=kind, id=ident))


def count_signal(state: Shared) -> None:
    state.instance.count_signal()


def read_signals(state: Shared, fd: int, one: bool) -> bool:
    """Read and run what is queued on ``fd`` (one signal if ``one``); False at EOF."""
    try:
        data = os.read(fd, 1 if one else 256)
    except BlockingIOError:
        return True      # another process read it first (any worker, any mule)
    except OSError:
        return False
    for sig in data:
        run_handler(state, sig)
    return bool(data)


def build(state: Shared) -> dict:
    """The functions the plugin sets on the ``uwsgi`` module of this process."""
    settings = state.settings

    def _needs_master(what: str) -> None:
        if not settings.master:
            log(table.NO_MASTER)
            raise ValueError(f"unable to {what}")

    def register_signal(num, target, handler):
        sig = table.signum(num)
        target = target.decode() if isinstance(target, bytes) else str(target)
        _needs_master("register signal")
        role = state.role
        if role == "mule":
            log(table.ONLY_MASTER_WORKERS)
            raise ValueError("unable to register signal")
        refused = table.check_target(target)
        if refused:
            log(refused)
            raise ValueError("unable to register signal")
        if role in ("master", "check") and sig in state.handlers:
            log(table.REREGISTER)
            raise ValueError("unable to register signal")
        state.handlers[sig] = handler
        state.targets[sig] = target
        if role == "worker":
            state.send_up(["reg", sig, target])
        if role != "check":
            wid = state.instance.worker_id
            line = table.REGISTERED_DEFAULT if not target else table.REGISTERED
            log(line.format(sig=sig, wid=wid, target=target))
        return None

    def signal_registered(num):
        return True if table.signum(num) in state.handlers else None

    def signal(num, remote=None):
        sig = table.signum(num)
        if remote is not None:
            from .remote import send
            code = send(remote.decode() if isinstance(remote, bytes) else str(remote), sig)
            if code < 0:
                raise OSError(f"unable to deliver signal {sig} to node {remote}")
            if code == 0:
                raise ValueError(f"node {remote} rejected signal {sig}")
            return None
        if state.role == "check":
            return None
        if not state.send_up(["sig", sig]):
            log(table.NOT_DELIVERED.format(sig=sig, what="the master"))
        return None

    def signal_wait(*args):
        want = table.signum(args[0]) if args else None
        fds = state.signal_fds()
        if not fds:
            raise SystemError("error waiting for signal")
        state.received = -1
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN)
        while True:
            for fd, _ in poller.poll():
                if not read_signals(state, fd, one=True):
                    raise SystemError("error waiting for signal")
                if state.received >= 0 and (want is None or state.received == want):
                    return b""

    def signal_received():
        return state.received

    def _schedule(kind: str, entry: list, what: str):
        _needs_master(what)
        role = state.role
        if role == "master":
            from .scheduler import schedule_of
            if not schedule_of(state).add(kind, entry):
                raise ValueError(f"unable to {what}")
        elif role in ("worker", "mule"):
            state.send_up([kind, *entry])
        return None

    def add_timer(num, secs):
        return _schedule("timer", [table.signum(num), int(secs)], "add timer")

    def add_rb_timer(num, secs, iterations=0):
        return _schedule("rbtimer", [table.signum(num), int(secs), int(iterations)],
                         "add rb_timer")

    def add_cron(num, minute, hour, day, month, week):
        fields = [int(v) for v in (minute, hour, day, month, week)]
        _schedule("cron", [table.signum(num), *fields], "add cron")
        return True

    def add_file_monitor(num, path):
        path = os.fsdecode(path)
        if len(path.encode()) > 254:
            log("uwsgi_add_file_monitor: invalid filename length")
            raise ValueError("unable to add file monitor")
        return _schedule("filemon", [table.signum(num), os.path.abspath(path)],
                         "add file monitor")

    def lock(num=0):
        state.locks.lock(num)

    def unlock(num=0):
        state.locks.unlock(num)

    def is_locked(num=0):
        return state.locks.is_locked(num)

    def mule_id():
        return state.mule_id

    def mule_msg(message, mule=None):
        if isinstance(message, str):
            message = message.encode()
        if not state.nmules:
            raise ValueError("no mule configured")
        if isinstance(mule, (str, bytes)):
            raise ValueError("unknown farm")   # uwsgi-py has no farms
        if mule is None or mule == 0:
            fd = state.queue_any[1]
        elif isinstance(mule, int) and 0 < mule <= state.nmules:
            fd = state.queues[mule][1]
        else:
            raise ValueError("invalid mule number")
        try:
            os.write(fd, bytes(message))
        except BlockingIOError:
            log("*** MULE MSG QUEUE IS FULL: the mule is not reading "
                "(you can tune it with --mule-msg-size) ***")
            return False
        except OSError as e:
            log(f"mule_send_msg(): {e.strerror}")
            return False
        return True

    def mule_get_msg(signals=True, farms=True, buffer_size=65536, timeout=-1):
        if not state.mule_id:
            raise ValueError("you can receive mule messages only in a mule !!!")
        from .mules import get_message
        return get_message(state, bool(signals), int(buffer_size), timeout)

    def setprocname(name):
        name = name.decode() if isinstance(name, bytes) else str(name)
        try:
            with open("/proc/self/comm", "w") as f:
                f.write(name[:15])
        except OSError:
            pass
        return None

    def i_am_the_spooler():
        return None

    def spooler_missing(*args, **kwargs):
        raise RuntimeError("the uWSGI spooler (@spool, uwsgi.spool) is not part of uwsgi-py")

    api = {f.__name__: f for f in (
        register_signal, signal_registered, signal, signal_wait, signal_received, add_timer,
        add_rb_timer, add_cron, add_file_monitor, lock, unlock, is_locked, mule_id, mule_msg,
        mule_get_msg, setprocname, i_am_the_spooler)}
    api["spool"] = api["send_to_spooler"] = spooler_missing
    return api


def call_hook(name: str) -> None:
    """Call ``uwsgi.<name>()`` if the app set it (``post_fork_hook``, ``atexit``)."""
    mod = sys.modules.get("uwsgi")
    func = getattr(mod, name, None) if mod is not None else None
    if func is None:
        return
    try:
        func()
    except Exception:  # noqa: BLE001 - as uWSGI's python_call: print and carry on
        import traceback   # an error path: not imported at start-up
        log(traceback.format_exc().rstrip())
