"""Per-worker accounting in shared memory, written by workers, read by anyone.

An anonymous shared mmap made by the master before it forks (uWSGI's shared
``workers`` array). Slot 0 is the master. A worker updates its own slot with
one ``pack_into`` per request, so accounting stays off the hot path.
"""
from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Callable

# status codes
IDLE, BUSY, PAUSE, CHEAP, DEAD = 0, 1, 2, 3, 4

# pid, accepting, requests, delta_requests, exceptions, tx, running_time (us), avg_rt (us),
# status, busy_since (float epoch), the URI of the current request (zero-padded), last_spawn,
# respawn_count, harakiri_count, signals, rss, vsz. A request writes status, busy_since and
# the URI when it starts (one pack) and accepting through busy_since when it ends (one pack):
# they are contiguous for that.
URI_SIZE = 256
SLOT = struct.Struct(f"<iBqqqqqqBd{URI_SIZE}sqiiqqq")
SLOT_SIZE = SLOT.size
HEADER = struct.Struct("<B7x")  # paused (7 bytes of padding keep the slots 8-byte aligned)
_PID = struct.Struct("<i")
_BUSY = struct.Struct(f"<Bd{URI_SIZE}s")     # status, busy_since, uri
_DONE = struct.Struct("<BqqqqqqBd")         # accepting, requests .. avg_rt, status, busy_since
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
FIELDS = ("pid", "accepting", "requests", "delta_requests", "exceptions", "tx", "running_time",
          "avg_rt", "status", "busy_since", "uri", "last_spawn", "respawn_count",
          "harakiri_count", "signals", "rss", "vsz")
_REQUESTS = FIELDS.index("requests")
_URI_FIELD = FIELDS.index("uri")
_STATUS_AT = struct.calcsize("<iBqqqqqq")   # offset of status in a slot


def status_name(code: int, paused: bool) -> str:
    """The stats/``uwsgi.workers()`` status (STATS-3): cheap, pause (paused, not busy), busy, idle."""
    if code == CHEAP:
        return "cheap"
    if code != BUSY and (paused or code == PAUSE):
        return "pause"
    return "busy" if code == BUSY else "idle"


def memory(pid: int) -> tuple[int, int]:
    """(rss, vsz) of ``pid`` in bytes, read on demand from /proc/PID/statm; (0, 0) if gone."""
    if pid <= 0:
        return 0, 0
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            vsz, rss = f.read().split()[:2]
    except (OSError, ValueError):
        return 0, 0
    return int(rss) * PAGE_SIZE, int(vsz) * PAGE_SIZE


# --threads N > 1: each worker also has N core entries after the worker slots (uWSGI's
# cores): the core's requests (over the worker's lives), then this worker's on that core:
# requests (delta), exceptions, tx, running_time and avg_rt, then in_request, busy_since and the
# URI. Each core's thread writes its own entry and nothing else, so the threads share no
# counter and take no lock per request (a request costs one pack as it starts, one as it ends);
# ``read`` adds the cores into the worker's numbers. With one thread there are none: the worker
# slot is its one core, and a request costs what it always did.
CORE = struct.Struct(f"<qqqqqqBd{URI_SIZE}s")
CORE_FIELDS = ("requests", "delta_requests", "exceptions", "tx", "running_time", "avg_rt",
               "in_request", "busy_since", "uri")
CORE_STARTED = struct.Struct(f"<Bd{URI_SIZE}s")   # in_request, busy_since, uri: a request starts
CORE_DONE = struct.Struct("<qqqqqqBdB")           # requests .. busy_since and the URI's first byte
CORE_STARTED_AT = struct.calcsize("<qqqqqq")      # offset of in_request in an entry
_ADDED = ("exceptions", "tx", "running_time")     # a worker's: its slot's, plus its cores'


