"""Graceful stop (SHUT-2 through ``--hook-master-start unix_signal:N ACTION``): new
connections refused at once, accepted ones answered, exit 0; atexit handlers in
workers on graceful exits only; ``--exit-on-reload`` after the workers finish;
the Docker and Kubernetes examples."""
import os
import re
import shutil
import signal
import socket
import threading
import time

import pytest

from conftest import APPS, ROOT, pid_alive, run_cli, wait_until

pytestmark = pytest.mark.timeout(60)

HOOK = ("--hook-master-start", "unix_signal:15 gracefully_kill_them_all")
EXAMPLES = ROOT / "examples"


class Slow:
    """One request in a thread; ``result`` is (status, body) or the exception."""

    def __init__(self, inst, path: str, **kw):
        self.result = None
        self.done_at = 0.0
        self.thread = threading.Thread(target=self.run, args=(inst, path), kwargs=kw, daemon=True)
        self.thread.start()

    def run(self, inst, path, **kw):
        try:
            self.result = inst.request(path, timeout=20, **kw)
        except Exception as e:  # noqa: BLE001 - recorded for the assertion
            self.result = e
        self.done_at = time.monotonic()

    def join(self):
        self.thread.join(20)
        return self.result


def wait_busy(inst, n: int = 1):
    wait_until(lambda: inst.log().count("slow-started") >= n, 10, what=f"{n} slow request(s) to start")


def refused(address) -> bool:
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        try:
            s.connect(address)
        except ConnectionRefusedError:
            return True
        return False


def test_hooked_term_refuses_new_connections_at_once_and_finishes_in_flight(server, tmp_path):
    pidfile = tmp_path / "app.pid"
    inst = server("--master", "-p", "2", *HOOK, "--pidfile", str(pidfile), "--vacuum")
    inst.wait_log("hook-master-start: signal 15 (SIGTERM) -> graceful_shutdown")
    workers = inst.wait_workers(2)
    slow = Slow(inst, "/slow/4")
    wait_busy(inst)
    inst.signal(signal.SIGTERM)
    inst.wait_log("graceful shutdown triggered...")
    wait_until(lambda: refused(("127.0.0.1", inst.port)), 10, what="connects to be refused")
    refused_at = time.monotonic()
    reply = slow.join()
    assert reply[0] == 200 and reply[1].startswith(b"slow done"), reply
    assert refused_at < slow.done_at       # refused while the request was still in flight
    assert inst.wait_exit() == 0
    log = inst.log()
    assert "goodbye to uWSGI." in log and "VACUUM: pidfile removed." in log
    assert not pidfile.exists()
    assert "brutally killing" not in log and not any(pid_alive(p) for p in workers)


def test_connections_queued_in_the_kernel_are_answered(server):
    """-p 1, busy: a client whose connection the kernel accepted before the stop is still
    answered (the stopping worker takes the queue before it shuts the listener)."""
    inst = server("--master", "-p", "1", *HOOK)
    slow = Slow(inst, "/slow/2")
    wait_busy(inst)
    queued = Slow(inst, "/pid")            # waits in the listen queue behind the slow one
    wait_until(lambda: queue_length(inst.port) >= 1 or queued.result, 5, what="a queued connection")
    inst.signal(signal.SIGTERM)
    inst.wait_log("graceful shutdown triggered...")
    assert slow.join()[0] == 200
    assert queued.join()[0] == 200, queued.result
    assert inst.wait_exit() == 0


def queue_length(port: int) -> int:
    """Connections in the accept queue of the listener on 127.0.0.1:PORT (/proc/net/tcp)."""
    want = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] == want and fields[3] == "0A":
                return int(fields[4].split(":")[1], 16)
    return 0


def test_graceful_stop_on_a_unix_socket(server, tmp_path):
    path = str(tmp_path / "app.sock")
    inst = server("--master", "-p", "2", "--http-socket", path, "--vacuum",
                  "--hook-master-start", "unix_signal:INT gracefully_kill_them_all", http=False)
    wait_until(lambda: os.path.exists(path), what="the unix socket")
    from launch_helpers import get_unix
    wait_until(lambda: get_unix(path)[0] == 200, what="the server to answer")
    inst.signal(signal.SIGINT)
    wait_until(lambda: not os.path.exists(path) or refused(path), what="connects to be refused")
    assert inst.wait_exit() == 0
    assert not os.path.exists(path)


