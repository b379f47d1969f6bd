"""Interleaved A/B of uwsgi-py builds or flags on hello world, Connection: close.

Each ``LABEL=PYTHON[:ARGS]`` names a Python that has uwsgi-py installed (a venv with another
checkout, say) and extra uwsgi-py arguments; all of them start at once (``-p 2`` on a loopback
port each) and take turns under wrk (``-t2 -c16``), round after round, so a noisy machine weighs on
each the same. Printed per configuration: median requests/s, server CPU per request (master +
workers, from /proc) and the machine's idle share during its turns.

    python3 bench/ab.py nothr=bench/.venv/bin/python thr8=bench/.venv/bin/python:--threads,8

This is how the threaded request path's per-request costs in bench/RESULTS.md were taken (a venv
per variant). Needs wrk.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import servers as S  # noqa: E402

HELLO = S.APPS / "hello.py"


def machine_ticks() -> list[int]:
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:]]


def wait_ready(label: str, proc: subprocess.Popen, port: int, deadline: float = 30.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            sys.exit(f"{label}: the server exited with {proc.returncode}")
        try:
            if S.get(port) == 200:
                return
        except OSError:
            pass
        time.sleep(0.01)
    sys.exit(f"{label}: no answer within {deadline:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("configs", nargs="+", metavar="LABEL=PYTHON[:ARGS]",
                    help="extra uwsgi-py arguments separated by commas")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=4, help="seconds per wrk run")
    args = ap.parse_args()
    running = {}
    try:
        for item in args.configs:
            label, _, rest = item.partition("=")
            python, _, extra = rest.partition(":")
            port = S.free_port()
            argv = [python, "-m", "uwsgi_py", "--master", "-p", "2", "--http-socket",
                    f"127.0.0.1:{port}", "--disable-logging", "--wsgi-file", str(HELLO),
                    *[a for a in extra.split(",") if a]]
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    start_new_session=True)
            running[label] = (proc, port)
            wait_ready(label, proc, port)
        results: dict[str, list[tuple[float, float, float]]] = {label: [] for label in running}
        for rnd in range(args.rounds):
            for label, (proc, port) in running.items():
                cpu0, ticks0 = S.cpu_seconds(proc.pid), machine_ticks()
                out = subprocess.run(["wrk", "-t2", "-c16", f"-d{args.duration}s", "-H",
                                      "Connection: close", f"http://127.0.0.1:{port}/"],
                                     capture_output=True, text=True, check=True).stdout
                ticks = [b - a for a, b in zip(ticks0, machine_ticks())]
                rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
                requests = int(re.search(r"(\d+) requests in", out).group(1))
                cpu_us = (S.cpu_seconds(proc.pid) - cpu0) / max(1, requests) * 1e6
                idle = (ticks[3] + ticks[4]) / max(1, sum(ticks)) * 100
                results[label].append((rps, cpu_us, idle))
                print(f"round {rnd + 1} {label:12} {rps:9.0f} rps {cpu_us:6.1f} us/request "
                      f"idle {idle:4.1f} %", flush=True)
        print()
        for label, runs in results.items():
            print(f"{label:12} median {statistics.median(r[0] for r in runs):9.0f} rps "
                  f"{statistics.median(r[1] for r in runs):6.1f} us/request "
                  f"idle {statistics.median(r[2] for r in runs):4.1f} %")
    finally:
        for proc, _ in running.values():
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()


if __name__ == "__main__":
    main()
