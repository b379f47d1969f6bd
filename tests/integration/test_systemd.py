"""systemd/Upstart socket activation and sd_notify (SYSD-1..5, TEST-9).

Socket activation runs under the real ``systemd-socket-activate`` on UNIX
sockets in tmp_path (no port to pick). Each notify test owns the datagram
socket NOTIFY_SOCKET points at and checks what arrives, in order.
"""
from __future__ import annotations

import os
import secrets
import signal
import socket

import pytest

from conftest import Instance, require_tool, wait_until
from launch_helpers import app_dir, get_unix, reaper, spawn, unix_listening, uwsgi_py  # noqa: F401
from uwsgi_py import log
from uwsgi_py_inetd import systemd

pytestmark = pytest.mark.timeout(120)


class Notifications:
    """The receiving end of NOTIFY_SOCKET."""

    def __init__(self, address: str, bind_to):
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(bind_to)
        self.sock.settimeout(20)

    def next(self) -> list[str]:
        return self.sock.recv(4096).decode().splitlines()

    def expect(self, *wanted: str) -> list[list[str]]:
        """Receive one message per WANTED line prefix, in this order."""
        got = []
        for prefix in wanted:
            message = self.next()
            got.append(message)
            assert any(line.startswith(prefix) for line in message), (prefix, got)
        return got

    def pending(self) -> list[list[str]]:
        self.sock.settimeout(0.3)
        out = []
        try:
            while True:
                out.append(self.next())
        except (TimeoutError, BlockingIOError):
            pass
        self.sock.settimeout(20)
        return out


@pytest.fixture
def notifications(tmp_path):
    path = tmp_path / "notify"
    if len(str(path)) > 100:          # AF_UNIX paths are limited to 108 bytes
        pytest.fail(f"tmp_path is too long for an AF_UNIX socket: {path}")
    n = Notifications(str(path), str(path))
    yield n
    n.sock.close()


@pytest.fixture
def abstract_notifications():
    name = f"uwsgi-py-test-{secrets.token_hex(6)}"
    n = Notifications("@" + name, "\0" + name)
    yield n
    n.sock.close()


def activate(tmp_path, reaper, notify, *args, sock="app.sock") -> tuple[Instance, str]:
    """uwsgi-py under systemd-socket-activate on a UNIX socket; nothing runs until a client connects."""
    tool = require_tool("systemd-socket-activate")
    path = str(tmp_path / sock)
    cwd = app_dir(tmp_path)
    log_path = tmp_path / "server.log"
    proc = spawn([tool, "-l", path, "-E", f"NOTIFY_SOCKET={notify.address}",
                  *uwsgi_py("--master", "-p", "2", "--wsgi-file", "app.py", *args)], log_path, cwd=cwd)
    inst = reaper.instance(Instance(proc, log_path, cwd))
    wait_until(lambda: unix_listening(path), 10, what="systemd-socket-activate to listen")
    return inst, path


def environ_of(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as f:
        items = f.read().split(b"\0")
    return dict(item.decode().split("=", 1) for item in items if b"=" in item)


def test_socket_activation_and_notify_across_reload(tmp_path, reaper, notifications):
    inst, path = activate(tmp_path, reaper, notifications, "--protocol", "http")
    assert get_unix(path) == (200, b"hello\n")     # the first client starts the server
    inst.wait_log(systemd.SYSTEMD_DETECTED)
    inst.wait_log(log.ATTACHED.format(index=0, kind="UNIX", address=path, fd=3))
    notifications.expect("STATUS=initializing", "READY=1")
    before = inst.wait_workers(2)

    inst.signal(signal.SIGHUP)
    reloading, *_ = notifications.expect("RELOADING=1", "STATUS=", "STATUS=", "READY=1")
    assert reloading[1].startswith("MONOTONIC_USEC=")
    inst.wait_log("reload outcome:")
    # SYSD-5's fix: the activated socket survives the exec; the new image never saw LISTEN_*
    inst.wait_log(log.INHERITED.format(index=0, kind="UNIX", address=path, fd=3))
    inst.wait_workers(2, exclude=before)
    assert not {"LISTEN_FDS", "LISTEN_PID"} & set(environ_of(inst.pid))
    assert get_unix(path) == (200, b"hello\n")

    inst.signal(signal.SIGINT)
    notifications.expect("STOPPING=1")
    assert inst.wait_exit() == 0
    assert notifications.pending() == []


def test_activated_socket_keeps_the_configured_protocol(tmp_path, reaper, notifications):
    """SYSD-4's fix: --http-socket at the activated address speaks HTTP on the activated fd."""
    path = str(tmp_path / "app.sock")
    inst, _ = activate(tmp_path, reaper, notifications, "--http-socket", path)
    assert get_unix(path) == (200, b"hello\n")
    text = inst.wait_log("spawned uWSGI worker 2")
    assert log.ATTACHED.format(index=0, kind="UNIX", address=path, fd=3) in text
    assert "bound to" not in text and "uwsgi socket 1" not in text
    inst.signal(signal.SIGHUP)
    inst.wait_log("reload outcome:")
    assert get_unix(path) == (200, b"hello\n")


def test_notify_on_abstract_socket_pause_and_brutal_reload(server, abstract_notifications):
    n = abstract_notifications
    inst = server("--master", "-p", "1", env={"NOTIFY_SOCKET": n.address})
    n.expect("STATUS=initializing", "READY=1")
    inst.signal(signal.SIGTSTP)
    assert n.expect("STATUS=")[0] == ["STATUS=uWSGI is paused (send SIGTSTP to resume)"]
    inst.signal(signal.SIGTSTP)
    n.expect("STATUS=uWSGI is ready")
    inst.signal(signal.SIGTERM)                  # brutal reload (SIG-4)
    n.expect("RELOADING=1", "STATUS=initializing", "STATUS=", "READY=1")
    assert inst.get("/") == b"hello\n"


def test_refused_reload_leaves_the_reloading_state(server, notifications):
    inst = server("--master", env={"NOTIFY_SOCKET": notifications.address})
    notifications.expect("STATUS=initializing", "READY=1")
    (inst.cwd / "app.py").write_text("raise RuntimeError('broken deploy')\n")
    inst.signal(signal.SIGHUP)
    reloading, refused = notifications.expect("RELOADING=1", "READY=1")
    assert refused[0].startswith("STATUS=uWSGI reload refused")
    assert inst.get("/") == b"hello\n"


def test_no_master_is_ready_too(server, notifications):
    server(env={"NOTIFY_SOCKET": notifications.address})
    notifications.expect("STATUS=initializing", "READY=1")


def test_upstart_socket_bridge(tmp_path, reaper):
    path = str(tmp_path / "up.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    fd = listener.fileno()
    cwd = app_dir(tmp_path)
    log_path = tmp_path / "server.log"
    proc = spawn(uwsgi_py("--protocol", "http", "--master", "--wsgi-file", "app.py"), log_path, cwd=cwd,
                 pass_fds=[fd], env={**os.environ, "UPSTART_EVENTS": "socket", "UPSTART_FDS": str(fd)})
    listener.close()
    inst = reaper.instance(Instance(proc, log_path, cwd))
    inst.wait_log(systemd.UPSTART_DETECTED)
    inst.wait_log(log.ATTACHED.format(index=0, kind="UNIX", address=path, fd=fd))
    assert get_unix(path) == (200, b"hello\n")
    inst.signal(signal.SIGINT)
    assert inst.wait_exit() == 0
