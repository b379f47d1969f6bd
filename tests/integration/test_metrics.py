"""/metrics in Prometheus' text format (read by the reference parser, prometheus_client), the
JSON document on the same --stats-http socket (read by uwsgitop over http://), and the statsd
pusher (read by a UDP listener the test owns)."""
from __future__ import annotations

import http.client
import json
import re
import socket
import sys

import pytest

from conftest import wait_until

pytestmark = pytest.mark.timeout(90)

parser = pytest.importorskip("prometheus_client.parser")
STATS_RE = re.compile(r"Stats server enabled on 127\.0\.0\.1:(\d+)")


def get(port: int, path: str) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def families(port: int) -> dict:
    status, headers, body = get(port, "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {f.name: f for f in parser.text_string_to_metric_families(body.decode())}


def sample(fams, family: str, name: str | None = None, **labels) -> float:
    for s in fams[family].samples:
        if s.name == (name or family) and all(s.labels.get(k) == str(v) for k, v in labels.items()):
            return s.value
    raise AssertionError(f"no sample {name or family} {labels} in {fams[family].samples}")


def test_metrics_match_the_json_document(server):
    inst = server("--master", "-p", "2", "--stats", "127.0.0.1:0", "--stats-http",
                  "--memory-report")
    port = int(STATS_RE.search(inst.wait_log("Stats server enabled on")).group(1))
    for _ in range(6):
        inst.get("/")
    inst.request("/boom")
    # idle now: both answers describe the same state
    wait_until(lambda: all(w["status"] == "idle" for w in json.loads(get(port, "/")[2])["workers"]),
               10, what="idle workers")
    # ready once every worker accepts (the fixture waited for one answer only)
    wait_until(lambda: sample(families(port), "uwsgi_ready") == 1, 10, what="the instance ready")
    doc = json.loads(get(port, "/")[2])
    fams = families(port)
    assert fams["uwsgi_worker_requests"].type == "counter"
    assert fams["uwsgi_worker_rss_bytes"].type == "gauge"
    for w in doc["workers"]:
        wid = w["id"]
        assert sample(fams, "uwsgi_worker_requests", "uwsgi_worker_requests_total", worker=wid) \
            == w["requests"]
        assert sample(fams, "uwsgi_worker_exceptions", "uwsgi_worker_exceptions_total", worker=wid) \
            == w["exceptions"]
        assert sample(fams, "uwsgi_worker_harakiri", "uwsgi_worker_harakiri_total", worker=wid) \
            == w["harakiri_count"]
        assert sample(fams, "uwsgi_worker_busy_seconds", "uwsgi_worker_busy_seconds_total",
                      worker=wid) == pytest.approx(w["running_time"] / 1e6)
        assert sample(fams, "uwsgi_worker_status", worker=wid, status="idle") == 1
        assert sample(fams, "uwsgi_worker_status", worker=wid, status="busy") == 0
        assert sample(fams, "uwsgi_worker_rss_bytes", worker=wid) > 0   # --memory-report
    assert sum(w["exceptions"] for w in doc["workers"]) == 1
    assert sample(fams, "uwsgi_listen_queue") == doc["listen_queue"]
    assert sample(fams, "uwsgi_socket_max_queue", socket=f"127.0.0.1:{inst.port}", proto="http") \
        == doc["sockets"][0]["max_queue"]
    assert sample(fams, "uwsgi_ready") == 1 and sample(fams, "uwsgi_generation") == 0
    assert sample(fams, "uwsgi_reloads", "uwsgi_reloads_total") == 0
    assert sample(fams, "uwsgi_info", version="2.0.31") == 1


def test_metrics_after_a_reload(server):
    inst = server("--master", "--stats", "127.0.0.1:0", "--stats-http")
    port = int(STATS_RE.search(inst.wait_log("Stats server enabled on")).group(1))
    import signal
    inst.signal(signal.SIGHUP)
    inst.wait_log("reload outcome:")
    fams = wait_until(lambda: (f := families(port)) and sample(f, "uwsgi_generation") == 1 and f,
                      15, what="generation 1")
    assert sample(fams, "uwsgi_reloads", "uwsgi_reloads_total") == 1
    assert sample(fams, "uwsgi_last_reload_refused") == 0
    assert sample(fams, "uwsgi_state", state="ready") == 1


def test_uwsgitop_reads_the_http_stats(server):
    from test_stats import screen_of, uwsgitop_script
    script = uwsgitop_script()
    inst = server("--master", "-p", "2", "--stats", "127.0.0.1:0", "--stats-http")
    port = int(STATS_RE.search(inst.wait_log("Stats server enabled on")).group(1))
    want = [f"masterpid: {inst.pid}", "uwsgi-2.0.31", "WID", "idle"]
    screen = screen_of([sys.executable, script, "--frequency", "1", f"http://127.0.0.1:{port}"],
                       want, ("uwsgi-2.0.31 - ", 2))
    assert all(w in screen for w in want), screen[-2000:]
    assert "Traceback" not in screen and "unable to get uWSGI statistics" not in screen


def test_raw_stats_client_that_sends_nothing_gets_json(server):
    inst = server("--master", "--stats", "127.0.0.1:0", "--stats-http")
    port = int(STATS_RE.search(inst.wait_log("Stats server enabled on")).group(1))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.shutdown(socket.SHUT_WR)       # a reader that sends nothing (nc -N, old scripts)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 OK") and json.loads(body)["pid"] == inst.pid


def _uwsgi_metric_names(workers: int, sockets: int) -> list[str]:
    """uWSGI 2.0's registration order (core/metrics.c uwsgi_setup_metrics), one core each."""
    per_worker = ["requests", "delta_requests", "failed_requests", "respawns",
                  "avg_response_time", "total_tx", "rss_size", "vsz_size", "running_time"]
    per_core = ["requests", "write_errors", "routed_requests", "static_requests",
                "offloaded_requests", "exceptions", "read_errors"]
    names = ["core.routed_signals", "core.unrouted_signals", "core.busy_workers",
             "core.idle_workers", "core.overloaded"]
    for n in range(workers + 1):
        names += [f"worker.{n}.{m}" for m in per_worker]
        if n:
            names += [f"worker.{n}.core.0.{m}" for m in per_core]
    names += ["core.total_tx", "core.total_rss", "core.total_vsz", "core.avg_response_time",
              "core.total_running_time"]
    names += [f"socket.{i}.listen_queue" for i in range(sockets)]
    return names + ["rss_size", "vsz_size"]


def test_statsd_push(server):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        udp.settimeout(10)
        inst = server("--master", "-p", "2", "--stats-push",
                      f"statsd:127.0.0.1:{udp.getsockname()[1]},myapp",
                      "--stats-pusher-default-freq", "1")
        for _ in range(3):
            inst.get("/")
        push: dict[str, tuple[int, str]] = {}
        pushes: list[dict] = []

        def a_complete_push_with_the_requests():
            msg = udp.recv(65536).decode()
            name, _, rest = msg.partition(":")
            value, _, kind = rest.partition("|")
            if name == "myapp.core.routed_signals":      # the first metric of every push
                push.clear()
            push[name] = (int(value), kind)
            if name == "myapp.vsz_size":                  # the last one
                pushes.append(dict(push))
                return push.get("myapp.worker.0.requests", (0,))[0] >= 3
            return False
        wait_until(a_complete_push_with_the_requests, 20, interval=0,
                   what="a push with the 3 requests")
    values = pushes[-1]
    # uWSGI's stats_pusher_statsd: PREFIX.NAME:VALUE|g for gauges, |c otherwise, every metric
    # in registration order
    assert list(values) == ["myapp." + name for name in _uwsgi_metric_names(2, 1)]
    gauges = {name for name, (_, kind) in values.items() if kind == "g"}
    assert gauges == {"myapp." + n for n in (
        "core.busy_workers", "core.idle_workers", "core.total_rss", "core.total_vsz",
        "core.avg_response_time", "socket.0.listen_queue",
        *(f"worker.{w}.{m}" for w in range(3) for m in ("avg_response_time", "rss_size",
                                                         "vsz_size")))}
    total = values["myapp.worker.1.requests"][0] + values["myapp.worker.2.requests"][0]
    assert values["myapp.worker.0.requests"] == (total, "c") and total >= 3
    assert values["myapp.worker.0.total_tx"] == (0, "c")      # uWSGI's worker 0: requests only
    assert values["myapp.worker.1.core.0.requests"][0] == values["myapp.worker.1.requests"][0]
    assert values["myapp.core.total_tx"][0] == (values["myapp.worker.1.total_tx"][0]
                                                + values["myapp.worker.2.total_tx"][0])
    assert values["myapp.rss_size"] == (values["myapp.core.total_rss"][0], "c")
