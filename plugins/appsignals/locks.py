"""``uwsgi.lock(n)``: cross-process locks, ``--locks N`` of them plus lock 0.

POSIX record locks on one byte each of a temporary file the master opens
before it forks (and hands to the next image across an exec reload, so old
and new workers contend for the same locks). Record locks belong to a
process, not a thread, so a per-process thread lock comes first: two threads
of one process exclude each other too.
"""
from __future__ import annotations

import fcntl
import os
import threading

from uwsgi_py import unlinked_file


class Locks:
    def __init__(self, count: int, fd: int = -1):
        self.count = count               # valid numbers: 0..count (uWSGI: 0..--locks)
        if fd < 0:
            fd = unlinked_file()   # no name: nothing to clean up
        self.fd = fd
        self.threads = [threading.Lock() for _ in range(count + 1)]

    def after_fork(self) -> None:
        """A child starts with every thread lock free: no thread of the parent came along."""
        self.threads = [threading.Lock() for _ in range(self.count + 1)]

    def check(self, num) -> int:
        if isinstance(num, bool) or not isinstance(num, int):
            raise TypeError(f"a lock number must be an int, not {type(num).__name__}")
        if not 0 <= num <= self.count:
            raise ValueError("Invalid lock number")
        return num

    def lock(self, num: int = 0) -> None:
        num = self.check(num)
        self.threads[num].acquire()
        try:
            fcntl.lockf(self.fd, fcntl.LOCK_EX, 1, num)
        except BaseException:
            self.threads[num].release()
            raise

    def unlock(self, num: int = 0) -> None:
        num = self.check(num)
        fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, num)
        if self.threads[num].locked():
            self.threads[num].release()

    def is_locked(self, num: int = 0) -> bool:
        num = self.check(num)
        if self.threads[num].locked():
            return True
        try:
            fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, num)
        except OSError:
            return True
        fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, num)
        return False
