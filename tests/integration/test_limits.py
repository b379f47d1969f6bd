"""Request and worker limits at process level (issue 10, point 1; docs/hardening.md).

--buffer-size, --limit-post, --socket-timeout (+ --socket-min-bytes), --harakiri,
--max-requests (+ delta, --min-worker-lifetime), --max-worker-lifetime,
--reload-on-rss, --evil-reload-on-rss.
"""
from __future__ import annotations

import http.client
import os
import re
import socket
import threading
import time

import pytest

from conftest import wait_until
from hardening_helpers import DISCONNECTS, HARDENING_APP, bound_ports, exchange, start_hardening
from uwsgi_py.proto import pack_uwsgi

pytestmark = pytest.mark.timeout(60)


def no_damn(inst) -> None:
    assert "DAMN" not in inst.log(), inst.log()[-3000:]


# ---- --buffer-size ------------------------------------------------------------------------------

def test_http_head_larger_than_buffer_size_gets_431_and_the_worker_lives(server):
    inst = start_hardening(server, "--master", "-p", "1")
    pid = inst.get("/pid")
    status, _ = inst.request("/", headers={"X-Big": "a" * 5000})
    assert status == 431
    inst.wait_log("bad request from 127.0.0.1: request head larger than buffer-size (4096)")
    assert inst.get("/pid") == pid          # same worker: nothing died
    no_damn(inst)


def test_buffer_size_raises_the_head_limit(server):
    inst = start_hardening(server, "--master", "--buffer-size", "16384")
    assert inst.request("/", headers={"X-Big": "a" * 8000}) == (200, b"hello\n")
    assert inst.request("/", headers={"X-Big": "a" * 20000})[0] == 431
    inst.wait_log("request head larger than buffer-size (16384)")


def test_uwsgi_packet_larger_than_buffer_size_is_closed_and_logged(server):
    inst = server("--master", "-p", "1", "--socket", "127.0.0.1:0", "--wsgi-file", HARDENING_APP,
                  http=False, app=False)
    port = wait_until(lambda: (bound_ports(inst) or [None])[0], 10, what="the uwsgi port")
    small = {"REQUEST_METHOD": "GET", "PATH_INFO": "/pid", "SERVER_PROTOCOL": "HTTP/1.1"}
    first = exchange(port, pack_uwsgi(small))
    assert first.startswith(b"HTTP/1.1 200 OK")
    big = dict(small, HTTP_X_BIG="a" * 5000)
    assert exchange(port, pack_uwsgi(big)) == b""           # closed, no reply (PROTO-2)
    inst.wait_log(f"invalid request block size: {len(pack_uwsgi(big)) - 4} (max 4096)...skip")
    again = exchange(port, pack_uwsgi(small))
    assert again.split(b"\r\n\r\n", 1)[1] == first.split(b"\r\n\r\n", 1)[1]  # same worker pid
    no_damn(inst)


# ---- --limit-post -----------------------------------------------------------------------------------

def test_limit_post_answers_413_for_a_length_or_a_chunked_body_over_it(server):
    inst = start_hardening(server, "--master", "--limit-post", "100")
    assert inst.request("/echo", method="POST", body=b"x" * 100) == (200, b"x" * 100)
    assert inst.request("/echo", method="POST", body=b"x" * 101)[0] == 413
    inst.wait_log("bad request from 127.0.0.1: request body of 101 bytes exceeds limit-post (100)")
    chunk = b"40\r\n" + b"y" * 64 + b"\r\n"
    reply = exchange(inst.port, b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     + chunk + chunk + b"0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 413 Payload Too Large\r\n")
    inst.wait_log("bad request from 127.0.0.1: request body exceeds limit-post (100)")
    small = exchange(inst.port, b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                     b"Connection: close\r\n\r\n" + chunk + b"0\r\n\r\n")
    assert small.startswith(b"HTTP/1.1 200 OK") and small.endswith(b"y" * 64)
    no_damn(inst)


