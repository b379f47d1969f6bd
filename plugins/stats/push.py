"""``--stats-push statsd:HOST:PORT[,PREFIX]``: uWSGI's statsd stats pusher.

Every ``--stats-pusher-default-freq`` seconds (3) the master sends one UDP
datagram per metric, ``PREFIX.NAME:VALUE|g`` for gauges and ``|c`` for the
others, as uWSGI's stats_pusher_statsd sends its metrics subsystem: the same
names (``core.busy_workers``, ``worker.N.requests``, ``worker.N.core.C.requests``,
``socket.N.listen_queue``...) in the same order (``metrics``). Values are uWSGI's:
counters are sent as their running total. Sends never block; a lost datagram is lost.
"""
from __future__ import annotations

import socket
from dataclasses import dataclass

from . import document

GAUGE, COUNTER = "g", "c"


class PushError(ValueError):
    pass


@dataclass
class _DocState:
    """What ``document.build`` reads of a stats server, when only the pusher runs."""

    listen_queue_errors: int = 0
    memory_report: bool = False
    cores: bool = True
    request_vars: None = None


_WORKER = (("requests", "requests", COUNTER), ("delta_requests", "delta_requests", COUNTER),
           ("failed_requests", "exceptions", COUNTER), ("respawns", "respawn_count", COUNTER),
           ("avg_response_time", "avg_rt", GAUGE), ("total_tx", "tx", COUNTER),
           ("rss_size", "rss", GAUGE), ("vsz_size", "vsz", GAUGE),
           ("running_time", "running_time", COUNTER))
_CORE = ("requests", "write_errors", "routed_requests", "static_requests", "offloaded_requests",
         "exceptions", "read_errors")


def _cores(w: dict) -> list[dict]:
    """A worker's cores as the metrics see them (one core when the document has none)."""
    cores = w.get("cores") or [{"id": 0, "requests": w["requests"]}]
    single = len(cores) == 1
    return [{**{key: c.get(key, 0) for key in _CORE}, "id": c["id"],
             "exceptions": w["exceptions"] if single else 0} for c in cores]


def metrics(doc: dict) -> list[tuple[str, int, str]]:
    """(name, value, kind) in the order uWSGI 2.0 registers its metrics (core/metrics.c):
    core counters, worker 0 then each worker with its cores, the core totals, the sockets,
    and the ``rss_size``/``vsz_size`` aliases (pushed as ``|c``: not gauges to uWSGI)."""
    workers = doc["workers"]
    busy = sum(1 for w in workers if w["status"] == "busy")
    total = {key: sum(w[key] for w in workers) for key in ("tx", "rss", "vsz", "running_time")}
    avg = sum(w["avg_rt"] for w in workers) // len(workers) if workers else 0
    out = [
        ("core.routed_signals", 0, COUNTER),      # uwsgi-py does not count routed signals
        ("core.unrouted_signals", 0, COUNTER),
        ("core.busy_workers", busy, GAUGE),
        ("core.idle_workers", len(workers) - busy, GAUGE),
        ("core.overloaded", doc["listen_queue_errors"], COUNTER),
    ]
    # uWSGI's worker 0 is the master's slot: only its request count (the total) moves
    zero = {key: 0 for _, key, _ in _WORKER}
    zero["requests"] = sum(w["requests"] for w in workers)
    for n, w in [(0, zero)] + [(w["id"], w) for w in workers]:
        out += [(f"worker.{n}.{name}", w[key], kind) for name, key, kind in _WORKER]
        if n:
            for c in _cores(w):
                out += [(f"worker.{n}.core.{c['id']}.{key}", c[key], COUNTER) for key in _CORE]
    out += [
        ("core.total_tx", total["tx"], COUNTER),
        ("core.total_rss", total["rss"], GAUGE),
        ("core.total_vsz", total["vsz"], GAUGE),
        ("core.avg_response_time", avg, GAUGE),
        ("core.total_running_time", total["running_time"], COUNTER),
    ]
    out += [(f"socket.{i}.listen_queue", s["queue"], GAUGE) for i, s in enumerate(doc["sockets"])]
    out += [("rss_size", total["rss"], COUNTER), ("vsz_size", total["vsz"], COUNTER)]
    return out


class StatsdPusher:
    def __init__(self, spec: str):
        kind, _, arg = spec.partition(":")
        if kind != "statsd":
            raise PushError(f"{spec!r}: uwsgi-py pushes to statsd:HOST:PORT[,PREFIX] only")
        address, _, prefix = arg.partition(",")
        host, colon, port = address.rpartition(":")
        if not colon or not port.isdigit():
            raise PushError(f"invalid statsd address {address!r} (HOST:PORT)")
        self.address = (host or "127.0.0.1", int(port))
        self.prefix = prefix or "uwsgi"
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.sock.setblocking(False)

    def push(self, doc: dict) -> None:
        for name, value, kind in metrics(doc):
            try:
                self.sock.sendto(f"{self.prefix}.{name}:{int(value)}|{kind}".encode(), self.address)
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()


class Pushers:
    """Every ``--stats-push`` target of this master, pushed from its once-a-second tick."""

    def __init__(self, specs: list[str], freq: int, memory_report: bool):
        self.pushers = [StatsdPusher(spec) for spec in specs]
        self.freq = max(1, freq)
        self.next = 0.0
        self.state = _DocState(memory_report=memory_report)

    def tick(self, view, now: float, stats_server=None) -> None:
        """``view``: the master's ``MasterView``."""
        if now < self.next:
            return
        self.next = now + self.freq
        doc = document.build(view, stats_server or self.state)
        for pusher in self.pushers:
            pusher.push(doc)

    def close(self) -> None:
        for pusher in self.pushers:
            pusher.close()
