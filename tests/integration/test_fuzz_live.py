"""A short live fuzz run against a real server (issue 10, point 3).

A bounded number of mutated HTTP requests, mutated uwsgi packets and random
bytes, over loopback, a few connections at a time. Each connection is
half-closed after sending and must end (answer or close) within the socket
timeout plus slack: no hang. Afterwards: the same master, the same workers (none
crashed, so none needed a respawn), no traceback in the log, and a normal
request is answered.
"""
from __future__ import annotations

import random
import threading
import time

import pytest

from conftest import pid_alive
from hardening_helpers import HARDENING_APP, bound_ports, exchange
from uwsgi_py.proto import pack_uwsgi

pytestmark = pytest.mark.timeout(90)

EXCHANGES = 1000
SEED = 20261129

HTTP_SEEDS = [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /pid?a=1 HTTP/1.0\r\nHost: x\r\nX-A: 1\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world",
    b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"POST /echo-lines HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\nExpect: 100-continue\r\n\r\na\nb\nc\nd\ne\nf\n",
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /pid HTTP/1.1\r\nHost: x\r\n\r\n",
]
UWSGI_SEEDS = [
    pack_uwsgi({"REQUEST_METHOD": "GET", "PATH_INFO": "/", "SERVER_PROTOCOL": "HTTP/1.1"}),
    pack_uwsgi({"REQUEST_METHOD": "POST", "PATH_INFO": "/echo", "CONTENT_LENGTH": "4"}) + b"body",
    pack_uwsgi({"REQUEST_METHOD": "GET", "PATH_INFO": "/pid"}, modifier1=5),
]
TOKENS = [b"\r\n", b"\r\n\r\n", b":", b" ", b"\x00", b"\xff", b"%", b"Content-Length: 99999999\r\n",
          b"Transfer-Encoding: chunked\r\n", b"ffffffff\r\n", b"HTTP/1.1", b"a" * 5000]


def mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        pos = rng.randint(0, len(buf))
        op = rng.randrange(6)
        if op == 0 and buf:
            buf[min(pos, len(buf) - 1)] = rng.randrange(256)
        elif op == 1:
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 2:
            del buf[pos:pos + rng.randint(1, 16)]
        elif op == 3:
            buf[pos:pos] = buf[pos:pos + rng.randint(1, 32)]
        elif op == 4:
            del buf[pos:]
        else:
            buf[pos:pos] = rng.choice(TOKENS)
    return bytes(buf)


def payloads(http_port: int, uwsgi_port: int) -> list[tuple[int, bytes]]:
    rng = random.Random(SEED)
    out = []
    for i in range(EXCHANGES):
        kind = rng.random()
        if kind < 0.5:
            out.append((http_port, mutate(rng, rng.choice(HTTP_SEEDS))))
        elif kind < 0.8:
            out.append((uwsgi_port, mutate(rng, rng.choice(UWSGI_SEEDS))))
        else:
            noise = bytes(rng.randrange(256) for _ in range(rng.randint(1, 600)))
            out.append((rng.choice((http_port, uwsgi_port)), noise))
    return out


def test_live_fuzz_never_crashes_hangs_or_loses_a_worker(server):
    inst = server("--master", "-p", "2", "--socket", "127.0.0.1:0", "--socket-timeout", "2",
                  "--wsgi-file", HARDENING_APP, app=False)
    inst.wait_serving()
    http_port, uwsgi_port = bound_ports(inst)[:2]
    workers = sorted(inst.wait_workers(2))
    work = payloads(http_port, uwsgi_port)
    slow: list[tuple[float, bytes]] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client(items):
        for port, data in items:
            t0 = time.monotonic()
            try:
                exchange(port, data, timeout=8)
            except OSError as e:             # a timeout here is a hang
                with lock:
                    errors.append(f"{type(e).__name__}: {e} for {data[:60]!r}")
            took = time.monotonic() - t0
            if took > 5:
                with lock:
                    slow.append((took, data[:60]))

    threads = [threading.Thread(target=client, args=(work[i::4],), daemon=True) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(80)
    assert not any(t.is_alive() for t in threads)
    assert errors == [] and slow == []
    log = inst.log()
    assert pid_alive(inst.pid) and inst.proc.poll() is None
    assert sorted(inst.workers()) == workers, log[-3000:]
    assert "DAMN" not in log and "Traceback" not in log, log[-3000:]
    assert inst.get("/") == b"hello\n"
    reply = exchange(uwsgi_port, UWSGI_SEEDS[0])
    assert reply.startswith(b"HTTP/1.1 200 OK") and reply.endswith(b"hello\n")
