"""--emperor: one vassal per config file, spawned, reloaded, stopped and restarted as the files
come, change and go; vassals kept across the emperor's own reload, stopped with it.

Every vassal runs in the emperor's process group (as uWSGI's do), which the server fixture
kills at the end, and logs to a file in tmp_path where the test reads its port and pid."""
from __future__ import annotations

import os
import re
import signal
import time

import pytest

from conftest import APPS, group_pids, pid_alive, wait_until

pytestmark = pytest.mark.timeout(120)

PORT_RE = re.compile(r"bound to TCP address 127\.0\.0\.1:(\d+)")
MASTER_RE = re.compile(r"spawned uWSGI master process \(pid: (\d+)\)")
STARTING = "*** starting uWSGI Emperor ***"


def write_vassal(vassals, tmp_path, name: str, extra: str = "") -> None:
    (vassals / name).write_text(
        "[uwsgi]\nmaster = true\nhttp-socket = 127.0.0.1:0\n"
        f"wsgi-file = {APPS / 'app.py'}\nlogto = {tmp_path / (name + '.log')}\n{extra}")


class Vassal:
    def __init__(self, tmp_path, name: str):
        self.log_path = tmp_path / (name + ".log")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, text: str, count: int = 1, timeout: float = 20.0) -> str:
        wait_until(lambda: self.log().count(text) >= count, timeout,
                   what=f"{text!r} x{count} in {self.log_path.name}")
        return self.log()

    def port(self) -> int:
        return int(PORT_RE.findall(self.wait_log("bound to TCP address"))[-1])

    def master(self, count: int = 1) -> int:
        return int(MASTER_RE.findall(self.wait_log("spawned uWSGI master process", count))[-1])

    def serves(self, inst) -> bool:
        def ok():
            try:
                return inst.request("/", port=self.port(), timeout=2)[0] == 200
            except OSError:
                return False
        return wait_until(ok, 20, what=f"{self.log_path.name}'s vassal to answer")


def bump(path) -> None:
    """A new mtime the scan sees, whatever the file system's timestamp granularity."""
    later = time.time() + 5
    os.utime(path, (later, later))


def start_emperor(server, tmp_path, vassals, *args):
    inst = server("--emperor", str(vassals), "--emperor-freq", "1", *args,
                  app=False, http=False, wait=False, name="emperor")
    inst.wait_log(STARTING)
    return inst


def test_vassals_follow_their_files(server, tmp_path):
    vassals = tmp_path / "vassals"
    vassals.mkdir()
    write_vassal(vassals, tmp_path, "a.ini")
    write_vassal(vassals, tmp_path, "b.ini")
    (vassals / "c.xml").write_text("<uwsgi/>")
    (vassals / "notes.txt").write_text("not a vassal")
    inst = start_emperor(server, tmp_path, vassals)
    inst.wait_log("[emperor] vassal a.ini has been spawned")
    inst.wait_log("[emperor] vassal b.ini has been spawned")
    a, b = Vassal(tmp_path, "a.ini"), Vassal(tmp_path, "b.ini")
    assert a.serves(inst) and b.serves(inst)
    a_master, b_master = a.master(), b.master()
    assert os.getpgid(a_master) == inst.pgid, "vassals stay in the emperor's process group"
    assert inst.count("skipping vassal c.xml") == 1 and "notes.txt" not in inst.log()
    # a touched file: a graceful reload of that vassal (same master pid)
    bump(vassals / "a.ini")
    inst.wait_log("[emperor] reload the uwsgi instance a.ini")
    a.wait_log("reload outcome: generation=1 kind=graceful")
    assert a.master(2) == a_master
    assert a.serves(inst)
    # a removed file: that vassal stops
    (vassals / "b.ini").unlink()
    inst.wait_log("[emperor] stop the uwsgi instance b.ini")
    inst.wait_log("[emperor] removed uwsgi instance b.ini")
    wait_until(lambda: not pid_alive(b_master), 10, what="b's vassal to stop")
    assert "curse" not in inst.log()
    # a vassal that dies: started again
    os.kill(a_master, signal.SIGKILL)
    inst.wait_log(f"[emperor] curse the uwsgi instance a.ini (pid: {a_master})")
    inst.wait_log("[emperor] vassal a.ini has been spawned", 2)
    new_master = wait_until(lambda: (lambda p: p if p != a_master else None)(a.master()), 20,
                            what="a new master for a.ini")
    assert a.serves(inst)
    # a new file (TOML this time): a new vassal
    app, logto = APPS / "app.py", tmp_path / "d.toml.log"
    (vassals / "d.toml").write_text(
        f'[uwsgi]\nmaster = true\nhttp-socket = "127.0.0.1:0"\n'
        f'wsgi-file = "{app}"\nlogto = "{logto}"\n')
    inst.wait_log("[emperor] vassal d.toml has been spawned")
    d = Vassal(tmp_path, "d.toml")
    assert d.serves(inst)
    # the emperor stops: every vassal stops with it
    inst.signal(signal.SIGINT)
    assert inst.wait_exit() == 0
    inst.wait_log("[emperor] *** RAGNAROK EVOKED ***")
    wait_until(lambda: not group_pids(inst.pgid), 20, what="every vassal to stop")
    assert not pid_alive(new_master) and not pid_alive(d.master())
    inst.wait_log("The Emperor is buried.")


