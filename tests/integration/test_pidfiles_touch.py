"""Pidfiles (PID-1..6), client flags (CLI-1..4) and touch files (TOUCH-1..5)."""
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import pid_alive, run_cli, wait_until

pytestmark = pytest.mark.timeout(60)


def test_pidfiles_written_once_and_vacuumed(server, tmp_path):
    names = {n: tmp_path / f"{n}.pid" for n in ("pidfile", "pidfile2", "safe-pidfile", "safe-pidfile2")}
    args = ["--master", "-p", "2", "--vacuum"]
    for name, path in names.items():
        args += [f"--{name}", str(path)]
    inst = server(*args)
    # the safe pidfiles come once every worker is up: serving a request does not mean both are
    wait_until(lambda: all(p.exists() for p in names.values()), 10, what="the four pidfiles")
    for path in names.values():
        assert path.read_text() == f"{inst.pid}\n"
    log = inst.log()
    assert log.count("writing pidfile to") == 4
    assert log.index(f"writing pidfile to {names['pidfile']}") < log.index("bound to")
    assert log.index(f"writing pidfile to {names['safe-pidfile']}") > log.index("spawned uWSGI worker 2")
    inst.signal(signal.SIGHUP)
    inst.wait_log("reload outcome:")
    assert inst.count("writing pidfile to") == 4  # an exec reload does not rewrite them (PID-5)
    inst.signal(signal.SIGINT)
    assert inst.wait_exit() == 0
    for path in names.values():
        assert not path.exists()
    for what in ("pidfile", "pidfile2", "safe pidfile", "safe pidfile2"):
        assert f"VACUUM: {what} removed." in inst.log()


def test_safe_pidfile_survives_a_failed_start(tmp_path):
    safe = tmp_path / "safe.pid"
    safe.write_text("12345\n")
    r = run_cli("--master", "--http-socket", "127.0.0.1:0", "--wsgi-file", "missing.py", "--need-app",
                "--safe-pidfile", str(safe), cwd=tmp_path)
    assert r.returncode == 22
    assert safe.read_text() == "12345\n"


def test_reload_stop_pause_client_flags(server, tmp_path):
    pid = tmp_path / "app.pid"
    inst = server("--master", "--pidfile", str(pid))
    before = inst.wait_workers(1)
    r = run_cli("--reload", str(pid))
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    inst.wait_log("reload outcome:")
    inst.wait_workers(1, exclude=before)
    r = run_cli("--pause", str(pid))
    assert r.returncode == 0
    inst.wait_log("*** PAUSE")
    r = run_cli("--resume", str(pid))
    assert r.returncode == 0
    inst.wait_log("resuming workers")
    inst.wait_serving()
    r = run_cli("--stop", str(pid))
    assert r.returncode == 0
    assert inst.wait_exit() == 0


@pytest.mark.parametrize("flag", ["--reload", "--stop", "--pause"])
def test_client_flags_on_bad_pidfiles(tmp_path, flag):
    r = run_cli(flag, str(tmp_path / "missing.pid"))
    assert r.returncode == 1
    assert f'open("{tmp_path / "missing.pid"}"): No such file or directory' in r.stderr
    for content in ("", "\n", "garbage\n", "0\n", "-1\n"):
        p = tmp_path / "bad.pid"
        p.write_text(content)
        # run_cli puts the client in its own session: a kill(0, ...) would hit the client itself
        r = run_cli(flag, str(p))
        assert r.returncode == 1, (content, r)
        assert "error: invalid pidfile" in r.stderr
    stale = tmp_path / "stale.pid"
    stale.write_text("4194000\n")
    r = run_cli(flag, str(stale))
    assert r.returncode == 255
    assert "signal_pidfile()/kill(): No such process" in r.stderr


def test_client_refuses_to_signal_a_recycled_pid(tmp_path):
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"],
                              start_new_session=True)
    try:
        p = tmp_path / "recycled.pid"
        p.write_text(f"{victim.pid}\n")
        r = run_cli("--stop", str(p))
        assert r.returncode == 1
        assert "is not a uwsgi-py master" in r.stderr
        time.sleep(0.2)
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


def test_touch_reload_missing_create_backdate_delete(server, tmp_path):
    touch = tmp_path / "reload.touch"
    inst = server("--touch-reload", str(touch))
    inst.wait_log(f"unable to stat() {touch}, events will be triggered as soon as the file is created")
    assert "spawned uWSGI master process" in inst.log()  # touch options imply --master
    touch.write_text("")
    inst.wait_log(f"*** {touch} has been touched... grace them all !!! ***")
    inst.wait_log("reload outcome: generation=1")
    inst.wait_serving()
    old = time.time() - 3600
    os.utime(touch, (old, old))
    time.sleep(2.5)  # two ticks: a backdated mtime must not fire
    assert "generation=2" not in inst.log()
    touch.unlink()
    inst.wait_log("reload outcome: generation=2")


def test_touch_workers_reload_and_chain_reload(server, tmp_path):
    wr = tmp_path / "workers.touch"
    cr = tmp_path / "chain.touch"
    inst = server("-p", "2", "--touch-workers-reload", str(wr), "--touch-chain-reload", str(cr))
    before = inst.wait_workers(2)
    # the master has looked for both (TOUCH-2): creating one now is a change it sees
    for path in (wr, cr):
        inst.wait_log(f"unable to stat() {path}, events will be triggered as soon as the file is created")
    wr.write_text("")
    inst.wait_log(f"*** {wr} has been touched... workers reload !!! ***")
    middle = inst.wait_workers(2, exclude=before)
    assert "binary reloading" not in inst.log()
    cr.write_text("")
    inst.wait_log(f"*** {cr} has been touched... chain reload !!! ***")
    log = inst.wait_log("chain reloading complete")
    assert log.index("chain next victim is worker 1") < log.index("chain next victim is worker 2")
    inst.wait_workers(2, exclude=before + middle)
    assert pid_alive(inst.pid)
    inst.wait_serving()


def test_touch_logreopen_and_logrotate(server, tmp_path):
    logfile = tmp_path / "app.log"
    reopen = tmp_path / "reopen.touch"
    rotate = tmp_path / "rotate.touch"
    inst = server("-p", "2", "--logto", str(logfile), "--touch-logreopen", str(reopen),
                  "--touch-logrotate", str(rotate), wait=False)
    import re
    # the master has looked for both (TOUCH-2): creating one now is a change it sees
    wait_until(lambda: logfile.exists() and "spawned uWSGI worker 2" in logfile.read_text()
               and f"unable to stat() {rotate}" in logfile.read_text(), 10, what="the log file")
    inst.port = int(re.search(r"127\.0\.0\.1:(\d+) \(port", logfile.read_text()).group(1))
    inst.wait_serving()
    moved = tmp_path / "app.log.1"
    logfile.rename(moved)
    reopen.write_text("")
    wait_until(lambda: logfile.exists() and "reopened." in logfile.read_text(), 10, what="reopen")
    for _ in range(4):
        inst.get("/pid")
    wait_until(lambda: logfile.read_text().count("GET /pid") == 4, 10, what="worker lines in new file")
    assert "triggering log-reopen..." in moved.read_text()
    rotate.write_text("")
    wait_until(lambda: any(p.name.startswith("app.log.") and p.name != "app.log.1"
                           for p in tmp_path.iterdir()), 10, what="a rotated log")
    inst.get("/pid")
    wait_until(lambda: "GET /pid" in logfile.read_text(), 10, what="lines in the fresh log")