class Scoreboard:
    def __init__(self, workers: int, cores: int = 1):
        self.workers = workers
        self.cores = cores
        self.cores_at = HEADER.size + SLOT_SIZE * (workers + 1)
        size = self.cores_at + (CORE.size * cores * (workers + 1) if cores > 1 else 0)
        self.mem = mmap.mmap(-1, size)

    def core_offset(self, wid: int, core: int) -> int:
        return self.cores_at + CORE.size * (wid * self.cores + core)

    def read_cores(self, wid: int) -> list[dict]:
        """Worker ``wid``'s cores (``CORE_FIELDS`` and ``id``); with one thread, its slot's."""
        if self.cores == 1:
            slot = self.read(wid)
            return [{"id": 0, "requests": slot["requests"], "in_request": int(slot["status"] == BUSY),
                     "busy_since": slot["busy_since"], "uri": slot["uri"]}]
        return [self.read_core(wid, core) for core in range(self.cores)]

    def read_core(self, wid: int, core: int) -> dict:
        """One core of worker ``wid`` (--threads N > 1)."""
        entry = dict(zip(CORE_FIELDS, CORE.unpack_from(self.mem, self.core_offset(wid, core))))
        entry["id"] = core
        entry["uri"] = entry["uri"].split(b"\0", 1)[0].decode("latin-1")
        return entry

    def fold_cores(self, wid: int) -> None:
        """A new worker in the slot: what its cores counted for the last one goes into the
        slot (the worker's totals stay what ``read`` said), and no core is in a request (a
        killed worker's may have been). The core's own request count stays."""
        if self.cores == 1:
            return
        totals = self.read(wid)
        self.write(wid, **{key: totals[key] for key in ("requests", *_ADDED)})
        for core in range(self.cores):
            off = self.core_offset(wid, core)
            requests = CORE.unpack_from(self.mem, off)[0]
            CORE.pack_into(self.mem, off, requests, 0, 0, 0, 0, 0, 0, 0.0, b"")

    def offset(self, wid: int) -> int:
        return HEADER.size + SLOT_SIZE * wid

    def read(self, wid: int) -> dict:
        out = dict(zip(FIELDS, SLOT.unpack_from(self.mem, self.offset(wid))))
        out["uri"] = out["uri"].split(b"\0", 1)[0].decode("latin-1")
        if self.cores > 1 and wid:
            self.add_cores(wid, out)
        return out

    def add_cores(self, wid: int, out: dict) -> None:
        """--threads: the worker's requests, delta, exceptions, tx and running time are its
        slot's plus its cores' for this worker; it is busy while a core is (since the oldest
        request's start, with that request's URI), unless it is gone, cheap or dead."""
        cores = [self.read_core(wid, core) for core in range(self.cores)]
        served = sum(c["delta_requests"] for c in cores)
        out["requests"] += served
        out["delta_requests"] += served
        for key in _ADDED:
            out[key] += sum(c[key] for c in cores)
        averages = [c["avg_rt"] for c in cores if c["avg_rt"]]
        if averages:
            out["avg_rt"] = sum(averages) // len(averages)
        busy = [c for c in cores if c["in_request"]]
        if busy and out["pid"] and out["status"] in (IDLE, PAUSE):
            oldest = min(busy, key=lambda c: c["busy_since"])
            out["status"], out["busy_since"], out["uri"] = BUSY, oldest["busy_since"], oldest["uri"]

    def write(self, wid: int, **values) -> None:
        current = list(SLOT.unpack_from(self.mem, self.offset(wid)))
        for key, value in values.items():
            current[FIELDS.index(key)] = value
        if type(current[_URI_FIELD]) is str:
            current[_URI_FIELD] = current[_URI_FIELD].encode("latin-1", "replace")
        SLOT.pack_into(self.mem, self.offset(wid), *current)

    def set_pid(self, wid: int, pid: int) -> None:
        _PID.pack_into(self.mem, self.offset(wid), pid)

    def total_requests(self) -> int:
        if self.cores > 1:
            return sum(self.read(w)["requests"] for w in range(1, self.workers + 1))
        return sum(SLOT.unpack_from(self.mem, self.offset(w))[_REQUESTS]
                   for w in range(1, self.workers + 1))

    @property
    def paused(self) -> bool:
        return bool(HEADER.unpack_from(self.mem, 0)[0])

    @paused.setter
    def paused(self, value: bool) -> None:
        HEADER.pack_into(self.mem, 0, 1 if value else 0)


