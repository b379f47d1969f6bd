"""--http (no router: the workers serve it), its keep-alive and timeouts, --add-header,
--post-buffering, the write-error options, --chdir2 and --harakiri-verbose."""
from __future__ import annotations

import http.client
import json
import os
import socket
import time

import pytest

from conftest import PORT_RE, wait_until

pytestmark = pytest.mark.timeout(60)

PROBE = """\
import json, os, sys, time

def application(environ, start_response):
    started = time.monotonic()
    path = environ["PATH_INFO"]
    if path == "/stream":
        write = start_response("200 OK", [("Content-Type", "application/octet-stream")])
        try:
            for _ in range(4000):
                write(b"x" * 65536)
            os.write(2, b"app-loop-finished\\n")
        except Exception as e:
            os.write(2, ("app-saw " + type(e).__name__ + "\\n").encode())
            raise
        return []
    if path == "/slow":
        time.sleep(30)
    body = environ["wsgi.input"].read()
    info = {"started": started, "length": len(body), "tail": body[-8:].decode("latin-1"),
            "cwd": os.getcwd(), "seek": hasattr(environ["wsgi.input"], "seek")}
    data = json.dumps(info).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [data]
"""


@pytest.fixture
def probe(tmp_path):
    (tmp_path / "probe.py").write_text(PROBE)
    return tmp_path


def start_http(server, cwd, *args):
    """A server on --http 127.0.0.1:0 (the fixture only knows --http-socket)."""
    inst = server("--http", "127.0.0.1:0", "--wsgi-file", "probe.py", *args, app=False,
                  http=False, cwd=cwd)
    inst.port = int(PORT_RE.search(inst.wait_log("bound to ")).group(1))
    inst.wait_serving()
    return inst


def closed_after(port: int, timeout: float = 15.0) -> float:
    """One keep-alive request on a raw socket; seconds until the server closes it idle."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
        head, _, rest = data.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        while len(rest) < length:
            rest += s.recv(65536)
        answered = time.monotonic()
        assert b"connection: close" not in head.lower()
        assert s.recv(1) == b""
        return time.monotonic() - answered


def test_http_is_served_by_the_workers_with_keepalive(server, probe):
    inst = start_http(server, probe, "--master", "-p", "2")
    inst.wait_log("served by the workers themselves, with HTTP/1.1 keep-alive "
                  "(uwsgi-py starts no HTTP router process)")
    assert len(inst.wait_workers(2)) == 2        # no router process next to the workers
    conn = http.client.HTTPConnection("127.0.0.1", inst.port, timeout=10)
    try:
        socks = []
        for _ in range(3):
            conn.request("GET", "/")
            resp = conn.getresponse()
            assert resp.status == 200 and resp.getheader("Connection") is None
            resp.read()
            socks.append(conn.sock)
        assert socks[0] is socks[1] is socks[2], "the connection was kept alive"
    finally:
        conn.close()


def test_http_timeout_and_keepalive_seconds_bound_an_idle_connection(server, probe):
    inst = start_http(server, probe, "--master", "--http-timeout", "1")
    idle = closed_after(inst.port)
    assert 0.9 <= idle < 5, idle
    # a config file's `http-keepalive = N` (uWSGI's router takes a number) is accepted
    (probe / "app.ini").write_text("[uwsgi]\nhttp-keepalive = 2\nhttp-timeout = 30\n")
    inst = start_http(server, probe, "--master", "--ini", "app.ini")
    idle = closed_after(inst.port)
    assert 1.9 <= idle < 6, idle


def test_http_websockets_and_friends_are_accepted_and_said(server, probe):
    inst = start_http(server, probe, "--http-websockets", "--http-auto-chunked",
                      "--ignore-sigpipe", "--offload-threads", "2")
    inst.wait_log("--http-websockets: uwsgi-py has no websocket support")
    inst.wait_log("offload-threads: uwsgi-py has no offload threads")


def test_add_header_on_every_response(server, probe):
    inst = server("--master", "--http-keepalive", "--wsgi-file", "probe.py", "--add-header",
                  "X-Frame-Options: DENY", "--add-header", "X-Served-By:uwsgi-py",
                  "--static-map", "/s=.", app=False, cwd=probe)
    for path in ("/", "/s/probe.py"):
        conn = http.client.HTTPConnection("127.0.0.1", inst.port, timeout=10)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            assert resp.getheader("X-Frame-Options") == "DENY", path
            assert resp.getheader("X-Served-By") == "uwsgi-py", path
        finally:
            conn.close()


def slow_post(port: int, body: bytes) -> tuple[dict, float]:
    """POST ``body`` in two halves 0.3 s apart (a slow client); (the app's answer, a time
    just before the body's last byte was sent: no app that waits for the body starts earlier)."""
    half = len(body) // 2
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
                  % len(body) + body[:half])
        time.sleep(0.3)     # the slow client's pause: part of the scenario, not a wait
        s.sendall(body[half:-1])
        # taken after sendall() returned, the time could follow the server's reading of the
        # last byte (a large body is read while it is sent) and the app's start
        sent = time.monotonic()
        s.sendall(body[-1:])
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return json.loads(data.split(b"\r\n\r\n", 1)[1]), sent


