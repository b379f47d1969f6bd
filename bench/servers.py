"""The servers under test: how each one is started, probed, measured and stopped.

Every server runs in its own session (process group) and is stopped by that
group id; nothing is ever killed by name. Request logging is off for all of
them (uWSGI and uwsgi-py: ``--disable-logging``; gunicorn logs no access log
unless asked), and their startup logs go to a file in the run's temp dir.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV = BENCH / ".venv"
APPS = BENCH / "apps"
WORKERS = 2


def free_port() -> int:
    """A port the kernel picked for us just now (bench only: a tiny race is fine here)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Spec:
    """One server configuration: ``argv(app, port)`` builds its command line."""

    key: str            # short name in tables
    label: str
    kind: str           # uwsgi-py | uwsgi | gunicorn
    app: str            # "hello" / "slow" (WSGI) or "hello.ru" (Rack)
    keepalive: bool = False
    stop_signal: int = signal.SIGINT
    threads: int = 0    # request threads per worker (uWSGI/uwsgi-py --threads, gunicorn gthread)
    workers: int = WORKERS
    http11: bool = False  # uWSGI --http11-socket (keeps connections alive) instead of --http-socket
    wrk_connections: int = 16
    env: dict = field(default_factory=dict)   # added to the server's environment

    def argv(self, app: str, port: int) -> list[str]:
        addr = f"127.0.0.1:{port}"
        py = str(VENV / "bin" / "python")
        workers = str(self.workers)
        if self.kind == "uwsgi-py":
            cmd = [py, "-m", "uwsgi_py", "--master", "-p", workers, "--http-socket", addr,
                   "--disable-logging"]
            cmd += ["--rack", str(APPS / app)] if app.endswith(".ru") else \
                ["--wsgi-file", str(APPS / f"{app}.py")]
            if self.keepalive:
                cmd.append("--http-keepalive")
            if self.threads:
                cmd += ["--threads", str(self.threads)]
            return cmd
        if self.kind == "uwsgi":
            socket_opt = "--http11-socket" if self.http11 else "--http-socket"
            return [str(VENV / "bin" / "uwsgi"), "--master", "-p", workers, socket_opt, addr,
                    "--wsgi-file", str(APPS / f"{app}.py"), "--disable-logging",
                    *(["--threads", str(self.threads)] if self.threads else [])]
        if self.kind == "bare":
            return [py, str(APPS / "bare_server.py"), str(port)]
        if self.kind == "gunicorn":
            worker = ["-k", "gthread", "--threads", str(self.threads)] if self.threads else ["-k", "sync"]
            return [str(VENV / "bin" / "gunicorn"), "-w", workers, *worker, "-b", addr,
                    "--chdir", str(APPS), f"{app}:application"]
        raise ValueError(self.kind)


# uWSGI 2.0: INT/QUIT stop at once, TERM is a brutal reload; gunicorn: INT/TERM/QUIT stop
UWSGI_PY = Spec("uwsgi-py", "uwsgi-py --http-socket", "uwsgi-py", "hello")
UWSGI_PY_KA = Spec("uwsgi-py-ka", "uwsgi-py --http-socket --http-keepalive", "uwsgi-py", "hello",
                   keepalive=True)
UWSGI = Spec("uwsgi", "uWSGI 2.0.31 --http-socket", "uwsgi", "hello")
UWSGI_11 = Spec("uwsgi-11", "uWSGI 2.0.31 --http11-socket", "uwsgi", "hello", http11=True)
GUNICORN = Spec("gunicorn", "gunicorn sync", "gunicorn", "hello", stop_signal=signal.SIGTERM)
GUNICORN_GT = Spec("gunicorn-gt", "gunicorn gthread --threads 4", "gunicorn", "hello",
                   stop_signal=signal.SIGTERM, threads=4)
# issue 22: 4 workers (wrk -c32), and a 64 KiB response
UWSGI_PY_4 = Spec("uwsgi-py-p4", "uwsgi-py -p 4", "uwsgi-py", "hello", workers=4, wrk_connections=32)
UWSGI_4 = Spec("uwsgi-p4", "uWSGI 2.0.31 -p 4 --http-socket", "uwsgi", "hello", workers=4,
               wrk_connections=32)
BIG_PY = Spec("big-uwsgi-py", "uwsgi-py, 64 KiB", "uwsgi-py", "big")
BIG_UWSGI = Spec("big-uwsgi", "uWSGI 2.0.31 --http-socket, 64 KiB", "uwsgi", "big")
BIG_PY_KA = Spec("big-uwsgi-py-ka", "uwsgi-py --http-keepalive, 64 KiB", "uwsgi-py", "big",
                 keepalive=True)
BIG_UWSGI_11 = Spec("big-uwsgi-11", "uWSGI 2.0.31 --http11-socket, 64 KiB", "uwsgi", "big",
                    http11=True)
BARE = Spec("bare", "bare Python loop (reference, no server)", "bare", "hello")
# issue 19: request threads, -p 2 --threads 8 (gunicorn -w 2 -k gthread --threads 8)
THREADS = 8
SLOW_PY_T = Spec("slow-uwsgi-py-t8", "uwsgi-py --threads 8, 50 ms app", "uwsgi-py", "slow",
                 threads=THREADS)
SLOW_UWSGI_T = Spec("slow-uwsgi-t8", "uWSGI 2.0.31 --threads 8, 50 ms app", "uwsgi", "slow",
                    threads=THREADS)
