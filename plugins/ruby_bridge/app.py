"""The Rack app as the core sees it: modifier1 7, served by one Ruby child per worker.

The object is built where apps load (the master, or each worker with
``--lazy-apps``), but its Ruby child belongs to one process: a worker starts
its own after fork and replaces it when it dies or overruns ``--harakiri``.
"""
from __future__ import annotations

import os
import time

from uwsgi_py import Instance

from . import logs, wire
from .child import BOOT_TIMEOUT, GONE_GRACE, Launch, RubyChild, RubyError
from .exchange import Exchange

RACK_MODIFIER1 = 7
# the worker kills a hung Ruby child this long before the master's harakiri
# would kill the whole worker, so the worker survives and answers 500
HARAKIRI_MARGIN = 0.5


class RackLoadError(Exception):
    """The config.ru could not be loaded (the reload check fails on this)."""


class RubyCrashed(Exception):
    """The Ruby child died or broke the protocol during a request."""


class RubyHarakiri(Exception):
    """The Ruby child overran --harakiri and was killed."""


def ruby_deadline(harakiri: int) -> float | None:
    if not harakiri:
        return None
    return time.monotonic() + max(harakiri - HARAKIRI_MARGIN, harakiri / 2)


def boot_deadline(deadline: float | None) -> float:
    limit = time.monotonic() + BOOT_TIMEOUT
    return limit if deadline is None else min(limit, deadline)


class RackApp:
    modifier1 = RACK_MODIFIER1

    def __init__(self, launch: Launch, server):
        self.launch = launch
        self.server = server
        self.name = launch.config
        self.child: RubyChild | None = None
        self.owner = 0

    @property
    def wid(self) -> int:
        """The worker this app serves in (0 in the master)."""
        return Instance(self.server).worker_id

    # ---- load check (master, reload check) -------------------------------------
    def check(self) -> None:
        """Load the app once in a throwaway Ruby process; RackLoadError if it fails."""
        child = RubyChild(self.launch, self.server)
        started = time.monotonic()
        try:
            child.spawn()
            info = child.wait_ready(started + BOOT_TIMEOUT)
        except RubyError as e:
            raise RackLoadError(f"--rack {self.name} failed to load: {e}") from None
        except (wire.RubyGone, wire.RubyTimeout, wire.ProtocolError) as e:
            raise RackLoadError(f"--rack {self.name}: the ruby bridge failed ({e}; "
                                f"{child.exit_text()})") from None
        finally:
            child.stop()
        logs.log(logs.CHECKED.format(app=self.name, ruby=info.get("ruby"), rack=info.get("rack"),
                                     ms=int((time.monotonic() - started) * 1000)))

    # ---- this worker's child -------------------------------------------------------
    def start(self, wait: bool = True) -> None:
        """Start this process's Ruby child; with ``wait``, until the app is loaded."""
        self.owner = os.getpid()
        child = self.child = RubyChild(self.launch, self.server)
        child.spawn()
        logs.log(logs.STARTED.format(wid=self.wid, pid=child.pid, app=self.name))
        if wait:
            self.boot(boot_deadline(None))

    def boot(self, deadline: float) -> RubyChild:
        child = self.child
        try:
            info = child.wait_ready(deadline)
        except RubyError as e:
            self.child = None
            child.kill(GONE_GRACE)
            logs.log(logs.BOOT_FAILED.format(pid=child.pid, app=self.name, error=e))
            raise RackLoadError(f"--rack {self.name} failed to load: {e}") from None
        except (wire.RubyGone, wire.RubyTimeout, wire.ProtocolError) as e:
            self.child = None
            how = child.kill(GONE_GRACE)
            logs.log(logs.BOOT_FAILED.format(pid=child.pid, app=self.name, error=f"{e} ({how})"))
            raise RackLoadError(f"--rack {self.name}: the ruby child failed to start ({how})") from None
        logs.log(logs.READY.format(pid=child.pid, wid=self.wid, ruby=info.get("ruby"),
                                   rack=info.get("rack"),
                                   ms=int((time.monotonic() - child.started) * 1000)))
        return child

    def stop(self) -> None:
        child, self.child = self.child, None
        if child is not None and self.owner == os.getpid():
            how = child.stop()
            logs.log(logs.STOPPED.format(pid=child.pid, wid=self.wid, how=how))

    def ready_child(self, deadline: float | None) -> RubyChild:
        """This worker's child, replaced if it died since the last request."""
        if self.owner != os.getpid():
            self.child = None  # inherited across fork: not ours
        child = self.child
        if child is not None and not child.alive():
            logs.log(logs.DIED.format(pid=child.pid, wid=self.wid,
                                      how=child.kill()))
            child = None
        if child is None:
            self.start(wait=False)
            child = self.child
        if not child.ready:
            child = self.boot(boot_deadline(deadline))
        return child

    # ---- a request -------------------------------------------------------------------
    def __call__(self, req) -> None:
        started = time.monotonic()
        deadline = ruby_deadline(self.server.settings.harakiri)
        child = self.ready_child(deadline)
        try:
            Exchange(child, req, deadline).run()
        except wire.RubyTimeout:
            uri = req.vars.get("REQUEST_URI") or req.vars.get("PATH_INFO", "")
            child.kill()
            logs.log(logs.HARAKIRI.format(pid=child.pid, wid=self.wid, uri=uri,
                                          elapsed=time.monotonic() - started,
                                          secs=self.server.settings.harakiri))
            self.start(wait=False)
            raise RubyHarakiri(f"ruby child {child.pid} killed after --harakiri") from None
        except (wire.RubyGone, wire.ProtocolError) as e:
            how = child.kill(GONE_GRACE)
            logs.log(logs.DIED.format(pid=child.pid, wid=self.wid, how=how))
            self.start(wait=False)
            raise RubyCrashed(f"ruby child {child.pid} failed during the request: {e} ({how})") from None