def test_vassals_survive_the_emperors_reload(server, tmp_path):
    vassals = tmp_path / "vassals"
    vassals.mkdir()
    write_vassal(vassals, tmp_path, "a.ini")
    inst = start_emperor(server, tmp_path, vassals)
    a = Vassal(tmp_path, "a.ini")
    assert a.serves(inst)
    a_master = a.master()
    inst.signal(signal.SIGHUP)
    inst.wait_log("reload outcome: generation=1 kind=graceful")
    inst.wait_log(STARTING, 2)
    assert pid_alive(a_master) and a.serves(inst)
    assert inst.count("has been spawned") == 1, "the new image adopted the running vassal"
    # the new image follows the adopted vassal's file
    bump(vassals / "a.ini")
    inst.wait_log("[emperor] reload the uwsgi instance a.ini")
    a.wait_log("reload outcome: generation=1 kind=graceful")
    assert a.master(2) == a_master
    # and still reaps and restarts it
    os.kill(a_master, signal.SIGKILL)
    inst.wait_log(f"[emperor] curse the uwsgi instance a.ini (pid: {a_master})")
    inst.wait_log("[emperor] vassal a.ini has been spawned", 2)
    assert a.serves(inst)


def test_a_vassal_that_keeps_failing_is_throttled(server, tmp_path):
    vassals = tmp_path / "vassals"
    vassals.mkdir()
    (vassals / "bad.ini").write_text("[uwsgi]\nmaster = true\nhttp-socket = 127.0.0.1:0\n"
                                     "processes = zero\n")
    inst = start_emperor(server, tmp_path, vassals, "--emperor-throttle", "300")
    inst.wait_log("[emperor] curse the uwsgi instance bad.ini", 2)
    inst.wait_log("[emperor] unloyal bad behaving vassal found: bad.ini throttling it...")
    inst.wait_log("[emperor] vassal bad.ini has been spawned", 3)
    assert "--processes: 'zero'" in inst.log(), "the vassal's own error is in the log"


def test_emperor_in_a_directory_that_does_not_exist_serves_the_app(server):
    """The corpus case: emperor = True (a glob that matches nothing) next to an app."""
    inst = server("--master", "--processes", "2", "--emperor", "True")
    inst.wait_log(STARTING)
    inst.wait_workers(2)
    assert inst.get() and "has been spawned" not in inst.log()
    inst.signal(signal.SIGINT)
    assert inst.wait_exit() == 0


def test_emperor_options_from_the_environment_are_not_passed_to_vassals(server, tmp_path):
    vassals = tmp_path / "vassals"
    vassals.mkdir()
    write_vassal(vassals, tmp_path, "a.ini")
    inst = server(app=False, http=False, wait=False, name="emperor",
                  env={"UWSGI_EMPEROR": str(vassals), "UWSGI_EMPEROR_FREQ": "1"})
    inst.wait_log(STARTING)
    a = Vassal(tmp_path, "a.ini")
    assert a.serves(inst)
    assert STARTING not in a.log(), "the vassal is no Emperor itself"
    assert inst.count("has been spawned") == 1
