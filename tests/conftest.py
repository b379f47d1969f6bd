"""Shared fixtures: start the real server in its own process group, clean up always.

Each server runs ``python -m uwsgi_py`` with ``start_new_session=True`` and logs
to a file in ``tmp_path``; the finalizer stops it, then SIGKILLs its whole
process group and waits until the group is empty.
"""
from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = Path(__file__).resolve().parent / "apps"
IN_CI = os.environ.get("CI") == "true"


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.02, what: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z":
            continue
        if int(fields[2]) == pgid:
            pids.append(int(entry))
    return pids


def children_of(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(entry))
    return sorted(out)


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def get_over(conn: http.client.HTTPConnection, path: str = "/") -> tuple[int, bytes]:
    """One GET over ``conn`` (closed afterwards); (status, body)."""
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def http_get(port: int, path: str = "/", timeout: float = 20.0) -> tuple[int, bytes]:
    """One GET to 127.0.0.1:port; (status, body)."""
    return get_over(http.client.HTTPConnection("127.0.0.1", port, timeout=timeout), path)


def require_tool(name: str) -> str:
    """The path of a system tool; skip outside CI when it is missing, fail in CI."""
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    if path:
        return path
    if IN_CI:
        pytest.fail(f"{name} is required in CI (.ci/run installs it)")
    pytest.skip(f"{name} is not installed")


class Instance:
    """A running uwsgi-py server started by a test."""

    def __init__(self, proc: subprocess.Popen, log_path: Path, cwd: Path):
        self.proc = proc
        self.pid = proc.pid
        self.pgid = proc.pid
        self.log_path = log_path
        self.cwd = cwd
        self.port: int | None = None

    # ---- log -----------------------------------------------------------------
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def count(self, text: str) -> int:
        return self.log().count(text)

    def wait_log(self, text: str, count: int = 1, timeout: float = 15.0) -> str:
        def seen():
            if self.proc.poll() is not None and self.log().count(text) < count:
                raise AssertionError(f"server exited ({self.proc.returncode}) before {text!r}:\n"
                                     + self.log()[-3000:])
            return self.log().count(text) >= count
        try:
            wait_until(seen, timeout, what=f"log line {text!r} x{count}")
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- server log ---\n{self.log()[-4000:]}") from None
        return self.log()

    # ---- processes ---------------------------------------------------------------
    def workers(self) -> list[int]:
        return children_of(self.pid)

    def wait_workers(self, n: int, exclude=(), timeout: float = 15.0) -> list[int]:
        def ready():
            pids = [p for p in self.workers() if p not in exclude]
            return pids if len(pids) == n else None
        return wait_until(ready, timeout, what=f"{n} workers")

    # ---- clients -------------------------------------------------------------------
    def request(self, path: str = "/", method: str = "GET", body: bytes | None = None,
                headers: dict | None = None, timeout: float = 10.0, port: int | None = None):
        conn = http.client.HTTPConnection("127.0.0.1", port or self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def get(self, path: str = "/", **kw) -> bytes:
        status, body = self.request(path, **kw)
        assert status == 200, (status, body)
        return body

    def wait_serving(self, timeout: float = 15.0) -> None:
        def ok():
            try:
                return self.request("/", timeout=2)[0] == 200
            except OSError:
                return False
        wait_until(ok, timeout, what="the server to answer")

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def wait_exit(self, timeout: float = 15.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"server did not exit:\n{self.log()[-3000:]}") from None

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGINT)
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.wait(5)
        wait_until(lambda: not group_pids(self.pgid), 5, what=f"process group {self.pgid} to end")


PORT_RE = re.compile(r"bound to (?:TCP|INET) address (?:127\.0\.0\.1|0\.0\.0\.0|\[::1?\]):(\d+)")


