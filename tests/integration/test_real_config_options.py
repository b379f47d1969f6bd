"""Options public uWSGI configs use (tests/corpus), at process level: --http11-socket,
the PROXY protocol, --exec/--hook-* phases, --reload-on-as, --idle, --optimize, --vhost-host,
--collect-header/--pull-header, --paste without PasteDeploy, a failing --mount, a file logger
in a missing directory, a port that is not a number, a plugin named by its path."""
from __future__ import annotations

import http.client
import json
import os
import re
import socket
import threading

import pytest

from conftest import run_cli, wait_until

pytestmark = pytest.mark.timeout(60)

PROBE = """\
import json, sys

NAME = "{name}"

def application(environ, start_response):
    info = {{"name": NAME, "remote_addr": environ.get("REMOTE_ADDR"),
            "remote_port": environ.get("REMOTE_PORT"), "optimize": sys.flags.optimize,
            "debug": __debug__, "script_name": environ.get("SCRIPT_NAME")}}
    start_response("200 OK", [("Content-Type", "application/json"), ("X-Sendfile", "/f/" + NAME),
                              ("X-Secret", "s3cret")])
    return [json.dumps(info).encode()]
"""


@pytest.fixture
def apps(tmp_path):
    for name in ("first", "second"):
        (tmp_path / f"{name}.py").write_text(PROBE.format(name=name))
    return tmp_path