class WorkerSlot:
    """A worker's own view of its slot: counters kept as ints, flushed per request."""

    __slots__ = ("board", "wid", "off", "requests", "delta", "exceptions", "tx", "running_time",
                 "avg_rt", "last_spawn", "respawn_count", "harakiri_count", "pid", "signals",
                 "publish", "mem", "pid_bytes", "status_at", "accepting_at")

    def __init__(self, board: Scoreboard, wid: int):
        self.board = board
        self.wid = wid
        self.off = board.offset(wid)
        board.fold_cores(wid)   # --threads: the last worker's cores' counts into the slot
        cur = board.read(wid)
        self.pid = os.getpid()
        board.set_pid(wid, self.pid)
        self.requests = cur["requests"]
        self.delta = 0
        self.exceptions = cur["exceptions"]
        self.tx = cur["tx"]
        self.running_time = cur["running_time"]
        self.avg_rt = cur["avg_rt"]
        self.last_spawn = cur["last_spawn"]
        self.respawn_count = cur["respawn_count"]
        self.harakiri_count = cur["harakiri_count"]
        self.signals = cur["signals"]
        # plugins' uwsgi_request_start (stats): publish(env, core) as a request starts on a core
        self.publish: Callable[[dict | None, int], None] | None = None
        self.mem = board.mem
        self.pid_bytes = _PID.pack(self.pid)
        self.accepting_at = self.off + _PID.size   # accepting .. busy_since: _DONE
        self.status_at = self.off + _STATUS_AT     # status, busy_since, uri: _BUSY

    @property
    def worker_requests(self) -> int:
        """The worker's requests (with --threads, ``threads.CoreSlot``'s adds its cores')."""
        return self.requests

    def owns(self) -> bool:
        """False once a reload gave the slot to this worker's replacement: never write then."""
        return self.mem[self.off:self.off + 4] == self.pid_bytes

    def flush(self, status: int, accepting: int = 1, busy_since: float = 0.0) -> None:
        if not self.owns():
            return
        SLOT.pack_into(self.mem, self.off, self.pid, accepting, self.requests, self.delta,
                       self.exceptions, self.tx, self.running_time, self.avg_rt, status,
                       busy_since, b"", self.last_spawn, self.respawn_count,
                       self.harakiri_count, self.signals, 0, 0)

    def done(self, sent: int, us: int, status: int = IDLE, since: float = 0.0) -> None:
        """A request ended: count it and flip back to idle (what flush(IDLE) writes, but
        only the fields a request changes, which are contiguous: one pack). ``status`` and
        ``since``: with threads, the worker stays busy while another core is."""
        self.requests += 1
        self.delta += 1
        self.tx += sent
        self.running_time += us
        self.avg_rt = avg = (self.avg_rt + us) // 2 if self.avg_rt else us
        if self.owns():
            _DONE.pack_into(self.mem, self.accepting_at, 1, self.requests, self.delta,
                            self.exceptions, self.tx, self.running_time, avg, status, since)

    def busy(self, since: float, uri: str, env: dict | None = None, core: int = 0) -> None:
        if not self.owns():
            return
        if self.publish is not None:
            # before the status flips, so a reader never sees stale vars
            self.publish(env, core)
        # status, busy_since and the URI at once (a URI longer than the field is cut)
        _BUSY.pack_into(self.mem, self.status_at, BUSY, since, uri.encode("latin-1", "replace"))
