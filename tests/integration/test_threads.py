"""--threads N: request threads per worker, with every management promise kept (issue 19).

The app records how many requests are inside it at once (``/peak``), so parallelism is
observed, not timed. Each test starts its own server in its own process group.
"""
from __future__ import annotations

import http.client
import re
import signal
import socket
import sys
import threading

import pytest

from conftest import wait_until
from test_stats import screen_of, stats, uwsgitop_script

pytestmark = pytest.mark.timeout(90)

APP = r'''
import os, threading, time
import uwsgi

lock = threading.Lock()
inside = [0]
peak = [0]
gate = threading.Event()


def application(environ, start_response):
    path = environ["PATH_INFO"]
    body = b""
    if path == "/peak":
        body = str(peak[0]).encode()
    elif path == "/open":
        gate.set()
        body = b"open"
    elif path == "/info":
        body = repr((environ["wsgi.multithread"], uwsgi.cores, uwsgi.opt.get("threads"),
                     uwsgi.opt.get("enable-threads"), os.getpid(),
                     threading.current_thread().name)).encode()
    elif path == "/reload":
        body = repr(uwsgi.reload()).encode()
    else:
        with lock:
            inside[0] += 1
            peak[0] = max(peak[0], inside[0])
        try:
            if path.startswith("/slow/"):
                time.sleep(float(path[6:]))
            elif path == "/wait":     # held until /open, at most 20 s
                gate.wait(20)
            else:
                body = b"hello"
        finally:
            with lock:
                inside[0] -= 1
        body = body or str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


def start(server, tmp_path, *args, **kw):
    (tmp_path / "tapp.py").write_text(APP)
    return server("--wsgi-file", "tapp.py", *args, app=False, **kw)


def fetch(port: int, path: str, timeout: float = 20.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def in_parallel(port: int, paths: list[str]) -> tuple[list[threading.Thread], list]:
    results: list = []

    def one(p):
        try:
            results.append(fetch(port, p))
        except OSError as e:
            results.append(("error", repr(e)))
    threads = [threading.Thread(target=one, args=(p,), daemon=True) for p in paths]
    for t in threads:
        t.start()
    return threads, results


def join(threads, timeout: float = 30.0) -> None:
    for t in threads:
        t.join(timeout)
        assert not t.is_alive(), "a client did not finish"


def wait_inside(inst, n: int) -> None:
    """Until the app has had ``n`` requests inside it at once."""
    wait_until(lambda: int(fetch(inst.port, "/peak")[1]) >= n, 15, what=f"{n} requests at once")


def test_one_worker_serves_four_slow_requests_at_once(server, tmp_path):
    inst = start(server, tmp_path, "--master", "-p", "1", "--threads", "4")
    inst.wait_log("spawned uWSGI worker 1 (pid: ")
    assert "cores: 4)" in inst.log()
    threads, results = in_parallel(inst.port, ["/wait"] * 3)
    wait_inside(inst, 3)        # three held at once, and a fourth thread still answers
    assert fetch(inst.port, "/peak") == (200, b"3")
    assert fetch(inst.port, "/open")[0] == 200
    join(threads)
    assert [r[0] for r in results] == [200] * 3
    assert len({r[1] for r in results}) == 1      # one worker served them all
    info = fetch(inst.port, "/info")[1].decode()
    assert info.startswith("(True, 4, b'4', None, ")   # as uWSGI: enable-threads only if given
    assert "uwsgi-core-" in info
    assert re.search(r"\(1 switches on core [0-3]\)", inst.log())


def test_enable_threads_is_in_uwsgi_opt_and_one_thread_is_not_multithread(server, tmp_path):
    inst = start(server, tmp_path, "--master", "--enable-threads")
    info = fetch(inst.port, "/info")[1].decode()
    assert info.startswith("(False, 1, None, True, ")
    assert "MainThread" in info      # no request threads: the inline path


def test_keepalive_connections_do_not_pin_threads(server, tmp_path):
    """Four idle keep-alive connections and --threads 2: each is served again later."""
    inst = start(server, tmp_path, "--master", "-p", "1", "--threads", "2",
                 "--http-keepalive", "--socket-timeout", "30")
    conns = [http.client.HTTPConnection("127.0.0.1", inst.port, timeout=10) for _ in range(4)]
    try:
        for _ in range(3):
            for c in conns:
                c.request("GET", "/")
                resp = c.getresponse()
                assert resp.status == 200 and resp.read() == b"hello"
                assert resp.getheader("Connection", "").lower() != "close"
    finally:
        for c in conns:
            c.close()


def test_socket_timeout_per_connection_with_threads(server, tmp_path):
    """A client that sends half a head is timed out alone; others keep being served."""
    inst = start(server, tmp_path, "--master", "-p", "1", "--threads", "2",
                 "--socket-timeout", "2")
    slow = socket.create_connection(("127.0.0.1", inst.port), timeout=10)
    try:
        slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        assert fetch(inst.port, "/")[0] == 200
        data = slow.recv(4096)            # the 408, then EOF
        assert data.startswith(b"HTTP/1.1 408"), data
    finally:
        slow.close()
    # a slow body inside a request thread: the thread gives up after --socket-timeout
    body = socket.create_connection(("127.0.0.1", inst.port), timeout=10)
    try:
        body.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
        inst.wait_log("timeout", timeout=10)
    finally:
        body.close()
    assert fetch(inst.port, "/")[0] == 200


def test_graceful_reload_under_concurrent_load_fails_nothing(server, tmp_path):
    inst = start(server, tmp_path, "--master", "-p", "2", "--threads", "4")
    old = inst.wait_workers(2)
    threads, results = in_parallel(inst.port, ["/slow/1.5"] * 6)
    wait_until(lambda: int(fetch(inst.port, "/peak")[1]) >= 2, 15, what="requests in flight")
    inst.signal(signal.SIGHUP)
    inst.wait_log("reload outcome: generation=", timeout=30)
    join(threads)
    assert [r[0] for r in results] == [200] * 6, results
    new = inst.wait_workers(2, exclude=old)
    assert set(new).isdisjoint(old)
    assert fetch(inst.port, "/")[0] == 200


def test_uwsgi_reload_from_a_request_thread(server, tmp_path):
    inst = start(server, tmp_path, "--master", "-p", "1", "--threads", "2")
    old = inst.wait_workers(1)
    assert fetch(inst.port, "/reload") == (200, b"True")
    inst.wait_log("reload outcome: generation=", timeout=30)
    inst.wait_workers(1, exclude=old)


def test_graceful_stop_waits_for_every_thread(server, tmp_path):
    inst = start(server, tmp_path, "--master", "-p", "1", "--threads", "5",
                 "--hook-master-start", "unix_signal:15 gracefully_kill_them_all")
    threads, results = in_parallel(inst.port, ["/slow/2"] * 4)   # a fifth thread reads /peak
    wait_inside(inst, 4)
    inst.signal(signal.SIGTERM)
    inst.wait_log("graceful shutdown triggered...")
    join(threads)
    assert [r[0] for r in results] == [200] * 4, results
    assert inst.wait_exit(30) == 0
    assert "DAMN" not in inst.log()


def test_max_requests_recycles_after_the_running_requests(server, tmp_path):
    inst = start(server, tmp_path, "--master", "-p", "1", "--threads", "4", "--max-requests", "6",
                 "--min-worker-lifetime", "0")
    first = inst.wait_workers(1)
    threads, results = in_parallel(inst.port, ["/slow/0.5"] * 8)
    join(threads)
    assert [r[0] for r in results] == [200] * 8, results
    inst.wait_log("...The work of process")
    inst.wait_workers(1, exclude=first)
    assert "DAMN" not in inst.log()


def test_harakiri_on_one_stuck_thread_kills_the_worker_and_names_the_request(server, tmp_path):
    inst = start(server, tmp_path, "--master", "-p", "1", "--threads", "4", "--harakiri", "2")
    first = inst.wait_workers(1)
    quick = in_parallel(inst.port, ["/slow/0.2"] * 2)[0]
    stuck, _ = in_parallel(inst.port, ["/slow/30"])
    join(quick)
    inst.wait_log("HARAKIRI ON WORKER 1", timeout=20)
    text = inst.wait_log("WAS managing request /slow/30 since")   # the line after it
    assert re.search(r"HARAKIRI: --- uWSGI worker 1 core [0-3] \(pid: \d+\) WAS managing request "
                     r"/slow/30 since", text), text[-2000:]
    assert "WAS managing request /slow/0.2" not in text
    inst.wait_workers(1, exclude=first)
    assert fetch(inst.port, "/")[0] == 200


def test_stats_cores_and_uwsgitop(server, tmp_path):
    script = uwsgitop_script()
    path = str(tmp_path / "top.sock")
    inst = start(server, tmp_path, "--master", "-p", "1", "--threads", "3", "--stats", path)
    for _ in range(3):
        fetch(inst.port, "/")
    threads, _ = in_parallel(inst.port, ["/wait?first", "/wait?second"])
    wait_inside(inst, 2)
    doc = stats(path)
    cores = doc["workers"][0]["cores"]
    assert [c["id"] for c in cores] == [0, 1, 2]
    assert sum(c["in_request"] for c in cores) == 2
    assert all(c["req_info"].get("request_start") for c in cores if c["in_request"])
    assert doc["workers"][0]["status"] == "busy"
    # each busy core shows its own request's vars (uWSGI's cores[].vars), an idle one none
    queries = set()
    for c in cores:
        assert set(c) >= {"static_requests", "routed_requests", "offloaded_requests",
                          "write_errors", "read_errors"}
        if not c["in_request"]:
            assert c["vars"] == [] and c["req_info"] == {}
            continue
        assert c["vars"][-1] == "" and "PATH_INFO=/wait" in c["vars"], c["vars"]
        queries.update(v for v in c["vars"] if v.startswith("QUERY_STRING="))
    assert queries == {"QUERY_STRING=first", "QUERY_STRING=second"}
    pids = [str(p) for p in inst.wait_workers(1)]
    header = "uwsgi-2.0.31 - "
    screen = screen_of([sys.executable, script, "--frequency", "1", path],
                       [*pids, "busy", "WID"], (header, 2))
    assert pids[0] in screen and "busy" in screen, screen[-2000:]
    assert "Traceback" not in screen and "unable to get uWSGI statistics" not in screen
    fetch(inst.port, "/open")
    join(threads)
    done = wait_until(lambda: (d := stats(path)) and not any(
        c["in_request"] for c in d["workers"][0]["cores"]) and d, 10, what="idle cores")
    assert sum(c["requests"] for c in done["workers"][0]["cores"]) == done["workers"][0]["requests"]


def test_sigusr2_lists_each_busy_core(server, tmp_path):
    inst = start(server, tmp_path, "--master", "-p", "1", "--threads", "3")
    threads, _ = in_parallel(inst.port, ["/wait", "/wait"])
    wait_inside(inst, 2)
    inst.signal(signal.SIGUSR2)
    text = inst.wait_log("is managing request /wait since", count=2)
    assert len(re.findall(r"SIGUSR2: --- uWSGI worker 1 core [0-2] \(pid: \d+\) is managing "
                          r"request /wait since", text)) == 2
    fetch(inst.port, "/open")
    join(threads)


def test_lazy_apps_load_once_per_worker_with_threads(server, tmp_path):
    (tmp_path / "count.py").write_text(
        "import os\nopen(os.environ['LOADS'], 'a').write('%d\\n' % os.getpid())\n" + APP)
    loads = tmp_path / "loads"
    inst = server("--wsgi-file", "count.py", "--master", "-p", "2", "--threads", "4",
                  "--lazy-apps", app=False, env={"LOADS": str(loads)})
    threads, results = in_parallel(inst.port, ["/slow/0.3"] * 8)
    join(threads)
    assert [r[0] for r in results] == [200] * 8
    pids = inst.wait_workers(2)
    assert sorted(int(x) for x in loads.read_text().split()) == sorted(pids)


def test_bad_threads_values(tmp_path):
    from conftest import run_cli
    out = run_cli("--http-socket", "127.0.0.1:0", "--threads", "-2", cwd=tmp_path)
    assert out.returncode != 0 and "--threads" in out.stderr and "Traceback" not in out.stderr


def test_log_format_core_is_the_thread_that_served(server, tmp_path):
    """%(core) is the request thread's core id, as in uWSGI: two requests held at once
    are logged with two different cores."""
    inst = start(server, tmp_path, "--master", "-p", "1", "--threads", "3",
                 "--log-format", "core=%(core) uri=%(uri)")
    threads, _ = in_parallel(inst.port, ["/wait", "/wait"])
    wait_inside(inst, 2)
    assert fetch(inst.port, "/open")[0] == 200
    join(threads)
    text = inst.wait_log("uri=/wait", count=2)
    cores = re.findall(r"core=(\d+) uri=/wait", text)
    assert len(cores) == 2 and len(set(cores)) == 2, text[-2000:]
    assert {int(c) for c in cores} <= {0, 1, 2}
