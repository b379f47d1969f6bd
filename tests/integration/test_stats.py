"""The stats server read by real clients (TEST-8, issue 7): raw sockets, HTTP, and uwsgitop.

Every server runs on loopback in its own process group (conftest's ``server``);
load is a few client threads for about two seconds.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import select
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import sysconfig
import termios
import threading
import time
import urllib.request

import pytest

from conftest import IN_CI, pid_alive, run_cli, wait_until
from conftest import http_get as get

pytestmark = pytest.mark.timeout(60)

STATS_LINE = re.compile(r"\*\*\* Stats server enabled on (\S+) fd: (\d+) \*\*\*")
STATS4_WORKER = {"id": int, "pid": int, "requests": int, "exceptions": int, "signals": int,
                 "status": str, "avg_rt": int, "rss": int, "vsz": int, "tx": int,
                 "respawn_count": int, "harakiri_count": int, "running_time": int,
                 "last_spawn": int}


# ---- clients -------------------------------------------------------------------------------

def read_raw(address, timeout: float = 5.0) -> bytes:
    """Connect, read to EOF: what uwsgitop does."""
    if isinstance(address, tuple):
        sock = socket.create_connection(address, timeout=timeout)
    else:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(address)
    chunks = []
    with sock:
        while True:
            data = sock.recv(65536)
            if not data:
                return b"".join(chunks)
            chunks.append(data)


def stats(address) -> dict:
    return json.loads(read_raw(address))


def tcp_address(inst) -> tuple[str, int]:
    text = inst.wait_log("Stats server enabled on")
    host, _, port = STATS_LINE.search(text).group(1).rpartition(":")
    return host, int(port)


class Load:
    """A few client threads sending GET / until stopped; counts answered requests."""

    def __init__(self, port: int, threads: int = 3):
        self.port = port
        self.done = 0
        self.errors = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(threads)]

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                ok = get(self.port, "/", timeout=5)[0] == 200
            except OSError:
                ok = False
            with self.lock:
                if ok:
                    self.done += 1
                else:
                    self.errors += 1

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(10)


def in_background(port: int, path: str) -> threading.Thread:
    result = {}

    def run():
        result["response"] = get(port, path, timeout=20)
    t = threading.Thread(target=run, daemon=True)
    t.result = result
    t.start()
    return t


def total(doc: dict) -> int:
    return sum(w["requests"] for w in doc["workers"])


def settled(address) -> dict:
    """The document once every worker is idle: a worker counts a request just after
    answering it, so a client can see its response before the counter moves."""
    return wait_until(lambda: (d := stats(address)) and
                      all(w["status"] != "busy" for w in d["workers"]) and
                      total(stats(address)) == total(d) and d, 5, what="settled counters")


# ---- the document over a unix socket, under load, busy, paused ----------------------------------

def test_stats_during_load_busy_and_pause(server, tmp_path):
    path = str(tmp_path / "stats.sock")
    inst = server("--master", "-p", "2", "--stats", path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600     # restrictive by default
    assert f"*** Stats server enabled on {path} fd: " in inst.log()
    doc = wait_until(lambda: (d := stats(path)) and all(w["accepting"] for w in d["workers"]) and d,
                     10, what="both workers accepting")
    assert doc["version"] == "2.0.31" and doc["pid"] == inst.pid
    assert doc["cwd"] == str(inst.cwd) and doc["uid"] == os.getuid() and doc["gid"] == os.getgid()
    assert doc["sockets"][0]["name"] == f"127.0.0.1:{inst.port}"
    assert doc["sockets"][0]["proto"] == "http" and doc["sockets"][0]["max_queue"] > 0
    pids = sorted(w["pid"] for w in doc["workers"])
    assert pids == sorted(inst.workers())
    for w in doc["workers"]:
        for key, kind in STATS4_WORKER.items():
            assert type(w[key]) is kind, (key, w)
        assert w["respawn_count"] == 1
        assert [c["id"] for c in w["cores"]] == [0]

    before = total(settled(path))
    seen = [before]
    with Load(inst.port) as load:
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            doc = stats(path)
            seen.append(total(doc))
            assert all(w["status"] in ("idle", "busy") for w in doc["workers"])
            time.sleep(0.1)
    assert seen == sorted(seen), "request counters went backwards"
    assert load.done > 20 and load.errors == 0
    # a worker counts a request just after answering it, and the document is read while the
    # workers write their slots: wait until both counters have caught up with the load
    doc = wait_until(lambda: (d := stats(path)) and total(d) == before + load.done
                     and sum(w["delta_requests"] for w in d["workers"]) == total(d) and d,
                     5, what="every answered request counted")
    assert all(w["tx"] > 0 and w["running_time"] > 0 for w in doc["workers"] if w["requests"])

    # busy during /slow: status, in_request, the request's vars, request_start
    slow = in_background(inst.port, "/slow/3")
    busy = wait_until(lambda: [w for w in stats(path)["workers"] if w["status"] == "busy"],
                      5, what="a busy worker")[0]
    core = busy["cores"][0]
    assert core["in_request"] == 1
    assert "REQUEST_URI=/slow/3" in core["vars"] and "REQUEST_METHOD=GET" in core["vars"]
    assert core["vars"][-1] == ""
    assert abs(core["req_info"]["request_start"] - time.time()) < 10

    # uwsgi.workers() inside the app reads the same accounting
    status, body = get(inst.port, "/workers")
    assert status == 200
    from_app = {w["id"]: w for w in json.loads(body)}
    # the worker counts /workers just after answering it: wait for that count
    app_total = sum(w["requests"] for w in from_app.values())
    doc = wait_until(lambda: (d := stats(path)) and total(d) == app_total + 1 and d, 5,
                     what="/workers itself counted")
    for w in doc["workers"]:
        mine = from_app[w["id"]]
        assert mine["pid"] == w["pid"] and mine["respawn_count"] == w["respawn_count"] - 1
        assert mine["status"] in ("busy", "idle")
    assert [w["status"] for w in from_app.values()].count("busy") == 2  # /slow and /workers

    slow.join(10)
    assert slow.result["response"][0] == 200
    wait_until(lambda: all(w["status"] == "idle" for w in stats(path)["workers"]), 5,
               what="idle workers after /slow")

    # pause: SIGTSTP, and again to resume
    inst.signal(signal.SIGTSTP)
    wait_until(lambda: all(w["status"] == "pause" for w in stats(path)["workers"]), 10,
               what="paused workers")
    inst.signal(signal.SIGTSTP)
    wait_until(lambda: all(w["status"] == "idle" and w["accepting"] == 1
                           for w in stats(path)["workers"]), 10, what="resumed workers")
    assert get(inst.port, "/")[0] == 200


PYAPI_APP = """
import json, os
import uwsgi

