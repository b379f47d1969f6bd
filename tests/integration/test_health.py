"""Readiness (core/health.py, the health plugin's status socket, the stats server's /ready) and
reload outcomes read by ``uwsgi-py --reload PIDFILE`` and ``--status PIDFILE``; systemd's
watchdog and start-up extension (the inetd plugin)."""
from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import threading

import pytest

from conftest import APPS, run_cli, wait_until

pytestmark = pytest.mark.timeout(120)

STATS_RE = re.compile(r"Stats server enabled on 127\.0\.0\.1:(\d+)")


def stats_port(inst) -> int:
    return int(STATS_RE.search(inst.wait_log("Stats server enabled on")).group(1))


def http_get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def ready(port: int) -> tuple[int, dict]:
    status, body = http_get(port, "/ready")
    return status, json.loads(body)


def test_ready_follows_pause_refused_reload_good_reload_and_stop(server, tmp_path):
    pidfile = tmp_path / "m.pid"
    inst = server("--master", "-p", "2", "--stats", "127.0.0.1:0", "--stats-http",
                  "--pidfile", str(pidfile))
    port = stats_port(inst)
    wait_until(lambda: ready(port)[0] == 200, 10, what="ready")
    code, doc = ready(port)
    assert doc["state"] == "ready" and doc["ready"] and doc["generation"] == 0

    inst.signal(signal.SIGTSTP)
    assert wait_until(lambda: ready(port) == (503, {**doc, "ready": False, "state": "paused"})
                      and True, 10, what="paused")
    inst.signal(signal.SIGTSTP)
    wait_until(lambda: ready(port)[0] == 200, 10, what="resumed")

    # a refused reload: --reload exits 2, the old code keeps serving, /ready says 503
    good = (inst.cwd / "app.py").read_text()
    (inst.cwd / "app.py").write_text("raise RuntimeError('broken deploy')\n")
    proc = run_cli("--reload", str(pidfile), timeout=90)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "reload refused: the new code or configuration failed to load" in proc.stderr
    assert inst.get("/") == b"hello\n"
    code, doc = ready(port)
    assert (code, doc["state"], doc["last_reload"]["refused"]) == (503, "refused", True)
    status = run_cli("--status", str(pidfile))
    assert status.returncode == 1 and json.loads(status.stdout)["state"] == "refused"

    # a good reload: exit 0 once the new workers serve, healthy again
    (inst.cwd / "app.py").write_text(good)
    proc = run_cli("--reload", str(pidfile), timeout=90)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")   # quiet, as uWSGI's
    port = stats_port(inst)   # the same auto-assigned port, bound again by the new image
    code, doc = ready(port)
    assert (code, doc["state"], doc["generation"]) == (200, "ready", 1)
    status = run_cli("--status", str(pidfile))
    assert status.returncode == 0 and json.loads(status.stdout)["generation"] == 1

    # a graceful stop (FIFO q): unhealthy from its first moment, while a request still runs
    graceful = server("--master", "-p", "1", "--stats", "127.0.0.1:0", "--stats-http",
                      "--master-fifo", str(tmp_path / "g.fifo"), name="graceful")
    gport = stats_port(graceful)
    wait_until(lambda: ready(gport)[0] == 200, 10, what="ready")
    busy = threading.Thread(target=lambda: graceful.request("/slow/2", timeout=20), daemon=True)
    busy.start()
    wait_until(lambda: "slow-started" in graceful.log(), 10, what="the slow request")
    with open(tmp_path / "g.fifo", "w") as f:
        f.write("q")
    graceful.wait_log("graceful shutdown triggered")
    code, doc = ready(gport)
    assert (code, doc["state"]) == (503, "stopping")
    busy.join(20)
    assert graceful.wait_exit() == 0


def test_reload_without_status_socket_still_signals(server, tmp_path):
    pidfile = tmp_path / "m.pid"
    inst = server("--master", "--pidfile", str(pidfile), env={"UWSGI_PY_DISABLE_PLUGINS": "health"})
    proc = run_cli("--reload", str(pidfile), env={"UWSGI_PY_DISABLE_PLUGINS": "health"})
    assert (proc.returncode, proc.stderr) == (0, "")   # sent; the outcome is only in the log
    inst.wait_log("reload outcome:")


def test_status_of_a_missing_pidfile(tmp_path):
    proc = run_cli("--status", str(tmp_path / "nope.pid"))
    assert proc.returncode == 1 and "No such file or directory" in proc.stderr


# ---- systemd ---------------------------------------------------------------------------------

def test_watchdog_and_extend_timeout(server, tmp_path):
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(20)
        server("--master", "--systemd-extend-timeout", "90",
               env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"})
        seen: list[str] = []
        while seen.count("WATCHDOG=1") < 2:
            seen.extend(sock.recv(4096).decode().splitlines())
    assert seen[0] == "STATUS=initializing uWSGI"
    assert seen[1] == "EXTEND_TIMEOUT_USEC=90000000"
    assert seen.index("EXTEND_TIMEOUT_USEC=90000000") < seen.index("READY=1")


def test_extend_timeout_is_renewed_while_the_app_loads(server, tmp_path):
    # EXTEND_TIMEOUT_USEC gives SECS from now: a load longer than SECS needs it again
    shutil.copy(APPS / "slow_load_app.py", tmp_path / "slow_load_app.py")
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(20)
        inst = server("--master", "--systemd-extend-timeout", "1", "--wsgi-file",
                      "slow_load_app.py", app=False, wait=False, env={"NOTIFY_SOCKET": path})
        seen: list[str] = []
        while seen.count("EXTEND_TIMEOUT_USEC=1000000") < 4:   # one every half second
            seen.extend(sock.recv(4096).decode().splitlines())
        assert "READY=1" not in seen
        (tmp_path / "go").touch()
        while "READY=1" not in seen:
            seen.extend(sock.recv(4096).decode().splitlines())
        inst.wait_log("spawned uWSGI worker 1")
        # nothing after READY=1: the next datagram is the stop's
        os.kill(inst.pid, signal.SIGINT)
        after: list[str] = []
        while "STOPPING=1" not in after:
            after.extend(sock.recv(4096).decode().splitlines())
    assert not any(line.startswith("EXTEND_TIMEOUT_USEC") for line in after), after


def test_watchdog_for_another_pid_is_ignored(server, tmp_path):
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(3)
        inst = server("--master", env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000",
                                       "WATCHDOG_PID": "1"})
        seen: list[str] = []
        wait_until(lambda: inst.count("spawned uWSGI worker 1"), 10)
        try:
            while True:
                seen.extend(sock.recv(4096).decode().splitlines())
        except TimeoutError:
            pass
    assert "READY=1" in seen and "WATCHDOG=1" not in seen
