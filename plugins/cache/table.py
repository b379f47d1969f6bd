"""One cache table in anonymous shared memory, shared by every process forked after it.

``items`` fixed slots, open addressing (crc32 of the key, linear probing); a slot is
``state, keylen, vallen, expires`` then ``keysize`` bytes of key and ``blocksize``
bytes of value. A deleted slot is a tombstone, so probing goes on past it. Every
operation holds an fcntl lock on an unlinked file (a lock per process, so forked
processes exclude one another) plus a thread lock (for an app's own threads).
"""
from __future__ import annotations

import fcntl
import mmap
import os
import struct
import threading
import time
import zlib

from uwsgi_py import unlinked_file

SLOT = struct.Struct("<BHIq")       # state, key length, value length, expires (epoch, 0: never)
EMPTY, USED, DELETED = 0, 1, 2


class Table:
    def __init__(self, items: int, keysize: int, blocksize: int):
        if keysize > 0xFFFF:
            raise ValueError("keysize above 65535")
        self.items, self.keysize, self.blocksize = items, keysize, blocksize
        self.stride = SLOT.size + keysize + blocksize
        self.mem = mmap.mmap(-1, items * self.stride)     # MAP_SHARED | MAP_ANONYMOUS
        self.lock_fd = unlinked_file()
        self.thread_lock = threading.Lock()

    # ---- locking --------------------------------------------------------------------
    def __enter__(self):
        self.thread_lock.acquire()
        fcntl.lockf(self.lock_fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.lockf(self.lock_fd, fcntl.LOCK_UN)
        self.thread_lock.release()

    # ---- slots --------------------------------------------------------------------------
    def _probe(self, key: bytes):
        """Slot offsets in probing order for ``key``."""
        start = zlib.crc32(key) % self.items
        for i in range(self.items):
            yield ((start + i) % self.items) * self.stride

    def _find(self, key: bytes, now: float) -> tuple[int | None, int | None]:
        """(offset of the live slot holding ``key`` or None, first reusable offset or None)."""
        free = None
        for off in self._probe(key):
            state, klen, _, expires = SLOT.unpack_from(self.mem, off)
            if state == EMPTY:
                return None, free if free is not None else off
            if state == USED and expires and expires <= now:
                self.mem[off] = DELETED          # expired: gone, as uWSGI's sweeper does
                state = DELETED
            if state == DELETED:
                if free is None:
                    free = off
                continue
            if klen == len(key) and self.mem[off + SLOT.size:off + SLOT.size + klen] == key:
                return off, free
        return None, free

    # ---- operations -------------------------------------------------------------------
    def get(self, key: bytes) -> bytes | None:
        with self:
            off, _ = self._find(key, time.time())
            if off is None:
                return None
            vlen = SLOT.unpack_from(self.mem, off)[2]
            start = off + SLOT.size + self.keysize
            return bytes(self.mem[start:start + vlen])

    def put(self, key: bytes, value: bytes, expires: int, replace: bool) -> bool:
        """Store ``key``; False if it is too big, the table is full, or (without
        ``replace``) the key is there already."""
        if not key or len(key) > self.keysize or len(value) > self.blocksize:
            return False
        with self:
            off, free = self._find(key, time.time())
            if off is not None and not replace:
                return False
            if off is None:
                if free is None:
                    return False
                off = free
            until = int(time.time()) + expires if expires > 0 else 0
            SLOT.pack_into(self.mem, off, USED, len(key), len(value), until)
            self.mem[off + SLOT.size:off + SLOT.size + len(key)] = key
            start = off + SLOT.size + self.keysize
            self.mem[start:start + len(value)] = value
            return True

    def delete(self, key: bytes) -> bool:
        with self:
            off, _ = self._find(key, time.time())
            if off is None:
                return False
            self.mem[off] = DELETED
            return True

    def clear(self) -> None:
        with self:
            for i in range(self.items):
                self.mem[i * self.stride] = EMPTY

    def keys(self) -> list[bytes]:
        now = time.time()
        out = []
        with self:
            for i in range(self.items):
                off = i * self.stride
                state, klen, _, expires = SLOT.unpack_from(self.mem, off)
                if state == USED and not (expires and expires <= now):
                    out.append(bytes(self.mem[off + SLOT.size:off + SLOT.size + klen]))
        return out
