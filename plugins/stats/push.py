"""``--stats-push statsd:HOST:PORT[,PREFIX]``: uWSGI's statsd stats pusher.

Every ``--stats-pusher-default-freq`` seconds (3) the master sends one UDP
datagram per metric, ``PREFIX.NAME:VALUE|g`` for gauges and ``|c`` for the
others, as uWSGI's stats_pusher_statsd sends its metrics subsystem: the same
names (``core.busy_workers``, ``worker.N.requests``, ``socket.N.listen_queue``,
worker 0 being the sum of all), in the same order. Values are uWSGI's: counters
are sent as their running total. Sends never block; a lost datagram is lost.
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
    cores: bool = False
    request_vars: None = None


def _worker_metrics(n: int, w: dict) -> list[tuple[str, int, str]]:
    p = f"worker.{n}."
    return [
        (p + "requests", w["requests"], COUNTER),
        (p + "delta_requests", w["delta_requests"], COUNTER),
        (p + "failed_requests", w["exceptions"], COUNTER),
        (p + "respawns", w["respawn_count"], COUNTER),
        (p + "avg_response_time", w["avg_rt"], GAUGE),
        (p + "total_tx", w["tx"], COUNTER),
        (p + "rss_size", w["rss"], GAUGE),
        (p + "vsz_size", w["vsz"], GAUGE),
        (p + "running_time", w["running_time"], COUNTER),
        (p + "core.0.requests", w["requests"], COUNTER),
    ]


def metrics(doc: dict) -> list[tuple[str, int, str]]:
    """(name, value, kind) in uWSGI's registration order (core/metrics.c)."""
    workers = doc["workers"]
    busy = sum(1 for w in workers if w["status"] == "busy")
    total = {key: sum(w[key] for w in workers) for key in
             ("requests", "delta_requests", "exceptions", "respawn_count", "tx", "rss", "vsz",
              "running_time")}
    avg = sum(w["avg_rt"] for w in workers) // len(workers) if workers else 0
    out = [
        ("core.busy_workers", busy, GAUGE),
        ("core.idle_workers", len(workers) - busy, GAUGE),
        ("core.overloaded", doc["listen_queue_errors"], COUNTER),
        ("core.total_tx", total["tx"], COUNTER),
        ("core.total_rss", total["rss"], GAUGE),
        ("core.total_vsz", total["vsz"], GAUGE),
        ("core.avg_response_time", avg, GAUGE),
        ("core.total_running_time", total["running_time"], COUNTER),
    ]
    out += _worker_metrics(0, {**total, "avg_rt": avg})
    for w in workers:
        out += _worker_metrics(w["id"], w)
    out += [(f"socket.{i}.listen_queue", s["queue"], GAUGE) for i, s in enumerate(doc["sockets"])]
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
