"""--attach-daemon and --smart-attach-daemon: external processes started, restarted when they die,
stopped with the instance (dumb ones), kept across reloads and shutdown (smart ones)."""
from __future__ import annotations

import os
import signal

import pytest

from conftest import pid_alive, wait_until

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def daemon_pids():
    """Pids the test's daemons record; every one left is SIGKILLed (with its group) at the end."""
    recorded: list[int] = []
    yield recorded
    for pid in recorded:
        for kill in (os.killpg, os.kill):
            try:
                kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def pids_in(path) -> list[int]:
    try:
        return [int(line) for line in path.read_text().split()]
    except (OSError, ValueError):
        return []


def wait_pids(path, n: int, recorded: list[int]) -> list[int]:
    pids = wait_until(lambda: (lambda p: p if len(p) >= n else None)(pids_in(path)), 20,
                      what=f"{n} daemon start(s) in {path.name}")
    recorded.extend(p for p in pids if p not in recorded)
    return pids


def test_attach_daemon_is_restarted_reloaded_and_stopped(server, tmp_path, daemon_pids):
    record = tmp_path / "daemon.pids"
    inst = server("--master", "--attach-daemon", f"echo $$ >> {record}; exec sleep 1000")
    first = wait_pids(record, 1, daemon_pids)[0]
    inst.wait_log(f'[uwsgi-daemons] spawning "echo $$ >> {record}; exec sleep 1000"')
    assert pid_alive(first) and os.getsid(first) == first, "its own session and group"
    assert os.readlink(f"/proc/{first}/fd/0") == "/dev/null"
    # it dies: started again
    os.kill(first, signal.SIGKILL)
    second = wait_pids(record, 2, daemon_pids)[1]
    assert pid_alive(second)
    inst.wait_log("[uwsgi-daemons] respawning")
    # a graceful reload stops it (SIGTERM to its group) and the new image starts another
    inst.signal(signal.SIGHUP)
    third = wait_pids(record, 3, daemon_pids)[2]
    inst.wait_log(f"[uwsgi-daemons] stopping daemon (pid: {second})")
    wait_until(lambda: not pid_alive(second), 10, what="the old daemon to stop")
    assert pid_alive(third)
    inst.wait_log("reload outcome: generation=1")
    # the instance stops: so does the daemon
    inst.signal(signal.SIGINT)
    assert inst.wait_exit() == 0
    wait_until(lambda: not pid_alive(third), 10, what="the daemon to stop with the instance")
    assert f"[uwsgi-daemons] stopping daemon (pid: {third})" in inst.log()
    assert len(pids_in(record)) == 3


def test_a_daemon_ignoring_sigterm_is_killed_after_the_mercy(server, tmp_path, daemon_pids):
    record = tmp_path / "stubborn.pids"
    inst = server("--master", "--reload-mercy", "1", "--attach-daemon",
                  f"trap '' TERM; echo $$ >> {record}; while :; do sleep 0.2; done")
    pid = wait_pids(record, 1, daemon_pids)[0]
    inst.signal(signal.SIGINT)
    assert inst.wait_exit() == 0
    wait_until(lambda: not pid_alive(pid), 10, what="the stubborn daemon to be killed")
    wait_until(lambda: f"daemon did not die in time, killing (pid: {pid})" in inst.log(), 10,
               what="the kill to be logged")


def test_smart_daemon_survives_reloads_and_shutdown(server, tmp_path, daemon_pids):
    pidfile = tmp_path / "smart.pid"
    command = f"sleep 1000 & echo $! > {pidfile}"
    inst = server("--master", "--smart-attach-daemon", f"{pidfile} {command}")
    first = wait_pids(pidfile, 1, daemon_pids)[0]
    assert pid_alive(first)
    inst.signal(signal.SIGHUP)
    inst.wait_log("reload outcome: generation=1")
    inst.wait_log(f'[uwsgi-daemons] found valid/active pidfile for "{command}" (pid: {first})')
    assert pid_alive(first) and pids_in(pidfile) == [first]
    # it goes away: the command runs again and writes a new pid
    os.kill(first, signal.SIGKILL)
    second = wait_until(lambda: (lambda p: p[0] if p and p[0] != first else None)(
        pids_in(pidfile)), 20, what="a new pid in the pidfile")
    daemon_pids.append(second)
    assert pid_alive(second)
    inst.signal(signal.SIGINT)
    assert inst.wait_exit() == 0
    assert pid_alive(second), "a smart daemon outlives the instance, as in uWSGI"


def test_smart_daemon2_gets_its_pidfile_from_the_master(server, tmp_path, daemon_pids):
    pidfile = tmp_path / "fg.pid"
    inst = server("--master", "--smart-attach-daemon2", f"{pidfile},5 exec sleep 1000")
    pid = wait_pids(pidfile, 1, daemon_pids)[0]
    def command():
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")[0] == b"sleep"
    wait_until(command, 10, what="the pidfile's process to run the command")
    inst.signal(signal.SIGINT)
    assert inst.wait_exit() == 0


def test_control_daemon_that_dies_stops_the_instance(server, tmp_path, daemon_pids):
    inst = server("--master", "--attach-control-daemon", "exec sleep 0.5")
    inst.wait_log('[uwsgi-daemons] control daemon "exec sleep 0.5"')
    assert inst.wait_exit(20) == 0


def test_bad_smart_daemon_value_is_one_line(tmp_path):
    from conftest import run_cli
    result = run_cli("--http-socket", "127.0.0.1:0", "--smart-attach-daemon", "onlyone",
                     cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "--smart-attach-daemon: 'onlyone' is not PIDFILE[,FREQ] COMMAND" in result.stderr
