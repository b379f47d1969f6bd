"""The ruby bridge (issue 6): Rack apps served by a Ruby child of each worker.

The apps in tests/apps/*.ru run under Rack::Lint, so a 200 also means the env
we built and the response we consumed passed the installed Rack's SPEC.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import APPS, children_of, pid_alive, require_tool, wait_until

pytestmark = pytest.mark.timeout(60)

RELOAD_OUTCOME = "reload outcome:"
UWSGI_PORT_RE = re.compile(r"bound to TCP address 127\.0\.0\.1:(\d+) \(port auto-assigned\)")


@pytest.fixture
def ruby():
    return require_tool("ruby")


def start_rack(server, tmp_path: Path, *args: str, ru: str = "rack_app.ru", wait: bool = True, **kw):
    shutil.copy(APPS / ru, tmp_path / ru)
    inst = server("--rack", ru, *args, app=False, **kw)
    if wait:
        inst.wait_serving()
    return inst


def ruby_child(worker_pid: int) -> int:
    """The worker's Ruby child (its only child process)."""
    return wait_until(lambda: (children_of(worker_pid) or [None])[0], 15, what="the ruby child")


def raw_request(port: int, request: bytes, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.sendall(request)
    return sock


def read_until(sock: socket.socket, needle: bytes) -> bytes:
    data = b""
    while needle not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def test_ruby_codec_round_trips_python_values(ruby):
    import uwsgi_py_ruby_bridge
    from uwsgi_py_ruby_bridge import wire
    script = ("require ARGV[0]; $stdin.binmode; $stdout.binmode; "
              "$stdout.write(UWSGIBridge::Value.pack(UWSGIBridge::Value.unpack($stdin.read)))")
    value = {b"int": [0, -1, 2**62, -(2**62)], b"flags": [True, False, None],
             b"bin": b"\x00\xff\r\n", b"text": "h\u00e9llo".encode(), b"nested": {b"a": [[], {}]}}
    wire_rb = str(Path(uwsgi_py_ruby_bridge.__file__).with_name("wire.rb"))
    out = subprocess.run([ruby, "-e", script, wire_rb], input=bytes(wire.pack(value)),
                         capture_output=True, timeout=30, check=True).stdout
    assert wire.unpack(out) == value


# ---- Rack compliance over --http-socket ---------------------------------------------------

def test_lint_app_env_input_and_headers(ruby, server, tmp_path):
    inst = start_rack(server, tmp_path, "--master", "-p", "2")
    assert inst.get("/") == b"hello from rack\n"

    env = json.loads(inst.get("/env?a=1&b=2", headers={"X-Test": "yes"}))
    assert env["REQUEST_METHOD"] == "GET"
    assert env["PATH_INFO"] == "/env" and env["SCRIPT_NAME"] == ""
    assert env["QUERY_STRING"] == "a=1&b=2"
    assert env["SERVER_PORT"] == str(inst.port) and env["SERVER_NAME"]
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["HTTP_X_TEST"] == "yes"
    assert env["rack.url_scheme"] == "http"
    assert env["rack.version"] == [1, 3]
    assert env["rack.multiprocess"] is True and env["rack.multithread"] is False
    assert env["rack.run_once"] is False and env["rack.hijack?"] is False
    assert env["CONTENT_LENGTH"] is None and env["CONTENT_TYPE"] is None

    body = b"line one\nline two\nlast"
    status, data = inst.request("/echo", method="POST", body=body,
                                headers={"Content-Type": "text/plain"})
    assert status == 200, data
    echo = json.loads(data)
    assert echo["body"] == body.decode()
    assert echo["eof"] is None and echo["eof_all"] == ""
    assert echo["lines"] == ["line one\n", "line two\n", "last"]
    assert echo["head"] == "lin" and echo["rest"] == body.decode()[3:]
    assert echo["gets"] == "line one\n" and echo["buffer"] == "line"

    # a chunked request body reaches rack.input too (its length is unknown up front)
    sock = raw_request(inst.port, b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                                  b"Connection: close\r\n\r\n5\r\nhello\r\n7\r\n world\n\r\n0\r\n\r\n")
    reply = read_all(sock)
    sock.close()
    assert b" 200 " in reply.split(b"\r\n", 1)[0], reply
    assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["lines"] == ["hello world\n"]

    # a 2 MB body spills rack.input to a temp file and still rewinds
    big = b"x" * (2 << 20)
    status, data = inst.request("/echo", method="POST", body=big)
    assert status == 200 and json.loads(data)["head"] == "xxx"
    assert len(json.loads(data)["body"]) == len(big)

    # Rack 2 multi-line header values become repeated headers
    sock = raw_request(inst.port, b"GET /cookies HTTP/1.0\r\n\r\n")
    head = read_all(sock).split(b"\r\n\r\n", 1)[0] + b"\r\n"
    sock.close()
    assert b"\r\nSet-Cookie: a=1\r\n" in head and b"\r\nSet-Cookie: b=2\r\n" in head

    status, data = inst.request("/", method="HEAD")
    assert status == 200 and data == b""
    assert inst.request("/nowhere")[0] == 404
    inst.wait_log("HEAD / => generated 0 bytes")
    inst.wait_log("GET /nowhere =>")
    assert "Traceback" not in inst.log(), "every request above passed Rack::Lint"


def test_streaming_body_is_not_buffered_and_closed(ruby, server, tmp_path):
    inst = start_rack(server, tmp_path, "--master", "-p", "1")
    release = tmp_path / "release"
    sock = raw_request(inst.port, f"GET /stream?{release} HTTP/1.0\r\n\r\n".encode())
    first = read_until(sock, b"first chunk\n")
    # the first chunk is on the wire while the body still waits to yield the second
    assert b"first chunk\n" in first and b"second" not in first
    release.write_text("go")
    rest = first + read_all(sock)
    sock.close()
    assert rest.endswith(b"first chunk\nsecond chunk\n"), rest
    inst.wait_log("stream body closed")


def test_client_leaving_stops_an_endless_body(ruby, server, tmp_path):
    inst = start_rack(server, tmp_path, "--master", "-p", "1")
    worker = inst.wait_workers(1)[0]
    child = ruby_child(worker)
    sock = raw_request(inst.port, b"GET /endless HTTP/1.0\r\n\r\n")
    assert b"tick 2\n" in read_until(sock, b"tick 2\n")
    sock.close()
    # the worker's write fails, it sends ABORT, Ruby stops iterating and closes the body
    inst.wait_log("endless body closed")
    assert inst.get("/") == b"hello from rack\n"
    assert ruby_child(worker) == child, "the same Ruby child, still in step with its worker"


def test_rack_errors_go_to_the_log(ruby, server, tmp_path):
    inst = start_rack(server, tmp_path, "-p", "2")   # no master
    assert inst.get("/errors") == b"logged\n"
    inst.wait_log("rack.errors line from the app\n")
    inst.wait_log("rack.errors write from the app\n")
    api = json.loads(inst.get("/api"))
    assert api["masterpid"] == 0 and api["worker_id"] in (1, 2)
    assert api["opt"].get("master") is None


def test_bridge_validates_responses_and_sends_files(ruby, server, tmp_path):
    inst = start_rack(server, tmp_path, "-p", "1")
    status, _ = inst.request("/raw/bad-header")
    assert status == 500
    inst.wait_log("invalid character in header X-Bad")
    assert inst.request("/raw/bad-status")[0] == 500
    inst.wait_log("response status 42 is not between 100 and 999")
    assert inst.request("/raw/bad-length")[0] == 500
    inst.wait_log('invalid Content-Length "many"')
    sock = raw_request(inst.port, b"GET /raw/arrays HTTP/1.0\r\n\r\n")
    head = read_all(sock).split(b"\r\n\r\n", 1)[0] + b"\r\n"
    sock.close()
    assert b"\r\nx-multi: one\r\n" in head and b"\r\nx-multi: two\r\n" in head
    # Rack::Files' body has to_path: the worker sends the file itself
    assert inst.get("/raw/files/rack_app.ru") == (tmp_path / "rack_app.ru").read_bytes()
    assert inst.get("/") == b"hello from rack\n"


# ---- errors ---------------------------------------------------------------------------------

def test_ruby_exception_is_500_with_backtrace_then_200(ruby, server, tmp_path):
    inst = start_rack(server, tmp_path, "--master", "-p", "1")
    worker = inst.wait_workers(1)[0]
    child = ruby_child(worker)
    status, _ = inst.request("/raise")
    assert status == 500
    log = inst.wait_log("ArgumentError: boom from ruby")
    assert re.search(r"rack_app\.ru:\d+:in", log), "the Ruby backtrace is in the log"
    assert inst.get("/") == b"hello from rack\n"
    # an exception after the first chunk was sent: the response is cut, nothing else
    sock = raw_request(inst.port, b"GET /raise-late HTTP/1.0\r\n\r\n")
    assert read_all(sock).endswith(b"partial\n")
    sock.close()
    inst.wait_log("late boom from ruby")
    assert inst.get("/") == b"hello from rack\n"
    assert inst.workers() == [worker] and ruby_child(worker) == child


def test_killed_ruby_child_is_replaced(ruby, server, tmp_path):
    inst = start_rack(server, tmp_path, "--master", "-p", "1")
    worker = inst.wait_workers(1)[0]
    child = ruby_child(worker)
    os.kill(child, signal.SIGKILL)
    wait_until(lambda: not pid_alive(child), 10, what="the ruby child to die")
    assert inst.get("/") == b"hello from rack\n"
    inst.wait_log(f"ruby child (pid: {child}) of worker 1 died (killed by signal 9 (SIGKILL))")
    second = ruby_child(worker)
    assert second != child

    # a child that dies in the middle of a request: 500, then a fresh child serves
    assert inst.request("/crash")[0] == 500
    assert inst.get("/") == b"hello from rack\n"
    third = ruby_child(worker)
    assert third not in (child, second)
    assert inst.workers() == [worker], "the worker itself survived"


def test_hung_ruby_child_is_killed_at_harakiri(ruby, server, tmp_path):
    inst = start_rack(server, tmp_path, "--master", "-p", "1", "--harakiri", "2")
    worker = inst.wait_workers(1)[0]
    child = ruby_child(worker)
    started = time.monotonic()
    status, _ = inst.request("/hang", timeout=15)
    assert status == 500
    assert time.monotonic() - started < 5
    inst.wait_log(f"HARAKIRI: ruby child (pid: {child}) of worker 1")
    assert not pid_alive(child)
    assert inst.get("/") == b"hello from rack\n"
    assert inst.workers() == [worker]


# ---- the UWSGI module --------------------------------------------------------------------

def test_uwsgi_module(ruby, server, tmp_path):
    pidfile = tmp_path / "master.pid"
    inst = start_rack(server, tmp_path, "--master", "-p", "1", "--env", "A=1", "--env", "B=2",
                      "--pidfile", str(pidfile))
    worker = inst.wait_workers(1)[0]
    api = json.loads(inst.get("/api"))
    assert api["masterpid"] == inst.pid
    assert api["worker_id"] == 1
    assert api["pid"] == ruby_child(worker)
    rss, vsz = api["mem"]
    assert 0 < rss <= vsz
    assert api["log"] is None
    inst.wait_log("UWSGI.log says hello\n")
    opt = api["opt"]
    assert opt["env"] == ["A=1", "B=2"]            # repeated: an Array (RBAPI-2)
    assert opt["rack"] == "rack_app.ru"            # once: a String
    assert opt["master"] is True and opt["processes"] == "1"
    assert api["version"] == "2.0.31"
    assert api["hostname"] == socket.gethostname()
    assert api["numproc"] == 1
    assert api["pidfile"] == str(pidfile)
    assert api["responds_to_reload"] is True
    assert "UWSGI.signal is not available" in api["not_built"]
    assert "wrong number of arguments (given 1, expected 0)" in api["arity"]
    # request_id counts this worker's finished requests
    again = json.loads(inst.get("/api"))
    assert again["request_id"] == api["request_id"] + 1


def test_logvars_from_ruby(ruby, server, tmp_path):
    # an extension: uWSGI's Rack plugin has no set_logvar; the same as Python's uwsgi.set_logvar
    inst = start_rack(server, tmp_path, "--log-format", "%(method) %(uri) user=%(user_id)")
    assert inst.get("/logvar") == b'["rb42", nil]'
    inst.get("/")
    inst.wait_log("GET / user=-\n")
    assert "GET /logvar user=rb42\n" in inst.log()


def test_uwsgi_reload_from_ruby(ruby, server, tmp_path):
    inst = start_rack(server, tmp_path, "--master", "-p", "2")
    before = inst.wait_workers(2)
    assert inst.get("/reload") == b"true"
    inst.wait_log(RELOAD_OUTCOME)
    after = inst.wait_workers(2, exclude=before)
    assert set(after).isdisjoint(before)
    assert inst.proc.poll() is None and json.loads(inst.get("/api"))["masterpid"] == inst.pid
    assert inst.get("/") == b"hello from rack\n"


def test_uwsgi_stop_from_ruby(ruby, server, tmp_path):
    inst = start_rack(server, tmp_path, "--master", "-p", "1")
    try:
        inst.request("/stop", timeout=5)
    except OSError:
        pass  # the response may be cut by the shutdown
    inst.wait_exit(15)


def test_graceful_reload_waits_for_inflight_ruby_request(ruby, server, tmp_path):
    inst = start_rack(server, tmp_path, "--master", "-p", "1")
    before = inst.wait_workers(1)
    mark = tmp_path / "slow-started"
    result = {}
    client = threading.Thread(target=lambda: result.update(r=inst.request(f"/slow?{mark}", timeout=20)))
    client.start()
    wait_until(mark.exists, 10, what="the slow request to start")
    inst.signal(signal.SIGHUP)
    client.join(20)
    status, body = result["r"]
    assert status == 200 and body.startswith(b"slow done")
    inst.wait_log(RELOAD_OUTCOME)
    inst.wait_workers(1, exclude=before)
    assert inst.get("/") == b"hello from rack\n"


# ---- through nginx: uwsgi_pass with uwsgi_modifier1 7 ---------------------------------------

# Debian's uwsgi_params sends PATH_INFO=$document_uri; the later uwsgi_param wins
RACK_LOCATION = """\
        location ~ ^/rack(?<rack_path>/.*)$ {
            include /etc/nginx/uwsgi_params;
            uwsgi_param SCRIPT_NAME /rack;
            uwsgi_param PATH_INFO $rack_path;
            uwsgi_modifier1 7;
            uwsgi_pass 127.0.0.1:%d;
        }
"""


def test_through_nginx_with_uwsgi_modifier1_7(ruby, server, nginx, tmp_path):
    shutil.copy(APPS / "rack_app.ru", tmp_path / "rack_app.ru")
    # both a WSGI app (modifier1 0) and the Rack app (modifier1 7) behind one uwsgi socket
    inst = server("--socket", "127.0.0.1:0", "--rack", "rack_app.ru", "--master", "-p", "2",
                  http=False)
    upstream = int(UWSGI_PORT_RE.search(inst.wait_log("port auto-assigned")).group(1))
    inst.port = nginx(upstream, RACK_LOCATION % upstream)
    wait_until(lambda: inst.request("/rack/", timeout=5)[0] == 200, 15, what="nginx -> rack")
    assert inst.get("/rack/") == b"hello from rack\n"
    assert inst.get("/python") == b"hello\n"          # modifier1 0 still reaches WSGI

    env = json.loads(inst.get("/rack/env?x=1", headers={"X-Test": "via-nginx"}))
    assert env["SCRIPT_NAME"] == "/rack" and env["PATH_INFO"] == "/env"
    assert env["QUERY_STRING"] == "x=1" and env["HTTP_X_TEST"] == "via-nginx"
    assert env["SERVER_PORT"] == str(inst.port) and env["rack.url_scheme"] == "http"
    assert env["CONTENT_LENGTH"] is None      # nginx sends it empty: left out, as Lint wants
    assert env["SERVER_NAME"] == socket.gethostname()  # nginx's $server_name is empty here

    status, data = inst.request("/rack/echo", method="POST", body=b"through\nnginx",
                                headers={"Content-Type": "text/plain"})
    assert status == 200 and json.loads(data)["lines"] == ["through\n", "nginx"]
    assert inst.request("/rack/raise")[0] == 500
    assert inst.get("/rack/") == b"hello from rack\n"
    assert inst.count("GET /rack/env?x=1") == 1


# ---- loading ---------------------------------------------------------------------------------

def test_broken_config_ru_fails_load_and_reload_check(ruby, server, tmp_path):
    (tmp_path / "broken.ru").write_text("run ->(env) { [200, {}, ['x']] \n")  # missing brace
    inst = server("--master", "-p", "1", "--rack", "broken.ru", "--need-app", app=False, wait=False)
    assert inst.wait_exit(30) == 22
    assert "broken.ru failed to load: SyntaxError" in inst.log()

    inst = start_rack(server, tmp_path, "--master", "-p", "1")
    before = inst.wait_workers(1)
    (tmp_path / "rack_app.ru").write_text("require 'no/such/library'\n")
    inst.signal(signal.SIGHUP)
    inst.wait_log("RELOAD REFUSED")
    assert "LoadError" in inst.log()
    assert inst.workers() == before
    assert inst.get("/") == b"hello from rack\n"


def test_lazy_apps_and_ini_config(ruby, server, tmp_path):
    shutil.copy(APPS / "rack_app.ru", tmp_path / "rack_app.ru")
    (tmp_path / "rack.ini").write_text("[uwsgi]\nrack = rack_app.ru\nmaster = true\nprocesses = 2\n"
                                       "lazy-apps = true\n")
    inst = server("rack.ini", app=False)
    inst.wait_serving()
    assert inst.get("/") == b"hello from rack\n"
    assert json.loads(inst.get("/api"))["opt"]["lazy-apps"] is True


def test_rb_lib_and_rb_require(ruby, server, tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "greeting.rb").write_text('GREETING = "hello from rb-lib".freeze\n')
    (tmp_path / "uses_lib.ru").write_text(
        'run ->(env) { [200, { "Content-Type" => "text/plain" }, [GREETING]] }\n')
    inst = server("--rack", "uses_lib.ru", "--rb-lib", "lib", "--rb-require", "greeting", "-p", "1",
                  app=False)
    inst.wait_serving()
    assert inst.get("/") == b"hello from rb-lib"


# ---- real Rack apps -----------------------------------------------------------------------

def test_rack_builder_app_with_middleware(ruby, server, tmp_path):
    inst = start_rack(server, tmp_path, "--master", "-p", "1", ru="rack_builder.ru", wait=False)
    inst.wait_log("is ready")
    sock = raw_request(inst.port, b"GET /greet?name=rack HTTP/1.0\r\n\r\n")
    reply = read_all(sock)
    sock.close()
    head, body = reply.split(b"\r\n\r\n", 1)
    head += b"\r\n"
    assert body == b"hello, rack\n"
    assert b"\r\nX-Middleware: yes\r\n" in head
    assert b"\r\nContent-Length: 12\r\n" in head      # Rack::ContentLength
    assert b"\r\nX-Runtime: " in head                  # Rack::Runtime
    status, data = inst.request("/admin/stats")
    assert status == 200 and json.loads(data) == {"script_name": "/admin", "path_info": "/stats"}
    status, data = inst.request("/missing")
    assert status == 404


def test_sinatra_app(ruby, server, tmp_path):
    if subprocess.run([ruby, "-e", "require 'sinatra/base'"], capture_output=True).returncode:
        if os.environ.get("CI") == "true":
            pytest.fail("ruby-sinatra is required in CI (.ci/run installs it)")
        pytest.skip("ruby-sinatra is not installed")
    inst = start_rack(server, tmp_path, "--master", "-p", "1", ru="rack_sinatra.ru", wait=False)
    inst.wait_log("is ready")
    assert inst.get("/hello/sinatra") == b"Hello, sinatra! (worker 1)"
    status, data = inst.request("/echo", method="POST", body=b"posted")
    assert status == 200 and data == b"posted"
    assert inst.request("/nope")[0] == 404
