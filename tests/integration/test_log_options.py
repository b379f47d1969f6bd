"""More of uWSGI's logging options against the real server: --log-sendfile, --log-ioerror,
--log-prefix, the app's logvars, the master's log pipes (--log-master-bufsize, -stream) and
--log-drain/--log-filter.

Expected lines come from real uWSGI 2.0.31 for the same app and request (each test says
what it printed); where uwsgi-py differs on purpose, docs/options.md's uWSGI column says so.
"""
from __future__ import annotations

import re
import socket
import struct

import pytest

from conftest import wait_until
from test_logging import _get, start, wait_lines

pytestmark = pytest.mark.timeout(90)


def test_log_sendfile_and_the_via_note(server, tmp_path):
    # uWSGI 2.0.31 (--disable-logging --log-sendfile true --static-map): both file responses
    # logged, "... GET /file => generated 100000 bytes in 0 msecs via sendfile() (HTTP/1.1 200)"
    (tmp_path / "logging_app.py.data").write_bytes(b"d" * 5000)
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "f.txt").write_bytes(b"static\n")
    inst = start(server, tmp_path, "--disable-logging", "--log-sendfile", "true",
                 "--static-map", f"/s={tmp_path / 'static'}")
    for path in ("/ok", "/file", "/s/f.txt"):
        assert _get(inst, path)[0] == 200
    line = wait_lines(inst.log_path, "GET /s/f.txt ")[0]
    assert re.search(r"GET /s/f\.txt => generated 7 bytes in \d+ msecs via sendfile\(\) "
                     r"\(HTTP/1\.1 200\)", line), line
    text = inst.log()
    assert re.search(r"GET /file => generated 5000 bytes in \d+ msecs via sendfile\(\) "
                     r"\(HTTP/1\.1 200\)", text), text
    assert "GET /ok " not in text and "GET / =>" not in text


def test_log_ioerror_logs_a_client_gone_mid_response(server, tmp_path):
    inst = start(server, tmp_path, "--disable-logging", "--log-ioerror",
                 "--log-format", "%(method) %(uri) %(status) rerr=%(rerr) werr=%(werr) "
                 "ioerr=%(ioerr)")
    _get(inst, "/ok")
    with socket.create_connection(("127.0.0.1", inst.port), timeout=10) as sock:
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(1024).startswith(b"HTTP/1.1 200")
        # gone without reading the rest: a reset, so the worker's next write fails
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    line = wait_lines(inst.log_path, "GET /stream ")[0]
    match = re.fullmatch(r"GET /stream 200 rerr=0 werr=(\d+) ioerr=(\d+)", line)
    assert match and int(match.group(1)) >= 1 and match.group(1) == match.group(2), line
    assert "GET /ok " not in inst.log()
    assert _get(inst, "/after")[0] == 200          # the worker serves on


def test_log_prefix_is_uwsgis_log_date(server, tmp_path):
    # uWSGI 2.0.31 --log-prefix='[pfx %Y]': "[pfx 2026] - spawned uWSGI worker 1 (pid: ...)",
    # the request line unprefixed
    inst = start(server, tmp_path, "--log-prefix=[pfx %Y]")
    _get(inst, "/p")
    line = wait_lines(inst.log_path, "GET /p ")[0]
    assert line.startswith("[pid: ")
    assert re.search(r"^\[pfx \d{4}\] - spawned uWSGI worker 1 ", inst.log(), re.M)


def test_logvars_are_per_request(server, tmp_path):
    # uWSGI 2.0.31: "GET /lv 200 foo=baz2" after set_logvar twice, "-" on the next request;
    # get_logvar gives bytes, None when unset; outside a request: SystemError
    inst = start(server, tmp_path, "--log-format", "%(method) %(uri) user=%(user_id) nope=%(nope)")
    status, body = _get(inst, "/lv")
    assert (status, body) == (200, b"(b'42', None) SystemError")
    _get(inst, "/next")
    assert wait_lines(inst.log_path, "GET /next ")[0] == "GET /next user=- nope=-"
    assert lines_with(inst, "GET /lv ") == ["GET /lv user=42 nope=-"]


def lines_with(inst, needle: str) -> list[str]:
    return [line for line in inst.log().splitlines() if needle in line]


def test_log_master_bufsize_cuts_messages_unless_the_pipe_is_a_stream(server, tmp_path):
    # uWSGI: a message longer than --log-master-bufsize is cut; --log-master-stream reads a
    # byte stream in pieces of that size, so nothing is lost
    short = ("--log-format", "%(method) %(uri)")     # request lines shorter than the buffer
    cut = start(server, tmp_path, "--master", "--log-master", "--log-master-bufsize", "100",
                *short)
    _get(cut, "/long")
    _get(cut, "/marker")
    wait_until(lambda: "GET /marker\n" in cut.log(), 15, what="the marker request line")
    assert "long:" + "x" * 95 in cut.log() and "x" * 96 not in cut.log()
    whole = start(server, tmp_path, "--master", "--log-master",
                  "--log-master-bufsize", "100", "--log-master-stream", *short)
    _get(whole, "/long")
    wait_until(lambda: "long:" + "x" * 300 + "\n" in whole.log(), 15, what="the whole line")


def test_log_drain_and_log_filter(server, tmp_path):
    inst = start(server, tmp_path, "--master", "--log-drain", r"GET /keep-not ",
                 "--log-filter", r"GET /keep|spawned|bound to ")
    for path in ("/other", "/keep-not", "/keep"):
        _get(inst, path)
    wait_lines(inst.log_path, "GET /keep ")
    text = inst.log()
    assert "GET /other " not in text and "GET /keep-not " not in text
    assert "spawned uWSGI worker 1" in text and "*** Operational MODE" not in text
