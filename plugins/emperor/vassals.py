"""The vassals of an Emperor: found by scanning, spawned, reloaded, stopped, throttled.

As uWSGI 2.0's core/emperor.c, basic mode (a directory or a glob of config files),
run by the master loop instead of a process of its own. Nothing here waits: the
master reaps the vassals (``uwsgi_master_reaped``) and the scan runs from its tick.
"""
from __future__ import annotations

import glob
import os
import signal
import sys
import time
from dataclasses import dataclass, field

from uwsgi_py import log_line as log
from uwsgi_py import log_verbose as vlog

STARTING = "*** starting uWSGI Emperor ***"
SPAWNED = "[emperor] vassal {name} has been spawned"
RELOAD = "[emperor] reload the uwsgi instance {name}"
STOP = "[emperor] stop the uwsgi instance {name}"
CURSE = "[emperor] curse the uwsgi instance {name} (pid: {pid})"
REMOVED = "[emperor] removed uwsgi instance {name}"
UNLOYAL = "[emperor] unloyal bad behaving vassal found: {name} throttling it..."
MAX_THROTTLE = "[emperor] maximum throttle level for vassal {name} reached !!!"
SKIPPED = "[emperor] skipping vassal {name}: uwsgi-py reads only .ini and .toml configs"
CANNOT_SPAWN = "[emperor] unable to spawn vassal {name}: {error}"
RAGNAROK = "[emperor] *** RAGNAROK EVOKED ***"
BURIED = "The Emperor is buried."

FLAGS = {".ini": "--ini", ".toml": "--toml"}
# config types uWSGI's directory monitor takes that uwsgi-py cannot read
FOREIGN = (".xml", ".yml", ".yaml", ".js", ".json")
# uWSGI calls a vassal loyal after its first request (a byte on the emperor pipe); with
# no pipe here, a vassal is loyal once it has lived this long (seconds)
LOYAL_AFTER = 10.0
ALL_SIGNALS = set(signal.Signals) - {signal.SIGKILL, signal.SIGSTOP}


@dataclass
class Vassal:
    name: str            # the file name (directory mode) or the matched path (glob mode)
    path: str            # what to stat
    cwd: str             # where the vassal starts
    pid: int = 0
    mtime: float = 0.0
    stopping: bool = False
    spawned: float = 0.0     # wall clock, so it survives an exec reload

    def to_json(self) -> dict:
        return {"name": self.name, "path": self.path, "cwd": self.cwd, "pid": self.pid,
                "mtime": self.mtime, "stopping": self.stopping, "spawned": self.spawned}


@dataclass
class Throttle:
    level_ms: int
    last: float          # wall clock of the last removal
    attempts: int = 1


def scan(pattern: str, start_dir: str) -> tuple[dict[str, tuple[str, str, float]], list[str]]:
    """{name: (path, cwd, mtime)} of the config files ``pattern`` names now, and the
    names of files of a type uwsgi-py cannot read."""
    found: dict[str, tuple[str, str, float]] = {}
    foreign: list[str] = []
    base = os.path.join(start_dir, pattern)
    if os.path.isdir(base):     # uWSGI's directory monitor: the vassal starts there
        try:
            entries = sorted(os.listdir(base))
        except OSError:
            return found, foreign
        candidates = [(e, os.path.join(base, e), base) for e in entries]
    else:                       # uWSGI's glob monitor: names as matched, from the start dir
        matches = sorted(glob.glob(pattern, root_dir=start_dir))
        candidates = [(m, os.path.join(start_dir, m), start_dir) for m in matches]
    for name, path, cwd in candidates:
        ext = os.path.splitext(name)[1]
        if ext not in FLAGS:
            if ext in FOREIGN:
                foreign.append(name)
            continue
        try:
            st = os.stat(path)
        except OSError:
            continue
        if os.path.isfile(path):
            found[name] = (path, cwd, st.st_mtime)
    return found, foreign


def vassal_env() -> dict[str, str]:
    """The emperor's environment without what uWSGI removes before starting a vassal, nor
    the Emperor's own options (UWSGI_EMPEROR=DIR would make each vassal an Emperor of DIR)."""
    return {k: v for k, v in os.environ.items()
            if k not in ("UWSGI_RELOADS", "NOTIFY_SOCKET")
            and not k.startswith(("UWSGI_VASSAL_", "UWSGI_EMPEROR"))}


def spawn(v: Vassal) -> int:
    """``python -m uwsgi_py --ini NAME`` in the vassal's directory, in the emperor's process
    group (as uWSGI); every fd but 0-2 closed, signal dispositions reset. The pid, or 0."""
    argv = [sys.executable, "-m", "uwsgi_py", FLAGS[os.path.splitext(v.name)[1]], v.name]
    actions = []
    for entry in os.listdir("/proc/self/fd"):
        fd = int(entry)
        if fd > 2 and _inheritable(fd):
            actions.append((os.POSIX_SPAWN_CLOSE, fd))
    prev = os.getcwd()
    try:
        os.chdir(v.cwd)     # posix_spawn has no cwd argument before Python 3.13's file actions
        return os.posix_spawn(sys.executable, argv, vassal_env(), file_actions=actions,
                              setsigmask=(), setsigdef=ALL_SIGNALS)
    except OSError as e:
        log(CANNOT_SPAWN.format(name=v.name, error=e.strerror))
        return 0
    finally:
        os.chdir(prev)


