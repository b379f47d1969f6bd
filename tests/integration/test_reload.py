"""Graceful reloads under load, new code, the kept port, the reload check, mercy."""
import http.client
import json
import signal
import threading
import time

import pytest

from conftest import pid_alive, wait_until

pytestmark = pytest.mark.timeout(120)


class Load:
    """A bounded load: ``clients`` threads sending requests until stopped (or 60 s)."""

    def __init__(self, port: int, clients: int = 8, path: str = "/"):
        self.port = port
        self.path = path
        self.ok = 0
        self.failures: list[str] = []
        self.stop_at = time.monotonic() + 60
        self.running = True
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(clients)]
        for t in self.threads:
            t.start()

    def run(self):
        while self.running and time.monotonic() < self.stop_at:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("GET", self.path, headers={"Connection": "close"})
                resp = conn.getresponse()
                resp.read()
                conn.close()
                with self.lock:
                    if resp.status == 200:
                        self.ok += 1
                    else:
                        self.failures.append(f"status {resp.status}")
            except Exception as e:  # noqa: BLE001 - every failure is counted by kind
                with self.lock:
                    self.failures.append(f"{type(e).__name__}: {e}")

    def stop(self):
        self.running = False
        for t in self.threads:
            t.join(15)


def graceful_reloads(inst, count: int, after=None) -> None:
    """SIGHUP ``count`` times, each once the previous reload's outcome line is logged;
    ``after(n)`` runs after reload ``n``."""
    for n in range(1, count + 1):
        inst.signal(signal.SIGHUP)
        inst.wait_log(f"reload outcome: generation={n} kind=graceful", timeout=30)
        if after is not None:
            after(n)


def test_zero_failed_requests_across_ten_graceful_reloads(server):
    inst = server("--master", "-p", "2")
    load = Load(inst.port, clients=8)
    try:
        graceful_reloads(inst, 10)
        time.sleep(0.2)  # a little load after the last reload, still bounded
    finally:
        load.stop()
    assert load.failures == []
    assert load.ok > 50
    assert pid_alive(inst.pid)


def test_a_lone_client_keeps_being_served_across_graceful_reloads(server):
    """One client, one request at a time: no other connection would come to unstick a
    request left in the listen queue. An old worker that is told to stop just as the kernel
    woke it alone for a connection (EPOLLEXCLUSIVE) must still take it, or the request waits
    until the client's timeout. After every reload the client must go on being answered."""
    inst = server("--master", "-p", "2")
    load = Load(inst.port, clients=1)

    def answered(n):
        done = load.ok
        wait_until(lambda: load.ok >= done + 5 or load.failures, 8,
                   what=f"the client to be answered after reload {n} (a request stuck in the queue?)")

    try:
        graceful_reloads(inst, 10, answered)
    finally:
        load.stop()
    assert load.failures == []


