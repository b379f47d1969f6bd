"""The master's daemons (``__init__.py`` says what each kind does): started, watched once a
second, stopped; loaded only by a master that has some (or inherits some across a reload)."""
from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

from uwsgi_py import log_line as log
from uwsgi_py import log_verbose as vlog

from . import process

THROTTLE_WINDOW = 3      # seconds: a daemon dying sooner after its start is throttled (uWSGI)
MAX_THROTTLE = 300
DEFAULT_MERCY = 3        # seconds a stopped daemon gets without --reload-mercy (uWSGI)

SPAWNING = "[uwsgi-daemons] {re}spawning \"{command}\" (uid: {uid} gid: {gid})"
THROTTLING = "[uwsgi-daemons] throttling \"{command}\" for {secs} seconds"
STOPPING = "[uwsgi-daemons] stopping daemon (pid: {pid}): {command}"
KILLING = "[uwsgi-daemons] daemon did not die in time, killing (pid: {pid}): {command}"
FOUND = "[uwsgi-daemons] found valid/active pidfile for \"{command}\" (pid: {pid})"
CHANGED_PID = "[uwsgi-daemons] found changed pid for \"{command}\" (old_pid: {old} new_pid: {new})"
CHANGED_PIDFILE = ("[uwsgi-daemons] found changed pidfile for \"{command}\" "
                   "(old_pid: {old} new_pid: {new})")
NO_DAEMONIZE = "[uwsgi-daemons] \"{command}\" (pid: {pid}) did not daemonize !!!"
CONTROL_DIED = "[uwsgi-daemons] control daemon \"{command}\" (pid: {pid}) died: stopping the instance"


@dataclass
class Daemon:
    key: str                      # option#position: how an exec reload finds it again
    command: str
    pidfile: str | None = None
    freq: int = 10
    daemonize: bool = False       # --smart-attach-daemon2: the master writes the pidfile
    control: bool = False
    pid: int = 0
    fd: int = -1                  # pidfd of pid (dumb daemons) or of the launcher (smart)
    status: int = 0               # 0 never started, 1 just started, 2 monitored (pidfile)
    respawns: int = 0
    last_spawn: float = 0.0
    spawn_at: float = 0.0         # a throttled start is due then (monotonic); 0 = none
    checks: int = 0               # ticks spent waiting for a smart daemon's pidfile
    has_daemonized: bool = False
    stopped: bool = False
    predecessor: tuple | None = None  # (pid, pidfd, deadline) of the previous image's daemon


def configured(s) -> list[Daemon]:
    out = [Daemon(f"attach-daemon#{i}", cmd) for i, cmd in enumerate(s.attach_daemon)]
    out += [Daemon(f"attach-control-daemon#{i}", cmd, control=True)
            for i, cmd in enumerate(s.attach_control_daemon)]
    for name, values, daemonize in (("smart-attach-daemon", s.smart_attach_daemon, False),
                                    ("smart-attach-daemon2", s.smart_attach_daemon2, True)):
        for i, value in enumerate(values):
            head, _, command = value.partition(" ")
            pidfile, _, freq = head.partition(",")
            out.append(Daemon(f"{name}#{i}", command.strip(), pidfile=pidfile,
                              freq=int(freq) if freq else 10, daemonize=daemonize))
    return out


