"""``--py-autoreload N``: a graceful reload when a loaded module's source changes (development).

uWSGI runs a thread in the workers that stats every module's file each N seconds.
The master here has no threads: its once-a-second tick does the scan every N
seconds over the modules the master loaded (the app and what it imports; with
--lazy-apps only what the master itself imported, plus the --wsgi-file).
"""
from __future__ import annotations

import os
import sys
import time

MODIFIED = "[uwsgi-python-reloader] module/file {path} has been modified"


def source_of(module) -> str | None:
    path = getattr(module, "__file__", None)
    if not isinstance(path, str):
        return None
    if path.endswith(".pyc"):
        path = path[:-1]
    return path if path.endswith(".py") else None


def snapshot(extra: tuple[str, ...] = ()) -> dict[str, float]:
    """``{path: mtime}`` of every loaded module's source (and ``extra`` files)."""
    out = {}
    paths = [source_of(m) for m in list(sys.modules.values())]
    for path in (*paths, *extra):
        if path and path not in out:
            try:
                out[path] = os.stat(path).st_mtime
            except OSError:
                continue
    return out


class Reloader:
    def __init__(self, every: int, extra: tuple[str, ...] = ()):
        self.every = every
        self.extra = extra
        self.known = snapshot(extra)
        self.next_scan = time.monotonic() + every

    def changed(self, now: float) -> str | None:
        """The first changed source file, once every ``every`` seconds; None otherwise."""
        if now < self.next_scan:
            return None
        self.next_scan = now + self.every
        current = snapshot(self.extra)
        found = None
        for path, mtime in current.items():
            old = self.known.get(path)
            if old is not None and mtime != old and found is None:
                found = path
        self.known = current
        return found
