"""The uwsgi protocol behind real nginx (uwsgi_pass with Debian's uwsgi_params)."""
import json
import re
import signal
import threading

import pytest

from conftest import wait_until

pytestmark = pytest.mark.timeout(60)


def upstream_port(inst) -> int:
    text = inst.wait_log("(port auto-assigned)")
    return int(re.findall(r"127\.0\.0\.1:(\d+) \(port auto-assigned\)", text)[-1])


def test_wsgi_behind_nginx_uwsgi_pass(server, nginx):
    inst = server("--master", "-p", "2", "--socket", "127.0.0.1:0", http=False)
    inst.port = nginx(upstream_port(inst))
    wait_until(lambda: inst.request("/", timeout=5)[0] == 200, 15, what="nginx -> uwsgi-py")
    assert inst.get("/") == b"hello\n"
    env = json.loads(inst.get("/environ?a=1", headers={"X-Test": "via-nginx"}))
    assert env["PATH_INFO"] == "/environ" and env["QUERY_STRING"] == "a=1"
    assert env["HTTP_X_TEST"] == "via-nginx"
    assert env["REQUEST_METHOD"] == "GET"
    body = b"x" * 100_000
    assert inst.get("/echo", method="POST", body=body) == body
    # a graceful reload behind nginx: nothing fails
    failures = []

    def hammer():
        for _ in range(40):
            try:
                status, _ = inst.request("/", timeout=10)
                if status != 200:
                    failures.append(status)
            except OSError as e:
                failures.append(repr(e))
    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    inst.signal(signal.SIGHUP)
    for t in threads:
        t.join(30)
    inst.wait_log("reload outcome: generation=1")
    assert failures == []


def test_graceful_stop_of_one_upstream_behind_nginx_fails_no_request(server, nginx, tmp_path):
    """Two instances behind one nginx upstream group; one is stopped gracefully (the hooked
    SIGTERM) while clients run through nginx: its in-flight requests finish, nginx's next
    connects to it are refused and go to the other one, and nothing fails."""
    pidfile = tmp_path / "a.pid"
    a = server("--master", "-p", "2", "--socket", "127.0.0.1:0", "--pidfile", str(pidfile), "--vacuum",
               "--hook-master-start", "unix_signal:15 gracefully_kill_them_all", http=False, name="a")
    b = server("--master", "-p", "2", "--socket", "127.0.0.1:0", http=False, name="b")
    port = nginx([upstream_port(a), upstream_port(b)])
    a.port = b.port = port
    wait_until(lambda: a.request("/", timeout=5)[0] == 200, 15, what="nginx -> uwsgi-py")
    failures = []
    stop = threading.Event()

    def client(method, path):
        while not stop.is_set():
            try:
                status, body = a.request(path, method=method, body=b"x" if method == "POST" else None,
                                         timeout=20)
                if status != 200:
                    failures.append((method, path, status, body[:200]))
            except OSError as e:
                failures.append(repr(e))
    # nginx passes a failed GET on to the other upstream, never a POST it has sent: the slow
    # POSTs in flight on a when it stops must be answered by a itself
    threads = [threading.Thread(target=client, args=args, daemon=True)
               for args in (("GET", "/"), ("GET", "/"), ("POST", "/slow/0.3"), ("POST", "/slow/0.5"))]
    for t in threads:
        t.start()
    try:
        # both upstreams are serving, with slow requests in flight on a
        wait_until(lambda: a.log().count("slow-started") >= 2 and b.log().count(" /") >= 2, 20,
                   what="requests on both upstreams")
        a.signal(signal.SIGTERM)
        assert a.wait_exit(30) == 0
        after = b.log().count("GET /")
        wait_until(lambda: b.log().count("GET /") >= after + 20, 20, what="b to take over")
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert failures == []
    log = a.log()
    assert "graceful shutdown triggered..." in log and "goodbye to uWSGI." in log
    assert not pidfile.exists()
    assert "DAMN" not in log and "brutally" not in log