def test_fifo_q_refuses_new_connections_too(server, tmp_path):
    fifo = tmp_path / "app.fifo"
    inst = server("--master", "-p", "2", "--master-fifo", str(fifo))
    slow = Slow(inst, "/slow/3")
    wait_busy(inst)
    with open(fifo, "wb") as f:
        f.write(b"q")
    wait_until(lambda: refused(("127.0.0.1", inst.port)), 10, what="connects to be refused")
    assert slow.join()[0] == 200
    assert inst.wait_exit() == 0


def test_graceful_reload_keeps_listening(server):
    """The listeners survive a graceful reload and a worker recycle (only a stop shuts them)."""
    inst = server("--master", "-p", "1", "--max-requests", "1", "--min-worker-lifetime", "0")
    for _ in range(3):
        assert inst.get("/") == b"hello\n"
    inst.signal(signal.SIGHUP)
    inst.wait_log("reload outcome: generation=1")
    assert inst.get("/") == b"hello\n"
    assert "shut down listening socket" not in inst.log()


@pytest.mark.parametrize("value, message", [
    ("exec:/bin/true", "--hook-master-start: 'exec:/bin/true' is not supported: only "
                       "'unix_signal:SIGNUM ACTION' hooks are"),
    ("unix_signal:15 no_such_thing", "--hook-master-start: 'unix_signal:15 no_such_thing' names no "
                                     "master action 'no_such_thing'"),
])
def test_a_bad_hook_is_one_line_at_start_up(tmp_path, value, message):
    result = run_cli("--master", "--http-socket", "127.0.0.1:0", "--hook-master-start", value,
                     cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


# ---- atexit in workers ----------------------------------------------------------------------------
def atexit_server(server, tmp_path, *args):
    shutil.copy(APPS / "atexit_app.py", tmp_path / "atexit_app.py")
    out = tmp_path / "atexit.txt"
    inst = server("--master", "--wsgi-file", "atexit_app.py", *args, app=False,
                  env={"ATEXIT_FILE": str(out)})
    inst.wait_serving()
    return inst, out


def ran_atexit(out, pid: int) -> bool:
    return out.exists() and f"atexit {pid}\n" in out.read_text()


def test_atexit_runs_in_workers_on_every_graceful_exit(server, tmp_path):
    inst, out = atexit_server(server, tmp_path, "-p", "1", "--max-requests", "2",
                              "--min-worker-lifetime", "0", *HOOK)
    first = int(inst.get("/"))   # its second request (wait_serving made the first): recycled
    wait_until(lambda: ran_atexit(out, first), what="atexit in the recycled worker")
    second = inst.wait_workers(1, exclude=[first])[0]
    inst.signal(signal.SIGHUP)                         # graceful reload
    inst.wait_log("reload outcome: generation=1")
    wait_until(lambda: ran_atexit(out, second), what="atexit in the reloaded worker")
    third = inst.wait_workers(1, exclude=[first, second])[0]
    inst.signal(signal.SIGTERM)                        # graceful stop (the hook)
    assert inst.wait_exit() == 0
    assert ran_atexit(out, third)


def test_atexit_never_runs_on_a_brutal_exit(server, tmp_path):
    inst, out = atexit_server(server, tmp_path, "-p", "1")
    first = inst.wait_workers(1)[0]
    inst.signal(signal.SIGTERM)                        # brutal reload: SIGTERM to the worker
    inst.wait_log("reload outcome: generation=1")
    second = inst.wait_workers(1, exclude=[first])[0]
    inst.signal(signal.SIGINT)                         # immediate shutdown: SIGINT to the worker
    assert inst.wait_exit() == 0
    text = out.read_text() if out.exists() else ""
    assert f"atexit {first}\n" not in text and f"atexit {second}\n" not in text
    assert f"atexit {inst.pid}\n" in text              # the master itself exits normally


def test_atexit_runs_when_a_worker_is_cheaped(server, tmp_path):
    fifo = tmp_path / "app.fifo"
    inst, out = atexit_server(server, tmp_path, "-p", "2", "--cheaper", "1", "--cheaper-algo", "manual",
                              "--master-fifo", str(fifo))
    workers = inst.wait_workers(1)
    with open(fifo, "wb") as f:
        f.write(b"+")
    both = inst.wait_workers(2)
    with open(fifo, "wb") as f:
        f.write(b"-")
    inst.wait_log("cheaped.")
    gone = wait_until(lambda: [p for p in both if not pid_alive(p)], what="a worker to be cheaped")
    assert len(gone) == 1 and ran_atexit(out, gone[0])
    assert len(workers) == 1


# ---- --exit-on-reload (RELOAD-5) --------------------------------------------------------------------
def test_exit_on_reload_waits_for_the_workers(server):
    inst = server("--master", "-p", "2", "--exit-on-reload")
    slow = Slow(inst, "/slow/2")
    wait_busy(inst)
    inst.signal(signal.SIGHUP)
    reply = slow.join()
    assert reply[0] == 200, reply
    assert inst.wait_exit() == 0
    log = inst.log()
    assert log.index("GET /slow/2 =>") < log.index("uWSGI: GAME OVER (insert coin)")
    assert "binary reloading" not in log


# ---- the Docker and Kubernetes examples -------------------------------------------------------------
def docker_config(tmp_path, port: str = "127.0.0.1:0"):
    try:
        import tomllib
    except ImportError:    # Python < 3.11
        import tomli as tomllib
    text = (EXAMPLES / "docker" / "uwsgi.toml").read_text()
    assert 'http-socket = "0.0.0.0:8000"' in text
    (tmp_path / "uwsgi.toml").write_text(text.replace("0.0.0.0:8000", port))
    return tomllib.loads(text)["uwsgi"]


def test_docker_example_stops_gracefully_with_its_stopsignal(server, tmp_path):
    dockerfile = (EXAMPLES / "docker" / "Dockerfile").read_text()
    stopsignal = re.search(r"^STOPSIGNAL (\w+)$", dockerfile, re.M).group(1)
    cmd = re.search(r"^CMD \[(.*)\]$", dockerfile, re.M).group(1)
    argv = [part.strip().strip('"') for part in cmd.split(",")]
    assert argv[0] == "uwsgi-py" and "COPY uwsgi.toml app.py ./" in dockerfile
    docker_config(tmp_path)
    shutil.copy(APPS / "app.py", tmp_path / "app.py")
    inst = server(*argv[1:], http=False, app=False)
    inst.port = int(re.search(r"127\.0\.0\.1:(\d+) \(port auto-assigned\)",
                              inst.wait_log("(port auto-assigned)")).group(1))
    inst.wait_serving()
    slow = Slow(inst, "/slow/2")
    wait_busy(inst)
    inst.signal(getattr(signal, stopsignal))          # what `docker stop` sends
    wait_until(lambda: refused(("127.0.0.1", inst.port)), 10, what="connects to be refused")
    assert slow.join()[0] == 200
    assert inst.wait_exit() == 0


def test_kubernetes_example_gives_the_mercy_time_to_run(tmp_path):
    manifest = (EXAMPLES / "kubernetes" / "deployment.yaml").read_text()
    config = docker_config(tmp_path)
    grace = int(re.search(r"terminationGracePeriodSeconds: (\d+)", manifest).group(1))
    pre_stop = re.search(r"preStop:\s+exec:\s+command: \[\"sleep\", \"(\d+)\"\]", manifest)
    assert pre_stop, "the preStop hook sleeps while the endpoints are updated"
    assert grace > int(pre_stop.group(1)) + config["worker-reload-mercy"]
    assert re.search(r"readinessProbe:\s+httpGet:\s+path: /\s+port: http", manifest)
    port = int(config["http-socket"].rsplit(":", 1)[1])
    assert f"containerPort: {port}" in manifest
    assert config["hook-master-start"] == ["unix_signal:15 gracefully_kill_them_all"]

