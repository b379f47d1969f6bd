"""Helpers for the launch-mode tests: supervisors, super-servers, daemons.

Everything a test starts is registered with the ``reaper`` fixture, which kills
the process groups (found by PID, never by name) when the test ends.
"""
from __future__ import annotations

import getpass
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from conftest import APPS, ROOT, Instance, get_over, group_pids, pid_alive, wait_until
from conftest import http_get as get  # noqa: F401 - re-exported to the launch tests

EXAMPLES = ROOT / "examples"

# The values the recipes in examples/ use; tests replace them with their own.
RECIPE_BINARY = "/usr/local/bin/uwsgi-py"
RECIPE_APPDIR = "/srv/app"
RECIPE_ADDRESS = "127.0.0.1:3031"
RECIPE_PORT = "3031"
RECIPE_USER = "www-data"
RECIPE_LOG = "/var/log/uwsgi-py/app.log"
RECIPE_PIDFILE = "/var/run/uwsgi-py/app.pid"


def uwsgi_py_script() -> str:
    """The installed ``uwsgi-py`` console script (what the recipes run)."""
    path = shutil.which("uwsgi-py", path=sysconfig.get_path("scripts"))
    if path is None:
        pytest.fail("the uwsgi-py console script is not installed (pip install -e .)")
    return path


def app_dir(tmp_path: Path) -> Path:
    path = tmp_path / "app"
    path.mkdir(exist_ok=True)
    shutil.copy(APPS / "app.py", path / "app.py")
    return path


def render(example: str, dest: Path, replacements: dict[str, str]) -> Path:
    """Copy examples/EXAMPLE to DEST with each recipe value replaced; every value must occur."""
    text = (EXAMPLES / example).read_text()
    for old, new in replacements.items():
        assert old in text, f"{example} no longer contains {old!r}"
        text = text.replace(old, new)
    dest.write_text(text)
    dest.chmod((EXAMPLES / example).stat().st_mode & 0o777)
    return dest


def recipe_values(tmp_path: Path, **extra: str) -> dict[str, str]:
    values = {RECIPE_BINARY: uwsgi_py_script(), RECIPE_APPDIR: str(app_dir(tmp_path)),
              RECIPE_USER: getpass.getuser()}
    values.update(extra)
    return values


def free_port() -> int:
    """A loopback port that was free a moment ago.

    Only for xinetd/inetd, whose config files need a port number before they
    bind it; it races, so their tests retry the whole setup when the daemon
    cannot bind (see ``start_superserver``). Everything else binds port 0.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening_inode(port: int) -> int | None:
    """The inode of the socket listening on 127.0.0.1:PORT (from /proc/net/tcp)."""
    want = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] == want and fields[3] == "0A":
                return int(fields[9])
    return None


def unix_listening(path: str) -> bool:
    """A socket bound at PATH is listening (/proc/net/unix: __SO_ACCEPTCON in its flags).
    The path exists from bind(); a connect() before listen() is refused."""
    with open("/proc/net/unix") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if len(fields) >= 8 and fields[7] == path and int(fields[3], 16) & 0x10000:
                return True
    return False


def owns_socket(pid: int, inode: int | None) -> bool:
    if inode is None:
        return False
    target = f"socket:[{inode}]"
    try:
        return any(os.readlink(f"/proc/{pid}/fd/{fd}") == target for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False


def pgid_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[2])
    except OSError:
        return None


def stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def read_pid(path: Path, timeout: float = 15.0) -> int:
    def ready():
        try:
            text = path.read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None
    return wait_until(ready, timeout, what=f"pidfile {path}")


def wait_gone(pids, timeout: float = 15.0) -> None:
    wait_until(lambda: not any(pid_alive(p) for p in pids), timeout, what=f"processes {list(pids)} to end")


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 20.0):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def get_unix(path: str, uri: str = "/") -> tuple[int, bytes]:
    return get_over(UnixHTTPConnection(path), uri)


def port_from_log(text: str) -> int:
    for line in text.splitlines():
        if "(port auto-assigned)" in line:
            return int(line.split("bound to TCP address ", 1)[1].split()[0].rsplit(":", 1)[1])
    raise AssertionError(f"no auto-assigned port in the log:\n{text[-2000:]}")


def wait_file_text(path: Path, text: str, timeout: float = 15.0) -> str:
    def seen():
        try:
            content = path.read_text(errors="replace")
        except OSError:
            return None
        return content if text in content else None
    try:
        return wait_until(seen, timeout, what=f"{text!r} in {path.name}")
    except AssertionError as e:
        content = path.read_text(errors="replace") if path.exists() else "(missing)"
        raise AssertionError(f"{e}\n--- {path} ---\n{content[-3000:]}") from None


def spawn(cmd: list[str], log_path: Path, **kw) -> subprocess.Popen:
    """Start CMD in its own session, output to LOG_PATH."""
    with open(log_path, "ab") as logf:
        return subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT,
                                stdin=kw.pop("stdin", subprocess.DEVNULL), start_new_session=True, **kw)


def uwsgi_py(*args: str) -> list[str]:
    return [sys.executable, "-m", "uwsgi_py", *args]


class Reaper:
    """Kills, at the end of a test, every process group it was told about."""

    def __init__(self):
        self.procs: list[subprocess.Popen] = []
        self.pids: list[int] = []
        self.instances: list[Instance] = []

    def proc(self, proc: subprocess.Popen) -> subprocess.Popen:
        self.procs.append(proc)
        return proc

    def pid(self, pid: int) -> int:
        """A process in its own group (a daemon, a supervised master): kill that group."""
        self.pids.append(pid)
        return pid

    def instance(self, inst: Instance) -> Instance:
        self.instances.append(inst)
        return inst

    def cleanup(self) -> None:
        mine = os.getpgrp()
        groups = {pgid_of(pid) for pid in self.pids} | {p.pid for p in self.procs}
        for inst in self.instances:
            inst.cleanup()
        for pgid in groups - {None, mine, 0}:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        for pgid in groups - {None, mine, 0}:
            wait_until(lambda: not group_pids(pgid), 5, what=f"process group {pgid} to end")


@pytest.fixture
def reaper():
    r = Reaper()
    yield r
    r.cleanup()


def start_superserver(tmp_path: Path, reaper: Reaper, write_config, command, attempts: int = 4):
    """Start inetd or xinetd on a free port, retrying with another port if it cannot bind.

    ``write_config(port)`` writes the config file; ``command`` is the daemon's
    argv. Returns (port, Popen). The retry exists only because these daemons
    need the port number in their config (see ``free_port``).
    """
    for attempt in range(attempts):
        port = free_port()
        write_config(port)
        proc = reaper.proc(spawn(command, tmp_path / f"superserver-{attempt}.log"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            if owns_socket(proc.pid, listening_inode(port)):
                return port, proc
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
    pytest.fail(f"{command[0]} could not listen on a free port in {attempts} attempts")