class Daemons:
    def __init__(self, master, daemons: list[Daemon]):
        self.master = master
        self.daemons = daemons
        s = master.settings
        self.mercy = float(s.reload_mercy or DEFAULT_MERCY)
        self.honour_stdin = s.daemons_honour_stdin
        self.victims: list[Daemon] | None = None   # stopped at the "stopping" event
        self.handoff: list[dict] | None = None     # still stopping at the exec reload

    # ---- start -------------------------------------------------------------------------------
    def start(self, carried: dict) -> None:
        now = time.monotonic()
        keys = {d.key for d in self.daemons if not d.pidfile}
        gone = [(e["pid"], process.pidfd(e["pid"])) for k, e in carried.items() if k not in keys]
        if gone:    # no longer configured: the previous image's SIGTERM stands, then SIGKILL
            process.stop_later(gone, self.mercy)
        for d in self.daemons:
            old = carried.get(d.key)
            if old and not d.pidfile:
                pid = old["pid"]
                d.predecessor = (pid, process.pidfd(pid), now + max(0.0, old["left"]))
                continue
            if d.pidfile:
                pid = process.pid_from_file(d.pidfile)
                if pid:
                    d.pid = pid
                    log(FOUND.format(command=d.command, pid=pid))
                    continue
            self.spawn(d)

    def spawn(self, d: Daemon) -> None:
        d.spawn_at = 0.0
        now = time.monotonic()
        if d.respawns and now - d.last_spawn <= THROTTLE_WINDOW:
            throttle = min(MAX_THROTTLE, max(1, int(d.respawns - (now - d.last_spawn))))
            log(THROTTLING.format(command=d.command, secs=throttle))
            d.spawn_at = now + throttle
            d.last_spawn = d.spawn_at
            return
        self.close(d)
        death = signal.SIGTERM if not d.pidfile else None
        pid = process.spawn(d.command, self.honour_stdin, death)
        if not pid:
            return
        log(SPAWNING.format(re="re" if d.respawns else "", command=d.command,
                            uid=os.getuid(), gid=os.getgid()))
        d.pid, d.fd = pid, process.pidfd(pid)
        d.status, d.checks, d.has_daemonized = 1, 0, False
        d.respawns += 1
        d.last_spawn = now
        if d.daemonize:
            d.has_daemonized = True
            try:
                with open(d.pidfile, "w") as f:
                    f.write(f"{pid}\n")
            except OSError as e:
                log(f"[uwsgi-daemons] cannot write {d.pidfile}: {e.strerror}")

    def close(self, d: Daemon) -> None:
        if d.fd >= 0:
            os.close(d.fd)
            d.fd = -1

    # ---- once a second -----------------------------------------------------------------------
    def tick(self) -> None:
        now = time.monotonic()
        for d in self.daemons:
            if d.stopped:
                continue
            if d.spawn_at:
                if now >= d.spawn_at:
                    d.last_spawn = 0.0      # the throttle was served
                    self.spawn(d)
                continue
            if d.predecessor is not None:
                self.await_predecessor(d, now)
            elif d.pidfile:
                self.check_smart(d)
            elif d.pid and process.exited(d.pid, d.fd):
                if d.control:
                    log(CONTROL_DIED.format(command=d.command, pid=d.pid))
                    d.stopped = True
                    self.master.request("graceful_shutdown")
                    continue
                self.spawn(d)

    def await_predecessor(self, d: Daemon, now: float) -> None:
        pid, fd, deadline = d.predecessor
        if not process.exited(pid, fd):
            if now < deadline:
                return
            log(KILLING.format(pid=pid, command=d.command))
            process.kill_group(pid, signal.SIGKILL)
        if fd >= 0:
            os.close(fd)
        d.predecessor = None
        self.spawn(d)

    def check_smart(self, d: Daemon) -> None:
        """uWSGI's uwsgi_daemons_smart_check, once a second."""
        if d.status == 1 and d.fd >= 0 and process.exited(d.pid, d.fd):
            d.has_daemonized = True     # the command returned: it forked into the background
        found = process.pid_from_file(d.pidfile)
        if not found:
            if d.status == 2:
                self.spawn(d)
                return
            d.checks += 1
            if d.checks >= d.freq:
                if not d.has_daemonized:
                    vlog(NO_DAEMONIZE.format(command=d.command, pid=d.pid))
                    d.checks = 0
                else:
                    log(CHANGED_PIDFILE.format(command=d.command, old=d.pid, new=found))
                    self.spawn(d)
        elif found != d.pid:
            log(CHANGED_PID.format(command=d.command, old=d.pid, new=found))
            d.pid = found
        else:
            d.status = 2

    # ---- stop --------------------------------------------------------------------------------
    def running_dumb(self) -> list[Daemon]:
        return [d for d in self.daemons
                if not d.pidfile and d.pid and not d.stopped and not process.exited(d.pid, d.fd)]

    def stop(self) -> list[Daemon]:
        """SIGTERM every running dumb daemon's group; none is started again."""
        victims = self.running_dumb()
        for d in self.daemons:
            if not d.pidfile:
                d.stopped = True
        for d in victims:
            log(STOPPING.format(pid=d.pid, command=d.command))
            process.kill_group(d.pid, signal.SIGTERM)
        return victims
