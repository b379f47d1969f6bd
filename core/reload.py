"""Reloads, on both sides of the exec (RELOAD-1..9, CHAIN; STYLE §6).

A graceful reload, in this order:

1. ``graceful_reload`` (the action SIGHUP names): a throwaway process loads the
   new code and configuration (``start_check``); the workers keep serving.
2. ``check_done``: it failed -> ``refuse`` (the instance keeps serving and says
   why); it passed -> RELOADING, and ``advance`` calls ``exec_now``.
3. ``exec_now``: the signals are blocked, the workers' control pipes and the
   listeners are made inheritable, and ``exec_image`` runs the original argv
   with the handoff (``core/handoff.py``). The old workers still serve.
4. The next image: ``adopt`` takes the old workers into the worker table
   (``Life.OLD_GENERATION``) and forks its own.
5. ``retire``: once every new worker accepts, the old ones are told to stop
   (SIGHUP); when the last one is gone, ``report`` logs the outcome and sends
   the ``reloaded`` event.

``brutal_reload`` SIGTERMs the workers and execs once they are gone. Reloads
without an exec are in ``core/worker_reload.py``. This module reads and sets
the master's state; it never imports the master.
"""
from __future__ import annotations

import os
import signal
import sys
import time

from . import api, handoff, log, signals, upkeep, worker_reload
from .children import ALL_SIGNALS, Child, Life
from .state import State


class Reloader:
    """The reload under way (``master.reloader``)."""

    def __init__(self, again: bool = False) -> None:
        self.kind = ""
        self.started = 0.0          # time.time() when it began (the outcome's duration)
        self.check_pid = 0          # the throwaway process loading the new code
        self.deadline = 0.0         # monotonic: the check must be done by then
        self.again = again          # a graceful reload asked for meanwhile: once this one is done
        self.reported = False       # (the next image) the outcome was reported
        self.old_deadline = 0.0     # (the next image) the old workers are retired by then anyway
        self.chain = 0              # chain reload: the slot being replaced (0: none)
        self.chain_wait: tuple[int, Child] | None = None   # (slot, victim) until the new one accepts
        self.chain_logged = 0.0


def _begin(master, kind: str) -> None:
    r = master.reloader
    r.kind, r.started = kind, time.time()
    master.guard.master(master.hook.uwsgi_master_event, master=master, event="reloading",
                        info={"kind": kind})


def _executable() -> bool:
    # after --uid the interpreter may be out of reach: never tear down for an exec that fails
    if os.access(sys.executable, os.X_OK):
        return True
    log.log(log.RELOAD_REFUSED.format(why=f"{sys.executable} is not executable by this user"))
    return False


# ---- 1. begin (actions) ------------------------------------------------------------------
def graceful_reload(master) -> dict:
    """uWSGI ``grace_them_all``: check the new code, then exec; workers drain (RELOAD-1)."""
    r = master.reloader
    if master.state is State.SHUTTING_DOWN:
        return worker_reload.ignored(master)           # SIG-2, SHUT-4
    if busy(master):
        # SIG-2 would drop it; the code may have changed since this reload loaded it
        if not r.again:
            r.again = True
            log.log(log.RELOAD_AGAIN)
        return {"again": True}
    if not _executable():
        return {"refused": "interpreter not executable"}
    if master.settings.lazy:
        return worker_reload.reload_workers(master)     # RELOAD-3
    _begin(master, "graceful")
    log.log(log.GRACEFUL_RELOAD)
    if master.settings.exit_on_reload:
        # RELOAD-5: the instance exits once every worker has finished its request
        master.state = State.RELOADING
        return {"kind": "graceful", "signalled": master.children.stop_all(signal.SIGHUP)}
    if master.settings.no_reload_check:
        master.state = State.RELOADING
        return {"kind": "graceful"}
    return {"kind": "graceful", "check_pid": start_check(master)}


def brutal_reload(master) -> dict:
    """uWSGI ``reap_them_all``: SIGTERM the workers, then exec (RELOAD-2, SIG-3)."""
    children = master.children
    if master.state is State.SHUTTING_DOWN:
        # SIG-3: TERM hurries a graceful shutdown; the death check still wins
        log.log(log.BRUTAL_RELOAD)
        hurried = children.all()
        for child in hurried:
            children.kill(child, signal.SIGTERM)
        return {"hurried": [c.pid for c in hurried], "signal": "SIGTERM"}
    if not _executable():
        return {"refused": "interpreter not executable"}
    if master.state is State.RELOADING:
        return worker_reload.ignored(master)
    if master.state is State.RELOAD_CHECK:
        cancel_check(master)
    _begin(master, "brutal")
    log.log(log.BRUTAL_RELOAD)
    master.state = State.RELOADING
    return {"kind": "brutal", "signalled": children.stop_all(signal.SIGTERM), "signal": "SIGTERM"}


