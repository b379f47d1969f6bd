"""The master's side: routing signals, timers, crons and file monitors (uWSGI's master_events).

Timers and the minute check of crons share one timerfd (CLOCK_MONOTONIC, armed
at the earliest deadline), so they fire on time in every master state,
reload checks included. File monitors and touch files are polled in the
master's once-a-second tick. Deadlines, the last firing of every cron and the
state of every watched file are handed to the next image across an exec
reload: a timer keeps its phase and a cron never fires twice in one minute.
"""
from __future__ import annotations

import os
import signal
import time

from uwsgi_py import MasterView, log_line as log, log_verbose as vlog

from . import table

try:   # Python 3.13+
    _create, _settime = os.timerfd_create, os.timerfd_settime

    def timerfd() -> int:
        return _create(time.CLOCK_MONOTONIC, flags=os.TFD_NONBLOCK | os.TFD_CLOEXEC)

    def arm(fd: int, when: float) -> None:
        _settime(fd, flags=os.TFD_TIMER_ABSTIME, initial=when)
except AttributeError:
    import ctypes

    _libc = ctypes.CDLL(None, use_errno=True)

    class _Spec(ctypes.Structure):
        _fields_ = [("interval_s", ctypes.c_long), ("interval_ns", ctypes.c_long),
                    ("value_s", ctypes.c_long), ("value_ns", ctypes.c_long)]

    def timerfd() -> int:
        fd = _libc.timerfd_create(time.CLOCK_MONOTONIC, os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create()")
        return fd

    def arm(fd: int, when: float) -> None:
        spec = _Spec(0, 0, int(when), int((when % 1) * 1e9))
        if _libc.timerfd_settime(fd, 1, ctypes.byref(spec), None) < 0:   # TFD_TIMER_ABSTIME
            raise OSError(ctypes.get_errno(), "timerfd_settime()")

SPAWN_SIGNALS = set(signal.Signals) - {signal.SIGKILL, signal.SIGSTOP}
WHAT = {"timer": "timers", "rbtimer": "rb_timers", "cron": "cron", "filemon": "file monitors"}


def _signature(path: str):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino]


def _touch_mtime(path: str):
    try:
        return int(os.stat(path).st_mtime)
    except OSError:
        return None


class Entry:
    """A timer, rb timer, signal cron or file monitor (its kind is ``key[0]``)."""

    __slots__ = ("key", "sig", "when", "done")

    def __init__(self, key: tuple, when=None, done: int = 0):
        self.key = key
        self.sig = key[1]
        self.when = when        # timers: monotonic deadline; crons: last_job; files: state
        self.done = done        # rb timers: firings so far


