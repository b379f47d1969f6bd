"""TCP details of the request sockets: deferred accept, and the corked response.

By default a TCP listener has TCP_DEFER_ACCEPT (as uWSGI's do; ``--no-defer-accept`` turns
it off) and TCP_CORK, which accepted connections inherit: a response written in full waits
in the kernel for the FIN and both leave in one segment. Whatever waits for the client
(100-continue, a streamed response, keep-alive) is uncorked first. The apps below read
TCP_CORK of their own connection (found by the client's port) to show which is which.
"""
from __future__ import annotations

import signal
import socket
import textwrap
import time

import pytest

from conftest import wait_until
from test_stats import stats

pytestmark = pytest.mark.timeout(60)

CORK_APP = textwrap.dedent('''
    import os, socket, time

    def cork_of(env):
        """TCP_CORK of the connection whose client port is ?port=N (0/1), -1 if not found."""
        port = int(env["QUERY_STRING"].split("=")[1])
        for name in os.listdir("/proc/self/fd"):
            try:
                s = socket.fromfd(int(name), socket.AF_INET, socket.SOCK_STREAM)
            except OSError:
                continue
            try:
                if s.getpeername()[1] == port:
                    return s.getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK)
            except OSError:
                pass
            finally:
                s.close()
        return -1

    def application(env, start_response):
        path = env["PATH_INFO"]
        if path == "/stream":          # no Content-Length: more may follow, slowly
            start_response("200 OK", [("Content-Type", "text/plain")])
            def body():
                yield b"first;"
                yield b"cork-after-first=%d" % cork_of(env)
            return body()
        if path == "/continue":        # reading the body sent 100 Continue first
            body = env["wsgi.input"].read()
            out = b"read=%d;cork-after-100=%d" % (len(body), cork_of(env))
        elif path == "/ignore-body":   # the body is never read
            out = b"x" * 1000
        elif path == "/late-body":     # never read either; it arrives while the app sleeps
            time.sleep(0.3)
            out = b"y" * 1000
        else:
            out = b"cork-before-response=%d" % cork_of(env)
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(out)))])
        return [out]
''')


def read_until_closed(c: socket.socket) -> bytes:
    """Everything the server sent before it closed (or reset) the connection."""
    data = b""
    try:
        while chunk := c.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


@pytest.fixture
def cork_server(server, tmp_path):
    (tmp_path / "cork_app.py").write_text(CORK_APP)

    def start(*args):
        inst = server("--wsgi-file", "cork_app.py", *args, app=False)
        return inst
    return start


