"""The example plugins of examples/plugins/, installed and run as a third party's (issue 17).

Each is its own distribution built only on the public plugin API and docs/plugins.md:
``response_header`` (uwsgi_response_headers), ``udp_control`` (a control socket carried
across exec reloads by uwsgi_handoff_give/_take) and ``reload_log`` (the reload events
of every kind). They are pip-installed into one fresh venv, as test_external_plugin does.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import ROOT, wait_until
from test_external_plugin import make_venv, venv_server  # noqa: F401 - venv_server is a fixture

pytestmark = pytest.mark.timeout(150)

EXAMPLES = ROOT / "examples" / "plugins"
HTTP_PORT = re.compile(r"bound to TCP address 127\.0\.0\.1:(\d+) \(port auto-assigned\)")
UDP_PORT = re.compile(r"udp-control: listening on 127\.0\.0\.1:(\d+) \(generation (\d+)\)")


@pytest.fixture(scope="module")
def examples_python(tmp_path_factory):
    base = tmp_path_factory.mktemp("examples")
    python = make_venv(base, EXAMPLES / "response_header")
    for name in ("udp_control", "reload_log"):
        result = subprocess.run(
            [str(python), "-m", "pip", "install", "--no-build-isolation", "--no-deps", "--no-index",
             "--disable-pip-version-check", "-q", str(EXAMPLES / name)],
            capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
    return python


def http(port: int, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def get(port: int, path: str) -> bytes:
    return http(port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())


def test_response_header_is_on_every_response_the_server_sends(examples_python, venv_server):
    inst = venv_server(examples_python, "--master", "--http-socket", "127.0.0.1:0",
                       "--wsgi-file", "app.py", "--response-header", "X-Example: yes")
    port = int(HTTP_PORT.search(inst.log()).group(1))
    ok = get(port, "/")
    assert ok.startswith(b"HTTP/1.1 200") and b"\r\nX-Example: yes\r\n" in ok.split(b"\r\n\r\n")[0] + b"\r\n"
    boom = get(port, "/boom")           # the app raises: the core's own 500
    assert boom.startswith(b"HTTP/1.1 500") and b"\r\nX-Example: yes\r\n" in boom
    bad = http(port, b"GET / HTTP/1.1\r\nHost x\r\n\r\n")   # unparsable: the core's own 400
    assert bad.startswith(b"HTTP/1.1 400") and b"\r\nX-Example: yes\r\n" in bad


def test_udp_control_channel_loses_no_datagram_across_a_reload(examples_python, venv_server):
    inst = venv_server(examples_python, "--master", "--http-socket", "127.0.0.1:0",
                       "--wsgi-file", "app.py", "--udp-control", "127.0.0.1:0")
    inst.wait_log("udp-control: listening on")
    udp_port = int(UDP_PORT.search(inst.log()).group(1))
    total = 150
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
        target = ("127.0.0.1", udp_port)
        sent = 0
        for _ in range(10):
            out.sendto(b"ping", target)
            sent += 1
        os.kill(inst.proc.pid, signal.SIGHUP)
        # keep sending while the master checks, execs and the new image starts (bounded)
        while sent < total - 10 and "(generation 1)" not in inst.log():
            out.sendto(b"ping", target)
            sent += 1
            time.sleep(0.01)   # pacing the sender over the reload, not waiting for a condition
        inst.wait_log("udp-control: listening on 127.0.0.1:%d (generation 1)" % udp_port)
        while sent < total:
            out.sendto(b"ping", target)
            sent += 1
        out.sendto(b"count", target)
        inst.wait_log(f"udp-control: pings={total} generation=1")
    assert inst.count("udp-control: pings=") == 1


def test_reload_log_reports_every_reload_kind(examples_python, venv_server, tmp_path):
    path = tmp_path / "reloads.jsonl"
    fifo = tmp_path / "master.fifo"
    inst = venv_server(examples_python, "--master", "--processes", "2", "--http-socket",
                       "127.0.0.1:0", "--wsgi-file", "app.py", "--reload-log", str(path),
                       "--master-fifo", str(fifo))
    inst.wait_workers(2)
    wait_until(fifo.exists, what="the master FIFO")

    def kinds():
        if not path.exists():
            return []
        return [json.loads(line)["kind"] for line in path.read_text().splitlines()]

    for byte, kind in ((b"w", "workers"), (b"c", "chain"), (b"r", "graceful")):
        before = len(kinds())
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(fd, byte)
        finally:
            os.close(fd)
        wait_until(lambda: len(kinds()) > before, timeout=30, what=f"a {kind} reload logged")
        assert kinds()[-1] == kind
        inst.wait_workers(2)
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    for entry in entries:
        assert entry["event"] == "reloaded" and entry["refused"] is False
        assert set(entry) == {"event", "generation", "kind", "duration_ms", "workers_replaced",
                              "refused", "error", "time"}
        assert entry["workers_replaced"] == 2
    assert [e["generation"] for e in entries] == [0, 0, 1]
