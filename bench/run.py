#!/usr/bin/env python3
"""uwsgi-py against real uWSGI 2.0.31 and gunicorn, side by side in one run.

    python3 bench/run.py              # full run, ~9 minutes
    python3 bench/run.py --quick      # smoke run, ~1.5 minutes
    python3 bench/run.py --reloads 100 --only reload --servers uwsgi-py

Creates bench/.venv (uWSGI compiled from source the first time, gunicorn,
uwsgi-py itself, built from this checkout), installs wrk with apt-get if it is
missing, then measures, interleaving the servers A B C A B C:

- hello-world throughput, latency and server CPU per request (wrk -t2 -c16
  --latency), with keep-alive (uWSGI ``--http11-socket`` and gunicorn gthread as
  the anchors) and with ``Connection: close`` (uWSGI ``--http-socket``, gunicorn
  sync), plus 4 workers and a 64 KiB response
- memory: PSS of master + workers after the load
- cold start: exec to the first 200
- reload under load: a 50 ms app, a bounded client pool, SIGHUP every 2 s
- burst: 200 clients against the 50 ms app, SIGHUP every 2 s

Results go to bench/results/latest.md and latest.json. Loopback only.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import load  # noqa: E402
import report  # noqa: E402
import servers as S  # noqa: E402

UWSGI_VERSION = "2.0.31"
# a log line each server writes once per completed graceful reload
RELOAD_DONE = {"uwsgi-py": re.compile(r"reload outcome: .*refused=no"),
               "uwsgi": re.compile(r"binary reloading uWSGI"),
               "gunicorn": re.compile(r"Handling signal: hup")}


# ---- setup ---------------------------------------------------------------------
def pip(*args: str) -> None:
    subprocess.run([str(S.VENV / "bin" / "python"), "-m", "pip", "install", "-q", *args], check=True)


def venv_has(code: str) -> bool:
    return subprocess.run([str(S.VENV / "bin" / "python"), "-c", code], capture_output=True).returncode == 0


_APT_UPDATED = False


def apt_install(*packages: str) -> None:
    """``apt-get install -y`` (Debian, as root), after one ``apt-get update``: a fresh machine
    has no package lists."""
    global _APT_UPDATED
    if shutil.which("apt-get") is None:
        sys.exit(f"bench: {', '.join(packages)} needed and there is no apt-get: install them and rerun")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if not _APT_UPDATED:
        subprocess.run(["apt-get", "update"], check=True, env=env)
        _APT_UPDATED = True
    subprocess.run(["apt-get", "install", "-y", *packages], check=True, env=env)


def build_tools_missing() -> list[str]:
    """The Debian packages uWSGI's compile needs and this machine lacks (a C compiler, the
    headers of the Python that runs the bench)."""
    missing = []
    if shutil.which("gcc") is None or shutil.which("make") is None:
        missing.append("build-essential")
    include = sysconfig.get_paths()["include"]
    if not os.path.exists(os.path.join(include, "Python.h")):
        missing.append(f"python{sys.version_info.major}.{sys.version_info.minor}-dev")
    return missing


def setup(compiled: bool = False) -> None:
    if not (S.VENV / "bin" / "python").exists():
        print(f"creating {S.VENV}", flush=True)
        made = subprocess.run([sys.executable, "-m", "venv", str(S.VENV)])
        if made.returncode != 0:   # Debian's python3 ships venv's pip bootstrap separately
            shutil.rmtree(S.VENV, ignore_errors=True)
            apt_install(f"python{sys.version_info.major}.{sys.version_info.minor}-venv")
            subprocess.run([sys.executable, "-m", "venv", str(S.VENV)], check=True)
    uwsgi = S.VENV / "bin" / "uwsgi"
    have = subprocess.run([str(uwsgi), "--version"], capture_output=True, text=True).stdout.strip() \
        if uwsgi.exists() else ""
    if have != UWSGI_VERSION:
        missing = build_tools_missing()
        if missing:
            print(f"installing what compiling uWSGI needs: {' '.join(missing)} (apt-get)", flush=True)
            apt_install(*missing)
        print(f"installing uwsgi=={UWSGI_VERSION} (compiles from source, a few minutes)", flush=True)
        pip(f"uwsgi=={UWSGI_VERSION}")
    if not venv_has("import gunicorn"):
        pip("gunicorn")
    if not venv_has("import flask"):
        pip("flask")   # the threads phase's Flask rows (apps/slow_flask.py)
    install_uwsgi_py(compiled)
    if shutil.which("wrk") is None:
        print("installing wrk (apt-get)", flush=True)
        apt_install("wrk")


def source_stamp() -> str:
    """Paths, sizes and mtimes of the files a uwsgi-py install is built from."""
    h = hashlib.sha256()
    for top in ("core", "plugins", "pyproject.toml"):
        base = S.ROOT / top
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*")
                                                      if p.is_file() and "__pycache__" not in p.parts)
        for p in files:
            st = p.stat()
            h.update(f"{p.relative_to(S.ROOT)} {st.st_size} {st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def install_uwsgi_py(compiled: bool = False) -> None:
    """A regular (not editable) install of this checkout, as users get it, redone when the
    source changes: built from a clean copy so no stale build/ output leaks in. ``compiled``:
    the optional mypyc build of the request path (README, "Compiled request path")."""
    stamp_file = S.VENV / "uwsgi-py.stamp"
    stamp = source_stamp() + (" compiled" if compiled else " pure")
    if stamp_file.exists() and stamp_file.read_text() == stamp and venv_has("import uwsgi_py"):
        return
    print("installing uwsgi-py from this checkout into the bench venv", flush=True)
    if not venv_has("import setuptools, wheel, sys; "
                    "sys.exit(int(setuptools.__version__.split('.')[0]) < 68)"):
        pip("setuptools>=68", "wheel")
    with tempfile.TemporaryDirectory(prefix="uwsgi-py-src-") as tmp:
        for top in ("core", "plugins"):
            shutil.copytree(S.ROOT / top, Path(tmp) / top,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        shutil.copy(S.ROOT / "pyproject.toml", tmp)
        shutil.copy(S.ROOT / "setup.py", tmp)
        readme = S.ROOT / "README.md"
        (Path(tmp) / "README.md").write_text(readme.read_text() if readme.exists() else "uwsgi-py\n")
        if compiled:
            pip("mypy>=1.10")
            os.environ["UWSGI_PY_COMPILE"] = "1"
        try:
            pip("--no-build-isolation", "--force-reinstall", "--no-deps", tmp)
            pip(tmp)  # dependencies (pluggy, click), once
        finally:
            os.environ.pop("UWSGI_PY_COMPILE", None)
    stamp_file.write_text(stamp)


def versions() -> dict:
    py = str(S.VENV / "bin" / "python")

    def out(cmd):
        return subprocess.run(cmd, capture_output=True, text=True).stdout.strip()

    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": out([py, "-c", "import sys; print(sys.version.split()[0])"]),
        "uwsgi": out([str(S.VENV / "bin" / "uwsgi"), "--version"]),
        "gunicorn": out([py, "-c", "import gunicorn; print(gunicorn.__version__)"]),
        "uwsgi-py": out([py, "-c", "import uwsgi_py; print(uwsgi_py.__version__)"]),
        "uwsgi-py commit": out(["git", "-C", str(S.ROOT), "rev-parse", "--short", "HEAD"]),
        "uwsgi-py build": out([py, "-c", "from uwsgi_py import hotpath; "
                                         "print('compiled request path' if hotpath.compiled() else 'pure Python')"]),
        "wrk": out(["sh", "-c", "wrk --version 2>&1 | head -1"]).split(" [")[0],
    }


# ---- wrk -------------------------------------------------------------------------
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


def wrk(port: int, duration: float, close: bool, connections: int = 16) -> dict:
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency",
           "--timeout", "5s"]
    if close:
        cmd += ["-H", "Connection: close"]
    cmd.append(f"http://127.0.0.1:{port}/")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30)
    text = proc.stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if rps is None:
        raise RuntimeError(f"wrk failed: {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
    p50 = re.search(r"^\s+50%\s+(\S+)", text, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", text, re.M)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    total = re.search(r"(\d+) requests in", text)
    return {
        "requests": int(total.group(1)) if total else 0,
        "rps": float(rps.group(1)) if rps else 0.0,
        "p50_ms": _ms(p50.group(1)) if p50 else float("nan"),
        "p99_ms": _ms(p99.group(1)) if p99 else float("nan"),
        "errors": {k: int(v) for k, v in zip(("connect", "read", "write", "timeout"), errs.groups())}
        if errs else {},
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
    }


# ---- phases ----------------------------------------------------------------------
def pinning(port: int, clients: int = 3, wait: float = 2.0) -> int:
    """How many of ``clients`` keep-alive connections, opened together and each sending one
    request, get an answer within ``wait`` s while all stay open. With 2 workers, a server
    that ties a connection to a worker until the client closes it answers 2."""
    import socket
    conns = [socket.create_connection(("127.0.0.1", port), timeout=wait) for _ in range(clients)]
    try:
        for c in conns:
            c.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answered, deadline = 0, time.monotonic() + wait
        for c in conns:
            c.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                answered += c.recv(64).startswith(b"HTTP/1.1 200")
            except OSError:
                pass
        return answered
    finally:
        for c in conns:
            c.close()


# mode -> (Connection: close?, servers); the first of each group is uwsgi-py, the others anchors
def throughput_plan(cfg) -> dict:
    plan = {"keepalive": (False, [S.UWSGI_PY_KA, S.UWSGI_11, S.UWSGI, S.GUNICORN_GT, S.GUNICORN]),
            "close": (True, [S.UWSGI_PY, S.UWSGI, S.GUNICORN, S.BARE]),
            "close-p4": (True, [S.UWSGI_PY_4, S.UWSGI_4]),
            "big-close": (True, [S.BIG_PY, S.BIG_UWSGI]),
            "big-keepalive": (False, [S.BIG_PY_KA, S.BIG_UWSGI_11])}
    if cfg.rack:
        plan["keepalive"][1].append(S.RACK_KA)
        plan["close"][1].append(S.RACK)
    return {mode: (close, [s for s in group if s.kind in cfg.servers])
            for mode, (close, group) in plan.items()}


def throughput(cfg, logdir: Path, results: dict) -> None:
    """Every server up at once, idle ones cost nothing; wrk runs interleaved."""
    plan = throughput_plan(cfg)
    specs = {s.key: s for _, group in plan.values() for s in group}
    running = {}
    try:
        for key, spec in specs.items():
            run = S.start(spec, spec.app, logdir)
            try:
                S.wait_ready(run, deadline=30)
            except RuntimeError as e:
                S.stop(run)
                if spec.key.startswith("rack"):
                    results.setdefault("notes", []).append(f"Rack row skipped: {str(e).splitlines()[0]}")
                    continue
                raise
            running[key] = run
        for run in running.values():  # warm up (imports, caches, page faults)
            wrk(run.port, 1, close=False, connections=run.spec.wrk_connections)
        for key in [s.key for s in plan["keepalive"][1]]:   # the hello keep-alive servers
            if key in running:
                results.setdefault("pinning", {})[key] = pinning(running[key].port)
        out = results.setdefault("throughput", {})
        for rnd in range(cfg.rounds):
            for mode, (close, group) in plan.items():
                for spec in group:
                    run = running.get(spec.key)
                    if run is None:
                        continue
                    cpu0 = S.cpu_seconds(run.pid)
                    r = wrk(run.port, cfg.duration, close=close, connections=spec.wrk_connections)
                    # server CPU (master + workers, user + system) per request: steadier
                    # than requests/s on a shared machine
                    r["cpu_us"] = (S.cpu_seconds(run.pid) - cpu0) / max(1, r["requests"]) * 1e6
                    out.setdefault(mode, {}).setdefault(spec.key, []).append(r)
                    print(f"  round {rnd + 1} {mode:13} {spec.label:42} {r['rps']:9.0f} rps  "
                          f"p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms  "
                          f"cpu {r['cpu_us']:.0f} us/req", flush=True)
            for key, run in running.items():
                results.setdefault("pss_kib", {}).setdefault(key, []).append(S.pss_kib(run.pid))
    finally:
        for run in running.values():
            S.stop(run)


def threads_phase(cfg, logdir: Path, results: dict) -> None:
    """Issue 19's rows, Connection: close, interleaved as in ``throughput``: the 50 ms app
    with -p 2 --threads 8 (wrk -c64: more clients than the 16 threads), and hello world with
    --threads 8 next to uwsgi-py without threads. Two more uWSGI rows run the 50 ms app
    after importing pluggy, and uwsgi-py's whole import image (apps/slow_image.py): the PSS
    per worker that image costs a worker, measured on uWSGI's own C worker loop; one more
    uwsgi-py row has every plugin but python blocked (never imported), and the last two run the
    same 50 ms app written for Flask (apps/slow_flask.py) in uwsgi-py and uWSGI."""
    plan = {"slow": [S.SLOW_PY_T, S.SLOW_UWSGI_T, S.SLOW_GUNICORN_T, S.SLOW_UWSGI_T_PLUGGY,
                     S.SLOW_UWSGI_T_IMAGE, S.SLOW_PY_T_LEAN, S.FLASK_PY_T, S.FLASK_UWSGI_T],
            "hello": [S.HELLO_PY_T, S.HELLO_UWSGI_T, S.UWSGI_PY]}
    plan = {row: [s for s in group if s.kind in cfg.servers] for row, group in plan.items()}
    running = {}
    try:
        for group in plan.values():
            for spec in group:
                run = running[spec.key] = S.start(spec, spec.app, logdir, tag="threads")
                S.wait_ready(run, deadline=30)
        for run in running.values():
            wrk(run.port, 1, close=True)
        out = results.setdefault("threads", {})
        for rnd in range(cfg.rounds):
            for row, group in plan.items():
                for spec in group:
                    run = running[spec.key]
                    cpu0 = S.cpu_seconds(run.pid)
                    r = wrk(run.port, cfg.duration, close=True,
                            connections=64 if row == "slow" else 16)
                    r["cpu_us"] = (S.cpu_seconds(run.pid) - cpu0) / max(1, r["requests"]) * 1e6
                    out.setdefault(spec.key, []).append(r)
                    print(f"  round {rnd + 1} {spec.label:42} {r['rps']:9.0f} rps  "
                          f"p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms", flush=True)
            for key, run in running.items():
                results.setdefault("threads_pss_kib", {}).setdefault(key, []).append(
                    S.pss_kib(run.pid))
                # the measure: PSS per worker (the master's share left out)
                results.setdefault("threads_worker_pss_kib", {}).setdefault(key, []).append(
                    S.worker_pss_kib(run.pid))
    finally:
        for run in running.values():
            S.stop(run)


def cold_start(cfg, logdir: Path, results: dict) -> None:
    specs = [s for s in (S.UWSGI_PY, S.UWSGI, S.GUNICORN) if s.kind in cfg.servers]
    out = results.setdefault("cold_start_ms", {})
    for rep in range(cfg.cold_reps):
        for spec in specs:
            run = S.start(spec, "hello", logdir, tag=f"-cold{rep}")
            try:
                out.setdefault(spec.key, []).append(S.wait_ready(run, deadline=30) * 1000)
            finally:
                S.stop(run)
        print("  cold start " + "  ".join(f"{k} {v[-1]:.0f} ms" for k, v in out.items()), flush=True)


def under_reloads(spec, cfg, logdir: Path, clients: int, steady: float, reloads: int,
                  every: float, timeout: float) -> dict:
    """A pool of ``clients`` against the slow app: ``steady`` s without reloads, then
    SIGHUP every ``every`` s, ``reloads`` times; drained before the server stops."""
    run = S.start(spec, "slow", logdir, tag=f"-c{clients}")
    try:
        S.wait_ready(run, deadline=30)
        before = set(S.descendants(run.pid)) - {run.pid}
        pool = load.Pool(run.port, clients, timeout).start()
        t0 = time.monotonic()
        time.sleep(steady)
        t1 = time.monotonic()
        for _ in range(reloads):
            os.kill(run.pid, signal.SIGHUP)
            time.sleep(every)
        t2 = time.monotonic()
        pool.running = False
        for t in pool.threads:
            t.join(timeout + 2)
        after = set(S.descendants(run.pid)) - {run.pid}
        alive = run.proc.poll() is None
    finally:
        S.stop(run)
    pool.stop()
    done = len(RELOAD_DONE[spec.kind].findall(run.log.read_text(errors="replace")))
    result = {
        "reloads_done": done,
        "steady": load.summarize(pool.records, t0, t1) if steady else None,
        "reloading": load.summarize(pool.records, t1, t2),
        "all_failed_by_kind": {},
        "reloads": reloads,
        "clients": clients,
        "workers_replaced": bool(before) and not (before & after),
        "master_survived": alive,
    }
    for r in pool.records:
        if r[2] != "ok":
            result["all_failed_by_kind"][r[2]] = result["all_failed_by_kind"].get(r[2], 0) + 1
    result["failed"] = sum(result["all_failed_by_kind"].values())
    result["ok"] = sum(1 for r in pool.records if r[2] == "ok")
    return result


def reload_phase(cfg, logdir: Path, results: dict) -> None:
    out = results.setdefault("reload", {})
    for spec in (S.UWSGI_PY, S.UWSGI, S.GUNICORN):
        if spec.kind not in cfg.servers:
            continue
        r = under_reloads(spec, cfg, logdir, clients=cfg.clients, steady=cfg.steady,
                          reloads=cfg.reloads, every=cfg.every, timeout=cfg.timeout)
        out[spec.key] = r
        rl, st = r["reloading"], r["steady"]
        print(f"  reload {spec.label:30} failed {r['failed']} {r['all_failed_by_kind'] or ''} "
              f"max gap {rl['max_gap_ms']:.0f} ms  p99 {st['p99_ms']:.0f} -> {rl['p99_ms']:.0f} ms  "
              f"ok {r['ok']}", flush=True)


def burst_phase(cfg, logdir: Path, results: dict) -> None:
    out = results.setdefault("burst", {})
    for spec in (S.UWSGI_PY, S.UWSGI, S.GUNICORN):
        if spec.kind not in cfg.servers:
            continue
        r = under_reloads(spec, cfg, logdir, clients=200, steady=0, reloads=cfg.burst_reloads,
                          every=cfg.every, timeout=cfg.timeout)
        out[spec.key] = r
        print(f"  burst  {spec.label:30} failed {r['failed']} {r['all_failed_by_kind'] or ''} "
              f"ok {r['ok']}  p99 {r['reloading']['p99_ms']:.0f} ms", flush=True)


# ---- main ------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run (~1.5 minutes)")
    p.add_argument("--rounds", type=int, help="wrk rounds per server and mode (default 3, quick 1)")
    p.add_argument("--duration", type=float, help="seconds per wrk run (default 5, quick 2)")
    p.add_argument("--reloads", type=int, help="SIGHUPs in the reload run (default 10, quick 3)")
    p.add_argument("--every", type=float, default=2.0, help="seconds between SIGHUPs (default 2)")
    p.add_argument("--clients", type=int, default=4, help="client pool of the reload run (default 4)")
    p.add_argument("--timeout", type=float, default=10.0, help="client timeout, seconds (default 10)")
    p.add_argument("--servers", default="uwsgi-py,uwsgi,gunicorn,bare",
                   help="comma-separated subset of uwsgi-py,uwsgi,gunicorn,bare (bare: a Python "
                        "accept/read/write/close loop, the ceiling, Connection: close only)")
    p.add_argument("--only", default="throughput,cold,reload,burst,threads",
                   help="comma-separated subset of throughput,cold,reload,burst,threads")
    p.add_argument("--no-rack", action="store_true", help="skip the Rack row")
    p.add_argument("--no-setup", action="store_true", help="use bench/.venv as it is")
    p.add_argument("--compiled", action="store_true",
                   help="install uwsgi-py's optional compiled request path (mypyc; needs a C compiler)")
    p.add_argument("--out", default=str(S.BENCH / "results"), help="results directory")
    cfg = p.parse_args(argv)
    quick = cfg.quick
    cfg.rounds = cfg.rounds or (1 if quick else 3)
    cfg.duration = cfg.duration or (2 if quick else 5)
    cfg.reloads = cfg.reloads if cfg.reloads is not None else (3 if quick else 10)
    cfg.burst_reloads = 2 if quick else 6
    cfg.steady = 2.0 if quick else 5.0
    cfg.cold_reps = 3 if quick else 7
    cfg.servers = [s.strip() for s in cfg.servers.split(",") if s.strip()]
    cfg.only = [s.strip() for s in cfg.only.split(",") if s.strip()]
    cfg.rack = not cfg.no_rack and "uwsgi-py" in cfg.servers and shutil.which("ruby") is not None
    return cfg


def main(argv=None) -> int:
    cfg = parse_args(argv)
    if not cfg.no_setup:
        setup(cfg.compiled)
    results: dict = {"config": {k: v for k, v in vars(cfg).items()}, "versions": versions()}
    if shutil.which("ruby") is None and "uwsgi-py" in cfg.servers:
        results.setdefault("notes", []).append("Rack row skipped: ruby is not installed")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="uwsgi-py-bench-") as tmp:
        logdir = Path(tmp)
        phases = {"throughput": throughput, "cold": cold_start, "reload": reload_phase,
                  "burst": burst_phase, "threads": threads_phase}
        for name in cfg.only:
            print(f"== {name}", flush=True)
            phases[name](cfg, logdir, results)
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    outdir = Path(cfg.out)
    outdir.mkdir(parents=True, exist_ok=True)
    text = report.markdown(results)
    (outdir / "latest.md").write_text(text)
    (outdir / "latest.json").write_text(json.dumps(results, indent=1, default=str))
    print()
    print(text)
    print(f"written to {outdir / 'latest.md'} ({results['elapsed_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