def test_keepalive_clients_lose_no_request_across_graceful_reloads(server):
    """Clients reusing one connection, request after request: an old worker does not close a
    kept-alive connection under a request the client is sending; it answers that request
    with Connection: close, and the client reconnects to the new workers."""
    inst = server("--master", "-p", "2", "--http-keepalive")
    ok, closes, failures, stop = [0], [0], [], threading.Event()

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", inst.port, timeout=10)
        while not stop.is_set():
            try:
                conn.request("GET", "/pid")
                resp = conn.getresponse()
                resp.read()
            except Exception as e:  # noqa: BLE001 - every failure is counted
                failures.append(f"{type(e).__name__}: {e}")
                conn.close()
                continue
            ok[0] += 1
            if resp.status != 200:
                failures.append(f"status {resp.status}")
            if resp.getheader("Connection", "").lower() == "close":
                closes[0] += 1
                conn.close()      # http.client reconnects on the next request

    threads = [threading.Thread(target=client, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: ok[0] >= 50, what="keep-alive load to flow")

        def more(n):
            done = ok[0]
            wait_until(lambda: ok[0] >= done + 50, what=f"requests after reload {n}")

        graceful_reloads(inst, 5, more)
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    assert failures == []
    assert closes[0] >= 5      # at least one Connection: close per reload


def test_an_idle_keepalive_connection_is_closed_once_its_worker_retires(server):
    """An idle kept-alive connection does not hold the old worker past the grace: the server
    closes it (the client reads EOF), the old workers exit, and a new connection is served."""
    inst = server("--master", "-p", "1", "--http-keepalive")
    conn = http.client.HTTPConnection("127.0.0.1", inst.port, timeout=10)
    conn.request("GET", "/pid")
    old = int(conn.getresponse().read())
    inst.signal(signal.SIGHUP)
    inst.wait_log("reload outcome: generation=1 kind=graceful", timeout=30)
    conn.sock.settimeout(10)
    assert conn.sock.recv(1) == b""            # closed by the server, without a byte
    conn.close()
    wait_until(lambda: not pid_alive(old), what="the old worker to exit")
    assert int(inst.get("/pid")) != old


def test_changed_app_file_is_served_after_reload(server):
    inst = server("--master", "-p", "2")
    assert inst.get("/mark") == b"v1"
    app = inst.cwd / "app.py"
    app.write_text(app.read_text().replace('GENERATION_MARK = "v1"', 'GENERATION_MARK = "v2"'))
    inst.signal(signal.SIGHUP)
    inst.wait_log("reload outcome: generation=1")
    assert inst.get("/mark") == b"v2"


def test_auto_assigned_port_is_kept_across_reloads(server):
    inst = server("--master", "--socket", "127.0.0.1:0")
    import re
    first = re.findall(r"bound to TCP address 127\.0\.0\.1:(\d+) \(port", inst.log())
    for n in (1, 2):
        inst.signal(signal.SIGHUP)
        inst.wait_log(f"reload outcome: generation={n}")
        assert inst.get("/") == b"hello\n"
    log = inst.log()
    for port in first:
        assert log.count(f"inherited INET address 127.0.0.1:{port} fd") == 2


def test_broken_code_is_refused_and_old_workers_keep_serving(server):
    inst = server("--master", "-p", "2")
    before = inst.wait_workers(2)
    app = inst.cwd / "app.py"
    good = app.read_text()
    app.write_text(good + "\ndef broken(:\n")
    inst.signal(signal.SIGHUP)
    inst.wait_log("*** RELOAD REFUSED:")
    log = inst.wait_log("refused=yes")
    assert "SyntaxError" in log
    assert "binary reloading" not in log
    assert sorted(inst.workers()) == sorted(before)
    for _ in range(5):
        assert inst.get("/") == b"hello\n"
    # fixed code: the next reload goes through
    app.write_text(good.replace('GENERATION_MARK = "v1"', 'GENERATION_MARK = "v3"'))
    inst.signal(signal.SIGHUP)
    inst.wait_log("reload outcome: generation=1 kind=graceful")
    assert inst.get("/mark") == b"v3"


def test_reload_check_can_be_turned_off(server):
    inst = server("--master", "--no-reload-check")
    inst.signal(signal.SIGHUP)
    inst.wait_log("reload outcome: generation=1")
    assert "reload check:" not in inst.log()


def test_broken_config_is_refused(server, tmp_path):
    (tmp_path / "a.ini").write_text("[uwsgi]\nmaster = true\n")
    inst = server("--ini", "a.ini")
    (tmp_path / "a.ini").write_text("[uwsgi]\nmaster = true\nprocesses = many\n")
    inst.signal(signal.SIGHUP)
    log = inst.wait_log("*** RELOAD REFUSED:")
    assert "--processes: 'many' is not a positive integer (a.ini line 3)" in log
    assert inst.get("/") == b"hello\n"


def test_mercy_kills_a_worker_that_takes_too_long(server):
    inst = server("--master", "-p", "1", "--worker-reload-mercy", "2")
    results = {}

    def slow():
        try:
            results["reply"] = inst.request("/slow/8", timeout=20)
        except Exception as e:  # noqa: BLE001
            results["error"] = e
    t = threading.Thread(target=slow, daemon=True)
    t.start()
    wait_until(lambda: "slow-started" in inst.log(), 10, what="the slow request")
    started = time.monotonic()
    inst.signal(signal.SIGHUP)
    inst.wait_log("is taking too much time to die...NO MERCY !!!", timeout=10)
    assert time.monotonic() - started < 6
    inst.wait_log("reload outcome: generation=1")
    inst.wait_serving()
    t.join(10)


def test_reload_with_config_file_rereads_it(server, tmp_path):
    (tmp_path / "a.toml").write_text('[uwsgi]\nmaster = true\nprocesses = 1\n')
    inst = server("a.toml")
    assert json.loads(inst.get("/info"))["numproc"] == 1
    (tmp_path / "a.toml").write_text('[uwsgi]\nmaster = true\nprocesses = 3\n')
    inst.signal(signal.SIGHUP)
    inst.wait_log("reload outcome: generation=1")
    inst.wait_workers(3)
    assert json.loads(inst.get("/info"))["numproc"] == 3


def test_shutdown_wins_over_a_pending_reload(server):
    inst = server("--master", "-p", "1")
    cut = []

    def slow():
        try:
            inst.request("/slow/3", timeout=10)
        except OSError as e:  # SIGINT cuts the in-flight request (SHUT-1)
            cut.append(e)
    t = threading.Thread(target=slow, daemon=True)
    t.start()
    wait_until(lambda: "slow-started" in inst.log(), 10, what="the slow request")
    inst.signal(signal.SIGHUP)
    inst.signal(signal.SIGINT)
    assert inst.wait_exit() == 0
    assert "goodbye to uWSGI." in inst.log()
