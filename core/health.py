"""Readiness: one answer, derived from the master's state, for every reader.

The stats server's ``/ready``, the health plugin's status socket (read by
``uwsgi-py --status PIDFILE`` and by ``--reload PIDFILE`` to learn a reload's
outcome) all return ``status(master)``:

- ``starting``: the first workers are not all accepting yet (not ready)
- ``ready``: every worker accepts
- ``reloading``: a graceful reload runs; the current workers keep serving (ready)
- ``refused``: the last reload was refused: the old code serves, but a deploy did
  not happen (not ready, until a reload succeeds)
- ``paused``: SIGTSTP/FIFO ``p``; workers accept nothing (not ready)
- ``stopping``: a shutdown began (not ready: take the instance out of rotation)
"""
from __future__ import annotations

import os
import socket

READY_STATES = ("ready", "reloading")
STATUS_TIMEOUT = 2.0


def state(master) -> str:
    server = master.server
    current = getattr(master.state, "value", str(master.state))
    last = master.reloads[-1] if master.reloads else None
    if current in ("shutting-down", "exited"):
        return "stopping"
    if master.paused:
        return "paused"
    if current in ("reload-check", "reloading") and master.reload_kind == "graceful":
        return "reloading"
    if not server.ready:
        graceful = server.handoff.reload.get("kind", "graceful") == "graceful"
        return "reloading" if server.is_reload and graceful else "starting"
    if last is not None and last.get("refused"):
        return "refused"
    return "ready"


def status(master) -> dict:
    """What a probe or a deploy script needs, as plain JSON values."""
    now = state(master)
    s = master.settings
    return {
        "ready": now in READY_STATES,
        "state": now,
        "pid": os.getpid(),
        "generation": master.server.generation,
        "reloads": len(master.reloads),
        "last_reload": master.reloads[-1] if master.reloads else None,
        "reload_waitable": not (s.lazy or s.exit_on_reload),
    }


# ---- the status socket: a name any local process finds from the master's pid -----------------
def address(pid: int) -> str:
    """An abstract unix socket name: nothing to clean up, the same across exec reloads.

    Containers of one pod share a network namespace (so its abstract names) but not their
    pid namespace: the name carries the pid namespace too, in which the pid means something."""
    try:
        ns = os.readlink("/proc/self/ns/pid").strip("pid:[]")
    except OSError:
        ns = "0"
    return f"\0uwsgi-py/{ns}/{pid}/status"


def encode(doc: dict) -> bytes:
    import json   # asked for by --status and --reload: not imported at start-up
    return (json.dumps(doc, sort_keys=True) + "\n").encode()


def query(pid: int, timeout: float = STATUS_TIMEOUT) -> dict | None:
    """The status of the master ``pid``, or None when it does not answer (no health
    plugin, no master, between an exec and the new image's first loop)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(address(pid))
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    except OSError:
        return None
    import json
    try:
        doc = json.loads(b"".join(chunks))
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None
