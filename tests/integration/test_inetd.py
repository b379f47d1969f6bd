"""inetd/xinetd mode: a listening socket on fd 0 (INETD-1..5, TEST-7).

The first tests hand the server a socket directly; the last ones run the real
xinetd and openbsd-inetd with the recipes from examples/.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess

import pytest

from conftest import ROOT, Instance, children_of, pid_alive, require_tool, run_cli, wait_until
from launch_helpers import (RECIPE_LOG, RECIPE_PIDFILE, RECIPE_PORT, app_dir, get, read_pid, reaper,  # noqa: F401
                            recipe_values, render, spawn, start_superserver, uwsgi_py, wait_file_text,
                            wait_gone)
from uwsgi_py import log
from uwsgi_py_inetd import inetd

pytestmark = pytest.mark.timeout(120)


def start_on_stdin(tmp_path, reaper, stdin, *args) -> Instance:
    """uwsgi-py with STDIN as its fd 0 and no socket option unless ARGS has one."""
    cwd = app_dir(tmp_path)
    log_path = tmp_path / "server.log"
    proc = spawn(uwsgi_py("--wsgi-file", "app.py", *args), log_path, stdin=stdin, cwd=cwd)
    return reaper.instance(Instance(proc, log_path, cwd))


def listening_socket() -> socket.socket:
    # the test binds port 0 and hands over the socket itself: nothing can race for the port
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


def test_listening_stdin_is_adopted_and_survives_reload(tmp_path, reaper):
    sock = listening_socket()
    port = sock.getsockname()[1]
    inst = start_on_stdin(tmp_path, reaper, sock, "--protocol", "http", "--master", "-p", "2")
    sock.close()
    inst.port = port
    inherited = log.INHERITED.format(index=0, kind="INET", address=f"127.0.0.1:{port}", fd=0)
    inst.wait_log(inherited)
    before = inst.wait_workers(2)
    assert inst.get("/") == b"hello\n"

    inst.signal(signal.SIGHUP)
    inst.wait_log("reload outcome:")
    assert inst.count(inherited) == 2          # re-adopted by the new image (INETD-2)
    inst.wait_workers(2, exclude=before)
    assert inst.proc.poll() is None            # same master pid
    assert inst.get("/") == b"hello\n"

    inst.signal(signal.SIGINT)
    assert inst.wait_exit() == 0


def test_configured_socket_plus_stdin_gives_two_sockets(tmp_path, reaper):
    sock = listening_socket()
    port = sock.getsockname()[1]
    inst = start_on_stdin(tmp_path, reaper, sock, "--protocol", "http", "--http-socket", "127.0.0.1:0")
    sock.close()
    inst.wait_log(log.INHERITED.format(index=1, kind="INET", address=f"127.0.0.1:{port}", fd=0))
    inst.wait_log("spawned uWSGI worker")
    assert get(port) == (200, b"hello\n")


def connected_pair():
    server = listening_socket()
    client = socket.create_connection(server.getsockname())
    conn, _ = server.accept()
    server.close()
    return conn, client


@pytest.mark.parametrize("kind", ["tcp-connection", "socketpair", "udp"])
def test_unservable_socket_on_stdin_is_refused(tmp_path, kind):
    if kind == "tcp-connection":
        stdin, other = connected_pair()
        expected = inetd.REFUSALS[inetd.CONNECTED]
    elif kind == "socketpair":
        stdin, other = socket.socketpair()
        expected = inetd.REFUSALS[inetd.CONNECTED]
    else:
        stdin, other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), None
        stdin.bind(("127.0.0.1", 0))
        expected = inetd.REFUSALS[inetd.NOT_STREAM]
    cwd = app_dir(tmp_path)
    result = subprocess.run(uwsgi_py("--protocol", "http", "--wsgi-file", "app.py"), stdin=stdin,
                            capture_output=True, text=True, cwd=cwd, timeout=30, start_new_session=True)
    stdin.close()
    if other is not None:
        other.close()
    assert result.returncode == 1
    assert f"uwsgi-py: error: {expected}" in result.stderr
    assert "spawned" not in result.stderr


def test_skip_zero_ignores_stdin(tmp_path):
    sock = listening_socket()
    result = subprocess.run(uwsgi_py("--skip-zero", "--wsgi-file", "app.py"), stdin=sock,
                            capture_output=True, text=True, cwd=app_dir(tmp_path), timeout=30,
                            start_new_session=True)
    sock.close()
    assert result.returncode == 1
    assert log.NO_SOCKET in result.stderr


@pytest.mark.parametrize("honour", [False, True])
def test_stdin_that_is_not_a_socket(tmp_path, reaper, honour):
    r, w = os.pipe()
    args = ["--http-socket", "127.0.0.1:0", "--master"] + (["--honour-stdin"] if honour else [])
    inst = start_on_stdin(tmp_path, reaper, r, *args)
    os.close(r)
    inst.wait_log("spawned uWSGI worker")
    target = os.readlink(f"/proc/{inst.pid}/fd/0")
    os.close(w)
    assert target.startswith("pipe:") if honour else target == os.devnull


# ---- the real super-servers -------------------------------------------------------------

def superserver_cycle(reaper, port: int, pidfile, logfile) -> None:
    """Serve through the super-server, reload, stop, and check it starts again on demand."""
    assert get(port) == (200, b"hello\n")      # this connection makes the daemon start uwsgi-py
    master = reaper.pid(read_pid(pidfile))
    wait_file_text(logfile, "uwsgi socket 0 inherited INET address")
    workers = children_of(master)
    result = run_cli("--reload", str(pidfile))
    assert result.returncode == 0, result.stderr
    wait_file_text(logfile, "reload outcome:")
    assert pid_alive(master) and read_pid(pidfile) == master
    assert get(port) == (200, b"hello\n")
    assert set(children_of(master)).isdisjoint(workers)
    workers = children_of(master)

    result = run_cli("--stop", str(pidfile))
    assert result.returncode == 0, result.stderr
    wait_gone([master, *workers])
    assert "goodbye to uWSGI." in logfile.read_text()

    # the daemon watches the port again and starts a new instance for the next client
    assert get(port) == (200, b"hello\n")
    second = reaper.pid(wait_until(lambda: read_pid(pidfile) != master and read_pid(pidfile), 15,
                                   what="a second instance"))
    assert run_cli("--stop", str(pidfile)).returncode == 0
    wait_gone([second])


def test_xinetd_wait_mode(tmp_path, reaper):
    xinetd = require_tool("xinetd")
    conf = tmp_path / "xinetd.conf"
    logfile, pidfile = tmp_path / "app.log", tmp_path / "app.pid"

    def write_config(port):
        service = render("xinetd/uwsgi-py", tmp_path / "service", recipe_values(
            tmp_path, **{RECIPE_PORT: str(port), RECIPE_LOG: str(logfile), RECIPE_PIDFILE: str(pidfile)}))
        conf.write_text("defaults\n{\n}\n" + service.read_text())

    port, _ = start_superserver(tmp_path, reaper, write_config,
                                [xinetd, "-f", str(conf), "-dontfork", "-filelog", str(tmp_path / "xinetd.log")])
    superserver_cycle(reaper, port, pidfile, logfile)


def inetd_config(tmp_path, port, logfile, pidfile, wait="wait"):
    line = render("inetd/inetd.conf", tmp_path / "inetd.conf", recipe_values(
        tmp_path, **{RECIPE_PORT: str(port), RECIPE_LOG: str(logfile), RECIPE_PIDFILE: str(pidfile)}))
    if wait != "wait":
        line.write_text(line.read_text().replace(" tcp wait ", f" tcp {wait} "))


def require_inetd() -> str:
    """openbsd-inetd conflicts with xinetd as a package: .ci/run unpacks its binary here."""
    unpacked = ROOT / ".ci" / "tools" / "usr" / "sbin" / "inetd"
    return str(unpacked) if unpacked.exists() else require_tool("inetd")


def test_openbsd_inetd_wait_mode(tmp_path, reaper):
    inetd_bin = require_inetd()
    logfile, pidfile = tmp_path / "app.log", tmp_path / "app.pid"
    # -d: stay in the foreground (and log to stderr)
    port, _ = start_superserver(tmp_path, reaper, lambda port: inetd_config(tmp_path, port, logfile, pidfile),
                                [inetd_bin, "-d", str(tmp_path / "inetd.conf")])
    superserver_cycle(reaper, port, pidfile, logfile)


def test_openbsd_inetd_nowait_mode_is_refused(tmp_path, reaper):
    inetd_bin = require_inetd()
    logfile, pidfile = tmp_path / "app.log", tmp_path / "app.pid"
    port, _ = start_superserver(
        tmp_path, reaper, lambda port: inetd_config(tmp_path, port, logfile, pidfile, wait="nowait"),
        [inetd_bin, "-d", str(tmp_path / "inetd.conf")])
    with socket.create_connection(("127.0.0.1", port), timeout=20) as client:
        client.sendall(b"GET / HTTP/1.0\r\n\r\n")
        try:
            answer = client.recv(100)
        except ConnectionResetError:           # closed with our request unread
            answer = b""
        assert answer == b""                   # no HTTP answer
    wait_file_text(logfile, f"uwsgi-py: error: {inetd.REFUSALS[inetd.CONNECTED]}")
    assert "spawned" not in logfile.read_text()
