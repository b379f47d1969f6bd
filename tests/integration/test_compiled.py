"""The start log names the request path that serves (pure or compiled: tests/unit/test_hotpath.py)."""
from __future__ import annotations

import http.client
import os
import re

from uwsgi_py import hotpath


def test_the_start_log_says_which_path_serves(server):
    inst = server("--master", "-p", "1", "--http-keepalive")
    compiled = hotpath.compiled()
    expect = os.environ.get("EXPECT_COMPILED")
    if expect is not None:
        assert bool(compiled) == (expect == "1")
    if compiled:
        match = re.search(r"^request path: compiled with mypyc \((.*)\)$", inst.log(), re.M)
        assert match and match.group(1).split() == compiled, inst.log()
    else:
        assert "request path: pure Python\n" in inst.log()
    # keep-alive: each request on the connection goes through the loop and the parser again
    conn = http.client.HTTPConnection("127.0.0.1", inst.port, timeout=10)
    try:
        for body in (b"", b"x" * 100, b"y" * 70000):
            conn.request("POST", "/echo", body=body)
            resp = conn.getresponse()
            assert (resp.status, resp.read()) == (200, body)
            assert resp.getheader("Connection") != "close"
    finally:
        conn.close()