def busy(master) -> bool:
    """A reload is under way: checking, exec'ing, or (in the next image) its
    workers are not all accepting and the previous generation not retired yet."""
    if master.state in (State.RELOAD_CHECK, State.RELOADING):
        return True
    r = master.reloader
    return master.server.is_reload and not r.reported and time.monotonic() < r.old_deadline


# ---- 2. check, refuse ----------------------------------------------------------------------
def spawn_from(directory: str, path: str, args: list[str], env: dict, **kw) -> int:
    """``os.posix_spawn`` with ``directory`` as the child's working directory; the
    master's own (``--chdir``'s) is restored at once."""
    here = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.chdir(directory)
        return os.posix_spawn(path, args, env, **kw)
    finally:
        os.fchdir(here)
        os.close(here)


def start_check(master) -> int:
    """Start the throwaway process that loads the new code; its pid (0: refused)."""
    log.log(log.RELOAD_CHECKING)
    env = dict(os.environ)
    env[handoff.PREFLIGHT] = "1"
    args = [sys.executable, *sys.orig_argv[1:]]
    try:
        # the start directory, as the exec would; its own signal mask, whatever the
        # master's is: the check is a separate process
        pid = spawn_from(master.server.start_dir, sys.executable, args, env, setsigmask=(),
                         file_actions=[(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0)])
    except OSError as e:
        refuse(master, f"cannot start the reload check: {e.strerror}")
        return 0
    r = master.reloader
    r.check_pid = pid
    master.state = State.RELOAD_CHECK
    r.deadline = time.monotonic() + max(master.mercy, 1)
    return pid


def check_done(master, status: int) -> None:
    """The check process was reaped (``Master.reap``)."""
    r = master.reloader
    r.check_pid = 0
    r.deadline = 0.0
    if master.state is not State.RELOAD_CHECK:
        return
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        refuse(master, f"the new code or configuration failed to load (exit status {code})")
        return
    master.state = State.RELOADING


def cancel_check(master) -> None:
    """Kill the check (a brutal reload or a shutdown overtakes it); it is still reaped
    as the check, which then finds the state moved on."""
    r = master.reloader
    if r.check_pid:
        try:
            os.kill(r.check_pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    r.deadline = 0.0


def refuse(master, why: str) -> None:
    log.log(log.RELOAD_REFUSED.format(why=why))
    master.state = State.RUNNING
    master.reloader.deadline = 0.0
    result = outcome(master, refused=True, error=why)
    master.guard.master(master.hook.uwsgi_master_event, master=master, event="reload-refused",
                        info=result)


def advance(master, now: float) -> None:
    """The loop's step while reloading: the check's deadline, then the exec once its
    condition holds (a graceful reload at once, a brutal one once the workers are gone)."""
    r = master.reloader
    if master.state is State.RELOAD_CHECK:
        if r.deadline and now > r.deadline:
            refuse(master, "the reload check did not finish within the mercy")
            os.kill(r.check_pid, signal.SIGKILL)
        return
    if master.state is State.RELOADING:
        if master.settings.exit_on_reload:
            if not master.children.all():
                exec_now(master)
        elif not master.children.workers or r.kind == "graceful":
            exec_now(master)


# ---- 3. exec ---------------------------------------------------------------------------------
def exec_now(master) -> None:
    """RELOAD-5: clean up, return to the start directory, exec the original argv."""
    master.guard.master(master.hook.uwsgi_master_cleanup, master=master, reason="reload")
    if master.settings.exit_on_reload:
        log.log(log.GAME_OVER)
        upkeep.vacuum(master.settings, master.server.listeners)
        master.state = State.EXITED
        master.exit_code = 0
        return
    api.give_handoffs(master)   # plugins' state and fds for the next image
    # from here on a signal waits for the next image (pending across execve)
    signals.block_for_exec(master.table)
    signals.requeue(master.wake_r, master.table)
    log.log(log.BINARY_RELOADING)
    old = []
    for child in master.children.all():
        # still serving: the next image retires them once its workers accept
        if child.ctl >= 0:
            os.set_inheritable(child.ctl, True)
        old.append({"id": child.id, "pid": child.pid, "ctl": child.ctl,
                    "cursed": child.cursed_at > 0})
    r = master.reloader
    exec_image(master, old, {"kind": r.kind, "started": r.started, "again": r.again})


def exec_image(master, old_workers: list[dict], reload: dict) -> None:
    """RELOAD-5 steps 4-6: start directory, keep the listeners (and the old workers'
    control pipes), close every other fd, exec the original argv with the handoff.
    The master's signals stay blocked across the exec (``signals.block_for_exec``)."""
    server = master.server
    log.log(log.CHDIR.format(path=server.start_dir))
    os.chdir(server.start_dir)
    log.log(log.CLOSING_FDS.format(max_fd=os.sysconf("SC_OPEN_MAX")))
    keep = {0, 1, 2} | {w["ctl"] for w in old_workers if w.get("ctl", -1) >= 0}
    for fd in master.exec_fds:    # plugins' fds that the next image adopts
        os.set_inheritable(fd, True)
        keep.add(fd)
    for index, lst in enumerate(server.listeners):
        os.set_inheritable(lst.fd, True)
        keep.add(lst.fd)
        log.log(log.FD_MAPPED.format(fd=lst.fd, index=index, name=lst.name))
    signals.block_for_exec(master.table)
    close_unrelated_fds(keep)
    args = [sys.executable, *sys.orig_argv[1:]]
    env = handoff.give(os.environ, generation=server.generation + 1, fds=server.handoff_fds(),
                       old_workers=old_workers,
                       reload={**reload, "history": master.reloads, "paused": master.paused},
                       start_dir=server.start_dir)
    log.log(log.RUNNING.format(path=" ".join(args)))
    signal.set_wakeup_fd(-1)
    try:
        os.execve(sys.executable, args, env)
    except OSError as e:
        # nothing is left to serve with (fds closed): say why and stop
        log.log(f"execve({sys.executable}): {e.strerror}; the instance cannot reload and exits")
        os._exit(1)


def close_unrelated_fds(keep: set[int]) -> None:
    """RELOAD-6: close every fd but the listeners, fds 0-2 and what the next image adopts,
    including inheritable fds an app or a C extension opened in the master."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 1024))
    for fd in fds:
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def refork(master) -> int:
    """uWSGI ``uwsgi_refork_master`` (FIFO-11): fork a copy of the master that detaches
    (``setsid``) and execs as a reload keeping the listeners. Our workers stay
    ours; the copy starts its own. Returns the copy's pid (0 if fork failed)."""
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, ALL_SIGNALS)
    try:
        pid = os.fork()
    except OSError as e:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        log.log(log.REFORK_FAILED.format(error=e.strerror))
        return 0
    if pid:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        log.vlog(log.REFORKED.format(pid=pid))
        master.reforked = True
        return pid
    try:
        signal.set_wakeup_fd(-1)   # never write into the old master's pipe
        os.setsid()
        log.log(log.FORKING)
        exec_image(master, [], {"kind": "refork", "started": time.time()})
    finally:
        os._exit(1)