SLOW_GUNICORN_T = Spec("slow-gunicorn-t8", "gunicorn gthread --threads 8, 50 ms app", "gunicorn",
                       "slow", stop_signal=signal.SIGTERM, threads=THREADS)
# uwsgi-py with the python plugin only (the others blocked, never imported): what importing only
# the plugins a configuration uses would save at most
OTHER_PLUGINS = ("appsignals,cache,cheaper,daemons,emperor,fifo,health,inetd,logging,procname,"
                 "ruby_bridge,static,stats,touch")
SLOW_PY_T_LEAN = Spec("slow-uwsgi-py-t8-lean", "uwsgi-py --threads 8, 50 ms app, python plugin only",
                      "uwsgi-py", "slow", threads=THREADS,
                      env={"UWSGI_PY_DISABLE_PLUGINS": OTHER_PLUGINS})
# the same uWSGI with uwsgi-py's import image in the app (PSS per worker: what that image costs)
SLOW_UWSGI_T_PLUGGY = Spec("slow-uwsgi-t8-pluggy", "uWSGI 2.0.31 --threads 8, 50 ms app importing pluggy",
                           "uwsgi", "slow_pluggy", threads=THREADS)
SLOW_UWSGI_T_IMAGE = Spec("slow-uwsgi-t8-image",
                          "uWSGI 2.0.31 --threads 8, 50 ms app importing uwsgi-py's image",
                          "uwsgi", "slow_image", threads=THREADS)
# the 50 ms app as a Flask app: a framework's imports and request path
FLASK_PY_T = Spec("flask-uwsgi-py-t8", "uwsgi-py --threads 8, 50 ms Flask app", "uwsgi-py",
                  "slow_flask", threads=THREADS)
FLASK_UWSGI_T = Spec("flask-uwsgi-t8", "uWSGI 2.0.31 --threads 8, 50 ms Flask app", "uwsgi",
                     "slow_flask", threads=THREADS)
HELLO_PY_T = Spec("hello-uwsgi-py-t8", "uwsgi-py --threads 8, hello", "uwsgi-py", "hello",
                  threads=THREADS)
HELLO_UWSGI_T = Spec("hello-uwsgi-t8", "uWSGI 2.0.31 --threads 8, hello", "uwsgi", "hello",
                     threads=THREADS)
RACK = Spec("rack", "uwsgi-py --rack (close)", "uwsgi-py", "hello.ru")
RACK_KA = Spec("rack-ka", "uwsgi-py --rack --http-keepalive", "uwsgi-py", "hello.ru",
               keepalive=True)


@dataclass
class Running:
    spec: Spec
    proc: subprocess.Popen
    port: int
    app: str
    log: Path
    started: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def start(spec: Spec, app: str, logdir: Path, tag: str = "") -> Running:
    port = free_port()
    log = logdir / f"{spec.key}-{app.replace('.', '_')}{tag}-{port}.log"
    out = open(log, "wb")
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.update(spec.env)
    started = time.perf_counter()
    proc = subprocess.Popen(spec.argv(app, port), stdin=subprocess.DEVNULL, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True, cwd=str(APPS),
                            env=env)
    out.close()
    return Running(spec, proc, port, app, log, started)


def get(port: int, path: str = "/", timeout: float = 2.0) -> int:
    """One GET with Connection: close; the status code (raises OSError on failure)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" % path.encode())
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                raise ConnectionResetError("closed before the status line")
            data += chunk
        return int(data.split(b" ", 2)[1])


def wait_ready(run: Running, deadline: float = 60.0, poll: float = 0.001) -> float:
    """Seconds from exec to the first 200 (polling every ``poll`` s)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if run.proc.poll() is not None:
            raise RuntimeError(f"{run.spec.label} exited with {run.proc.returncode}; "
                               f"log: {run.log}\n{run.log.read_text(errors='replace')[-2000:]}")
        try:
            if get(run.port) == 200:
                return time.perf_counter() - run.started
        except OSError:
            pass
        time.sleep(poll)
    raise RuntimeError(f"{run.spec.label} did not answer within {deadline} s; log: {run.log}")


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (from /proc/*/stat parent links)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(parents.get(p, ()))
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its live descendants (/proc/PID/stat)."""
    total = 0
    for p in descendants(pid):
        try:
            with open(f"/proc/{p}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2:].split()
        total += int(fields[11]) + int(fields[12])   # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


def pss_of(pid: int) -> int | None:
    """PSS of one process in KiB, from smaps_rollup (None: gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def pss_kib(pid: int) -> int:
    """PSS of ``pid`` and its descendants (master + workers), in KiB."""
    return sum(filter(None, map(pss_of, descendants(pid))))


def worker_pss_kib(pid: int) -> float:
    """The mean PSS of ``pid``'s descendants (the workers, without the master), in KiB."""
    sizes = [kib for kib in map(pss_of, descendants(pid)[1:]) if kib is not None]
    return sum(sizes) / len(sizes) if sizes else float("nan")


def stop(run: Running, grace: float = 5.0) -> None:
    """Stop signal to the master, then SIGKILL to the whole process group."""
    pgid = run.proc.pid
    if run.proc.poll() is None:
        try:
            os.kill(run.proc.pid, run.spec.stop_signal)
        except ProcessLookupError:
            pass
        try:
            run.proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        run.proc.wait(5)
    except subprocess.TimeoutExpired:
        pass
