"""Request smuggling end to end: a refused request gets its 4xx, one bad-request log line,
and the connection closes at once, so nothing sent after it is read as another request;
a refused head never reaches the app.

The server runs with keep-alive (so a pipelined request would be served if the
connection stayed open: the first test shows it is) and a --socket-timeout far longer
than the client's read timeout: a connection that is not closed right after the
refusal makes the client time out. The app counts its calls (/count) and logs each
path it sees ("app saw PATH"), one worker, so the count is the whole server's.
"""
from __future__ import annotations

import socket
import textwrap

import pytest

pytestmark = pytest.mark.timeout(90)

COUNTING_APP = textwrap.dedent('''
    import os

    calls = 0

    def application(env, start_response):
        global calls
        path = env["PATH_INFO"]
        if path == "/count":
            body = str(calls).encode()
        else:
            calls += 1
            os.write(2, ("app saw %s\\n" % path).encode())
            if path == "/echo":
                body = env["wsgi.input"].read()
            elif path == "/xff":
                body = env.get("HTTP_X_FORWARDED_FOR", "-").encode()
            else:
                body = b"ok"
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(body)))])
        return [body]
''')
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.fixture
def strict_server(server, tmp_path):
    (tmp_path / "counting_app.py").write_text(COUNTING_APP)

    def start(*args):
        return server("--wsgi-file", "counting_app.py", "--http-keepalive", "-p", "1",
                      "--socket-timeout", "60", *args, app=False)
    return start


def talk(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send ``data`` on a fresh connection (no half-close) and read until the server
    closes it; a server that keeps the connection open makes this time out."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as c:
        c.sendall(data)
        out = b""
        while chunk := c.recv(65536):
            out += chunk
        return out


def count(inst) -> int:
    out = talk(inst.port, b"GET /count HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    return int(out.rpartition(b"\r\n\r\n")[2])


def test_pipelined_requests_are_served_when_well_formed(strict_server):
    """The control: the same pipelining, valid, gets both requests served."""
    inst = strict_server()
    out = talk(inst.port, b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n"
               + SMUGGLED.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
    assert out.count(b"HTTP/1.1 200 OK") == 2
    assert count(inst) == 2
    assert "app saw /smuggled" in inst.log()


BAD_HEADS = [
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400, "control character in the value of X-A"),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\n", 400, "both Content-Length and Transfer-Encoding"),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n", 400,
     "more than one Content-Length header"),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", 400,
     "obsolete line folding"),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501,
     "unsupported transfer coding"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "more than one Host header"),
    (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n\r\n", 414, "request line longer than buffer-size"),
    (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 101 + b"\r\n", 431, "more than limit-request-fields (100)"),
    (b"GET / HTTP/1.1\nHost: x\n\n", 400, "bare LF in the request head"),
]


def test_a_refused_head_gets_its_status_and_the_connection_closes_unread(strict_server):
    inst = strict_server()
    for i, (head, status, why) in enumerate(BAD_HEADS, 1):
        out = talk(inst.port, head + SMUGGLED)
        assert out.startswith(b"HTTP/1.1 %d " % status), (head[:60], out[:200])
        assert out.count(b"HTTP/1.1 ") == 1 and b"Connection: close\r\n" in out, out[:300]
        inst.wait_log(f"bad request from 127.0.0.1: {why}")
        assert inst.count("bad request from ") == i         # one line per refused request
    assert count(inst) == 0                                 # the app never saw any of them
    assert "app saw" not in inst.log()


def test_chunk_data_without_its_crlf_is_refused_and_nothing_follows(strict_server):
    """CVE-2025-43859's shape: '5\\r\\nhelloXX0\\r\\n\\r\\n' must not read as 'hello' and
    let the bytes after it be a second request. The app reading the body gets the
    error (its call is counted); the answer is 400 and the connection ends."""
    inst = strict_server()
    out = talk(inst.port, b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhelloXX0\r\n\r\n" + SMUGGLED)
    assert out.startswith(b"HTTP/1.1 400 ") and out.count(b"HTTP/1.1 ") == 1, out
    inst.wait_log("bad request from 127.0.0.1: chunk data not followed by CRLF")
    assert count(inst) == 1 and "app saw /smuggled" not in inst.log()


def test_a_malformed_body_left_unread_ends_the_connection(strict_server):
    """The app answers without reading the body; finding where the next request starts
    means reading the rest, and a bare LF in a chunk extension refuses the rest."""
    inst = strict_server()
    out = talk(inst.port, b"POST /ignore HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5;a\nb\r\nhello\r\n0\r\n\r\n" + SMUGGLED)
    assert out.startswith(b"HTTP/1.1 200 OK") and out.count(b"HTTP/1.1 ") == 1, out
    inst.wait_log("bad request from 127.0.0.1: invalid chunk size line")
    assert count(inst) == 1 and "app saw /smuggled" not in inst.log()


def test_64k_of_one_byte_chunks_decode(strict_server):
    inst = strict_server()
    body = bytes(range(256)) * 256
    chunks = b"".join(b"1\r\n%c\r\n" % b for b in body) + b"0\r\n\r\n"
    out = talk(inst.port, b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
               b"Connection: close\r\n\r\n" + chunks, timeout=30)
    head, _, echoed = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and echoed == body


@pytest.mark.parametrize("allow,seen", [((), b"10.0.0.1"),
                                        (("--http-allow-underscore-headers",), b"6.6.6.6,10.0.0.1")])
def test_underscore_headers_are_dropped_unless_allowed(strict_server, allow, seen):
    inst = strict_server(*allow)
    out = talk(inst.port, b"GET /xff HTTP/1.1\r\nHost: x\r\nX_Forwarded_For: 6.6.6.6\r\n"
               b"X-Forwarded-For: 10.0.0.1\r\nConnection: close\r\n\r\n")
    assert out.endswith(b"\r\n\r\n" + seen), out