# ---- --socket-timeout, --socket-min-bytes -----------------------------------------------------------

class Trickle(threading.Thread):
    """Sends ``head`` then one byte of ``rest`` every ``every`` seconds until the server answers
    or closes; records the reply and when it came."""

    def __init__(self, port: int, head: bytes, rest: bytes, every: float):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.head, self.rest, self.every = head, rest, every
        self.reply = b""
        self.started = time.monotonic()
        self.ended = None

    def run(self) -> None:
        import select
        s = self.sock
        try:
            s.sendall(self.head)
            for i in range(len(self.rest)):
                r, _, _ = select.select([s], [], [], self.every)
                if r:
                    break
                s.sendall(self.rest[i:i + 1])
            while True:
                data = s.recv(65536)
                if not data:
                    break
                self.reply += data
        except OSError:
            pass
        self.ended = time.monotonic()
        s.close()


def test_a_client_trickling_its_head_holds_no_worker_and_gets_408(server):
    inst = start_hardening(server, "--master", "-p", "1", "--socket-timeout", "3")
    slow = Trickle(inst.port, b"GET / HTTP/1.1\r\n", b"X-Slow: " + b"a" * 200, every=0.5)
    slow.start()
    # the only worker keeps serving others while the slow head waits in its epoll set
    for _ in range(10):
        t0 = time.monotonic()
        assert inst.get("/pid")
        assert time.monotonic() - t0 < 1.0
        time.sleep(0.1)
    slow.join(10)
    assert slow.ended is not None
    assert slow.reply.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert 2.5 < slow.ended - slow.started < 5.0
    inst.wait_log("bad request from 127.0.0.1: timeout waiting for the request")
    no_damn(inst)


def test_a_client_trickling_its_body_is_dropped_after_the_timeout(server):
    inst = start_hardening(server, "--master", "-p", "1", "--socket-timeout", "2")
    head = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
    slow = Trickle(inst.port, head, b"z" * 1000, every=0.5)   # never stalls 2 s: too slow
    slow.start()
    wait_until(lambda: time.monotonic() - slow.started > 0.3, 2)
    t0 = time.monotonic()
    assert inst.get("/pid")        # waits for the one worker, which the slow body holds
    waited = time.monotonic() - t0
    slow.join(10)
    assert slow.reply.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert slow.ended - slow.started < 4.5
    assert waited < 4.5
    log = inst.wait_log("client 127.0.0.1 dropped during /echo: moved ")
    assert re.search(r"moved \d+ bytes in 2s \(socket-min-bytes 1024\)", log)
    no_damn(inst)


def test_socket_min_bytes_zero_keeps_uwsgi_per_operation_timeouts(server):
    inst = start_hardening(server, "--master", "-p", "1", "--socket-timeout", "2",
                           "--socket-min-bytes", "0")
    head = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\nConnection: close\r\n\r\n"
    slow = Trickle(inst.port, head, b"abcdefgh", every=0.5)    # 4 s in all, no 2 s stall
    slow.start()
    slow.join(15)
    assert slow.reply.startswith(b"HTTP/1.1 200 OK") and slow.reply.endswith(b"abcdefgh")
    assert slow.ended - slow.started > 3.5


def test_a_client_that_stops_reading_the_response_is_dropped(server):
    inst = start_hardening(server, "--master", "-p", "1", "--socket-timeout", "2")
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", inst.port))
    try:
        t0 = time.monotonic()
        s.sendall(b"GET /big/32 HTTP/1.1\r\nHost: x\r\n\r\n")      # and never read
        inst.wait_log("client 127.0.0.1 dropped during /big/32: timeout", timeout=10)
        assert time.monotonic() - t0 < 6
        assert inst.get("/pid")
    finally:
        s.close()
    no_damn(inst)


# ---- --harakiri -------------------------------------------------------------------------------------

