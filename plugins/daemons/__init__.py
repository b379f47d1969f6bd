"""External processes managed by the master: ``--attach-daemon``, ``--smart-attach-daemon``.

As in uWSGI 2.0 (core/daemons.c):

- a *dumb* daemon (``--attach-daemon CMD``) must stay in the foreground; it is
  started with the instance, started again when it dies (throttled when it dies
  within 3 s of its start), stopped (SIGTERM to its process group, SIGKILL after
  --reload-mercy, default 3 s) on shutdown and on every reload, then started again
  by the new image. A ``--attach-control-daemon`` that dies stops the instance.
- a *smart* daemon (``--smart-attach-daemon PIDFILE[,FREQ] CMD``) daemonizes
  itself and writes PIDFILE; it is started when PIDFILE names no live process and
  started again when that process goes away; it survives reloads and shutdown.
  ``--smart-attach-daemon2`` is for a command that stays in the foreground: the
  master writes PIDFILE itself.

The master never waits: deaths and pidfiles are looked at in its once-a-second
tick; at exit a short-lived helper process enforces the SIGKILL deadline. Across
an exec reload, the dumb daemons being stopped are handed to the new image by the core's
handoff (``uwsgi_handoff_give``), which starts each replacement once its predecessor is gone.
"""
from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

from uwsgi_py import Instance, Option, hookimpl
from uwsgi_py import log_line as log
from uwsgi_py import log_verbose as vlog

from . import process

HANDED: list = []   # the previous image's dumb daemons still stopping (uwsgi_handoff_take)
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
INVALID_SMART = "is not PIDFILE[,FREQ] COMMAND"


def _smart_value(raw) -> str:
    text = str(raw).strip()
    head, sep, command = text.partition(" ")
    pidfile, _, freq = head.partition(",")
    if not sep or not pidfile or not command.strip() or (freq and not freq.isdigit()):
        raise ValueError(INVALID_SMART)
    return text


@hookimpl
def uwsgi_add_options(registry):
    registry.add(
        Option("attach-daemon", "run COMMAND (via /bin/sh -c) with the instance: restarted when "
               "it dies, stopped on shutdown and restarted on reload (repeatable)",
               multiple=True, master=True, metavar="COMMAND"),
        Option("attach-control-daemon", "like --attach-daemon, but the instance stops when "
               "COMMAND dies (repeatable)", multiple=True, master=True, metavar="COMMAND"),
        Option("smart-attach-daemon", "run COMMAND, which daemonizes and writes PIDFILE, "
               "whenever PIDFILE names no live process (checked each second; FREQ: seconds to "
               "wait for the pidfile, default 10); it survives reloads and shutdown (repeatable)",
               multiple=True, master=True, convert=_smart_value,
               metavar="PIDFILE[,FREQ] COMMAND"),
        Option("smart-attach-daemon2", "like --smart-attach-daemon for a COMMAND that stays in "
               "the foreground: the master writes PIDFILE (repeatable)", multiple=True,
               master=True, convert=_smart_value, metavar="PIDFILE[,FREQ] COMMAND"),
        Option("daemons-honour-stdin", "give daemons the instance's stdin (default /dev/null)",
               flag=True),
    )


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


def _state(master) -> Daemons | None:
    return Instance(master.server).state_for("daemons").get("daemons")


@hookimpl
def uwsgi_master_start(master):
    try:
        carried = {entry["key"]: entry for entry in HANDED}
    except (TypeError, KeyError):
        carried = {}
    HANDED.clear()
    daemons = configured(master.settings)
    if not daemons and not carried:
        return
    state = Daemons(master, daemons)
    Instance(master.server).state_for("daemons")["daemons"] = state
    state.start(carried)


@hookimpl
def uwsgi_master_tick(master):
    state = _state(master)
    if state is not None:
        state.tick()


@hookimpl
def uwsgi_master_event(master, event, info):
    state = _state(master)
    if state is not None and event == "stopping":
        state.victims = state.stop()   # they get the workers' shutdown time, then the mercy


@hookimpl
def uwsgi_master_cleanup(master, reason):
    state = _state(master)
    if state is None:
        return
    victims = state.victims if state.victims is not None else state.stop()
    alive = [d for d in victims if not process.exited(d.pid, d.fd)]
    if reason == "reload" and not master.settings.exit_on_reload:
        # the new image starts each one again once its predecessor is gone
        state.handoff = [{"key": d.key, "pid": d.pid, "left": state.mercy} for d in alive]
        return
    if alive:
        process.stop_later([(d.pid, d.fd) for d in alive], state.mercy)


@hookimpl
def uwsgi_handoff_give(master):
    state = _state(master)
    return {"state": state.handoff} if state is not None and state.handoff else None


@hookimpl
def uwsgi_handoff_take(state):
    if isinstance(state, list):
        HANDED[:] = state
