#!/usr/bin/env python3
"""Per-request cost of the stats accounting (issue 7): requests/s with and without ``--stats``.

    python bench/stats_cost.py                 # 4 variants x 2 rounds x 3 s, 1 worker
    python bench/stats_cost.py --duration 5 --rounds 3 --workers 2

Two measurements:

1. micro: the time the worker adds per request, timed in-process with ``timeit``:
   ``WorkerSlot.busy`` without a publisher (no ``--stats``, or ``--stats-no-cores``)
   and with the request-vars publisher (``--stats``). The scoreboard flush itself
   runs in every configuration, so it is not part of the difference.
2. wrk: ``wrk -t1 -cC -dDs`` against ``/`` of tests/apps/app.py on loopback, with
   ``--disable-logging``, for each variant, rounds interleaved; the median per
   variant. ``stats+poll`` also reads the stats document 10 times a second while
   loaded (what uwsgitop does, 10x faster).

Not part of the test suite: it needs wrk and takes about half a minute. Each server
runs in its own session and is killed by its process group id at the end.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "tests" / "apps" / "app.py"
PORT_RE = re.compile(r"bound to TCP address 127\.0\.0\.1:(\d+)")
RPS_RE = re.compile(r"Requests/sec:\s+([\d.]+)")
ENV = {"REQUEST_METHOD": "GET", "REQUEST_URI": "/", "PATH_INFO": "/", "QUERY_STRING": "",
       "SERVER_PROTOCOL": "HTTP/1.1", "SCRIPT_NAME": "", "SERVER_NAME": "bench",
       "SERVER_PORT": "8080", "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1:8080",
       "HTTP_USER_AGENT": "wrk", "HTTP_ACCEPT": "*/*"}


def micro(number: int = 200_000) -> dict[str, float]:
    """Microseconds per request spent in WorkerSlot.busy, without and with the publisher."""
    from uwsgi_py.scoreboard import Scoreboard, WorkerSlot
    from uwsgi_py_stats.requestvars import RequestVars
    board = Scoreboard(1)
    board.set_pid(1, os.getpid())
    slot = WorkerSlot(board, 1)
    plain = timeit.timeit(lambda: slot.busy(1.0, "/", ENV), number=number) / number * 1e6
    slot.publish = RequestVars(1).writer(1)
    published = timeit.timeit(lambda: slot.busy(1.0, "/", ENV), number=number) / number * 1e6
    return {"busy() without --stats": plain, "busy() with --stats": published,
            "added by --stats": published - plain}


class Server:
    def __init__(self, workdir: Path, args: list[str], workers: int):
        self.log = workdir / f"server-{len(list(workdir.glob('server-*')))}.log"
        cmd = [sys.executable, "-m", "uwsgi_py", "--http-socket", "127.0.0.1:0", "--wsgi-file",
               str(APP), "-p", str(workers), "--master", "--disable-logging", *args]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=workdir,
                                         start_new_session=True)
        self.port = self.wait_port()

    def wait_port(self, timeout: float = 15.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log.read_text(errors="replace")
            match = PORT_RE.search(text)
            if match and text.count("spawned uWSGI worker"):
                return int(match.group(1))
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{text}")
            time.sleep(0.05)
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # our own session, by its id
        except ProcessLookupError:
            pass
        self.proc.wait(5)


def poll_stats(path: str, stop: threading.Event, hz: float = 10.0) -> None:
    while not stop.is_set():
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(2)
                s.connect(path)
                while s.recv(65536):
                    pass
        except OSError:
            pass
        stop.wait(1 / hz)


def wrk(port: int, duration: int, connections: int) -> float:
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration}s",
                          f"http://127.0.0.1:{port}/"], capture_output=True, text=True,
                         timeout=duration + 30).stdout
    match = RPS_RE.search(out)
    if not match:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    return float(match.group(1))


def run_variant(workdir: Path, name: str, args: list[str], poll: bool, opts) -> float:
    sock = str(workdir / f"{name}.sock")
    args = [a.replace("SOCK", sock) for a in args]
    server = Server(workdir, args, opts.workers)
    stop = threading.Event()
    poller = threading.Thread(target=poll_stats, args=(sock, stop), daemon=True)
    try:
        wrk(server.port, 1, opts.connections)          # warm up
        if poll:
            poller.start()
        return wrk(server.port, opts.duration, opts.connections)
    finally:
        stop.set()
        if poll:
            poller.join(5)
        server.stop()


VARIANTS = [  # name, extra options, poll the stats socket while loaded
    ("baseline", [], False),
    ("stats", ["--stats", "SOCK"], False),
    ("stats-no-cores", ["--stats", "SOCK", "--stats-no-cores"], False),
    ("stats+poll", ["--stats", "SOCK"], True),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=3, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--connections", type=int, default=8)
    opts = parser.parse_args()
    print("micro (us per request, in-process):")
    for label, value in micro().items():
        print(f"  {label:<26} {value:7.2f}")
    if not shutil.which("wrk"):
        print("wrk not found: skipping the requests/s runs")
        return 0
    results: dict[str, list[float]] = {name: [] for name, _, _ in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="uwsgi-py-bench-") as tmp:
        for round_ in range(opts.rounds):
            # rotate the order each round so no variant always runs first
            order = VARIANTS[round_ % len(VARIANTS):] + VARIANTS[:round_ % len(VARIANTS)]
            for name, args, poll in order:
                results[name].append(run_variant(Path(tmp), name, args, poll, opts))
    base = statistics.median(results["baseline"])
    print(f"\nwrk -t1 -c{opts.connections} -d{opts.duration}s, {opts.workers} worker(s), "
          f"median of {opts.rounds}:")
    print(f"  {'variant':<16} {'req/s':>9} {'vs baseline':>12} {'us/request':>11}  runs")
    for name, values in results.items():
        rps = statistics.median(values)
        extra = (1 / rps - 1 / base) * 1e6 * opts.workers
        runs = " ".join(f"{v:.0f}" for v in values)
        print(f"  {name:<16} {rps:9.0f} {100 * (rps / base - 1):+11.1f}% {extra:+11.1f}  {runs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
