"""Core server: both protocols, HTTP/1.1 details, workers, respawn, no orphans, config errors."""
import json
import os
import signal
import socket
import textwrap
import time

import pytest

from conftest import children_of, group_pids, pid_alive, run_cli, wait_until
from uwsgi_py.proto import pack_uwsgi

pytestmark = pytest.mark.timeout(60)


def raw_http(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def uwsgi_port(inst) -> int:
    text = inst.wait_log("(port auto-assigned)")
    import re
    ports = re.findall(r"bound to TCP address 127\.0\.0\.1:(\d+) \(port auto-assigned\)", text)
    return int(ports[-1])


def test_http_and_uwsgi_protocols_side_by_side(server):
    inst = server("--master", "-p", "2", "--socket", "127.0.0.1:0")
    assert inst.get("/") == b"hello\n"
    up = uwsgi_port(inst)
    env = {"REQUEST_METHOD": "GET", "PATH_INFO": "/pid", "SERVER_PROTOCOL": "HTTP/1.1",
           "QUERY_STRING": "", "SERVER_NAME": "x", "SERVER_PORT": "80", "REMOTE_ADDR": "1.2.3.4"}
    reply = raw_http(up, pack_uwsgi(env))
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n")
    assert int(reply.split(b"\r\n\r\n", 1)[1]) in inst.workers()
    # HTTP spoken to the uwsgi socket: refused with a log line, master unharmed (PROTO-2)
    assert raw_http(up, b"GET / HTTP/1.1\r\n\r\n") == b""
    inst.wait_log("invalid request block size: 21573 (max 4096)...skip")
    assert inst.get("/") == b"hello\n"


def test_http11_details(server):
    inst = server("--master", "--http-keepalive")
    # chunked request body
    body = b"4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n"
    reply = raw_http(inst.port, b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
                                b"Connection: close\r\n\r\n" + body)
    assert reply.endswith(b"\r\n\r\nabcdefg"), reply
    # Expect: 100-continue
    with socket.create_connection(("127.0.0.1", inst.port), timeout=5) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n"
                  b"Connection: close\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(b"hello")
        rest = b""
        while chunk := s.recv(4096):
            rest += chunk
        assert rest.endswith(b"hello") and b"200 OK" in rest
    # HEAD: headers only
    reply = raw_http(inst.port, b"HEAD / HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200 OK") and reply.endswith(b"\r\n\r\n")
    assert b"Content-Length: 6" in reply
    # keep-alive: two requests (pipelined) on one connection
    with socket.create_connection(("127.0.0.1", inst.port), timeout=5) as s:
        s.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\nGET /pid HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        deadline = time.monotonic() + 5
        while data.count(b"HTTP/1.1 200 OK") < 2 and time.monotonic() < deadline:
            data += s.recv(4096)
        assert data.count(b"HTTP/1.1 200 OK") == 2
    # a malformed request gets a 400 and a log line; the server keeps serving
    reply = raw_http(inst.port, b"NOT A REQUEST\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400 Bad Request")
    inst.wait_log("bad request from 127.0.0.1: ")
    assert inst.get("/") == b"hello\n"


def test_no_keepalive_by_default(server):
    inst = server("--master")
    reply = raw_http(inst.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"Connection: close" in reply and reply.endswith(b"hello\n")


def test_app_exception_gives_500_and_next_request_succeeds(server):
    inst = server("--master", "-p", "1")
    status, body = inst.request("/boom")
    assert status == 500
    inst.wait_log("RuntimeError: boom from the test app")
    assert inst.get("/") == b"hello\n"


SPLIT_APP = textwrap.dedent('''
    def application(env, start_response):
        kind = env["PATH_INFO"]
        if kind == "/value":
            headers = [("X-A", "1\\r\\nSet-Cookie: evil=1")]
        elif kind == "/lf":
            headers = [("X-A", "1\\nSet-Cookie: evil=1")]
        elif kind == "/name":
            headers = [("X-A: 1\\r\\nSet-Cookie", "evil=1")]
        elif kind == "/int":
            headers = [("X-A", 1)]
        else:
            headers = [("X-A", "fine")]
        start_response("200 OK", headers)
        return [b"body"]
''')


@pytest.mark.parametrize("path", ["/value", "/lf", "/name", "/int"])
def test_a_header_that_would_split_the_response_is_a_500(server, tmp_path, path):
    """A CR or LF in a response header (response splitting) or a non-str value: 500, logged,
    and nothing of the app's headers or body reaches the client; the worker serves on."""
    (tmp_path / "split.py").write_text(SPLIT_APP)
    inst = server("--wsgi-file", "split.py", app=False)
    inst.wait_log("spawned uWSGI worker")
    status, body = inst.request(path)
    assert status == 500 and b"evil" not in body and b"body" not in body
    assert "evil" not in inst.request(path)[1].decode()
    wait_until(lambda: inst.count("Traceback") >= 2, what="the two errors logged")
    assert inst.request("/ok") == (200, b"body")


def test_worker_killed_is_respawned_while_serving_continues(server):
    inst = server("--master", "-p", "2")
    w1, w2 = inst.wait_workers(2)
    os.kill(w1, signal.SIGKILL)
    inst.wait_log(f"DAMN ! worker 1 (pid: {w1}) died, killed by signal 9 :( trying respawn ...")
    inst.wait_log("Respawned uWSGI worker 1 (new pid:")
    new = inst.wait_workers(2, exclude=(w1,))
    assert w2 in new
    for _ in range(10):
        assert inst.get("/") == b"hello\n"


def test_master_sigkill_leaves_no_worker(server):
    inst = server("--master", "-p", "3")
    workers = inst.wait_workers(3)
    os.kill(inst.pid, signal.SIGKILL)
    inst.wait_exit()
    wait_until(lambda: not any(pid_alive(w) for w in workers), 10, what="workers to exit")
    assert not group_pids(inst.pgid)


@pytest.mark.parametrize("argv,content,expected", [
    (["bad.toml"], '[uwsgi]\nprocesses = "four"\n',
     "--processes: 'four' is not a positive integer (bad.toml)"),
    (["--strict", "--ini", "bad.ini"], "[uwsgi]\nprocesess = 2\n",
     "unknown option 'procesess' (bad.ini line 2); did you mean --processes? (strict mode)"),
    (["--procesess", "2"], None, "unknown option --procesess (command line); did you mean --processes?"),
])
def test_config_errors_one_line_exit_1(tmp_path, argv, content, expected):
    if content is not None:
        (tmp_path / argv[-1]).write_text(content)
    r = run_cli(*argv, cwd=tmp_path)
    assert r.returncode == 1
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert lines == [f"uwsgi-py: error: {expected}"], r.stderr
    assert "Traceback" not in r.stderr + r.stdout


def test_env_variable_option_and_precedence(server, tmp_path):
    (tmp_path / "a.toml").write_text('[uwsgi]\nmaster = true\nprocesses = 3\nenv = ["X=from-toml"]\n')
    inst = server("a.toml", "--processes", "2", env={"UWSGI_PROCESSES": "4", "UWSGI_ENV": "Y=1"})
    info = json.loads(inst.get("/info"))
    assert info["numproc"] == 2
    assert info["env_x"] == "from-toml"
    assert info["opt"]["env"] == ["X=from-toml", "Y=1"]
    assert info["opt"]["master"] is True
    assert info["leaked"] == []


def test_ini_config_file(server, tmp_path):
    (tmp_path / "a.ini").write_text("[uwsgi]\nmaster = true\nprocesses = 2\nenv = X=1\nenv = X=2\n")
    inst = server("--ini", "a.ini")
    info = json.loads(inst.get("/info"))
    assert info["numproc"] == 2 and info["env_x"] == "2"
    assert len(inst.wait_workers(2)) == 2


def test_need_app_exits_22(tmp_path):
    r = run_cli("--master", "--http-socket", "127.0.0.1:0", "--wsgi-file", "missing.py", "--need-app",
                cwd=tmp_path)
    assert r.returncode == 22
    assert "*** no app loaded. GAME OVER ***" in r.stderr


def test_no_app_serves_500(server):
    inst = server("--master", app=False)
    inst.wait_log("*** no app loaded. going in full dynamic mode ***")
    status, _ = inst.request("/")
    assert status == 500
    inst.wait_log("--- no python application found, check your startup logs for errors ---")


def test_lazy_apps_load_in_each_worker(server, tmp_path):
    (tmp_path / "lazy.py").write_text(textwrap.dedent("""
        import os
        LOADED_IN = os.getpid()
        def application(env, sr):
            sr("200 OK", [])
            return [str(LOADED_IN == os.getpid()).encode()]
    """))
    inst = server("--master", "-p", "2", "--lazy-apps", "--wsgi-file", "lazy.py", app=False)
    inst.wait_serving()
    assert inst.get("/") == b"True"


def test_without_master_the_process_serves_alone(server):
    inst = server("-p", "1")
    inst.wait_log("*** WARNING: you are running uWSGI without its master process manager ***")
    inst.wait_log(f"spawned uWSGI worker 1 (and the only) (pid: {inst.pid}, cores: 1)")
    assert int(inst.get("/pid")) == inst.pid
    info = json.loads(inst.get("/info"))
    assert info["masterpid"] == 0
    inst.signal(signal.SIGHUP)  # SIG-9: HUP ends a master-less instance
    assert inst.wait_exit() in (17, 30)


def test_unix_socket_with_chmod(server, tmp_path):
    path = tmp_path / "app.sock"
    inst = server("--master", "--socket", str(path), "--chmod-socket", "660", "--vacuum", http=False)
    inst.wait_log(f"uwsgi socket 0 bound to UNIX address {path} fd")
    assert oct(os.stat(path).st_mode & 0o777) == "0o660"
    env = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "SERVER_PROTOCOL": "HTTP/1.0"}
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(path))
        s.sendall(pack_uwsgi(env))
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    assert data.startswith(b"HTTP/1.0 200 OK") and data.endswith(b"hello\n")
    inst.signal(signal.SIGINT)
    assert inst.wait_exit() == 0
    assert not path.exists()
    assert f"VACUUM: unix socket {path} removed." in inst.log()


