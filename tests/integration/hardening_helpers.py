"""Helpers of the hardening tests (issue 10): a bounded load, raw clients, a server
started with resource limits.

Definitions used by the fault tests (docs/hardening.md, "No request lost"):
a request is *accepted* once a worker has accept()ed its connection and the
client has sent the whole request head within --socket-timeout. Accepted
requests always get a complete response, except those held by a worker that is
SIGKILLed (kill -9, harakiri, evil-reload-on-rss, NO MERCY) or told to die at once
(SIGINT/SIGTERM: brutal reload, immediate shutdown): the kernel closes those
connections and the client sees EOF or a reset without a response. Connections
still waiting in the listen queue belong to no worker: they are never lost to a
worker's death, a pause, a reload or fd exhaustion.
"""
from __future__ import annotations

import http.client
import os
import re
import resource
import socket
import subprocess
import sys
import threading
import time

import pytest

from conftest import APPS, Instance, wait_until

HARDENING_APP = str(APPS / "hardening_app.py")
BOOT_CRASH_APP = str(APPS / "boot_crash.py")
BROKEN_IMPORT_APP = str(APPS / "broken_import.py")

DISCONNECTS = (http.client.RemoteDisconnected, ConnectionResetError, ConnectionAbortedError,
               BrokenPipeError, http.client.IncompleteRead)


class Load:
    """``clients`` threads sending requests one after another until stopped (at most
    ``limit`` seconds). Every outcome is recorded: ``ok`` counts 200s, ``failures``
    holds (monotonic time, kind, detail) for anything else."""

    def __init__(self, port: int, clients: int = 4, paths=("/",), timeout: float = 20.0,
                 limit: float = 45.0, body: bytes | None = None):
        self.port = port
        self.paths = list(paths)
        self.timeout = timeout
        self.body = body
        self.ok = 0
        self.sent = 0
        self.failures: list[tuple[float, str, str]] = []
        self.pids: set[int] = set()
        self.stop_at = time.monotonic() + limit
        self.running = True
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True)
                        for i in range(clients)]
        for t in self.threads:
            t.start()

    def one(self, path: str) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            method = "POST" if self.body is not None and path.startswith("/echo") else "GET"
            conn.request(method, path, body=self.body if method == "POST" else None,
                         headers={"Connection": "close"})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def run(self, n: int) -> None:
        i = n
        while self.running and time.monotonic() < self.stop_at:
            path = self.paths[i % len(self.paths)]
            i += 1
            with self.lock:
                self.sent += 1
            try:
                status, body = self.one(path)
            except Exception as e:  # noqa: BLE001 - every failure is recorded by kind
                with self.lock:
                    self.failures.append((time.monotonic(), type(e).__name__, str(e)))
                continue
            with self.lock:
                if status == 200:
                    self.ok += 1
                    if path == "/pid":
                        self.pids.add(int(body))
                    if self.body is not None and path.startswith("/echo") and body != self.body:
                        self.failures.append((time.monotonic(), "wrong body", repr(body[:40])))
                else:
                    self.failures.append((time.monotonic(), f"status {status}", repr(body[:80])))

    def wait_ok(self, more: int, timeout: float = 20.0) -> None:
        """Wait until ``more`` further requests succeeded."""
        target = self.ok + more
        wait_until(lambda: self.ok >= target, timeout, what=f"{more} more successful requests")

    def stop(self) -> None:
        self.running = False
        for t in self.threads:
            t.join(self.timeout + 5)
        assert not any(t.is_alive() for t in self.threads), "a load client hangs"


def bound_ports(inst: Instance) -> list[int]:
    """Auto-assigned ports in socket order (the 'bound to TCP address' lines)."""
    return [int(p) for p in re.findall(r"bound to TCP address 127\.0\.0\.1:(\d+) \(port",
                                       inst.log())]


def exchange(port: int, data: bytes, timeout: float = 10.0, shut: bool = True) -> bytes:
    """Send ``data`` on a fresh connection, half-close, read until EOF."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
            if shut:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                return out
            if not chunk:
                return out
            out += chunk


@pytest.fixture
def limited_server(tmp_path):
    """Like ``server`` but with resource limits applied in the child (``nofile``):
    own session, killpg in the finalizer, wait until the group is empty."""
    started: list[Instance] = []

    def start(*args: str, nofile: int | None = None, app: str = HARDENING_APP) -> Instance:
        def limits():
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        cmd = [sys.executable, "-m", "uwsgi_py", "--http-socket", "127.0.0.1:0",
               "--wsgi-file", app, *args]
        log_path = tmp_path / f"limited-{len(started)}.log"
        with open(log_path, "wb") as logf:
            proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, cwd=tmp_path, env=dict(os.environ),
                                    start_new_session=True, preexec_fn=limits)
        inst = Instance(proc, log_path, tmp_path)
        started.append(inst)
        inst.port = wait_until(lambda: (bound_ports(inst) or [None])[0], 15,
                               what="the bound port")
        inst.wait_log("spawned uWSGI worker")
        inst.wait_serving()
        return inst

    yield start
    for inst in started:
        inst.cleanup()


def start_hardening(server, *args: str, **kw) -> Instance:
    """The ``server`` fixture with the hardening app; waits until it serves."""
    inst = server("--wsgi-file", HARDENING_APP, *args, app=False, **kw)
    inst.wait_serving()
    return inst