@pytest.mark.parametrize("size", [1000, 300_000])   # in memory / in a temporary file
def test_post_buffering_reads_the_body_before_the_app_runs(server, probe, size):
    body = bytes(range(256)) * (size // 256) + b"END-MARK"
    inst = server("--master", "--wsgi-file", "probe.py", "--post-buffering", "8192",
                  app=False, cwd=probe)
    info, sent = slow_post(inst.port, body)
    assert info["length"] == len(body) and info["tail"] == "END-MARK" and info["seek"]
    assert info["started"] >= sent, "the app ran before the body was complete"


def test_without_post_buffering_the_app_starts_with_the_head(server, probe):
    inst = server("--master", "--wsgi-file", "probe.py", app=False, cwd=probe)
    info, sent = slow_post(inst.port, b"y" * 1000)
    assert info["length"] == 1000 and info["started"] < sent


def cut_stream(port: int) -> None:
    """GET /stream, read a little of the body, go away."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        got = b""
        while len(got) < 70000:
            got += s.recv(65536)


@pytest.mark.parametrize("flags, app_line, gone_logged", [
    ((), "app-saw ClientGone", True),
    (("--disable-write-exception",), "app-loop-finished", True),
    (("--disable-write-exception", "--ignore-write-errors"), "app-loop-finished", False),
])
def test_write_errors(server, probe, flags, app_line, gone_logged):
    inst = server("--master", "--wsgi-file", "probe.py", *flags, app=False, cwd=probe)
    cut_stream(inst.port)
    inst.wait_log(app_line)
    text = inst.wait_log("GET /stream => generated")     # logged after the client-gone line
    assert ("dropped during /stream" in text) is gone_logged
    assert inst.get("/").startswith(b"{")                 # the worker serves on


def test_chdir2_moves_workers_after_loading(server, probe):
    (probe / "elsewhere").mkdir()
    inst = server("--master", "--wsgi-file", "probe.py", "--chdir2", "elsewhere",
                  app=False, cwd=probe)
    assert json.loads(inst.get("/"))["cwd"] == str(probe / "elsewhere")


def test_harakiri_verbose_logs_what_the_worker_is_blocked_in(server, probe):
    inst = server("--master", "--wsgi-file", "probe.py", "--harakiri", "1", "--harakiri-verbose",
                  app=False, cwd=probe)
    conn = http.client.HTTPConnection("127.0.0.1", inst.port, timeout=20)
    try:
        conn.request("GET", "/slow")
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            conn.getresponse()
    finally:
        conn.close()
    text = inst.wait_log("HARAKIRI: -- wchan> ")
    assert "HARAKIRI: -- syscall> " in text
    assert text.index("HARAKIRI ON WORKER 1") < text.index("HARAKIRI: -- syscall> ")
    wait_until(lambda: inst.get("/").startswith(b"{"), 15, what="a respawned worker")


def test_http_keepalive_stays_a_flag_on_the_command_line(server, probe):
    inst = start_http(server, probe, "--http-keepalive")
    assert json.loads(inst.get("/"))["length"] == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_after_dropping_privileges_nothing_new_needs_importing(server):
    """--uid: the worker can no longer read an interpreter installed under root's home, so
    post-buffering (a body on disk) and static files (dates) must not import anything late."""
    import shutil
    import tempfile
    from pathlib import Path

    from conftest import APPS
    path = Path(tempfile.mkdtemp(prefix="uwsgi-py-uid-", dir="/tmp"))
    try:
        os.chmod(path, 0o755)
        shutil.copy(APPS / "app.py", path / "app.py")
        (path / "www").mkdir()
        (path / "www" / "a.txt").write_text("static a\n")
        os.chmod(path / "www", 0o755)
        inst = server("--master", "--uid", "nobody", "--gid", "nogroup", "--post-buffering",
                      "1024", "--static-map", "/s=www", "--wsgi-file", "app.py", app=False,
                      cwd=path)
        body = os.urandom(100_000)
        status, echoed = inst.request("/echo", method="POST", body=body)
        assert status == 200 and echoed == body
        conn = http.client.HTTPConnection("127.0.0.1", inst.port, timeout=10)
        try:
            conn.request("GET", "/s/a.txt", headers={"If-Modified-Since": "Sun, 06 Nov 1994 "
                                                                          "08:49:37 GMT"})
            resp = conn.getresponse()
            assert resp.status == 200 and resp.read() == b"static a\n"
        finally:
            conn.close()
        assert "Traceback" not in inst.log()
    finally:
        shutil.rmtree(path, ignore_errors=True)