def _inheritable(fd: int) -> bool:
    try:
        return os.get_inheritable(fd)
    except OSError:
        return False


@dataclass
class Emperor:
    patterns: list[str]
    start_dir: str
    freq: int
    throttle_ms: int
    max_throttle_ms: int
    vassals: dict[str, Vassal] = field(default_factory=dict)
    blacklist: dict[str, Throttle] = field(default_factory=dict)
    foreign_logged: set[str] = field(default_factory=set)
    next_scan: float = 0.0
    ragnarok: bool = False

    def adopt(self, carried: list[dict]) -> None:
        for entry in carried:
            v = Vassal(**entry)
            if v.pid:
                self.vassals[v.name] = v

    def by_pid(self, pid: int) -> Vassal | None:
        for v in self.vassals.values():
            if v.pid == pid:
                return v
        return None

    # ---- the scan, every --emperor-freq seconds ------------------------------------------
    def tick(self) -> None:
        now = time.monotonic()
        if self.ragnarok or now < self.next_scan:
            return
        self.next_scan = now + self.freq - 0.1   # the tick is about once a second
        self.scan()

    def scan(self) -> None:
        seen: dict[str, tuple[str, str, float]] = {}
        for pattern in self.patterns:
            found, foreign = scan(pattern, self.start_dir)
            for name in foreign:
                if name not in self.foreign_logged:
                    self.foreign_logged.add(name)
                    log(SKIPPED.format(name=name))
            for name, entry in found.items():
                seen.setdefault(name, entry)
        wall = time.time()
        for name, (path, cwd, mtime) in seen.items():
            v = self.vassals.get(name)
            if v is None:
                if not self.throttled(name, wall):
                    self.start(Vassal(name, path, cwd, mtime=mtime))
            elif mtime > v.mtime and not v.stopping:
                v.mtime = mtime
                self.signal(v, signal.SIGHUP)
                vlog(RELOAD.format(name=name))
        for name, v in list(self.vassals.items()):
            if name not in seen and not v.stopping:
                self.stop(v)
            if v.spawned and not v.stopping and wall - v.spawned >= LOYAL_AFTER:
                self.blacklist.pop(name, None)

    def throttled(self, name: str, wall: float) -> bool:
        t = self.blacklist.get(name)
        return t is not None and wall < t.last + t.level_ms / 1000.0

    def start(self, v: Vassal) -> None:
        pid = spawn(v)
        if not pid:
            return
        v.pid, v.spawned = pid, time.time()
        self.vassals[v.name] = v
        vlog(SPAWNED.format(name=v.name))

    def signal(self, v: Vassal, sig: int) -> None:
        try:
            os.kill(v.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, v: Vassal) -> None:
        """uWSGI's "destroy" message: the vassal shuts down at once (its SIGINT)."""
        v.stopping = True
        self.signal(v, signal.SIGINT)
        vlog(STOP.format(name=v.name))

    def stop_all(self) -> list[Vassal]:
        if not self.ragnarok:
            self.ragnarok = True
            log(RAGNAROK)
        for v in self.vassals.values():
            if not v.stopping:
                self.stop(v)
        return list(self.vassals.values())

    # ---- deaths ---------------------------------------------------------------------------
    def reaped(self, pid: int) -> bool:
        v = self.by_pid(pid)
        if v is None:
            return False
        if not v.stopping:
            vlog(CURSE.format(name=v.name, pid=pid))
        vlog(REMOVED.format(name=v.name))
        del self.vassals[v.name]
        wall = time.time()
        if not v.stopping and wall - v.spawned < LOYAL_AFTER:
            self.punish(v.name, wall)
        if not self.ragnarok:
            self.next_scan = 0.0      # start it again at the next tick if its file is there
        return True

    def punish(self, name: str, wall: float) -> None:
        """uWSGI's blacklist: each early death of an unloyal vassal delays its next start by
        --emperor-throttle more, up to --emperor-max-throttle (then halved)."""
        t = self.blacklist.get(name)
        if t is None:
            self.blacklist[name] = Throttle(self.throttle_ms, wall)
            return
        t.last = wall
        if t.level_ms < self.max_throttle_ms:
            t.level_ms += self.throttle_ms
        else:
            vlog(MAX_THROTTLE.format(name=name))
            t.level_ms //= 2
        t.attempts += 1
        if t.attempts == 2:
            vlog(UNLOYAL.format(name=name))
