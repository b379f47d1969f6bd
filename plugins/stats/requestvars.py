"""The CGI vars of the request each worker's core is serving, in shared memory.

A second anonymous shared mmap beside the core scoreboard, made in the master
before it forks (``uwsgi_post_apps``): one slot per core of each worker (one core
without --threads, else one per request thread, as uWSGI's ``cores[].vars``). A
core writes its slot once per request, before its status turns busy
(``uwsgi_request_start``): ``KEY=VALUE`` strings joined by NUL, cut to ``SIZE``
bytes, after a 4-byte length. About 1.5 us per request, and only with ``--stats``
(not with ``--stats-no-cores``).

The master reads a slot only while the scoreboard says the core is busy, twice,
and keeps it only if both reads and the core's ``busy_since`` agree (uWSGI compares
its copy of the request buffer the same way), so a torn read shows ``[]``.
"""
from __future__ import annotations

import mmap
import struct

SIZE = 4096  # like uWSGI's default buffer-size: the vars block of one request
LENGTH = struct.Struct("<I")
SLOT = LENGTH.size + SIZE


class RequestVars:
    def __init__(self, workers: int, cores: int = 1):
        self.workers = workers
        self.cores = max(1, cores)
        self.mem = mmap.mmap(-1, SLOT * (workers + 1) * self.cores)

    def offset(self, wid: int, core: int) -> int:
        return SLOT * (wid * self.cores + core)

    def writer(self, wid: int):
        """The per-request publisher for worker ``wid`` (runs in the worker, hot path)."""
        mem, base, pack = self.mem, self.offset(wid, 0), LENGTH.pack_into

        def publish(env: dict | None, core: int = 0) -> None:
            off = base + SLOT * core
            if not env:
                pack(mem, off, 0)
                return
            data = "\0".join(map("=".join, env.items())).encode("latin-1", "replace")
            n = min(len(data), SIZE)
            pack(mem, off, n)
            start = off + LENGTH.size
            mem[start:start + n] = data[:n]
        return publish

    def raw(self, wid: int, core: int = 0) -> bytes:
        off = self.offset(wid, core)
        n = min(LENGTH.unpack_from(self.mem, off)[0], SIZE)
        start = off + LENGTH.size
        return self.mem[start:start + n]


def parse(data: bytes) -> list[str]:
    """A slot's bytes as ``KEY=VALUE`` strings; a var cut at ``SIZE`` is dropped."""
    if not data:
        return []
    parts = data.decode("latin-1").split("\0")
    if len(data) >= SIZE:
        parts.pop()
    return parts


def busy_since(view, wid: int, core: int) -> float | None:
    """When the core's current request started, or None if it is idle (``view``: a
    ``MasterView``)."""
    for entry in view.cores(wid):
        if entry["id"] == core:
            return entry["busy_since"] if entry["in_request"] else None
    return None


def stable_vars(board: RequestVars, view, wid: int, core: int = 0) -> list[str] | None:
    """The vars of the request on worker ``wid``'s core, or None if it is not busy or
    moved on while we read (the torn-read check)."""
    before = busy_since(view, wid, core)
    if before is None:
        return None
    first = board.raw(wid, core)
    second = board.raw(wid, core)
    if first != second or busy_since(view, wid, core) != before:
        return None
    return parse(first)