class Schedule:
    def __init__(self, state):
        self.state = state
        s = state.settings
        self.master = None
        self.fd = -1
        self.entries: dict[tuple, Entry] = {}
        carried = state.carried.get("schedule", {})
        self.carried = {tuple(k): (when, done) for k, when, done in carried.get("entries", [])}
        self.commands = [table.parse_cron(c) for c in s.cron]
        self.commands += [dict(table.parse_cron(c), unique=True) for c in s.unique_cron]
        self.commands += [table.parse_cron2(c) for c in s.cron2]
        for cmd, (last, pid, started) in zip(self.commands, carried.get("commands", [])):
            cmd.update(last=last, pid=pid, started=started)
        for raw in s.timer:
            self.add("timer", list(table.parse_timer(raw)))
        for raw in s.rbtimer:
            self.add("rbtimer", [*table.parse_timer(raw), 0])
        for raw in s.fs_signal:
            path, sig = table.parse_file_signal(raw)
            self.add("filemon", [sig, os.path.abspath(path)])
        for raw in s.touch_signal:
            path, sig = table.parse_file_signal(raw)
            self.add("touch", [sig, os.path.abspath(path)])
        for name in ("fs_reload", "fs_brutal_reload"):
            for path in getattr(s, name):
                self.add(name, [-1, os.path.abspath(path)])

    # ---- registrations -------------------------------------------------------------------
    def add(self, kind: str, args: list) -> bool:
        key = (kind, *args)
        if key in self.entries:
            return True       # a lazy app's workers each register it: one entry, not N
        if kind in WHAT and sum(1 for k in self.entries if k[0] == kind) >= table.MAX_ENTRIES:
            log(table.TOO_MANY.format(max=table.MAX_ENTRIES, what=WHAT[kind]))
            return False
        if kind in ("timer", "rbtimer") and args[1] < 1:
            log(f"[uwsgi-signal] a {kind} needs at least 1 second, not {args[1]}")
            return False
        when, done = self.carried.pop(key, (None, 0))
        entry = self.entries[key] = Entry(key, when, done)
        if self.master is not None:
            self.begin(entry, time.monotonic())
            self.rearm()
        return True

    def begin(self, entry: Entry, now: float) -> None:
        kind = entry.key[0]
        if entry.when is None:
            if kind in ("timer", "rbtimer"):
                entry.when = now + entry.key[2]
            elif kind == "cron":
                entry.when = 0
            elif kind == "touch":
                entry.when = _touch_mtime(entry.key[2])
            else:
                entry.when = _signature(entry.key[2])

    # ---- the master's loop --------------------------------------------------------------------
    def start(self, master) -> int:
        """In ``uwsgi_master_watch``: the timerfd, every deadline, a first check."""
        self.master = master
        now = time.monotonic()
        for entry in self.entries.values():
            self.begin(entry, now)
        self.fd = timerfd()
        self.fire()
        return self.fd

    def fire(self) -> None:
        try:
            os.read(self.fd, 8)
        except OSError:
            pass
        now = time.monotonic()
        dying = MasterView(self.master).state == "shutting-down"
        for entry in list(self.entries.values()):
            kind = entry.key[0]
            if kind not in ("timer", "rbtimer") or entry.when > now:
                continue
            if not dying:
                route(self.master, self.state, entry.sig)
            entry.when = table.catch_up(entry.when, entry.key[2], now)
            if kind == "rbtimer":
                entry.done += 1
                if entry.key[3] and entry.done >= entry.key[3]:
                    del self.entries[entry.key]
        if not dying:
            self.check_crons(time.time())
        self.rearm()

    def rearm(self) -> None:
        if self.fd < 0:
            return
        now = time.monotonic()
        deadlines = [e.when for e in self.entries.values() if e.key[0] in ("timer", "rbtimer")]
        lasts = [e.when for e in self.entries.values() if e.key[0] == "cron"]
        lasts += [c.get("last", 0) for c in self.commands]
        if lasts:
            # a new minute may match; a cron that ran late in the last one is due again
            # 60 s after it ran, within this minute (uWSGI's ``now - last_job >= 60``)
            wall = time.time()
            deadlines.append(now + table.next_minute(wall) + 0.002)
            deadlines += [now + last + 60 - wall + 0.002 for last in lasts if last + 60 > wall]
        # an absolute deadline of 0 disarms: nothing due means one check a minute
        arm(self.fd, max(min(deadlines, default=now + 60.0), now + 0.0005))

    def check_crons(self, wall: float) -> None:
        now = int(wall)
        tm = time.localtime(wall)
        for entry in self.entries.values():
            if entry.key[0] == "cron" and table.cron_matches(tm, *entry.key[2:]) \
                    and table.cron_due(entry.when, now):
                vlog(table.CRON_SIGNAL.format(sig=entry.sig))
                route(self.master, self.state, entry.sig)
                entry.when = now
        for cmd in self.commands:
            if cmd.get("pid", -1) > 0 and cmd["unique"]:
                continue
            fields = (cmd["minute"], cmd["hour"], cmd["day"], cmd["month"], cmd["week"])
            if table.cron_matches(tm, *fields) and table.cron_due(cmd.get("last", 0), now):
                cmd["last"] = now
                self.run_command(cmd, now)

    def run_command(self, cmd: dict, now: int) -> None:
        try:
            pid = os.posix_spawn("/bin/sh", ["/bin/sh", "-c", cmd["command"]], os.environ,
                                 setsid=True, setsigdef=SPAWN_SIGNALS, setsigmask=(),
                                 file_actions=[(os.POSIX_SPAWN_OPEN, 0, "/dev/null",
                                                os.O_RDONLY, 0)])
        except OSError as e:
            log(f"[uwsgi-cron] cannot run \"{cmd['command']}\": {e.strerror}")
            return
        cmd.update(pid=pid, started=now)
        vlog(table.CRON_RUNNING.format(command=cmd["command"], pid=pid))

    def tick(self) -> None:
        """Once a second, while the master runs normally: files, cron harakiri."""
        for entry in list(self.entries.values()):
            kind, path = entry.key[0], entry.key[-1]
            if kind == "touch":
                new = _touch_mtime(path)
                old, entry.when = entry.when, new
                if (old is None) != (new is None) or (old is not None and new > old):
                    vlog(table.TOUCH_SIGNAL.format(sig=entry.sig))
                    route(self.master, self.state, entry.sig)
            elif kind in ("filemon", "fs_reload", "fs_brutal_reload"):
                new = _signature(path)
                if new == entry.when:
                    continue
                entry.when = new
                if kind == "filemon":
                    vlog(table.FS_SIGNAL.format(path=path, sig=entry.sig))
                    route(self.master, self.state, entry.sig)
                else:
                    vlog(table.FS_RELOAD.format(path=path))
                    self.master.request("graceful_reload" if kind == "fs_reload"
                                        else "brutal_reload")
        limit = self.state.settings.cron_harakiri
        now = time.time()
        for cmd in self.commands:
            harakiri = cmd["harakiri"] if cmd["harakiri"] is not None else limit
            if cmd.get("pid", -1) > 0 and harakiri and now - cmd["started"] > harakiri \
                    and not cmd.get("killed"):
                log(table.CRON_HARAKIRI.format(command=cmd["command"], pid=cmd["pid"]))
                cmd["killed"] = True
                try:
                    os.killpg(cmd["pid"], signal.SIGKILL)
                except OSError:
                    pass

    def reaped(self, pid: int) -> bool:
        for cmd in self.commands:
            if cmd.get("pid", -1) == pid:
                log(table.CRON_EXITED.format(command=cmd["command"], pid=pid,
                                             secs=int(time.time()) - cmd["started"]))
                cmd.update(pid=-1, started=0, killed=False)
                return True
        return False

    def export(self) -> dict:
        """What the next image needs to keep every schedule (JSON)."""
        entries = [[list(e.key), e.when, e.done] for e in self.entries.values()]
        commands = [[c.get("last", 0), c.get("pid", -1), c.get("started", 0)]
                    for c in self.commands]
        return {"entries": entries, "commands": commands}

    def close(self) -> None:
        if self.fd >= 0:
            self.master.unwatch(self.fd)
            os.close(self.fd)
            self.fd = -1


