"""The ``uwsgi`` signal API called directly: targets, errors, locks, mules, --signal,
and the config-side timers, crons and file monitors (docs/signals.md)."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time

import pytest

from conftest import APPS, pid_alive, run_cli, wait_until
from signals_helpers import events, start_app, uwsgi_port

pytestmark = pytest.mark.timeout(90)

API_APP = "signals_api_app.py"
MULE_SPAWNED = re.compile(r"spawned uWSGI mule (\d+) \(pid: (\d+)\)")


def mule_pids(inst) -> dict[int, int]:
    """The latest pid of each mule, from the 'spawned uWSGI mule' lines."""
    return {int(m.group(1)): int(m.group(2)) for m in MULE_SPAWNED.finditer(inst.log())}


@pytest.fixture
def api_server(server, tmp_path):
    shutil.copy(APPS / "mule_program.py", tmp_path / "mule_program.py")
    inst = start_app(server, tmp_path, API_APP, "--processes", "2", "--mule", "mule_program.py",
                     "--mules", "1", "--locks", "1", "--socket", "127.0.0.1:0")
    wait_until(lambda: len(mule_pids(inst)) == 2, what="two mules")
    return inst


def test_targets_errors_and_waiting(api_server, tmp_path):
    inst = api_server
    refused = events(tmp_path, "refused")[0].detail.split("|")
    assert refused == ["spooler:unable to register signal", "farm1:unable to register signal",
                       "bogus:unable to register signal", "again:unable to register signal"]
    assert "[uwsgi-signal] you cannot re-register a signal as the master !!!" in inst.log()
    assert "unsupported signal target 'spooler'" in inst.log()
    assert inst.get("/registered") == b"True None"
    # raised by the app while the master imported it: run once the workers are up
    wait_until(lambda: len(events(tmp_path, "sig23")) == 1, what="sig23 raised at import")
    # workerN, active-workers, muleN, the default target
    inst.get("/raise/30")
    inst.get("/raise/31")
    inst.get("/raise/32")
    inst.get("/raise/22")
    wait_until(lambda: {e.wid for e in events(tmp_path, "sig31")} == {1, 2}, what="sig31 in both")
    wait_until(lambda: events(tmp_path, "sig30") and events(tmp_path, "sig32")
               and events(tmp_path, "sig22"), what="sig30, sig32, sig22")
    assert [e.wid for e in events(tmp_path, "sig30")] == [2]
    assert [(e.wid, e.mule) for e in events(tmp_path, "sig32")] == [(0, 1)]
    assert len(events(tmp_path, "sig22")) == 1
    # add_rb_timer(34, 1, 2): exactly two firings
    wait_until(lambda: len(events(tmp_path, "sig34")) == 2, what="two rb timer firings")
    first = events(tmp_path, "sig34")[0].time
    wait_until(lambda: time.time() > first + 3, timeout=10, interval=0.1, what="3 s more")
    assert len(events(tmp_path, "sig34")) == 2
    # a handler that raises: its traceback, then the worker carries on
    inst.get("/raise/36")
    inst.wait_log("RuntimeError: a broken signal handler")
    inst.wait_log("error managing signal 36 on worker")
    assert inst.get("/registered") == b"True None"
    # signal_wait(35) blocks one worker until the other raises 35
    answer = []
    waiter = threading.Thread(target=lambda: answer.append(inst.get("/wait", timeout=20)))
    waiter.start()

    def answered():
        # raised again until the waiting worker gets one (a 35 raised before the /wait
        # request reached its worker was handled by both workers as a plain signal)
        inst.request("/raise/35")
        waiter.join(0.3)
        return answer
    wait_until(answered, timeout=20, interval=0, what="signal_wait to return")
    assert answer == [b"35"]


def test_locks_setprocname_and_mule_messages(api_server, tmp_path):
    inst = api_server
    assert inst.get("/locks") == b"True False Invalid lock number"
    assert inst.get("/procname") == b"uwsgi-py-named"
    # a programmed mule runs its file as __main__ and reads messages with mule_get_msg()
    wait_until(lambda: events(tmp_path, "program"), what="the mule program")
    assert [(e.mule, e.detail) for e in events(tmp_path, "program")] == [(1, "__main__")]
    assert inst.get("/msg/1") == b"True"
    wait_until(lambda: [e.detail for e in events(tmp_path, "got")] == ["ping"], what="mule 1's message")
    # a plain mule without uwsgi.mule_msg_hook logs what it got
    assert inst.get("/msg/2") == b"True"
    inst.wait_log("*** mule 2 received a 4 bytes message ***")


def test_signal_command_line(api_server, tmp_path):
    inst = api_server
    port = uwsgi_port(inst, 1)
    result = run_cli("--signal", f"127.0.0.1:{port},22")
    assert result.returncode == 0, result.stderr
    assert f"signal 22 delivered to node 127.0.0.1:{port}" in result.stderr
    wait_until(lambda: len(events(tmp_path, "sig22")) == 1, what="sig22 from the command line")
    uwsgi = shutil.which("uwsgi")
    if uwsgi:   # real uWSGI's client speaks the same packet
        real = subprocess.run([uwsgi, "--signal", f"127.0.0.1:{port},21"], capture_output=True,
                              text=True, timeout=20, start_new_session=True)
        assert real.returncode == 0, real.stderr + real.stdout
        wait_until(lambda: len(events(tmp_path, "sig21")) == 1, what="sig21 from uWSGI's client")
    bad = run_cli("--signal", f"127.0.0.1:{port}")
    assert bad.returncode == 1 and "invalid syntax for signal, must be addr,signal" in bad.stderr
    assert run_cli("--signal", f"127.0.0.1:{port},300").returncode == 3
    unreachable = run_cli("--signal", "127.0.0.1:1,5")
    assert unreachable.returncode == 1 and "unable to deliver signal 5" in unreachable.stderr


def test_mules_respawn_reload_and_stop(api_server, tmp_path):
    inst = api_server
    before = mule_pids(inst)
    os.kill(before[2], signal.SIGKILL)
    inst.wait_log(f"OOOPS mule 2 (pid: {before[2]}) crippled...trying respawn...")
    wait_until(lambda: mule_pids(inst)[2] != before[2], what="mule 2 respawned")
    assert mule_pids(inst)[1] == before[1]
    current = mule_pids(inst)
    inst.signal(signal.SIGHUP)
    inst.wait_log("reload outcome: generation=1")
    wait_until(lambda: all(mule_pids(inst)[m] != current[m] for m in (1, 2)), what="new mules")
    wait_until(lambda: not any(pid_alive(p) for p in current.values()), what="old mules gone")
    wait_until(lambda: len(events(tmp_path, "program")) == 2, what="the program of the new mule 1")
    latest = mule_pids(inst)
    inst.signal(signal.SIGINT)
    assert inst.wait_exit() == 0
    assert "crippled" not in inst.log().split("reload outcome: generation=1")[1]
    assert not any(pid_alive(p) for p in latest.values())


def test_config_timers_crons_and_file_signals(server, tmp_path):
    watched_dir = tmp_path / "dir"
    watched_dir.mkdir()
    touched = tmp_path / "touched"
    touched.write_text("")
    inst = start_app(server, tmp_path, API_APP, "--processes", "2",
                     "--timer", "20 1", "--touch-signal", f"{touched} 21",
                     "--fs-signal", f"{watched_dir} 22",
                     "--cron", f"-1 -1 -1 -1 -1 echo ran >> {tmp_path}/cron.out",
                     "--cron2", "harakiri=1 exec sleep 30")
    # --timer: signal 20 (target workers) every second, in both workers
    wait_until(lambda: {e.wid for e in events(tmp_path, "sig20")} == {1, 2}, what="the timer")
    # --cron: the command runs (in the minute the instance started), the master reaps it
    wait_until(lambda: (tmp_path / "cron.out").exists(), what="the cron command")
    inst.wait_log('[uwsgi-cron] running "echo ran')
    inst.wait_log("exited after")
    # --cron2 harakiri=1: the master kills a command that runs too long
    inst.wait_log('*** HARAKIRI ON CRON "exec sleep 30"', timeout=10)
    inst.wait_log('[uwsgi-cron] command "exec sleep 30" running with pid', timeout=10)
    # --touch-signal: a newer mtime (whole seconds, as uWSGI compares)
    os.utime(touched, (time.time() + 5, time.time() + 5))
    wait_until(lambda: events(tmp_path, "sig21"), what="the touch signal")
    inst.wait_log("[uwsgi-touch-signal] raising 21")
    # --fs-signal on a directory: an entry created in it
    (watched_dir / "new").write_text("x")
    wait_until(lambda: events(tmp_path, "sig22"), what="the fs signal")


def test_bad_values_are_one_line_errors(tmp_path):
    for args, needle in ((["--timer", "x"], "--timer: 'x' is not '<signal> <seconds>' (command line)"),
                         (["--cron", "* * * * * ls"], "--cron: '* * * * * ls' cron field '*' is not a number"),
                         (["--touch-signal", "file"], "--touch-signal: 'file' is not '<file> <signal>'"),
                         (["--locks", "-1"], "--locks: '-1' is not a non-negative integer")):
        result = run_cli("--http-socket", "127.0.0.1:0", *args, cwd=tmp_path)
        assert result.returncode == 1, (args, result.stderr)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and needle in lines[0], (args, lines)
