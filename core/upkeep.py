"""The master's upkeep: pause, stats dump, logs, pidfiles, vacuum.

The actions here (``toggle_pause`` ... ``update_pidfiles``) are named by the
signal and FIFO tables (``core/actions.py``); each runs on the master's loop
thread, does its work, returns what it did and never blocks.
"""
from __future__ import annotations

import os
import signal

from . import log, pidfile
from .control import CTL_PAUSE, CTL_REOPEN_LOG, CTL_RESUME
from .options import OptionError


# ---- actions -------------------------------------------------------------------------------
def toggle_pause(master) -> dict:
    """uWSGI ``suspend_resume_them_all`` (SIG-8)."""
    master.paused = not master.paused
    master.scoreboard.paused = master.paused
    if master.paused:
        log.vlog(log.PAUSE)
    else:
        log.vlog(log.RESUME)
    told = master.children.tell_all(CTL_PAUSE if master.paused else CTL_RESUME)
    master.guard.master(master.hook.uwsgi_master_event, master=master,
                        event="paused" if master.paused else "resumed", info={})
    return {"paused": master.paused, "told": told}


def stats(master) -> dict:
    """uWSGI ``stats``: config dump and counters to the log (SIG-7)."""
    scoreboard = master.scoreboard
    lines = ["", ";uWSGI instance configuration", "[uwsgi]", *master.settings.ini_lines(),
             ";end of configuration", "",
             f"\tworkers total requests: {scoreboard.total_requests()}", "-" * 17]
    for wid in range(1, master.numproc + 1):
        slot = scoreboard.read(wid)
        for i, app in enumerate(master.server.apps or [None]):
            name = getattr(app, "name", "") if app else ""
            lines.append(f"\tworker {wid} app {i} [{name}] requests: {slot['requests']} "
                         f"exceptions: {slot['exceptions']}")
        lines.append("-" * 17)
    log.log("\n".join(lines) + "\n")
    return {"lines": len(lines)}


def worker_status(master) -> dict:
    """SIG-6's fix: USR2 makes every worker log its status (what_i_am_doing)."""
    children = master.children.all()
    for child in children:
        master.children.kill(child, signal.SIGUSR2)
    return {"signalled": [c.pid for c in children], "signal": "SIGUSR2"}


def reopen_logs(master) -> dict:
    """Reopen the log file in every process (LOG-3, FIFO-7's fix)."""
    return {"reopened": reopen(master, log_files(master.settings), rotate=False)}


def rotate_logs(master) -> dict:
    """Rename the log to PATH.EPOCH and reopen it in every process (LOG-3)."""
    return {"rotated": reopen(master, log_files(master.settings), rotate=True)}


def update_pidfiles(master) -> dict:
    """FIFO ``P``: rewrite every pidfile with the current pid (PID-5)."""
    return {"written": write_pidfiles(master.settings, every=True)}


# ---- logs ----------------------------------------------------------------------------------
def log_files(s) -> list:
    """The files this master writes logs to: --logto (fds 1 and 2), then plugins' (LOG-3)."""
    files = list(log.FILES)
    if s.logto:
        files.insert(0, log.LogFile(s.logto, 2, s.log_maxsize, s.log_backupname))
    return files


def reopen(master, files: list, rotate: bool) -> list[str]:
    """Reopen (or rotate) ``files``; the paths done. One that cannot be reopened
    is logged and a graceful reload is requested (uWSGI's answer too)."""
    if not files:
        log.log("no log file configured (--logto): nothing to reopen")
        return []
    done = []
    for f in files:
        try:
            if rotate:
                log.rotate(f.path, f.backupname, f.fd)
            else:
                log.reopen(f.path, f.fd)
        except OSError as e:
            log.log(f"unable to reopen log {f.path}: {e.strerror}; reloading")
            master.request("graceful_reload")
            return done
        done.append(f.path)
        if f.fd == 2:
            master.children.tell_all(CTL_REOPEN_LOG)
    return done


def check_log_size(master) -> None:
    """--log-maxsize (and a file logger's maxsize=): rotate what grew too big (LOG-3)."""
    for f in log_files(master.settings):
        if f.maxsize and f.size() > f.maxsize:
            reopen(master, [f], rotate=True)


# ---- pidfiles and vacuum -------------------------------------------------------------------
def write_pidfiles(s, safe: bool = False, every: bool = False) -> bool:
    """Write the safe pidfiles (PID-3), or ``every`` pidfile (FIFO ``P``); False if
    one could not be written (logged, naming the option)."""
    names = [("safe-pidfile", s.safe_pidfile), ("safe-pidfile2", s.safe_pidfile2)]
    if every:
        names = [("pidfile", s.pidfile), ("pidfile2", s.pidfile2), *names]
    elif not safe:
        names = []
    ok = True
    for option, path in names:
        if path:
            try:
                pidfile.write_for(option, path)
            except OptionError as e:
                log.log(log.ERROR.format(message=e) if safe else str(e))
                ok = False
    return ok


def vacuum(s, listeners) -> None:
    """--vacuum: remove the pidfiles and the unix sockets this instance bound."""
    if not s.vacuum:
        return
    for what, path in (("pidfile", s.pidfile), ("pidfile2", s.pidfile2),
                       ("safe pidfile", s.safe_pidfile), ("safe pidfile2", s.safe_pidfile2)):
        if path:
            try:
                os.unlink(path)
                log.log(log.VACUUM.format(what=what))
            except OSError:
                pass
    for lst in listeners:
        if lst.unix_path and lst.inode is not None:
            try:
                if os.stat(lst.unix_path).st_ino != lst.inode:
                    log.log(f"VACUUM WARNING: unix socket {lst.unix_path} changed inode. Skip removal")
                    continue
                os.unlink(lst.unix_path)
                log.log(log.VACUUM_SOCKET.format(path=lst.unix_path))
            except OSError:
                pass