def test_wsgiref_validator_passes(server, tmp_path):
    (tmp_path / "validated.py").write_text(textwrap.dedent("""
        from wsgiref.validate import validator
        def app(environ, start_response):
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.errors"].write("validated request\\n")
            write = start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok:", body]
        def streaming(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            yield b"a"
            yield b"b"
        def router(environ, start_response):
            target = streaming if environ["PATH_INFO"] == "/stream" else app
            return target(environ, start_response)
        application = validator(router)
    """))
    inst = server("--master", "--wsgi-file", "validated.py", app=False)
    inst.wait_serving()
    assert inst.get("/", method="POST", body=b"xyz") == b"ok:xyz"
    assert inst.get("/stream") == b"ab"
    inst.wait_log("validated request")
    assert "AssertionError" not in inst.log()


def test_write_callable_close_and_file_wrapper(server, tmp_path):
    (tmp_path / "data.bin").write_bytes(bytes(range(256)) * 4000)
    (tmp_path / "features.py").write_text(textwrap.dedent("""
        import os
        CLOSED = []
        class Body:
            def __iter__(self):
                yield b"iter"
            def close(self):
                CLOSED.append(1)
        def application(environ, start_response):
            path = environ["PATH_INFO"]
            if path == "/write":
                write = start_response("200 OK", [("Content-Type", "text/plain")])
                write(b"from-write;")
                return [b"from-iter"]
            if path == "/file":
                start_response("200 OK", [("Content-Length", str(os.path.getsize("data.bin")))])
                return environ["wsgi.file_wrapper"](open("data.bin", "rb"), 8192)
            if path == "/closed":
                start_response("200 OK", [])
                return [str(len(CLOSED)).encode()]
            start_response("200 OK", [])
            return Body()
    """))
    inst = server("--master", "-p", "1", "--wsgi-file", "features.py", app=False)
    inst.wait_serving()
    assert inst.get("/write") == b"from-write;from-iter"
    assert inst.get("/file") == (tmp_path / "data.bin").read_bytes()
    assert inst.get("/iter") == b"iter"
    assert int(inst.get("/closed")) >= 2