def schedule_of(state) -> Schedule:
    if state.schedule is None:
        state.schedule = Schedule(state)
    return state.schedule


# ---- routing (uWSGI's uwsgi_route_signal) ----------------------------------------------------

def _send(fd: int, sig: int, what: str) -> None:
    if fd < 0:
        log(table.NOT_DELIVERED.format(sig=sig, what=what))
        return
    try:
        os.write(fd, bytes((sig,)))
    except BlockingIOError:
        log(table.QUEUE_FULL.format(what=f"{what} is not reading its signals"))
    except OSError:
        log(table.NOT_DELIVERED.format(sig=sig, what=what))


def route(master, state, sig: int) -> None:
    """Send ``sig`` to the processes its registered target names."""
    target = state.targets.get(sig, "")
    dest = table.destinations(target, state.settings.processes, state.nmules)
    if isinstance(dest, str):
        log(dest.format(sig=sig))
        return
    kind, ids = dest
    if kind == "any-worker":
        _send(state.any_worker[1], sig, "workers pool")
    elif kind == "any-mule":
        _send(state.any_mule[1], sig, "a mule")
    elif kind == "mules":
        for mid in ids:
            _send(state.mules[mid][1], sig, f"mule {mid}")
    else:
        view = MasterView(master)
        for wid in ids:
            if kind == "active-workers" and (view.worker_info(wid) is None
                                             or wid in view.cheaped or view.paused):
                continue
            _send(state.workers[wid][1], sig, f"worker {wid}")


def read_up(master, state) -> None:
    """The ``up`` channel: signals raised by workers and mules, their registrations."""
    import json   # the first message from a worker imports it, not the start
    schedule = schedule_of(state)
    for _ in range(256):   # bounded: the loop has other work
        try:
            data = os.read(state.up_master, 65536)
        except BlockingIOError:
            return
        except OSError:
            return
        try:
            message = json.loads(data)
            kind = message[0]
        except (ValueError, IndexError, TypeError):
            continue
        if kind == "sig":
            if MasterView(master).state != "shutting-down":
                route(master, state, message[1])
        elif kind == "reg":
            if message[1] not in state.handlers:      # the master's own registration wins
                state.targets[message[1]] = message[2]
        elif kind in WHAT:
            schedule.add(kind, message[1:])
