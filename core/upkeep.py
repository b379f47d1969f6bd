"""The master's upkeep actions: pause, stats dump, logs, pidfiles, vacuum, harakiri.

A mixin of ``Master``; each method runs on the master's loop thread and returns.
"""
from __future__ import annotations

import os
import signal
import time

from . import log, pidfile
from .control import CTL_PAUSE, CTL_REOPEN_LOG, CTL_RESUME
from .options import OptionError
from .scoreboard import DEAD


class Upkeep:
    # ---- pause, stats, logs --------------------------------------------------------
    def toggle_pause(self) -> None:
        self.paused = not self.paused
        self.scoreboard.paused = self.paused
        if self.paused:
            log.vlog(log.PAUSE)
        else:
            log.vlog(log.RESUME)
        self.tell_workers(CTL_PAUSE if self.paused else CTL_RESUME)
        self.guard.master(self.hook.uwsgi_master_event, master=self,
                          event="paused" if self.paused else "resumed", info={})

    def log_stats(self) -> None:
        lines = ["", ";uWSGI instance configuration", "[uwsgi]", *self.settings.ini_lines(),
                 ";end of configuration", "",
                 f"\tworkers total requests: {self.scoreboard.total_requests()}", "-" * 17]
        for wid in range(1, self.numproc + 1):
            slot = self.scoreboard.read(wid)
            for i, app in enumerate(self.server.apps or [None]):
                name = getattr(app, "name", "") if app else ""
                lines.append(f"\tworker {wid} app {i} [{name}] requests: {slot['requests']} "
                             f"exceptions: {slot['exceptions']}")
            lines.append("-" * 17)
        log.log("\n".join(lines) + "\n")

    def signal_workers_usr2(self) -> None:
        for child in self.all_children():
            self.kill(child, signal.SIGUSR2)

    def log_files(self) -> list:
        """The files this master writes logs to: --logto (fds 1 and 2), then plugins' (LOG-3)."""
        s = self.settings
        files = list(log.FILES)
        if s.logto:
            files.insert(0, log.LogFile(s.logto, 2, s.log_maxsize, s.log_backupname))
        return files

    def reopen_logs(self, rotate: bool, only=None) -> None:
        files = self.log_files() if only is None else [only]
        if not files:
            log.log("no log file configured (--logto): nothing to reopen")
            return
        for f in files:
            try:
                if rotate:
                    log.rotate(f.path, f.backupname, f.fd)
                else:
                    log.reopen(f.path, f.fd)
            except OSError as e:
                log.log(f"unable to reopen log {f.path}: {e.strerror}; reloading")
                self.request("graceful_reload")
                return
            if f.fd == 2:
                self.tell_workers(CTL_REOPEN_LOG)

    def check_log_size(self) -> None:
        """--log-maxsize (and a file logger's maxsize=): rotate what grew too big (LOG-3)."""
        for f in self.log_files():
            if f.maxsize and f.size() > f.maxsize:
                self.reopen_logs(rotate=True, only=f)

    def write_pidfiles(self, safe: bool = False, every: bool = False) -> bool:
        """Write the safe pidfiles (PID-3), or ``every`` pidfile (FIFO ``P``); False if
        one could not be written (logged, naming the option)."""
        s = self.settings
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

    def vacuum(self) -> None:
        if not self.settings.vacuum:
            return
        s = self.settings
        for what, path in (("pidfile", s.pidfile), ("pidfile2", s.pidfile2),
                           ("safe pidfile", s.safe_pidfile), ("safe pidfile2", s.safe_pidfile2)):
            if path:
                try:
                    os.unlink(path)
                    log.log(log.VACUUM.format(what=what))
                except OSError:
                    pass
        for lst in self.server.listeners:
            if lst.unix_path and lst.inode is not None:
                try:
                    if os.stat(lst.unix_path).st_ino != lst.inode:
                        log.log(f"VACUUM WARNING: unix socket {lst.unix_path} changed inode. Skip removal")
                        continue
                    os.unlink(lst.unix_path)
                    log.log(log.VACUUM_SOCKET.format(path=lst.unix_path))
                except OSError:
                    pass

    def child_paused(self, pid: int, status: int) -> None:
        """A worker was stopped (SIGSTOP, SIGTTIN...) or continued: say so in the log."""
        child = next((c for c in self.all_children() if c.pid == pid), None)
        if child is None:
            return
        if os.WIFSTOPPED(status):
            log.log(log.WORKER_STOPPED.format(id=child.id, pid=pid, sig=os.WSTOPSIG(status)))
        else:
            log.log(log.WORKER_CONTINUED.format(id=child.id, pid=pid))

    def check_harakiri(self) -> None:
        limit = self.settings.harakiri
        if not limit:
            return
        now = time.time()
        for child in list(self.workers.values()):
            slot = self.scoreboard.read(child.id)
            if slot["status"] == 1 and slot["busy_since"] and now - slot["busy_since"] > limit:
                log.log(log.HARAKIRI.format(id=child.id, pid=child.pid))
                log.log(log.HARAKIRI_REQUEST.format(id=child.id, pid=child.pid, uri=slot["uri"],
                                                    since=time.ctime(slot["busy_since"])))
                if self.settings.harakiri_verbose:
                    log_stuck_worker(child.pid)
                self.scoreboard.write(child.id, harakiri_count=slot["harakiri_count"] + 1,
                                      status=DEAD)
                self.kill(child, signal.SIGKILL)


def log_stuck_worker(pid: int) -> None:
    """--harakiri-verbose: what the worker is blocked in, as the kernel says (Linux)."""
    for line, name in ((log.HARAKIRI_SYSCALL, "syscall"), (log.HARAKIRI_WCHAN, "wchan")):
        try:
            with open(f"/proc/{pid}/{name}") as f:
                text = f.read(4096).strip()
        except OSError:
            continue
        if text:
            log.log(line.format(text=text))
