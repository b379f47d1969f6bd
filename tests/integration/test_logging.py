"""Request logging and loggers (the logging plugin; docs/logging.md), against the real server.

Expected request lines are derived from what real uWSGI 2.0.31 printed here for the same
format and request (``uwsgi --master --http-socket 127.0.0.1:0 --wsgi-file app.py
--log-format ...``, see each test); values that depend on the response head (``hsize``,
``size``, ``headers``) differ by design: uwsgi-py adds Content-Length and Connection:
close to an HTTP response, uWSGI's plain --http-socket adds nothing.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import stat
from pathlib import Path

import pytest

from conftest import APPS, run_cli, wait_until

pytestmark = pytest.mark.timeout(90)


def start(server, tmp_path, *args, **kw):
    shutil.copy(APPS / "logging_app.py", tmp_path / "logging_app.py")
    inst = server("--wsgi-file", "logging_app.py", *args, app=False, **kw)
    wait_until(lambda: _get(inst, "/")[0] == 200, 15, what="the server to answer")
    return inst


def _get(inst, path, headers=None, method="GET", body=None):
    conn = http.client.HTTPConnection("127.0.0.1", inst.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    except OSError:
        return 0, b""
    finally:
        conn.close()


def lines_of(path: Path, needle: str) -> list[str]:
    if not path.exists():
        return []
    return [line for line in path.read_text(errors="replace").splitlines() if needle in line]


def wait_lines(path: Path, needle: str, count: int = 1, timeout: float = 10) -> list[str]:
    return wait_until(lambda: (found := lines_of(path, needle)) and len(found) >= count and found,
                      timeout, what=f"{count} line(s) with {needle!r} in {path.name}")


# ---- --log-format --------------------------------------------------------------------------

# uWSGI 2.0.31, for GET /path?q=1 with User-Agent 'Agent "q"\x', Referer http://ref/ and
# X-Foo: bar"baz, printed:
#   A method=GET uri=/path?q=1 status=200 size=57 rsize=12 hsize=45 addr=127.0.0.1 user=-
#   host=127.0.0.1:45941 proto=HTTP/1.1 uagent=Agent "q"\x referer=http://ref/ cl=0 headers=1
#   pid=16200 wid=1 ... var=bar"baz varmissing=- ...
# and for POST /404 with a 6-byte body: "... status=404 ... rsize=5 ... cl=6 ... var=- ..."
FORMAT = ("A method=%(method) uri=%(uri) status=%(status) rsize=%(rsize) addr=%(addr) user=%(user) "
          "host=%(host) proto=%(proto) uagent=%(uagent) referer=%(referer) cl=%(cl) pid=%(pid) "
          "wid=%(wid) var=%(var.HTTP_X_FOO) varmissing=%(var.NOPE) size=%(size) hsize=%(hsize) "
          "headers=%(headers) msecs=%(msecs) micros=%(micros)")


def test_log_format_variables_match_uwsgi(server, tmp_path):
    inst = start(server, tmp_path, "--log-format", FORMAT, "--log-format-escape", "none")
    _get(inst, "/path?q=1", {"User-Agent": 'Agent "q"\\x', "Referer": "http://ref/",
                             "X-Foo": 'bar"baz'})
    _get(inst, "/status/404", {"User-Agent": "t"}, method="POST", body=b"abcdef")
    first, second = wait_lines(inst.log_path, "A method=", 3)[1:3]
    worker = int(re.search(r"pid=(\d+)", first).group(1))
    assert first.startswith(
        f'A method=GET uri=/path?q=1 status=200 rsize=12 addr=127.0.0.1 user=- '
        f'host=127.0.0.1:{inst.port} proto=HTTP/1.1 uagent=Agent "q"\\x referer=http://ref/ cl=0 '
        f'pid={worker} wid=1 var=bar"baz varmissing=- ')
    assert second.startswith(
        f"A method=POST uri=/status/404 status=404 rsize=5 addr=127.0.0.1 user=- "
        f"host=127.0.0.1:{inst.port} proto=HTTP/1.1 uagent=t referer=- cl=6 pid={worker} wid=1 "
        f"var=- varmissing=- ")
    fields = dict(item.split("=", 1) for item in first.split()[1:] if "=" in item)
    assert int(fields["size"]) == int(fields["rsize"]) + int(fields["hsize"])   # as uWSGI
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nConnection: close\r\n\r\n"
    assert int(fields["hsize"]) == len(head) and fields["headers"] == "3"
    assert int(fields["msecs"]) == int(fields["micros"]) // 1000


def test_time_variables(server, tmp_path):
    # uWSGI 2.0.31 with --log-date='%Y-%m-%d %H:%M:%S' --logformat-strftime printed
    # "B time=1796606054 ltime=07/Dec/2026:01:14:14 +0000 ftime=2026-12-07 01:14:14
    #  ctime=Mon Dec  7 01:14:14 2026 epoch=1796606054 tmsecs=1796606054281 tmicros=1796606054281133
    #  msecs=0 micros=667 secs=0.000667", and server lines "2026-12-07 01:14:12 - spawned ...",
    # request lines undated
    fmt = ("B time=%(time) ltime=%(ltime) ftime=%(ftime) ctime=%(ctime) epoch=%(epoch) "
           "tmsecs=%(tmsecs) tmicros=%(tmicros) secs=%(secs)")
    inst = start(server, tmp_path, "--log-format", fmt, "--log-date=%Y-%m-%d %H:%M:%S",
                 "--logformat-strftime")
    line = wait_lines(inst.log_path, "B time=")[0]
    match = re.fullmatch(
        r"B time=(\d+) ltime=(\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}) "
        r"ftime=(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) ctime=([A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d "
        r"\d\d:\d\d:\d\d \d{4}) epoch=(\d+) tmsecs=(\d+) tmicros=(\d+) secs=(\d+\.\d{6})", line)
    assert match, line
    assert int(match.group(6)) // 1000 == int(match.group(1)) == int(match.group(7)) // 1_000_000
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d - spawned uWSGI worker 1", inst.log(), re.M)


def test_unknown_variable_is_a_logvar_with_a_note(server, tmp_path):
    # uWSGI 2.0.31: a name outside its list is the app's logvar, "-" until set
    inst = start(server, tmp_path, "--log-format", "%(method) %(uri) %(stauts)")
    assert ("--log-format: %(stauts) is not one of uWSGI's variables: it is a logvar the app sets "
            "with uwsgi.set_logvar() ('-' until then); did you mean %(status)?") in inst.log()
    _get(inst, "/u")
    assert wait_lines(inst.log_path, "GET /u ")[0] == "GET /u -"


def test_json_format_is_escaped(server, tmp_path):
    fmt = '{"uri":"%(uri)","ua":"%(uagent)","status":%(status),"user":"%(user)"}'
    inst = start(server, tmp_path, "--log-format", fmt)
    _get(inst, "/j", {"User-Agent": 'say "hi" \\ \t tab'})
    line = wait_lines(inst.log_path, '"uri":"/j"')[0]
    assert json.loads(line) == {"uri": "/j", "ua": 'say "hi" \\ \t tab', "status": 200, "user": "-"}


# ---- conditional logging -------------------------------------------------------------------

def test_disable_logging_with_filters(server, tmp_path):
    inst = start(server, tmp_path, "--disable-logging", "--log-4xx", "--log-5xx",
                 "--log-slow", "300", "--log-zero", "--log-big", "4000")
    for path in ("/ok", "/status/404", "/status/503", "/slow/0.4", "/empty", "/big", "/fine"):
        _get(inst, path)
    wait_lines(inst.log_path, "GET /big ")
    text = inst.log()
    for path in ("/status/404", "/status/503", "/slow/0.4", "/empty", "/big"):
        assert f"GET {path} =>" in text, path
    assert "GET /ok " not in text and "GET /fine " not in text
    assert "GET / =>" not in text   # the start() probe
    assert re.search(r"GET /status/404 => generated 5 bytes in \d+ msecs \(HTTP/1.1 404\)", text)


def test_log_micros_and_x_forwarded_for(server, tmp_path):
    # uWSGI 2.0.31 --log-x-forwarded-for put the header's whole value in %(addr):
    # "addr=10.1.2.3, 10.0.0.1"
    inst = start(server, tmp_path, "--log-micros", "--log-x-forwarded-for")
    _get(inst, "/xff", {"X-Forwarded-For": "10.1.2.3, 10.0.0.1"})
    line = wait_lines(inst.log_path, "GET /xff ")[0]
    assert re.search(r"\] 10\.1\.2\.3, 10\.0\.0\.1 \(\) \{\d+ vars in \d+ bytes\} \[.*\] GET /xff "
                     r"=> generated 12 bytes in \d+ micros \(HTTP/1.1 200\)", line), line


# ---- loggers -------------------------------------------------------------------------------

def test_logger_and_req_logger_files(server, tmp_path):
    server_log, req_log = tmp_path / "server.log", tmp_path / "req.log"
    inst = start(server, tmp_path, "--logger", "stdio", "--logger", f"file:{server_log}",
                 "--req-logger", f"file:{req_log}", "-p", "2")
    _get(inst, "/print")
    wait_lines(req_log, "GET /print ")
    # workers' output (an app's print and stderr) goes through the master to the loggers
    wait_lines(server_log, "print from the app")
    wait_lines(server_log, "stderr from the app")
    assert lines_of(server_log, "spawned uWSGI worker 2")
    assert not lines_of(server_log, "GET /print")
    assert not lines_of(inst.log_path, "GET /print")
    assert lines_of(inst.log_path, "print from the app")   # stdio: the server's own log


def test_syslog_logger_through_a_socket(server, tmp_path):
    path = str(tmp_path / "syslog.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(10)
        inst = start(server, tmp_path, "--logger", "stdio", "--req-logger", "syslog:myapp,local3",
                     "--syslog-socket", path)
        _get(inst, "/sys")
        deadline_msgs = []
        while not any(b"GET /sys " in m for m in deadline_msgs):
            deadline_msgs.append(sock.recv(65536))
    msg = next(m for m in deadline_msgs if b"GET /sys " in m).decode()
    # glibc syslog(3) with openlog("myapp", 0, LOG_LOCAL3) and LOG_INFO: <158>Mmm dd hh:mm:ss myapp: ...
    assert re.fullmatch(r"<158>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d myapp: \[pid: \d+\|app: 0\|req: "
                        r"\d+/\d+\] 127\.0\.0\.1 \(\) .* GET /sys => generated 12 bytes .*", msg), msg
    assert inst.proc.poll() is None


def test_rsyslog_and_udp_socket_loggers(server, tmp_path):
    rsys = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        rsys.bind(str(tmp_path / "rsyslog.sock"))
        udp.bind(("127.0.0.1", 0))
        for s in (rsys, udp):
            s.settimeout(10)
        inst = start(server, tmp_path, "--logger", "stdio",
                     "--logger", f"rsyslog:{tmp_path / 'rsyslog.sock'},myhost app",
                     "--logger", f"socket:127.0.0.1:{udp.getsockname()[1]},[u] ")
        _get(inst, "/udp")

        def received(sock):
            msgs = []
            while not any(b"GET /udp " in m for m in msgs):
                msgs.append(sock.recv(65536))
            return next(m for m in msgs if b"GET /udp " in m).decode()
        line = received(udp)
        assert line.startswith("[u] [pid: ") and line.endswith("\n")
        # uWSGI's rsyslog plugin: "<29>" + ctime()[4:19] + " PREFIX: " + the line without newline
        r = received(rsys)
        assert re.fullmatch(r"<29>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d myhost app: \[pid: .* GET /udp .*\)",
                            r), r
    finally:
        rsys.close()
        udp.close()


def test_encoders(server, tmp_path):
    req_log = tmp_path / "req.log"
    inst = start(server, tmp_path, "--logger", "stdio",
                 "--req-logger", f"file:{req_log}",
                 "--log-req-encoder", 'json {"unix":${unix},"msg":"${msg}"}',
                 "--log-req-encoder", "nl",
                 "--log-encoder", "prefix [srv] ")
    _get(inst, '/enc"q')
    line = wait_lines(req_log, "/enc")[0]
    doc = json.loads(line)
    assert doc["msg"].startswith("[pid: ") and 'GET /enc"q =>' in doc["msg"]
    assert isinstance(doc["unix"], int)
    assert "[srv] spawned uWSGI worker 1" in inst.log()
    assert "[log-encoder] registered prefix [srv] " in inst.log()


def test_bad_logger_is_a_startup_error(tmp_path):
    shutil.copy(APPS / "logging_app.py", tmp_path / "logging_app.py")
    proc = run_cli("--http-socket", "127.0.0.1:0", "--wsgi-file", "logging_app.py",
                   "--logger", "graylog:1.2.3.4", cwd=tmp_path, timeout=30)
    assert proc.returncode == 1
    assert "unknown logger 'graylog'" in proc.stderr and "Traceback" not in proc.stderr


# ---- rotation and reloads --------------------------------------------------------------------

def test_req_logger_file_rotates_with_maxsize_and_fifo(server, tmp_path):
    req_log, fifo = tmp_path / "req.log", tmp_path / "m.fifo"
    inst = start(server, tmp_path, "--logger", "stdio", "--master-fifo", str(fifo),
                 "--req-logger", f"file:logfile={req_log},maxsize=2000,backupname={req_log}.old")
    for i in range(15):
        _get(inst, f"/r{i}")
    wait_until(lambda: (tmp_path / "req.log.old").exists(), 10, what="the maxsize rotation")
    inst.wait_log("triggering rotation to " + str(req_log) + ".old")
    _get(inst, "/after")
    wait_lines(req_log, "GET /after ")
    # FIFO L rotates the request log too (no --logto here)
    with open(fifo, "w") as f:
        f.write("L")
    inst.wait_log("triggering rotation to", count=2)
    _get(inst, "/after-L")
    wait_lines(req_log, "GET /after-L ")
    assert not lines_of(req_log, "GET /after ")


def test_logto_backupname(server, tmp_path):
    logfile, fifo = tmp_path / "app.log", tmp_path / "m.fifo"
    shutil.copy(APPS / "logging_app.py", tmp_path / "logging_app.py")
    server("--wsgi-file", "logging_app.py", "--logto", str(logfile), "--log-backupname",
           str(tmp_path / "app.log.1"), "--master-fifo", str(fifo), app=False, wait=False)
    wait_until(lambda: logfile.exists() and "spawned uWSGI worker" in logfile.read_text(),
               20, what="the server to start (logto)")
    wait_until(lambda: fifo.exists() and stat.S_ISFIFO(fifo.stat().st_mode), 10, what="the FIFO")
    with open(fifo, "w") as f:
        f.write("L")
    wait_until(lambda: (tmp_path / "app.log.1").exists(), 10, what="the rotated log")
    rotated = (tmp_path / "app.log.1").read_text()
    assert re.search(r"^[A-Z][a-z]{2} .* - logsize: \d+, triggering rotation to "
                     + re.escape(str(tmp_path / "app.log.1")) + r"\.\.\.$", rotated, re.M), rotated


def test_request_lines_survive_an_exec_reload(server, tmp_path):
    req_log = tmp_path / "req.log"
    inst = start(server, tmp_path, "--logger", "stdio", "--req-logger", f"file:{req_log}",
                 "-p", "2")
    conn = http.client.HTTPConnection("127.0.0.1", inst.port, timeout=20)
    conn.request("GET", "/slow/1.5")
    inst.signal(signal.SIGHUP)
    inst.wait_log("gracefully (RE)spawned uWSGI master process")
    assert conn.getresponse().status == 200
    conn.close()
    # the old generation's worker logged it after the exec: the new master relayed it
    wait_lines(req_log, "GET /slow/1.5 ")
    _get(inst, "/new")
    wait_lines(req_log, "GET /new ")
    inst.signal(signal.SIGINT)
    assert inst.wait_exit() == 0
    assert os.environ.get("UWSGI_PY_LOG_PIPES") is None


def test_touch_logrotate_rotates_a_request_logger_without_logto(server, tmp_path):
    req_log, touch = tmp_path / "req.log", tmp_path / "rotate.touch"
    inst = start(server, tmp_path, "--logger", "stdio", "--req-logger", f"file:{req_log}",
                 "--touch-logrotate", str(touch))
    _get(inst, "/before")
    wait_lines(req_log, "GET /before ")
    touch.write_text("x")     # a missing file appearing fires (TOUCH-3)
    inst.wait_log("has been touched... log rotate !!!")
    rotated = wait_until(lambda: [p for p in tmp_path.glob("req.log.*")], 10, what="the rotated file")
    assert lines_of(rotated[0], "GET /before ")
    _get(inst, "/after")
    wait_lines(req_log, "GET /after ")
    assert not lines_of(req_log, "GET /before ")


def test_log_route_to_a_named_logger(server, tmp_path):
    errors = tmp_path / "errors.log"
    shutil.copy(APPS / "app.py", tmp_path / "app.py")
    inst = server("--logger", "stdio", "--logger", f"errs file:{errors}",
                  "--log-route", "errs Traceback|RuntimeError", "--master")
    inst.request("/boom")
    wait_lines(errors, "RuntimeError: boom from the test app")
    # routed lines go to the named logger only; the rest to the unnamed ones
    assert "boom from the test app" not in inst.log()
    assert not lines_of(errors, "spawned uWSGI worker")
