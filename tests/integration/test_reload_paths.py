"""Relative paths across a graceful reload (RELOAD-5: the exec starts from the start directory).

Each instance starts in ``start/`` with ``--chdir sub`` (or a config file saying so),
and one relative path of each kind. Paths read before the chdir (config files,
pidfiles, the log file) are the start directory's; what is used after it (the app,
unix sockets, touch files) is ``sub/``'s; a graceful reload must find each where the
first start did: the reload check (a throwaway process) included. Each test checks
the outcome line (``refused=no``), that the new generation serves, and where the
files are. The wrong place is created too, so a path resolved there would not fail
silently elsewhere.
"""
from __future__ import annotations

import os
import re
import shutil
import signal

import pytest

from conftest import APPS, PORT_RE, run_cli, wait_until
from launch_helpers import get_unix

pytestmark = pytest.mark.timeout(90)

OUTCOME = re.compile(r"reload outcome: generation=(\d+) kind=graceful .* refused=(\w+)")


@pytest.fixture
def start_dir(tmp_path):
    """``start/`` (the server's cwd) with the test app in ``start/sub/``."""
    root = tmp_path / "start"
    (root / "sub").mkdir(parents=True)
    shutil.copy(APPS / "app.py", root / "sub" / "app.py")
    return root


def serving(inst, log_path=None) -> None:
    """Wait for the port line (in ``log_path`` when the server logs there) and an answer."""
    if log_path is not None:
        wait_until(log_path.exists, 15, what=f"{log_path}")
        inst.log_path = log_path
    inst.port = int(PORT_RE.search(inst.wait_log("bound to ")).group(1))
    inst.wait_serving()


def reloaded(inst, generation: int = 1, trigger=None) -> None:
    """Trigger a graceful reload (SIGHUP unless ``trigger``), then: not refused, new workers serve."""
    before = inst.workers()
    if trigger is None:
        inst.signal(signal.SIGHUP)
    else:
        trigger()
    inst.wait_log(f"reload outcome: generation={generation} ", timeout=30)
    outcome = [m for m in OUTCOME.findall(inst.log()) if m[0] == str(generation)]
    assert outcome == [(str(generation), "no")], inst.log()[-3000:]
    wait_until(lambda: not set(before) & set(inst.workers()), 15, what="the old workers to go")
    inst.wait_serving()


def mark(app, text: str) -> None:
    """Change what ``/mark`` answers, so that an answer tells which code a worker runs."""
    source = app.read_text()
    app.write_text(re.sub(r'GENERATION_MARK = "\w+"', f'GENERATION_MARK = "{text}"', source))


def test_relative_chdir_and_wsgi_file(server, start_dir):
    inst = server("--master", "-p", "2", "--chdir", "sub", "--wsgi-file", "app.py", app=False,
                  cwd=start_dir, wait=False)
    serving(inst)
    assert inst.get("/mark") == b"v1"
    mark(start_dir / "sub" / "app.py", "v2")
    reloaded(inst)
    assert inst.get("/mark") == b"v2"
    assert "RELOAD REFUSED" not in inst.log()


def test_relative_wsgi_file_without_chdir(server, start_dir):
    inst = server("--master", "--wsgi-file", "sub/app.py", app=False, cwd=start_dir, wait=False)
    serving(inst)
    mark(start_dir / "sub" / "app.py", "v2")
    reloaded(inst)
    assert inst.get("/mark") == b"v2"


def test_relative_pidfile(server, start_dir):
    (start_dir / "run").mkdir()
    (start_dir / "sub" / "run").mkdir()
    inst = server("--master", "--chdir", "sub", "--wsgi-file", "app.py", "--pidfile", "run/app.pid",
                  "--vacuum", app=False, cwd=start_dir, wait=False)
    serving(inst)
    pidfile = start_dir / "run" / "app.pid"
    assert pidfile.read_text() == f"{inst.pid}\n"
    # the client reads the same relative path from the start directory
    reloaded(inst, trigger=lambda: run_cli("--reload", "run/app.pid", cwd=start_dir))
    assert pidfile.read_text() == f"{inst.pid}\n"
    assert not (start_dir / "sub" / "run" / "app.pid").exists()
    inst.signal(signal.SIGINT)
    assert inst.wait_exit() == 0
    assert not pidfile.exists()                       # --vacuum found it from sub/


