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
