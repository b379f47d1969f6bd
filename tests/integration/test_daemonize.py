"""--daemonize / --daemonize2 (DAEMON-1..4, PID-1/5, LOG-3 with the daemonize file)."""
from __future__ import annotations

import os
import socket
import stat
import time

import pytest

from conftest import children_of, pid_alive, run_cli, wait_until
from launch_helpers import (app_dir, get, port_from_log, read_pid, reaper, stat_fields,  # noqa: F401
                            wait_file_text, wait_gone)
from uwsgi_py_inetd import BOTH_DAEMONIZE, daemon

pytestmark = pytest.mark.timeout(120)


def daemonize(tmp_path, reaper, *args, umask=0o027, ready=True):
    """Run the launcher to completion (it must return at once); the daemon's pid once it
    logged its master line (``ready``: the pidfile is final then, even with --daemonize2)."""
    old = os.umask(umask)
    try:
        started = time.monotonic()
        result = run_cli("--pidfile", str(tmp_path / "app.pid"), "--master", "-p", "2",
                         "--wsgi-file", "app.py", *args, cwd=app_dir(tmp_path), timeout=20)
        elapsed = time.monotonic() - started
    finally:
        os.umask(old)
    assert result.returncode == 0, result.stderr
    assert elapsed < 10
    if ready:
        wait_file_text(tmp_path / "app.log", "spawned uWSGI master process")
    pid = reaper.pid(read_pid(tmp_path / "app.pid"))
    return pid, result


def assert_daemon(pid: int, logfile) -> None:
    """DAEMON-1: own session but not its leader, stdin /dev/null, stdout/stderr the log."""
    fields = stat_fields(pid)
    pgid, sid = int(fields[2]), int(fields[3])
    assert sid != os.getsid(0) and pgid == sid and sid != pid
    assert os.readlink(f"/proc/{pid}/fd/0") == os.devnull
    assert os.readlink(f"/proc/{pid}/fd/1") == os.readlink(f"/proc/{pid}/fd/2") == str(logfile)


def umask_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    raise AssertionError("no Umask in /proc/PID/status")


def stop(pidfile, pid: int) -> None:
    workers = children_of(pid)
    result = run_cli("--stop", str(pidfile))
    assert result.returncode == 0, result.stderr
    wait_gone([pid, *workers])


def test_daemonize_serves_reloads_reopens_and_stops(tmp_path, reaper):
    logfile, pidfile, trigger = tmp_path / "app.log", tmp_path / "app.pid", tmp_path / "reopen"
    trigger.touch()
    pid, launcher = daemonize(tmp_path, reaper, "--daemonize", str(logfile), "--http-socket", "127.0.0.1:0",
                              "--touch-logreopen", str(trigger))
    assert launcher.stdout == "" and launcher.stderr == ""     # everything went to the log file
    text = wait_file_text(logfile, "spawned uWSGI worker 2")
    assert_daemon(pid, logfile)
    assert umask_of(pid) == 0o027                              # DAEMON-2's fix: the inherited umask
    assert stat.S_IMODE(pidfile.stat().st_mode) == 0o640
    port = port_from_log(text)
    assert get(port) == (200, b"hello\n")
    sid = int(stat_fields(pid)[3])

    # DAEMON-4: a reload neither daemonizes again nor reopens the file (no --log-reopen)
    moved = tmp_path / "app.log.1"
    logfile.rename(moved)
    assert run_cli("--reload", str(pidfile)).returncode == 0
    wait_file_text(moved, "reload outcome:")
    assert not logfile.exists()
    assert read_pid(pidfile) == pid and int(stat_fields(pid)[3]) == sid
    assert get(port) == (200, b"hello\n")

    # the daemonize file is the one log reopen acts on (LOG-3)
    later = time.time() + 5
    os.utime(trigger, (later, later))
    wait_file_text(logfile, f"{logfile} reopened.")

    stop(pidfile, pid)
    assert "goodbye to uWSGI." in logfile.read_text()