@pytest.fixture
def server(tmp_path):
    """Factory: ``server(*args, app=True, workers=N)`` starts uwsgi-py and waits until it serves."""
    started: list[Instance] = []

    def start(*args: str, app: bool = True, wait: bool = True, cwd: Path | None = None,
              env: dict | None = None, http: bool = True, name: str = "server") -> Instance:
        cwd = cwd or tmp_path
        cmd = [sys.executable, "-m", "uwsgi_py"]
        if http:
            cmd += ["--http-socket", "127.0.0.1:0"]
        if app:
            shutil.copy(APPS / "app.py", cwd / "app.py")
            cmd += ["--wsgi-file", "app.py"]
        cmd += list(args)
        log_path = tmp_path / f"{name}-{len(started)}.log"
        full_env = dict(os.environ)
        full_env.update(env or {})
        with open(log_path, "wb") as logf:
            proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, cwd=cwd, env=full_env,
                                    start_new_session=True)
        inst = Instance(proc, log_path, cwd)
        started.append(inst)
        if wait:
            if http:
                text = inst.wait_log("bound to ")
                match = PORT_RE.search(text)
                assert match, text
                inst.port = int(match.group(1))
            inst.wait_log("spawned uWSGI worker")
            if http and app:
                inst.wait_serving()
        return inst

    yield start
    for inst in started:
        inst.cleanup()


def run_cli(*args: str, cwd=None, env=None, timeout: float = 30.0) -> subprocess.CompletedProcess:
    """Run ``python -m uwsgi_py ARGS`` to completion (client flags, config errors)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "uwsgi_py", *args], capture_output=True,
                          text=True, cwd=cwd, env=full_env, timeout=timeout,
                          start_new_session=True)


NGINX_CONF = """\
master_process off;
error_log {tmp}/nginx-error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {tmp}/nginx-access.log;
    client_body_temp_path {tmp}/nginx-body;
    proxy_temp_path {tmp}/nginx-proxy;
    fastcgi_temp_path {tmp}/nginx-fastcgi;
    uwsgi_temp_path {tmp}/nginx-uwsgi;
    scgi_temp_path {tmp}/nginx-scgi;
{upstreams}
    server {{
        listen 127.0.0.1:{port};
{locations}
        location / {{
            include {params};
            uwsgi_pass {target};
        }}
    }}
}}
"""


def free_port() -> int:
    """A port for a daemon that needs a number in its config file (nginx, xinetd).

    It can be taken by another process before the daemon binds it, so callers retry.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def nginx(tmp_path):
    """Factory: ``nginx(upstream_port, locations="")`` runs Debian's nginx (a child of the
    test, its own session) with ``uwsgi_pass`` to ``upstream_port``; returns nginx's port.
    A list of ports is one upstream group: a connect error moves a request to the next one."""
    binary = require_tool("nginx")
    procs: list[subprocess.Popen] = []
    params = "/etc/nginx/uwsgi_params"

    def start(upstream: int | list[int], locations: str = "") -> int:
        conf = tmp_path / "nginx.conf"
        if isinstance(upstream, int):
            upstreams, target = "", f"127.0.0.1:{upstream}"
        else:
            servers = "".join(f" server 127.0.0.1:{p};" for p in upstream)
            upstreams, target = f"    upstream backends {{{servers} }}", "backends"
            locations += "        uwsgi_next_upstream error timeout;\n"
        for attempt in range(5):
            port = free_port()
            conf.write_text(NGINX_CONF.format(tmp=tmp_path, port=port, upstreams=upstreams,
                                              target=target, params=params, locations=locations))
            with open(tmp_path / f"nginx-{attempt}.out", "wb") as out:
                proc = subprocess.Popen(
                    [binary, "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "nginx-error.log"),
                     "-g", f"daemon off; pid {tmp_path}/nginx.pid;"],
                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    start_new_session=True)
            procs.append(proc)

            def listening():
                if proc.poll() is not None:
                    return "exited"
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    return "up"
                except OSError:
                    return None
            if wait_until(listening, 10, what="nginx to listen") == "up":
                return port
        raise AssertionError("nginx could not start:\n" + (tmp_path / "nginx-error.log").read_text())

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