def exchange(port: int, build, read_until_close: bool = True) -> bytes:
    """Connect, send ``build(client_port)``, read the whole response (until EOF)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        c.sendall(build(c.getsockname()[1]))
        data = b""
        while chunk := c.recv(65536):
            data += chunk
        return data


def body_of(response: bytes) -> bytes:
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK"), response
    return body


def test_a_response_written_in_full_is_corked_until_the_fin(cork_server):
    inst = cork_server()
    out = exchange(inst.port, lambda p: b"GET /?port=%d HTTP/1.1\r\nHost: x\r\n\r\n" % p)
    assert body_of(out) == b"cork-before-response=1"
    assert b"Connection: close" in out


def test_a_streamed_response_is_uncorked_before_its_first_part_leaves(cork_server):
    inst = cork_server()
    out = exchange(inst.port, lambda p: b"GET /stream?port=%d HTTP/1.0\r\n\r\n" % p)
    assert body_of(out.replace(b"HTTP/1.0", b"HTTP/1.1", 1)) == b"first;cork-after-first=0"


def test_100_continue_is_uncorked(cork_server):
    inst = cork_server()
    with socket.create_connection(("127.0.0.1", inst.port), timeout=10) as c:
        port = c.getsockname()[1]
        c.sendall(b"POST /continue?port=%d HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                  b"Expect: 100-continue\r\n\r\n" % port)
        interim = b""
        while b"\r\n\r\n" not in interim:
            interim += c.recv(4096)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        c.sendall(b"hello")
        data = interim[len(b"HTTP/1.1 100 Continue\r\n\r\n"):]
        while chunk := c.recv(65536):
            data += chunk
    assert body_of(data) == b"read=5;cork-after-100=0"


def test_keepalive_connections_are_uncorked_and_pipelined_requests_all_answered(cork_server):
    inst = cork_server("--http-keepalive")
    with socket.create_connection(("127.0.0.1", inst.port), timeout=10) as c:
        port = c.getsockname()[1]
        c.sendall(b"GET /?port=%d HTTP/1.1\r\nHost: x\r\n\r\n" % port * 2)
        data = b""
        while data.count(b"cork-before-response=") < 2 or not data.endswith((b"=0", b"=1")):
            chunk = c.recv(65536)
            assert chunk, data
            data += chunk
    # the first request ran corked (nothing decided yet); its response uncorked the connection
    assert data.count(b"HTTP/1.1 200 OK") == 2
    assert data.endswith(b"cork-before-response=0"), data


def test_an_unread_request_body_does_not_lose_the_corked_response(cork_server):
    """close() with unread bytes resets the connection: the response must have left before."""
    inst = cork_server()
    body = b"b" * 300_000                   # well past what the worker reads with the head
    with socket.create_connection(("127.0.0.1", inst.port), timeout=10) as c:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        try:
            c.sendall(b"POST /ignore-body HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                      % len(body) + body)
        except (BrokenPipeError, ConnectionResetError):
            pass                            # the server is done with us; the answer is queued
        data = read_until_closed(c)
    assert data.startswith(b"HTTP/1.1 200 OK"), data[:200]
    assert data.endswith(b"x" * 1000)
    assert inst.get("/?port=1").startswith(b"cork-before-response=")  # still serving


def test_a_body_left_in_the_kernel_does_not_lose_the_corked_response(cork_server):
    """Nothing unread in the worker's buffer, but the body the app ignored came after the
    head and waits in the kernel: close() alone would reset; shutdown() goes first."""
    inst = cork_server()
    with socket.create_connection(("127.0.0.1", inst.port), timeout=10) as c:
        c.sendall(b"POST /late-body HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n")
        time.sleep(0.1)                     # the worker has read the head alone
        c.sendall(b"z" * 500)
        data = read_until_closed(c)
    assert data.startswith(b"HTTP/1.1 200 OK"), data[:200]
    assert data.endswith(b"y" * 1000)


@pytest.mark.parametrize("defer", [True, False], ids=["default", "no-defer-accept"])
def test_deferred_accept_leaves_silent_connections_to_the_kernel(server, tmp_path, defer):
    """A connection that has sent nothing is not in the accept queue with TCP_DEFER_ACCEPT;
    one that sent its request is. Seen in the stats' listen_queue while the worker is paused."""
    path = str(tmp_path / "q.sock")
    inst = server("-p", "1", "--stats", path, *(() if defer else ("--no-defer-accept",)))
    inst.signal(signal.SIGTSTP)
    wait_until(lambda: stats(path)["workers"][0]["status"] == "pause", 10, what="paused")
    silent = [socket.create_connection(("127.0.0.1", inst.port), timeout=5) for _ in range(3)]
    talking = socket.create_connection(("127.0.0.1", inst.port), timeout=5)
    try:
        talking.sendall(b"GET / HTTP/1.0\r\n\r\n")
        want = 1 if defer else 4
        wait_until(lambda: stats(path)["listen_queue"] == want, 5,
                   what=f"{want} connection(s) in the accept queue")
    finally:
        inst.signal(signal.SIGTSTP)
        for c in silent:
            c.close()
    with talking:
        data = b""
        while chunk := talking.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.0 200 OK") and data.endswith(b"hello\n")
