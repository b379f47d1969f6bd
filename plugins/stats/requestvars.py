"""The CGI vars of the request each worker is serving, in shared memory.

A second anonymous shared mmap beside the core scoreboard, made in the master
before it forks (``uwsgi_post_apps``). A worker writes one slot per request,
before its status turns busy (``WorkerSlot.publish``): ``KEY=VALUE`` strings
joined by NUL, cut to ``SIZE`` bytes, after a 4-byte length. About 1.5 us per
request, and only with ``--stats`` (not with ``--stats-no-cores``).

The master reads a slot only while the scoreboard says busy, twice, and keeps
it only if both reads and the worker's ``busy_since`` agree (uWSGI compares
its copy of the request buffer the same way), so a torn read shows ``[]``.
"""
from __future__ import annotations

import mmap
import struct

SIZE = 4096  # like uWSGI's default buffer-size: the vars block of one request
LENGTH = struct.Struct("<I")
SLOT = LENGTH.size + SIZE


class RequestVars:
    def __init__(self, workers: int):
        self.workers = workers
        self.mem = mmap.mmap(-1, SLOT * (workers + 1))

    def writer(self, wid: int):
        """The per-request publisher for worker ``wid`` (runs in the worker, hot path)."""
        mem, off, pack = self.mem, SLOT * wid, LENGTH.pack_into
        start = off + LENGTH.size

        def publish(env: dict | None) -> None:
            if not env:
                pack(mem, off, 0)
                return
            data = "\0".join(map("=".join, env.items())).encode("latin-1", "replace")
            n = min(len(data), SIZE)
            pack(mem, off, n)
            mem[start:start + n] = data[:n]
        return publish

    def raw(self, wid: int) -> bytes:
        off = SLOT * wid
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


def stable_vars(board: RequestVars, view, wid: int) -> list[str] | None:
    """The vars of worker ``wid``'s current request, or None if it is not busy or
    moved on while we read (the torn-read check; ``view``: an ``Instance``)."""
    before = view.worker(wid)
    if not before["busy"]:
        return None
    first = board.raw(wid)
    second = board.raw(wid)
    after = view.worker(wid)
    if first != second or not after["busy"] or after["busy_since"] != before["busy_since"]:
        return None
    return parse(first)