# ---- 4-5. the next image: adopt, retire, report ----------------------------------------------
def adopt(master) -> None:
    """Workers of the previous image keep serving until ours accept."""
    master.children.adopt(master.server.handoff.old_workers)
    master.reloader.old_deadline = time.monotonic() + max(master.mercy, 1)


def retire(master) -> None:
    """Once every worker of ours accepts: the ``ready`` event, and the previous
    generation told to stop (or once ``old_deadline`` passed, ready or not)."""
    children = master.children
    ready = children.all_accepting()
    if ready and not master.server.ready:
        master.server.ready = True
        master.guard.master(master.hook.uwsgi_master_event, master=master, event="ready", info={})
        if master.server.is_reload and not children.retiring:
            report(master)
    waiting = [c for c in children.retiring.values()
               if c.life is Life.OLD_GENERATION and not c.cursed_at]
    if waiting and (ready or time.monotonic() > master.reloader.old_deadline):
        for child in waiting:
            children.stop(child, signal.SIGHUP)


def retired(master) -> None:
    """A retiring worker is gone (``Fate.RETIRED``): the reload is done with the last one."""
    if (master.server.is_reload and not master.children.retiring and master.server.ready
            and not master.reloader.chain):
        report(master)


def report(master) -> None:
    r = master.reloader
    if r.reported:
        return
    r.reported = True
    result = outcome(master, refused=False, replaced=len(master.server.handoff.old_workers))
    master.guard.master(master.hook.uwsgi_master_event, master=master, event="reloaded",
                        info=result)


def again(master) -> None:
    """A graceful reload asked for during the last one starts once that one is done."""
    r = master.reloader
    if r.again and not busy(master):
        r.again = False
        graceful_reload(master)


def outcome(master, refused: bool, error: str = "", replaced: int = 0) -> dict:
    """The reload's outcome: logged, kept in ``master.reloads`` (the last 20), returned."""
    r, carried = master.reloader, master.server.handoff.reload
    started = carried.get("started", r.started) or time.time()
    result = {
        "generation": master.server.generation,
        "kind": r.kind or carried.get("kind", "graceful"),
        "duration_ms": int((time.time() - started) * 1000),
        "workers_replaced": replaced,
        "refused": refused,
        "error": error,
        "time": int(time.time()),
    }
    master.reloads.append(result)
    del master.reloads[:-20]
    log.log(log.RELOAD_OUTCOME.format(
        generation=result["generation"], kind=result["kind"], ms=result["duration_ms"],
        replaced=replaced, refused="yes" if refused else "no",
        error=f" error={error!r}" if error else ""))
    return result