def test_flask_app(server, tmp_path):
    pytest.importorskip("flask")
    (tmp_path / "flaskapp.py").write_text(textwrap.dedent("""
        from flask import Flask, request, jsonify
        app = Flask(__name__)
        @app.route("/hello/<name>")
        def hello(name):
            return f"hello {name}"
        @app.route("/json", methods=["POST"])
        def js():
            return jsonify(got=request.get_json())
    """))
    inst = server("--master", "-p", "2", "--module", "flaskapp:app", app=False)
    inst.wait_log("spawned uWSGI worker 2")
    wait_until(lambda: inst.request("/hello/x")[0] == 200, 10, what="flask")
    assert inst.get("/hello/world") == b"hello world"
    body = inst.get("/json", method="POST", body=b'{"a": 1}',
                    headers={"Content-Type": "application/json"})
    assert json.loads(body) == {"got": {"a": 1}}
    assert inst.request("/nope")[0] == 404


def test_request_log_line_and_disable_logging(server):
    inst = server("--master")
    inst.get("/pid")
    inst.wait_log("GET /pid => generated")
    quiet = server("--master", "--disable-logging", name="quiet")
    quiet.get("/pid")
    assert "GET /pid => generated" not in quiet.log()


def test_logto_file(server, tmp_path):
    logfile = tmp_path / "server.log"
    inst = server("--master", "--logto", str(logfile), wait=False)
    wait_until(lambda: logfile.exists() and "spawned uWSGI worker 1" in logfile.read_text(), 10,
               what="the log file")
    import re
    port = int(re.search(r"bound to TCP address 127\.0\.0\.1:(\d+)", logfile.read_text()).group(1))
    inst.port = port
    inst.wait_serving()
    assert inst.log() == ""