def test_daemonize_log_reopen_on_reload(tmp_path, reaper):
    logfile, pidfile = tmp_path / "app.log", tmp_path / "app.pid"
    pid, _ = daemonize(tmp_path, reaper, "--daemonize", str(logfile), "--http-socket", "127.0.0.1:0",
                       "--log-reopen")
    wait_file_text(logfile, "spawned uWSGI worker 2")
    logfile.rename(tmp_path / "app.log.1")
    assert run_cli("--reload", str(pidfile)).returncode == 0
    wait_file_text(logfile, "gracefully (RE)spawned uWSGI master process")   # the new image reopened it
    stop(pidfile, pid)


def fifo_plugin_loaded() -> bool:
    from uwsgi_py import cli, plugins
    return "master-fifo" in cli.build_registry(plugins.build()).names


def test_fifo_l_reopens_the_daemonize_file(tmp_path, reaper):
    if not fifo_plugin_loaded():
        pytest.skip("the fifo plugin (--master-fifo) is not installed")
    logfile, fifo = tmp_path / "app.log", tmp_path / "fifo"
    pid, _ = daemonize(tmp_path, reaper, "--daemonize", str(logfile), "--http-socket", "127.0.0.1:0",
                       "--master-fifo", str(fifo))
    wait_file_text(logfile, "spawned uWSGI worker 2")
    logfile.rename(tmp_path / "app.log.1")

    def open_fifo():
        # the master creates the FIFO when its loop starts: ENOENT/ENXIO until then
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except (FileNotFoundError, OSError):
            return None
    fd = wait_until(open_fifo, 10, what="the master FIFO")
    try:
        os.write(fd, b"l")
    finally:
        os.close(fd)
    wait_file_text(logfile, f"{logfile} reopened.")
    stop(tmp_path / "app.pid", pid)


def test_daemonize_reports_bind_errors_in_the_log(tmp_path, reaper):
    busy = socket.socket()            # the test holds the port: the daemon's bind must fail
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    logfile = tmp_path / "app.log"
    try:
        pid, _ = daemonize(tmp_path, reaper, "--daemonize", str(logfile),
                           "--http-socket", "127.0.0.1:%d" % busy.getsockname()[1], ready=False)
        wait_file_text(logfile, "bind(): Address already in use")
        wait_gone([pid])
    finally:
        busy.close()


def test_daemonize2_detaches_after_loading_apps(tmp_path, reaper):
    logfile, pidfile = tmp_path / "app.log", tmp_path / "app.pid"
    pid, launcher = daemonize(tmp_path, reaper, "--daemonize2", str(logfile), "--http-socket", "127.0.0.1:0",
                              "--umask", "077", umask=0o022)
    # start-up lines reached the terminal, then the daemon took over the log file
    assert daemon.DAEMONIZING in launcher.stderr
    port = port_from_log(launcher.stderr)
    text = wait_file_text(logfile, "spawned uWSGI worker 2")
    assert f"spawned uWSGI master process (pid: {pid})" in text     # the pidfile names the daemon
    assert_daemon(pid, logfile)
    assert stat.S_IMODE(pidfile.stat().st_mode) == 0o600             # --umask 077
    info = get(port, "/info")
    assert info[0] == 200 and f'"masterpid": {pid}' in info[1].decode()

    assert run_cli("--reload", str(pidfile)).returncode == 0
    wait_file_text(logfile, "reload outcome:")
    assert read_pid(pidfile) == pid and pid_alive(pid)
    assert f'"masterpid": {pid}' in get(port, "/info")[1].decode()
    assert daemon.DAEMONIZING not in logfile.read_text()             # never again on reload
    stop(pidfile, pid)


def test_daemonize_and_daemonize2_together_are_refused(tmp_path):
    result = run_cli("--daemonize", str(tmp_path / "a"), "--daemonize2", str(tmp_path / "b"),
                     "--http-socket", "127.0.0.1:0", cwd=tmp_path)
    assert result.returncode == 1
    assert BOTH_DAEMONIZE in result.stderr