def application(environ, start_response):
    first = uwsgi.workers()
    try:
        uwsgi.listen_queue(5)
        bad_id = "no error"
    except ValueError:
        bad_id = "ValueError"
    body = {"same_objects": first is uwsgi.workers() and first[0] is uwsgi.workers()[0],
            "type": type(first).__name__, "total": uwsgi.total_requests(), "mem": uwsgi.mem(),
            "queue": uwsgi.listen_queue(), "bad_id": bad_id, "pid": os.getpid(),
            "status": [w["status"].decode() for w in first]}
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]
"""


def test_uwsgi_module_reads_the_same_accounting(server, tmp_path):
    (tmp_path / "pyapi.py").write_text(PYAPI_APP)
    path = str(tmp_path / "api.sock")
    inst = server("--master", "-p", "2", "--stats", path, "--wsgi-file", "pyapi.py", app=False)
    inst.wait_serving()
    for _ in range(4):
        inst.get("/")
    served = total(settled(path))
    info = json.loads(inst.get("/"))
    assert info["type"] == "tuple" and info["same_objects"] is True      # PYAPI-6
    assert info["total"] == served                                      # PYAPI-5, this one not yet
    assert info["queue"] == 0 and info["bad_id"] == "ValueError"
    rss, vsz = info["mem"]
    assert 1_000_000 < rss <= vsz
    assert sorted(info["status"]) == ["busy", "idle"]                   # itself, the other one
    assert wait_until(lambda: total(stats(path)) == served + 1, 5, what="the last request counted")


# ---- TCP, HTTP, minified ------------------------------------------------------------------------

def test_stats_tcp_http_minified(server):
    inst = server("-p", "2", "--stats-server", "127.0.0.1:0", "--stats-http", "--stats-min")
    host, port = tcp_address(inst)
    assert host == "127.0.0.1" and port > 0                # the auto-assigned port is logged
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/json"
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
        body = resp.read()
    assert b"\n" not in body and b"\t" not in body
    doc = json.loads(body)
    assert doc["pid"] == inst.pid and len(doc["workers"]) == 2   # --stats implied --master
    # a client that sends no request line gets the document once the server's wait for one
    # (endpoint.SEND_TIMEOUT, 4 s) is over, at the master loop's next pass: well past 5 s when
    # the machine is loaded
    raw = read_raw((host, port), timeout=30)
    assert raw.startswith(b"HTTP/1.0 200 OK\r\nConnection: close\r\n")


def test_stats_default_layout_and_no_cores(server):
    inst = server("--stats", "127.0.0.1:0", "--stats-no-cores")
    raw = read_raw(tcp_address(inst)).decode()
    assert raw.startswith('{\n\t"version":"2.0.31",\n\t"listen_queue":')
    assert '\n\t"workers":[\n\t\t{\n\t\t\t"id":1,\n' in raw
    doc = json.loads(raw)
    assert "cores" not in doc["workers"][0]
    assert doc["workers"][0]["rss"] == 0                   # no --memory-report


def test_memory_report_fills_rss_and_vsz(server, tmp_path):
    path = str(tmp_path / "m.sock")
    inst = server("-p", "2", "--stats", path, "--memory-report", "--chmod-socket", "660")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
    for w in stats(path)["workers"]:
        assert w["rss"] > 1_000_000 and w["vsz"] >= w["rss"]
    for w in json.loads(inst.get("/workers")):
        assert w["rss"] > 1_000_000 and w["vsz"] >= w["rss"]


def test_bad_stats_address_stops_a_first_start(tmp_path):
    res = run_cli("--http-socket", "127.0.0.1:0", "--stats", str(tmp_path / "missing" / "s.sock"),
                  cwd=tmp_path, timeout=20)
    assert res.returncode == 1
    assert "--stats: bind(): No such file or directory" in res.stderr


def test_abstract_stats_socket_and_no_fd_leak_into_workers(server):
    name = f"@uwsgi-py-stats-{os.getpid()}-{time.monotonic_ns()}"
    inst = server("-p", "2", "--stats", name)
    doc = stats("\0" + name[1:])
    assert doc["pid"] == inst.pid
    fd = int(STATS_LINE.search(inst.log()).group(2))
    master_socket = os.readlink(f"/proc/{inst.pid}/fd/{fd}")
    assert master_socket.startswith("socket:")
    first = inst.wait_workers(2)
    os.kill(first[0], signal.SIGKILL)              # a respawned worker forks from the running loop
    inst.wait_log("Respawned uWSGI worker")
    workers = inst.wait_workers(2, exclude=[first[0]])
    for _ in range(6):
        assert inst.get("/") == b"hello\n"
    doc = wait_until(lambda: (d := stats("\0" + name[1:])) and
                     sorted(w["pid"] for w in d["workers"]) == sorted(workers) and
                     all(w["accepting"] for w in d["workers"]) and d, 5,
                     what="the respawned worker in the stats")
    # checked once every worker accepts: a worker closes the master's fds right after fork,
    # and the log line saying it was spawned can come before the child first runs
    for pid in workers:                            # workers never hold the stats socket
        held = {os.readlink(f"/proc/{pid}/fd/{n}") for n in os.listdir(f"/proc/{pid}/fd")}
        assert master_socket not in held
    assert sorted(w["respawn_count"] for w in doc["workers"]) == [1, 2]


def test_listen_queue_while_paused(server, tmp_path):
    path = str(tmp_path / "q.sock")
    inst = server("-p", "1", "--stats", path, "--listen", "4", "--no-defer-accept")  # silent clients
    assert stats(path)["sockets"][0]["max_queue"] == 4
    inst.signal(signal.SIGTSTP)
    wait_until(lambda: stats(path)["workers"][0]["status"] == "pause", 10, what="paused")
    clients = []
    try:
        for _ in range(8):                           # more than the backlog holds
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", inst.port))
            clients.append(c)
        doc = wait_until(lambda: (d := stats(path)) and d["listen_queue"] >= 4 and d, 5,
                         what="connections waiting in the accept queue")
        assert doc["load"] == doc["listen_queue"] == doc["sockets"][0]["queue"]
        doc = wait_until(lambda: (d := stats(path)) and d["listen_queue_errors"] >= 1 and d, 5,
                         what="the full queue counted")
        assert '*** uWSGI listen queue of socket "127.0.0.1:0" (fd: ' in inst.log()
        assert " full !!! (" in inst.log()
    finally:
        for c in clients:
            c.close()
    inst.signal(signal.SIGTSTP)
    wait_until(lambda: stats(path)["listen_queue"] == 0, 10, what="the queue drained")
    assert inst.get("/") == b"hello\n"


# ---- reloads ----------------------------------------------------------------------------------------

def test_stats_after_reloads(server, tmp_path):
    inst = server("--master", "-p", "2", "--stats", "127.0.0.1:0")
    address = tcp_address(inst)
    before = total(settled(address))
    for _ in range(5):
        inst.get("/")
    doc = wait_until(lambda: (d := stats(address)) and total(d) == before + 5 and d, 5,
                     what="5 more requests counted")
    assert doc["generation"] == 0 and doc["reloads"] == []
    old_pids = {w["pid"] for w in doc["workers"]}

    inst.signal(signal.SIGHUP)
    inst.wait_log("reload outcome:")
    doc = wait_until(lambda: (d := stats(address)) and d["generation"] == 1 and d, 10,
                     what="generation 1 on the same stats address")
    assert doc["pid"] == inst.pid
    outcome = doc["reloads"][-1]
    assert (outcome["generation"], outcome["kind"], outcome["refused"], outcome["error"]) == \
        (1, "graceful", False, "")
    assert outcome["duration_ms"] >= 0 and outcome["workers_replaced"] == 2
    new_pids = {w["pid"] for w in doc["workers"]}
    assert new_pids.isdisjoint(old_pids) and new_pids == set(inst.workers())
    assert total(doc) == 0                                 # STATS-5: counters reset on exec
    for _ in range(3):
        inst.get("/")
    assert wait_until(lambda: total(stats(address)) == 3, 5, what="3 requests after the reload")

    # a refused reload: the new code does not load; the running generation keeps serving
    (inst.cwd / "app.py").write_text("raise RuntimeError('broken deploy')\n")
    inst.signal(signal.SIGHUP)
    inst.wait_log("RELOAD REFUSED")
    doc = wait_until(lambda: (d := stats(address)) and len(d["reloads"]) == 2 and d, 10,
                     what="the refused reload in the stats")
    refused = doc["reloads"][-1]
    assert refused["refused"] is True and refused["error"] and refused["generation"] == 1
    assert doc["generation"] == 1 and {w["pid"] for w in doc["workers"]} == new_pids
    assert doc["state"] == "running"


def test_unix_stats_socket_is_recreated_after_reload_and_removed_at_exit(server, tmp_path):
    path = str(tmp_path / "r.sock")
    inst = server("-p", "1", "--stats", path)
    inst.signal(signal.SIGHUP)
    inst.wait_log("reload outcome:")
    inst.wait_log(f"*** Stats server enabled on {path} fd: ", count=2)   # bound again
    doc = wait_until(lambda: os.path.exists(path) and (d := stats(path))["generation"] == 1 and d,
                     10, what="the stats socket of the new image")
    assert doc["reloads"][0]["refused"] is False
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    inst.signal(signal.SIGINT)
    assert inst.wait_exit() == 0
    assert not os.path.exists(path)


# ---- SIGUSR1 / SIGUSR2 log lines (SIG-7) ----------------------------------------------------------

def test_sigusr1_and_sigusr2_lines(server):
    inst = server("--master", "-p", "2", "--stats", "127.0.0.1:0")
    address = tcp_address(inst)
    for _ in range(3):
        inst.get("/")
    served = total(settled(address))
    assert served >= 3
    inst.signal(signal.SIGUSR1)
    text = inst.wait_log(";end of configuration")
    dump = text[text.index("\n;uWSGI instance configuration\n"):]
    assert "\n[uwsgi]\n" in dump and "\nmaster = true\n" in dump and "\nprocesses = 2\n" in dump
    assert f"\n;end of configuration\n\n\tworkers total requests: {served}\n-----------------\n" in dump
    counts = [int(n) for n in re.findall(r"^\tworker [12] app 0 \[\] requests: (\d+) exceptions: 0\n"
                                         r"-{17}$", dump, re.M)]
    assert len(counts) == 2 and sum(counts) == served

    slow = in_background(inst.port, "/slow/2")
    busy = wait_until(lambda: [w for w in stats(address)["workers"] if w["status"] == "busy"],
                      5, what="a busy worker")[0]
    inst.signal(signal.SIGUSR2)
    text = inst.wait_log("is managing request /slow/2 since")
    assert re.search(rf"SIGUSR2: --- uWSGI worker {busy['id']} \(pid: {busy['pid']}\) is managing "
                     r"request /slow/2 since \w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4} ---", text)
    for pid in inst.wait_workers(2):
        assert f"*** backtrace of {pid} ***" in inst.wait_log(f"*** backtrace of {pid} ***")
    inst.wait_log("*** end of backtrace ***", count=2)
    slow.join(10)
    assert slow.result["response"][0] == 200
    assert pid_alive(inst.pid)                             # SIG-6's fix: USR2 does not kill it


# ---- the real uwsgitop ----------------------------------------------------------------------------

def uwsgitop_script() -> str:
    for candidate in (os.path.join(sysconfig.get_path("scripts"), "uwsgitop"),
                      os.path.join(os.path.dirname(sys.executable), "uwsgitop")):
        if os.path.exists(candidate):
            return candidate
    found = shutil.which("uwsgitop")
    if found:
        return found
    if IN_CI:
        pytest.fail("uwsgitop is required in CI (pip install uwsgitop==0.12, the test extra)")
    pytest.skip("uwsgitop is not installed (pip install uwsgitop==0.12)")


def screen_of(command: list[str], want: list[str], frames: tuple[str, int] = ("", 0),
              timeout: float = 20.0) -> str:
    """Run ``command`` on a 40x160 pty until every string in ``want`` was drawn and the
    ``frames`` marker appeared that many times; the screen bytes."""
    master_fd, slave_fd = os.openpty()
    fcntl.ioctl(slave_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    env = dict(os.environ, TERM="xterm", LINES="40", COLUMNS="160")
    proc = subprocess.Popen(command, stdin=slave_fd, stdout=slave_fd, stderr=slave_fd, env=env,
                            start_new_session=True, close_fds=True)
    os.close(slave_fd)
    screen = b""
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master_fd], [], [], 0.2)
            if ready:
                try:
                    screen += os.read(master_fd, 65536)
                except OSError:
                    break                      # the program exited and the pty closed
            text = screen.decode("utf-8", "replace")
            drawn = all(w in text for w in want) and text.count(frames[0]) >= frames[1]
            if drawn or proc.poll() is not None:
                break
        return screen.decode("utf-8", "replace")
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)
        os.close(master_fd)


def test_uwsgitop_renders_our_instance(server, tmp_path):
    script = uwsgitop_script()
    path = str(tmp_path / "top.sock")
    inst = server("--master", "-p", "2", "--stats", path, "--memory-report")
    for _ in range(4):
        inst.get("/")
    pids = [str(p) for p in inst.wait_workers(2)]
    slow = in_background(inst.port, "/slow/4")        # one worker busy, one idle on screen
    wait_until(lambda: any(w["status"] == "busy" for w in stats(path)["workers"]), 5,
               what="a busy worker")
    want = [*pids, f"masterpid: {inst.pid}", "uwsgi-2.0.31", "WID", "idle", "busy"]
    header = "uwsgi-2.0.31 - "                       # drawn once per frame, every second
    screen = screen_of([sys.executable, script, "--frequency", "1", path], want, (header, 3))
    missing = [w for w in want if w not in screen]
    assert not missing, f"uwsgitop did not show {missing}:\n{screen[-3000:]!r}"
    assert screen.count(header) >= 3, "uwsgitop did not refresh"
    slow.join(10)
    assert "Traceback" not in screen and "unable to get uWSGI statistics" not in screen


# ---- the master's writer: large documents and clients that stop reading ----------------------------

class LoopView:
    """Just what the stats endpoint uses of its MasterView: watch and unwatch, on a selector;
    ``private_fds`` are the fds the master would own (closed in workers forked meanwhile)."""

    def __init__(self):
        import selectors
        self.selector = selectors.DefaultSelector()
        self.private_fds: set[int] = set()

    def watch(self, fd: int, callback, writable: bool = False) -> None:
        import selectors
        self.private_fds.add(fd)
        self.selector.register(fd, selectors.EVENT_WRITE if writable else selectors.EVENT_READ,
                               callback)

    def unwatch(self, fd: int) -> None:
        self.private_fds.discard(fd)
        self.selector.unregister(fd)

    def cycle(self, timeout: float = 0.05) -> None:
        for key, _ in self.selector.select(timeout):
            key.data()


def endpoint_on_loopback(tmp_path, document: bytes):
    from types import SimpleNamespace

    from uwsgi_py_stats.endpoint import StatsServer, bind
    settings = SimpleNamespace(stats=str(tmp_path / "w.sock"), stats_http=False,
                               stats_minified=False, stats_no_cores=False, memory_report=False)
    state = StatsServer(settings, bind(settings.stats, None))
    state.view = LoopView()
    state.view.selector.register(state.fd, 1, state.on_readable)
    state.document = lambda: document
    return state


def test_a_large_document_is_written_without_blocking_the_master(tmp_path):
    payload = os.urandom(4 * 1024 * 1024)           # far beyond any socket buffer
    state = endpoint_on_loopback(tmp_path, payload)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(state.settings.stats)
    client.setblocking(False)
    received = bytearray()
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            started = time.monotonic()
            state.view.cycle()
            assert time.monotonic() - started < 1.0, "the master blocked on a slow client"
            try:
                while chunk := client.recv(1 << 20):
                    received += chunk
            except BlockingIOError:
                continue                             # more to come
            break                                    # EOF: the master closed the connection
    finally:
        client.close()
        state.close()
    assert bytes(received) == payload
    assert not state.pending and not state.view.private_fds


def test_a_client_that_stops_reading_is_dropped(tmp_path, monkeypatch):
    from uwsgi_py_stats import endpoint
    monkeypatch.setattr(endpoint, "SEND_TIMEOUT", 0.3)
    state = endpoint_on_loopback(tmp_path, b"x" * (8 * 1024 * 1024))
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(state.settings.stats)
    try:
        state.view.cycle()                         # accept, send what fits, park the rest
        assert len(state.pending) == 1
        fd = next(iter(state.pending))
        assert fd in state.view.private_fds        # a worker forked now closes it
        wait_until(lambda: (state.view.cycle(0.05), state.sweep(), not state.pending)[-1], 5,
                   what="the stalled client to be dropped")
        assert not state.view.private_fds
    finally:
        client.close()
        state.close()
    assert not os.path.exists(state.settings.stats)  # close() removed the unix path
