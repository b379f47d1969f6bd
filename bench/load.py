"""A bounded pool of client threads for the reload-under-load and burst runs.

Each client opens a new connection per request (``Connection: close``), so a
reload's effect on accepting shows up, and records when the request started
and ended and how it failed. wrk is not used here: it reports errors only as
totals, and we want each failure's kind and the gaps between completions.
"""
from __future__ import annotations

import errno
import socket
import statistics
import threading
import time


def one_request(port: int, timeout: float) -> str:
    """'ok' or the kind of failure."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except socket.timeout:
        return "connect-timeout"
    except ConnectionRefusedError:
        return "refused"
    except OSError as e:
        return f"connect-{errno.errorcode.get(e.errno, e.errno)}"
    try:
        s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data = bytearray()
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        return "timeout"
    except (ConnectionResetError, BrokenPipeError):
        return "reset"
    except OSError as e:
        return f"io-{errno.errorcode.get(e.errno, e.errno)}"
    finally:
        s.close()
    if not data:
        return "empty"
    parts = bytes(data[:32]).split(b" ", 2)
    if len(parts) < 2 or parts[1] != b"200":
        return f"status-{parts[1].decode('latin-1') if len(parts) > 1 else '?'}"
    head, sep, body = bytes(data).partition(b"\r\n\r\n")
    if not sep or not body:
        return "truncated"
    return "ok"


class Pool:
    """``clients`` threads requesting in a loop until ``stop()``."""

    def __init__(self, port: int, clients: int, timeout: float):
        self.port = port
        self.timeout = timeout
        self.records: list[tuple[float, float, str]] = []  # (start, end, outcome)
        self.lock = threading.Lock()
        self.running = True
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]

    def start(self) -> "Pool":
        for t in self.threads:
            t.start()
        return self

    def _client(self) -> None:
        port, timeout, records, lock = self.port, self.timeout, self.records, self.lock
        while self.running:
            t0 = time.monotonic()
            outcome = one_request(port, timeout)
            t1 = time.monotonic()
            with lock:
                records.append((t0, t1, outcome))
            if outcome != "ok":
                time.sleep(0.01)  # a failing server must not turn the pool into a busy loop

    def stop(self) -> None:
        self.running = False
        for t in self.threads:
            t.join(self.timeout + 5)


def summarize(records, since: float, until: float) -> dict:
    """Outcomes of requests that ended in [since, until): counts, failures by kind,
    p50/p99 latency of successes, and the longest stretch with no completed request."""
    window = [r for r in records if since <= r[1] < until]
    ok = sorted(r[1] - r[0] for r in window if r[2] == "ok")
    failed: dict[str, int] = {}
    for r in window:
        if r[2] != "ok":
            failed[r[2]] = failed.get(r[2], 0) + 1
    ends = sorted(r[1] for r in window if r[2] == "ok")
    gap = 0.0
    prev = since
    for t in ends:
        gap = max(gap, t - prev)
        prev = t
    gap = max(gap, until - prev)
    return {
        "requests": len(window),
        "ok": len(ok),
        "failed": sum(failed.values()),
        "failed_by_kind": failed,
        "p50_ms": _pct(ok, 50) * 1000,
        "p99_ms": _pct(ok, 99) * 1000,
        "max_gap_ms": gap * 1000,
    }


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1] if p < 100 else values[-1]