def test_relative_logto(server, start_dir):
    (start_dir / "logs").mkdir()
    (start_dir / "sub" / "logs").mkdir()
    logfile = start_dir / "logs" / "app.log"
    inst = server("--master", "--chdir", "sub", "--wsgi-file", "app.py", "--logto", "logs/app.log",
                  "--log-reopen", "--touch-logreopen", "reopen.touch", app=False, cwd=start_dir,
                  wait=False)
    serving(inst, logfile)
    reloaded(inst)
    inst.wait_log("gracefully (RE)spawned uWSGI master process")
    # a reopen after the chdir (master and workers) reopens the start directory's file
    touch = start_dir / "sub" / "reopen.touch"
    touch.write_text("")
    inst.wait_log(f"{logfile} reopened.")
    assert inst.get("/") == b"hello\n"
    assert not (start_dir / "sub" / "logs" / "app.log").exists()


def test_relative_touch_reload(server, start_dir):
    touch = start_dir / "sub" / "reload.touch"
    inst = server("--master", "--chdir", "sub", "--wsgi-file", "app.py", "--touch-reload", "reload.touch",
                  app=False, cwd=start_dir, wait=False)
    serving(inst)
    # the master looked for it (from sub/): creating it now is a change it sees
    inst.wait_log("unable to stat() reload.touch, events will be triggered as soon as the file is created")
    reloaded(inst, 1, lambda: touch.write_text(""))
    inst.wait_log("*** reload.touch has been touched... grace them all !!! ***")
    # the new image recorded the file's mtime before its outcome line: a newer one fires
    stamp = os.stat(touch).st_mtime + 10
    reloaded(inst, 2, lambda: os.utime(touch, (stamp, stamp)))


def test_relative_unix_socket(server, start_dir):
    (start_dir / "sub" / "sock").mkdir()
    inst = server("--master", "--chdir", "sub", "--wsgi-file", "app.py", "--http-socket", "sock/app.sock",
                  "--vacuum", app=False, cwd=start_dir, wait=False)
    serving(inst)
    sock = start_dir / "sub" / "sock" / "app.sock"
    assert get_unix(str(sock)) == (200, b"hello\n")
    reloaded(inst)
    inst.wait_log("uwsgi socket 1 inherited UNIX address sock/app.sock")
    assert get_unix(str(sock)) == (200, b"hello\n")
    inst.signal(signal.SIGINT)
    assert inst.wait_exit() == 0
    assert not sock.exists()                           # --vacuum removed it from sub/


@pytest.mark.parametrize("kind", ["ini", "toml"])
def test_relative_config_file(server, start_dir, kind):
    (start_dir / "conf").mkdir()
    config = start_dir / "conf" / f"app.{kind}"
    quote = '"' if kind == "toml" else ""

    def write(processes: int) -> None:
        config.write_text(f"[uwsgi]\nmaster = true\nchdir = {quote}sub{quote}\n"
                          f"wsgi-file = {quote}app.py{quote}\nprocesses = {processes}\n")

    write(1)
    inst = server(f"--{kind}", f"conf/app.{kind}", app=False, cwd=start_dir, wait=False)
    serving(inst)
    inst.wait_workers(1)
    write(2)                                           # the new image reads the file again
    reloaded(inst)
    inst.wait_workers(2)


def test_master_does_not_spin_while_the_reload_check_runs(server, start_dir):
    """While the throwaway process loads the app (1.5 s here), the master waits in select()."""
    app = start_dir / "sub" / "app.py"
    app.write_text("import time\ntime.sleep(1.5)\n" + app.read_text())
    inst = server("--master", "--chdir", "sub", "--wsgi-file", "app.py", app=False, cwd=start_dir,
                  wait=False)
    serving(inst)

    def cpu_seconds() -> float:
        with open(f"/proc/{inst.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    before = cpu_seconds()
    inst.signal(signal.SIGHUP)
    inst.wait_log("binary reloading uWSGI...", timeout=30)
    assert cpu_seconds() - before < 0.5
    inst.wait_log("reload outcome: generation=1 ", timeout=30)
