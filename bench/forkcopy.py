"""How much of what a worker inherits it copies: at start, at its first request, under load.

    python3 bench/forkcopy.py [--server uwsgi-py|uwsgi] [--app bench/apps/slow_flask.py]

Starts the server with ``-p 1 --threads 8`` on a loopback port, then compares the worker's
resident anonymous pages (heap and mmaps, through /proc/PID/pagemap: run as root) with the pages
the process had when it forked:

- uwsgi-py: the app is loaded through a wrapper that writes the master's page frames to a file
  just before the first fork (``os.register_at_fork``), so the master's own writes after the
  fork do not count;
- uWSGI: its master is C and leaves the Python heap alone after the fork, so the master's pages
  as they are stand for the snapshot.

Printed for the worker ready and idle, after its first request and after 3 s of wrk -c64
(Connection: close): "copied" (a page it inherited and wrote to, so it now has its own copy) and
"new" (a page that was not resident at the fork). Every copied or new page is a whole page of the
worker's PSS; an untouched inherited page is a third of one with two workers.

``--between`` (uwsgi-py): instead, ``-p 2`` with the master stopped (SIGSTOP, from a
before-fork hook of the app wrapper) at each of its two forks, and its pages compared between the
stops: what the master writes between one fork and the next, which the earlier worker then holds
alone.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import servers as S  # noqa: E402
from pagemap import anon_regions  # noqa: E402

PRESENT = 0x80   # bit 63 of a pagemap entry: the top bit of its last byte

# Runs inside the measured server, before its fork: it imports nothing of bench/ (that would
# be measured too), so it walks the mappings itself, as pagemap.anon_regions does.
WRAPPER = '''\
import importlib.util, os
def _snapshot():
    if os.path.exists({snap!r}):
        return
    rows = []
    with open("/proc/self/pagemap", "rb") as pagemap, open("/proc/self/maps") as maps:
        for line in maps:
            parts = line.split()
            start, end = (int(x, 16) for x in parts[0].split("-"))
            if (parts[5] if len(parts) > 5 else "[anon]") not in ("[anon]", "[heap]"):
                continue
            pagemap.seek(start // 4096 * 8)
            rows.append(f"{{start}} {{pagemap.read((end - start) // 4096 * 8).hex()}}")
    with open({snap!r}, "w") as f:
        f.write("\\n".join(rows))
import signal
_forks = [0]
def _stop_at_fork():
    _forks[0] += 1
    if _forks[0] <= 2:
        os.kill(os.getpid(), signal.SIGSTOP)
os.register_at_fork(before=_stop_at_fork if os.environ.get("FORKCOPY_BETWEEN") else _snapshot)
_spec = importlib.util.spec_from_file_location("forkcopy_app", {app!r})
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)
application = _mod.application
'''


def frames_of_process(pid: int) -> dict[int, bytes]:
    """Virtual page number -> frame (7 bytes of the pagemap entry) of ``pid``'s resident
    anonymous pages."""
    out = {}
    for start, _, data in anon_regions(pid):
        _add(out, start, data)
    return out


def frames_of_snapshot(path: str) -> dict[int, bytes]:
    out = {}
    with open(path) as f:
        for line in f:
            start, data = line.split()
            _add(out, int(start), bytes.fromhex(data))
    return out


def _add(out: dict, start: int, data: bytes) -> None:
    for i in range(0, len(data), 8):
        if data[i + 7] & PRESENT:
            out[start // 4096 + i // 8] = data[i:i + 7]


def compare(worker: int, at_fork: dict[int, bytes]) -> str:
    now = frames_of_process(worker)
    copied = sum(1 for page, frame in now.items() if page in at_fork and at_fork[page] != frame)
    new = sum(1 for page in now if page not in at_fork)
    return f"copied {copied * 4:6} KiB   new {new * 4:6} KiB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", choices=("uwsgi-py", "uwsgi"), default="uwsgi-py")
    ap.add_argument("--app", default=str(S.APPS / "slow_flask.py"))
    ap.add_argument("--between", action="store_true",
                    help="uwsgi-py -p 2: what the master writes between its two forks")
    args = ap.parse_args()
    app = str(Path(args.app).resolve())
    if args.between:
        return between(app)
    port = S.free_port()
    with tempfile.TemporaryDirectory() as tmp:
        snap = os.path.join(tmp, "at-fork")
        if args.server == "uwsgi-py":
            wrapper = os.path.join(tmp, "forkcopy_wrapper.py")
            Path(wrapper).write_text(WRAPPER.format(snap=snap, app=app))
            cmd = [str(S.VENV / "bin" / "python"), "-m", "uwsgi_py", "--wsgi-file", wrapper]
        else:
            cmd = [str(S.VENV / "bin" / "uwsgi"), "--wsgi-file", app]
        cmd += ["--master", "-p", "1", "--threads", "8", "--http-socket", f"127.0.0.1:{port}",
                "--disable-logging"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True, cwd=str(S.APPS))
        try:
            worker = wait_for_worker(proc)
            reference = (lambda: frames_of_snapshot(snap)) if args.server == "uwsgi-py" \
                else (lambda: frames_of_process(proc.pid))
            at_fork = reference()
            print(f"{args.server}, {Path(app).name}, -p 1 --threads 8")
            print(f"  worker ready, idle     {compare(worker, at_fork)}")
            if S.get(port) != 200:
                sys.exit("forkcopy: the app did not answer 200")
            print(f"  after its 1st request  {compare(worker, at_fork)}")
            subprocess.run(["wrk", "-t2", "-c64", "-d3s", "-H", "Connection: close",
                            f"http://127.0.0.1:{port}/"], capture_output=True, check=True)
            print(f"  after 3 s of wrk -c64  {compare(worker, at_fork)}")
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def between(app: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        wrapper = os.path.join(tmp, "forkcopy_wrapper.py")
        Path(wrapper).write_text(WRAPPER.format(snap=os.path.join(tmp, "unused"), app=app))
        cmd = [str(S.VENV / "bin" / "python"), "-m", "uwsgi_py", "--wsgi-file", wrapper,
               "--master", "-p", "2", "--threads", "8", "--http-socket",
               f"127.0.0.1:{S.free_port()}", "--disable-logging"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True, cwd=str(S.APPS),
                                env=dict(os.environ, FORKCOPY_BETWEEN="1"))
        try:
            frames = []
            for _ in range(2):
                wait_stopped(proc)
                frames.append(frames_of_process(proc.pid))
                os.kill(proc.pid, signal.SIGCONT)
            first, second = frames
            wrote = sum(1 for page, frame in first.items()
                        if page in second and second[page] != frame)
            new = sum(1 for page in second if page not in first)
            print(f"uwsgi-py, {Path(app).name}, -p 2 --threads 8: between its two forks the master "
                  f"wrote to {wrote * 4} KiB of pages and made {new * 4} KiB new")
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_stopped(proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"forkcopy: the server exited with {proc.returncode}")
        with open(f"/proc/{proc.pid}/stat") as f:
            if f.read().rpartition(")")[2].split()[0] == "T":
                return
        time.sleep(0.01)
    sys.exit("forkcopy: the master did not stop at a fork within 30 s")


def wait_for_worker(proc: subprocess.Popen) -> int:
    """The worker's pid, once it has been running for a second (its start is over)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"forkcopy: the server exited with {proc.returncode}")
        kids = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                              text=True).stdout.split()
        if kids:
            time.sleep(1.0)
            return int(kids[0])
        time.sleep(0.05)
    sys.exit("forkcopy: no worker within 30 s")


if __name__ == "__main__":
    main()