def raw(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data``, read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def body_json(response: bytes) -> dict:
    return json.loads(response.split(b"\r\n\r\n", 1)[1])


# ---- sockets --------------------------------------------------------------------------------

def test_http11_socket_keeps_connections_alive(server, apps):
    inst = server("--http11-socket", "127.0.0.1:0", "--module", "first", app=False, http=False,
                  cwd=apps, wait=False)
    text = inst.wait_log("bound to ")
    inst.port = int(re.search(r"address 127\.0\.0\.1:(\d+)", text).group(1))
    inst.wait_serving()
    conn = http.client.HTTPConnection("127.0.0.1", inst.port, timeout=5)
    try:
        conn.request("GET", "/")
        first = conn.getresponse()
        first.read()
        assert first.getheader("Connection", "").lower() != "close"
        sock = conn.sock
        conn.request("GET", "/")       # the same connection serves a second request
        second = conn.getresponse()
        assert second.status == 200 and json.loads(second.read())["name"] == "first"
        assert conn.sock is sock
    finally:
        conn.close()


def test_enable_proxy_protocol_sets_the_client_address(server, apps):
    inst = server("--module", "first", "--enable-proxy-protocol", app=False, cwd=apps)
    proxied = raw(inst.port, b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 80\r\n"
                             b"GET / HTTP/1.0\r\n\r\n")
    assert body_json(proxied)["remote_addr"] == "203.0.113.7"
    assert body_json(proxied)["remote_port"] == "51234"
    v6 = raw(inst.port, b"PROXY TCP6 2001:db8::7 2001:db8::1 4000 80\r\nGET / HTTP/1.0\r\n\r\n")
    assert body_json(v6)["remote_addr"] == "2001:db8::7"
    plain = raw(inst.port, b"GET / HTTP/1.0\r\n\r\n")          # no line: served as usual
    assert body_json(plain)["remote_addr"] == "127.0.0.1"
    assert body_json(plain)["remote_port"] is None
    unknown = raw(inst.port, b"PROXY UNKNOWN\r\nGET / HTTP/1.0\r\n\r\n")
    assert body_json(unknown)["remote_addr"] == "127.0.0.1"
    bad = raw(inst.port, b"PROXY TCP4 nonsense\r\nGET / HTTP/1.0\r\n\r\n")
    assert bad.startswith(b"HTTP/1.1 400 ")


def test_http_enable_proxy_protocol_leaves_http_socket_alone(server, apps):
    # uWSGI's router option: on --http-socket a PROXY line is not an HTTP request
    inst = server("--module", "first", "--http-enable-proxy-protocol", app=False, cwd=apps)
    response = raw(inst.port, b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 80\r\n"
                              b"GET / HTTP/1.0\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 400 ")
    assert body_json(raw(inst.port, b"GET / HTTP/1.0\r\n\r\n"))["name"] == "first"


def test_a_port_that_is_not_a_number_binds_a_free_port(server):
    inst = server("--http-socket", "127.0.0.1:$(UNSET_PORT)", http=False, wait=False)
    text = inst.wait_log("(port auto-assigned)")
    assert "the port is not a number; uWSGI reads its leading digits, so it binds port 0" in text
    inst.port = int(re.search(r"address 127\.0\.0\.1:(\d+) \(port auto", text).group(1))
    inst.wait_serving()


# ---- hooks ------------------------------------------------------------------------------------

def test_exec_and_hook_phases_run_in_order(server, tmp_path):
    marks = tmp_path / "marks"
    inst = server("--master", "--exec-asap", f"echo asap >> {marks}",
                  "--hook-asap", f"exec:echo hook-asap >> {marks}",
                  "--exec-pre-app", f"echo pre >> {marks}", "--hook-post-app", f"appendn:{marks} post",
                  "--hook-pre-app", "print:hello from a hook")
    inst.wait_log('running "print:hello from a hook" (pre app)...')
    assert "hello from a hook" in inst.log()
    assert marks.read_text().split() == ["hook-asap", "asap", "pre", "post"]


def test_a_failing_exec_asap_stops_the_start(tmp_path):
    result = run_cli("--http-socket", "127.0.0.1:0", "--exec-asap", "exit 3", cwd=tmp_path)
    assert result.returncode == 1
    assert 'command "exit 3" exited with non-zero code: 3' in result.stderr
    assert "bound to" not in result.stderr


def test_a_failing_hook_pre_app_in_a_master_goes_on_as_in_uwsgi(server):
    inst = server("--master", "--hook-pre-app", "exec:false")
    text = inst.log()
    assert "FATAL hook failed, destroying instance" in text
    assert "a failed hook in a master loading its apps does not stop the instance" in text


def test_an_unknown_hook_action_is_a_one_line_error(tmp_path):
    result = run_cli("--http-socket", "127.0.0.1:0", "--hook-pre-app", "mount:/x /y", cwd=tmp_path)
    assert result.returncode == 1
    assert "--hook-pre-app: 'mount:/x /y' hook action 'mount' is not available" in result.stderr
    assert "Traceback" not in result.stderr


# ---- workers ----------------------------------------------------------------------------------

def test_reload_on_as_recycles_a_worker_above_the_limit(server):
    inst = server("--master", "--reload-on-as", "1", "--min-worker-lifetime", "0")
    text = inst.wait_log("(reload-on-as 1 MB): recycling it")
    assert re.search(r"worker 1 \(pid: \d+\) uses \d+ MB of address space \(reload-on-as 1 MB\)",
                     text)
    inst.wait_log("spawned uWSGI worker 1", count=2)


def test_idle_goes_cheap_and_the_next_connection_wakes_the_workers(server):
    inst = server("--master", "-p", "2", "--idle", "1")
    inst.wait_log("workers have been inactive for more than 1 seconds")
    inst.wait_log("cheap mode enabled: waiting for socket connection...")
    wait_until(lambda: not inst.workers(), 10, what="workers stopped")
    assert inst.get("/mark") == b"v1"        # the connection waits for the new workers
    inst.wait_workers(2)


def test_optimize_runs_the_app_with_python_optimizations(server, apps):
    inst = server("--module", "first", "--optimize", "2", app=False, cwd=apps)
    info = json.loads(inst.get("/"))
    assert info["optimize"] == 2 and info["debug"] is False
    assert "--optimize 2: re-executing the Python interpreter with -OO" in inst.log()


# ---- apps ---------------------------------------------------------------------------------------

def test_vhost_host_picks_the_app_mounted_for_the_host(server, apps):
    inst = server("--vhost-host", "--mount", "one.test|=first:application",
                  "--mount", "two.test|=second:application", app=False, cwd=apps)
    assert json.loads(inst.get("/", headers={"Host": "two.test"}))["name"] == "second"
    assert json.loads(inst.get("/", headers={"Host": "one.test"}))["name"] == "first"
    assert json.loads(inst.get("/", headers={"Host": "other.test"}))["name"] == "first"


def test_collect_and_pull_header_feed_request_variables(server, apps):
    inst = server("--module", "first", "--collect-header", "X-Sendfile SENDFILE",
                  "--pull-header", "X-Secret SECRET",
                  "--logformat", "collected=%(var.SENDFILE) pulled=%(var.SECRET)",
                  app=False, cwd=apps)
    conn = http.client.HTTPConnection("127.0.0.1", inst.port, timeout=5)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        resp.read()
        assert resp.getheader("X-Sendfile") == "/f/first"
        assert resp.getheader("X-Secret") is None
    finally:
        conn.close()
    inst.wait_log("collected=/f/first pulled=s3cret")


def test_a_failing_mount_leaves_the_other_apps_serving(server, apps):
    inst = server("--module", "first", "--mount", "/gone=no_such_module:app", app=False,
                  cwd=apps)
    assert json.loads(inst.get("/"))["name"] == "first"
    text = inst.log()
    assert "ModuleNotFoundError: No module named 'no_such_module'" in text
    assert "unable to load app 1 (mountpoint='/gone') (callable not found or import error)" in text


def test_paste_without_pastedeploy_says_what_is_missing(server, tmp_path):
    try:
        import paste.deploy  # noqa: F401
        pytest.skip("PasteDeploy is installed here")
    except ImportError:
        pass
    inst = server("--paste", "config:/nonexistent/app.ini", app=False)
    status, _ = inst.request("/")
    assert status == 500
    assert "the PasteDeploy package is not installed" in inst.log()


# ---- logging and plugins ----------------------------------------------------------------------------

def test_a_file_logger_in_a_missing_directory_starts_and_logs_once_it_can(server, tmp_path):
    logdir = tmp_path / "logs"
    # stdio too: the fixture reads the bound port from the server's own log
    inst = server("--master", "--logger", f"file:{logdir}/server.log", "--logger", "stdio")
    assert f"--logger: cannot open {logdir}/server.log (No such file or directory)" in inst.log()
    logdir.mkdir()
    inst.get("/mark")
    os.kill(inst.pid, 10)    # SIGUSR1: the stats lines go to the server log
    wait_until(lambda: (logdir / "server.log").exists()
               and (logdir / "server.log").stat().st_size > 0, 10, what="the log file written")


def test_a_plugin_named_by_its_path_is_the_plugin(server):
    inst = server("--plugin", "/usr/lib/uwsgi/plugins/python39_plugin.so")
    assert inst.get("/mark") == b"v1"


def test_refork_goes_on_in_a_child_and_rewrites_the_pidfile(tmp_path):
    import subprocess
    import sys
    from conftest import group_pids
    pidfile = tmp_path / "master.pid"
    log_path = tmp_path / "refork.log"
    (tmp_path / "app.py").write_text(PROBE.format(name="first"))
    with open(log_path, "wb") as logf:
        proc = subprocess.Popen([sys.executable, "-m", "uwsgi_py", "--http-socket", "127.0.0.1:0",
                                 "--module", "app", "--master", "--refork", "--pidfile",
                                 str(pidfile)], stdout=logf, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=tmp_path, start_new_session=True)
    try:
        assert proc.wait(15) == 0                  # the parent leaves at once
        wait_until(lambda: "spawned uWSGI worker 1" in log_path.read_text(), 15,
                   what="the reforked master's worker")
        text = log_path.read_text()
        assert "re-fork()ing..." in text
        pid = int(pidfile.read_text())
        assert pid != proc.pid and f"spawned uWSGI master process (pid: {pid})" in text
        port = int(re.search(r"address 127\.0\.0\.1:(\d+)", text).group(1))
        assert json.loads(raw(port, b"GET / HTTP/1.0\r\n\r\n").split(b"\r\n\r\n", 1)[1])
        os.kill(pid, 2)
        wait_until(lambda: not group_pids(proc.pid), 15, what="the instance to stop")
    finally:
        try:
            os.killpg(proc.pid, 9)
        except ProcessLookupError:
            pass


CACHE_APP = """\
import os
import time
import uwsgi

def application(environ, start_response):
    path = environ["PATH_INFO"]
    key = environ.get("QUERY_STRING", "k")
    if path == "/hold":     # set, then keep this worker busy: the next request goes elsewhere
        out = uwsgi.cache_update(key, ("from %d" % os.getpid()).encode())
        os.write(2, b"held\\n")
        time.sleep(3)
    elif path == "/set":
        out = uwsgi.cache_update(key, ("from %d" % os.getpid()).encode())
    elif path == "/get":
        out = uwsgi.cache_get(key)
    elif path == "/del":
        out = uwsgi.cache_del(key)
    else:
        out = uwsgi.cache_set(key, b"x", 0, "other")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [repr((out, os.getpid())).encode()]
"""


def test_cache2_is_shared_by_the_workers(server, tmp_path):
    (tmp_path / "cacheapp.py").write_text(CACHE_APP)
    inst = server("--master", "-p", "2", "--module", "cacheapp",
                  "--cache2", "name=sessions,items=10", "--cache2", "name=other,items=2",
                  app=False)
    holder = threading.Thread(target=inst.get, args=("/hold?session1",))
    holder.start()
    try:
        inst.wait_log("held", timeout=10)
        value, pid = eval(inst.get("/get?session1"))     # the other worker answers
        assert value.startswith(b"from ") and int(value[5:]) != pid
    finally:
        holder.join(10)
    assert eval(inst.get("/other?a"))[0] is True
    assert eval(inst.get("/other?a"))[0] is None        # cache_set does not replace
    assert eval(inst.get("/del?session1"))[0] is True
    assert eval(inst.get("/get?session1"))[0] is None