def test_harakiri_kills_the_stuck_worker_names_the_request_and_respawns(server):
    inst = start_hardening(server, "--master", "-p", "1", "--harakiri", "1")
    old = inst.wait_workers(1)[0]
    t0 = time.monotonic()
    with pytest.raises(DISCONNECTS):
        inst.request("/slow/30", timeout=15)
    assert time.monotonic() - t0 < 5
    log = inst.wait_log("Respawned uWSGI worker 1")
    assert f"*** HARAKIRI ON WORKER 1 (pid: {old}, try: 1) ***" in log
    assert re.search(rf"HARAKIRI: --- uWSGI worker 1 \(pid: {old}\) WAS managing request /slow/30 "
                     r"since \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4} ---", log)
    assert f"DAMN ! worker 1 (pid: {old}) died, killed by signal 9 :( trying respawn ..." in log
    assert int(inst.get("/pid")) != old


# ---- --max-requests, --max-requests-delta, --min-worker-lifetime ---------------------------------------

def runs(values: list[int]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for v in values:
        if out and out[-1][0] == v:
            out[-1][1] += 1
        else:
            out.append([v, 1])
    return [tuple(r) for r in out]


def test_max_requests_recycles_the_worker_without_a_damn_line(server):
    inst = start_hardening(server, "--master", "-p", "1", "--max-requests", "3",
                           "--min-worker-lifetime", "0")
    pids = [int(inst.get("/pid")) for _ in range(8)]        # wait_serving used one request
    seen = runs(pids)
    assert seen[0][1] == 2 and all(n == 3 for _, n in seen[1:-1]) and len(seen) >= 3, seen
    log = inst.log()
    for pid, _ in seen[:-1]:
        assert f"...The work of process {pid} is done. Seeya!" in log
        assert f"worker 1 killed successfully (pid: {pid})" in log
    assert log.count("Respawned uWSGI worker 1 (new pid: ") >= len(seen) - 1
    no_damn(inst)


def test_max_requests_with_keepalive_ends_the_connection_with_connection_close(server):
    """A keep-alive client sending back to back: the recycled worker answers the client's next
    request with Connection: close instead of closing under it; nothing fails."""
    inst = start_hardening(server, "--master", "-p", "1", "--max-requests", "3",
                           "--min-worker-lifetime", "0", "--http-keepalive")
    conn = http.client.HTTPConnection("127.0.0.1", inst.port, timeout=10)
    pids, closes = [], 0
    for _ in range(12):
        conn.request("GET", "/pid")            # a failure here is the bug: no retry
        resp = conn.getresponse()
        pids.append(int(resp.read()))
        if resp.getheader("Connection", "").lower() == "close":
            closes += 1
            conn.close()
    conn.close()
    seen = runs(pids)
    assert len(seen) >= 3 and closes >= len(seen) - 1, (seen, closes)
    no_damn(inst)


def test_max_requests_delta_gives_each_worker_its_own_limit(server):
    inst = start_hardening(server, "--master", "-p", "2", "--max-requests", "1",
                           "--max-requests-delta", "100", "--min-worker-lifetime", "0")
    log = inst.wait_log("spawned uWSGI worker 2 ")
    second = int(re.search(r"spawned uWSGI worker 2 \(pid: (\d+)", log).group(1))
    # Which idle worker the kernel wakes is its choice (mostly the one that just went back to
    # waiting: worker 2 took 101 requests in a row here). So, in pairs: a slow request holds
    # one worker and a /pid sent meanwhile goes to the other, until worker 2 answered twice
    # (past a limit of 1) and some worker 1 (limit 1, respawned after each request) answered.
    answers: list[int] = []

    def pair() -> bool:
        slow: list[bytes] = []
        holder = threading.Thread(target=lambda: slow.append(inst.get("/slow/0.5")), daemon=True)
        holder.start()
        inst.wait_log("slow-started", count=len(answers) // 2 + 1)
        answers.append(int(inst.get("/pid")))
        holder.join(15)
        answers.append(int(slow[0].split()[-1]))
        return answers.count(second) >= 2 and any(pid != second for pid in answers)

    wait_until(pair, 30, interval=0, what="answers from both workers")
    first = next(pid for pid in answers if pid != second)
    inst.wait_log(f"...The work of process {first} is done. Seeya!")   # worker 1: 1 request
    assert f"process {second} is done" not in inst.log()               # worker 2: 1 + 100
    assert second in inst.workers()
    no_damn(inst)


def age(pid: int) -> float:
    """Seconds since ``pid`` started (/proc: its start time and the uptime, in clock ticks)."""
    with open(f"/proc/{pid}/stat") as f:
        started = int(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    return uptime - started / os.sysconf("SC_CLK_TCK")


def test_min_worker_lifetime_defers_max_requests(server):
    inst = start_hardening(server, "--master", "-p", "1", "--max-requests", "1",
                           "--min-worker-lifetime", "3")
    first = inst.get("/pid")
    # the worker's own age, not the test's clock: a slow start must not eat into the 3 s
    while age(int(first)) < 2.0:
        assert inst.get("/pid") == first                 # over the limit, but too young
        time.sleep(0.1)
    wait_until(lambda: inst.get("/pid") != first, 10, interval=0.2, what="the recycled worker")
    assert f"...The work of process {int(first)} is done. Seeya!" in inst.log()
    no_damn(inst)


# ---- --max-worker-lifetime (master) -------------------------------------------------------------------

def test_max_worker_lifetime_recycles_after_the_running_request(server):
    inst = start_hardening(server, "--master", "-p", "1", "--max-worker-lifetime", "2")
    old = inst.wait_workers(1)[0]
    result = {}
    slow = threading.Thread(target=lambda: result.update(r=inst.request("/slow/3", timeout=15)),
                            daemon=True)
    slow.start()
    log = inst.wait_log("Respawned uWSGI worker 1", timeout=15)
    slow.join(10)
    assert result["r"][0] == 200                          # the request in flight completed
    assert re.search(r"worker 1 lifetime reached, it was running for \d+ second\(s\)", log)
    assert f"worker 1 killed successfully (pid: {old})" in log
    assert int(inst.get("/pid")) != old
    no_damn(inst)


# ---- --reload-on-rss, --evil-reload-on-rss ------------------------------------------------------------

def test_reload_on_rss_recycles_a_fat_worker_after_its_request(server):
    inst = start_hardening(server, "--master", "-p", "1", "--reload-on-rss", "80",
                           "--min-worker-lifetime", "0")
    old = int(inst.get("/pid"))
    assert inst.get("/grow/120").startswith(b"holding 120 MB")
    log = inst.wait_log("Respawned uWSGI worker 1", timeout=10)
    assert re.search(rf"worker 1 \(pid: {old}\) uses \d+ MB of RSS \(reload-on-rss 80 MB\): "
                     r"recycling it", log)
    assert f"...The work of process {old} is done. Seeya!" in log
    assert f"worker 1 killed successfully (pid: {old})" in log
    assert int(inst.get("/pid")) != old
    no_damn(inst)


def test_evil_reload_on_rss_kills_a_fat_worker(server):
    inst = start_hardening(server, "--master", "-p", "1", "--evil-reload-on-rss", "80")
    old = int(inst.get("/pid"))
    inst.get("/grow/120")
    log = inst.wait_log("Respawned uWSGI worker 1", timeout=10)
    assert re.search(rf"\*\*\* evil-reload-on-rss: worker 1 \(pid: {old}\) uses \d+ MB of RSS "
                     r"\(limit 80 MB\): SIGKILL \*\*\*", log)
    assert f"DAMN ! worker 1 (pid: {old}) died, killed by signal 9" in log
    assert int(inst.get("/pid")) != old