def test_socket_options_declared_from_app_dir(server):
    # uwsgi.opt, numproc and worker ids as an app sees them
    inst = server("--master", "-p", "2", "--env", "X=1", "--env", "Y=2")
    info = json.loads(inst.get("/info"))
    assert info["opt"]["env"] == ["X=1", "Y=2"]
    assert info["opt"]["processes"] == "2"
    assert info["worker_id"] in (1, 2)
    assert info["masterpid"] == inst.pid
    assert info["version"] == "2.0.31"
    assert inst.pid not in children_of(inst.pid)


def test_callable_exc_info_and_unbuilt_api(server, tmp_path):
    (tmp_path / "extra.py").write_text(textwrap.dedent("""
        import sys
        import uwsgi
        def app(environ, start_response):
            path = environ["PATH_INFO"]
            if path == "/exc":
                start_response("200 OK", [("Content-Type", "text/plain")])
                try:
                    raise ValueError("late")
                except ValueError:
                    start_response("503 Service Unavailable", [("Content-Type", "text/plain")],
                                   sys.exc_info())
                return [b"replaced"]
            if path == "/stub":
                try:
                    uwsgi.cache_get("x")
                except NotImplementedError as e:
                    start_response("200 OK", [])
                    return [str(e).encode()]
            start_response("200 OK", [])
            return [b"named callable"]
    """))
    inst = server("--master", "--wsgi-file", "extra.py", "--callable", "app", app=False)
    inst.wait_serving()
    assert inst.get("/") == b"named callable"
    assert inst.request("/exc") == (503, b"replaced")
    assert b"uwsgi.cache_get() is not available in uwsgi-py" in inst.get("/stub")


def test_all_interfaces_address(server):
    inst = server("--master", "--http-socket", ":0", http=False)
    import re
    port = int(re.search(r"bound to TCP address 0\.0\.0\.0:(\d+)", inst.wait_log("bound to")).group(1))
    inst.port = port
    inst.wait_serving()
