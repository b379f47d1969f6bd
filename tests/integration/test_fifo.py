"""The master FIFO driven for real: real bytes into the real FIFO, observable effects.

Writers open the FIFO ``O_WRONLY|O_NONBLOCK`` and retry on ENXIO/ENOENT until
the master reads it (FIFO-3). Every test is bounded by a timeout.
"""
from __future__ import annotations

import errno
import json
import os
import re
import signal
import stat
import threading
import time

import pytest

from conftest import children_of, pid_alive, wait_until

pytestmark = pytest.mark.timeout(60)

ACTIVE = "active master fifo is now {path}"


# ---- helpers -----------------------------------------------------------------------------
def try_open(path) -> int | None:
    try:
        return os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as e:
        if e.errno in (errno.ENXIO, errno.ENOENT):
            return None
        raise


def fifo_write(path, data: bytes, timeout: float = 15.0) -> None:
    """Write ``data`` in one write() once a master reads ``path``."""
    def attempt():
        fd = try_open(path)
        if fd is None:
            return False
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        return True
    wait_until(attempt, timeout, what=f"a reader on {path}")


def is_fifo(path) -> bool:
    try:
        return stat.S_ISFIFO(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False     # between the master's unlink() and mkfifo()


def has_no_reader(path) -> bool:
    fd = try_open(path)
    if fd is not None:
        os.close(fd)
        return False
    return True


def start(server, tmp_path, *args, fifos=1, **kw):
    paths = [str(tmp_path / f"fifo{i}") for i in range(fifos)]
    opts = [x for p in paths for x in ("--master-fifo", p)]
    inst = server(*opts, *args, **kw)
    wait_until(lambda: os.path.exists(paths[0]), what="the FIFO")
    return inst, paths


def workers_json(inst) -> list[dict]:
    return json.loads(inst.get("/workers"))


def wait_for_busy(inst) -> None:
    """With -p 2: the slow request is running when both workers are busy (the
    other one is answering this very /workers request). A probe that the slow
    worker accepted along with the slow request waits behind it: give up on it."""
    def both_busy():
        try:
            status, body = inst.request("/workers", timeout=1.0)
        except OSError:
            return False
        return sum(w["status"] == "busy" for w in json.loads(body)) >= 2
    wait_until(both_busy, what="the slow request to start")


class Client(threading.Thread):
    """One request in the background; ``result`` is (status, body) or the exception."""

    def __init__(self, inst, path, timeout=20.0):
        super().__init__(daemon=True)
        self.inst, self.path, self.timeout, self.result = inst, path, timeout, None
        self.start()

    def run(self):
        try:
            self.result = self.inst.request(self.path, timeout=self.timeout)
        except Exception as e:  # noqa: BLE001 - recorded for the assertion
            self.result = e


# ---- creation (FIFO-1, -9, -10) ------------------------------------------------------------
def test_fifo_is_0600_slot0_only_and_bytes_are_commands(server, tmp_path):
    inst, (f0, f1) = start(server, tmp_path, "--master", "-p", "1", fifos=2)
    st = os.lstat(f0)
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert not os.path.exists(f1)     # later slots exist only once selected
    fifo_write(f0, b"x\n")
    inst.wait_log("master fifo: unknown command byte 'x' (0x78) ignored")
    fifo_write(f0, b"sSBE")            # several bytes in one write: several commands
    inst.wait_log(";end of configuration")
    inst.wait_log("uwsgi-py has no subscription system")
    inst.wait_log("[broodlord] instance not governed by an Emperor !!!")
    text = inst.wait_log("Emperor rescan: uwsgi-py has no Emperor mode")
    assert "0x0a" not in text          # the newline echo adds is skipped silently
    assert text.index("no subscription") < text.index("[broodlord]") < text.index("Emperor rescan")
    fifo_write(f0, b"+-")
    inst.wait_log("cheaper mode is not enabled (--cheaper N): FIFO '-' ignored")
    assert inst.get("/") == b"hello\n"


def test_planted_symlink_is_replaced_not_followed(server, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    f0 = tmp_path / "fifo0"
    f0.symlink_to(victim)
    inst = server("--master-fifo", str(f0))
    wait_until(lambda: is_fifo(f0), what="a FIFO instead of the symlink")
    assert victim.read_text() == "precious\n" and stat.S_ISREG(os.lstat(victim).st_mode)
    fifo_write(str(f0), b"s")
    inst.wait_log("workers total requests")


def test_mkfifo_failure_exits_1(server, tmp_path):
    inst = server("--master-fifo", str(tmp_path / "no" / "such" / "dir" / "fifo"), wait=False)
    assert inst.wait_exit(20) == 1
    assert "uwsgi_master_fifo()/mkfifo(): No such file or directory" in inst.log()


# ---- slots (FIFO-5) --------------------------------------------------------------------------
def test_digit_switches_slot_at_eof_and_old_path_has_no_reader(server, tmp_path):
    inst, (f0, f1) = start(server, tmp_path, "-p", "2", fifos=2)
    master = inst.pid
    before = inst.wait_workers(2)
    fifo_write(f0, b"1")
    inst.wait_log(ACTIVE.format(path=f1))
    wait_until(lambda: os.path.exists(f1), what="slot 1's FIFO")
    assert os.path.exists(f0) and has_no_reader(f0)      # ENXIO on the old path
    fifo_write(f1, b"w")                                   # commands now come through slot 1
    after = inst.wait_workers(2, exclude=before)
    assert set(after).isdisjoint(before) and inst.pid == master
    inst.wait_log("Respawned uWSGI worker", count=2)
    # FIFO-5 QUIRK: a slot with no configured path falls back to the first one
    fifo_write(f1, b"7")
    inst.wait_log(ACTIVE.format(path=f0))
    wait_until(lambda: has_no_reader(f1), what="slot 1 to be left")
    fifo_write(f0, b"s")
    inst.wait_log("workers total requests")


# ---- workers: w, W, c (RELOAD-4, CHAIN) --------------------------------------------------------
def test_w_and_W_replace_workers_with_the_same_master(server, tmp_path):
    inst, (f0,) = start(server, tmp_path, "-p", "2")
    first = inst.wait_workers(2)
    fifo_write(f0, b"w")
    second = inst.wait_workers(2, exclude=first)
    text = inst.wait_log("Respawned uWSGI worker", count=2)
    for pid in first:
        assert f"(pid: {pid})..." in text and f"killed successfully (pid: {pid})" in text
    fifo_write(f0, b"W")
    third = inst.wait_workers(2, exclude=first + second)
    for pid in second:
        assert re.search(rf" - killing worker \d \(pid: {pid}\)", inst.log())
    assert set(third).isdisjoint(second) and inst.get("/") == b"hello\n"


def test_c_chain_reload_one_by_one_with_zero_failed_requests(server, tmp_path):
    inst, (f0,) = start(server, tmp_path, "-p", "3")
    before = inst.wait_workers(3)
    stop = threading.Event()
    ok, failed = [0], []

    def load():
        while not stop.is_set():
            try:
                status, _ = inst.request("/", timeout=10)
                if status == 200:
                    ok[0] += 1
                else:
                    failed.append(status)
            except OSError as e:
                failed.append(repr(e))

    clients = [threading.Thread(target=load, daemon=True) for _ in range(3)]
    for t in clients:
        t.start()
    wait_until(lambda: ok[0] >= 20, what="load to flow")
    fifo_write(f0, b"c")
    text = inst.wait_log("chain reloading complete", timeout=40)
    wait_until(lambda: ok[0] >= 60, what="more load after the chain")
    stop.set()
    for t in clients:
        t.join(15)
    assert failed == []
    after = inst.wait_workers(3, exclude=before)
    assert set(after).isdisjoint(before)
    chain = text[text.index("chain reload starting..."):]
    victims = [int(m) for m in re.findall(r"chain next victim is worker (\d)", chain)]
    assert victims == [1, 2, 3]
    # one at a time: worker N+1 is picked only after worker N's replacement is respawned
    for wid in (1, 2):
        assert chain.index(f"Respawned uWSGI worker {wid}") < chain.index(f"victim is worker {wid + 1}")


SLOW_LOADING_APP = """
import os, time
if os.path.exists("slow-load"):          # the replacement: a slow import, marked while it lasts
    open("loading", "w").close()
    time.sleep(1.5)

def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
"""


def test_c_chain_reload_keeps_the_victim_serving_until_its_replacement_accepts(server, tmp_path):
    """No dead time per worker (issue 9): with one worker, a replacement that takes 1.5 s to
    load its app, and requests flowing, the old worker still answers requests sent while the
    replacement loads, and the new one answers after; nothing fails."""
    (tmp_path / "slow_load.py").write_text(SLOW_LOADING_APP)
    inst, (f0,) = start(server, tmp_path, "-p", "1", "--lazy-apps", "--wsgi-file", "slow_load.py",
                        app=False)
    inst.wait_serving()
    old = int(inst.get("/"))
    stop = threading.Event()
    answers, failed = [], []     # (pid, the replacement was loading when the request was sent)

    def load():
        while not stop.is_set():
            loading = os.path.exists(tmp_path / "loading")
            try:
                status, body = inst.request("/", timeout=10)
            except OSError as e:
                failed.append(repr(e))
                continue
            if status == 200:
                answers.append((int(body), loading))
            else:
                failed.append(status)

    client = threading.Thread(target=load, daemon=True)
    client.start()
    (tmp_path / "slow-load").touch()
    fifo_write(f0, b"c")
    inst.wait_log("chain reloading complete", timeout=30)
    wait_until(lambda: any(pid != old for pid, _ in answers[-5:]), what="the new worker to answer")
    stop.set()
    client.join(15)
    assert failed == []
    assert any(pid == old and loading for pid, loading in answers), \
        "the old worker stopped answering before its replacement had loaded the app"
    new = {pid for pid, _ in answers} - {old}
    assert len(new) == 1
    wait_until(lambda: not pid_alive(old), what="the old worker to exit")


# ---- reloads: r, R (the FIFO survives the exec, FIFO-9) ------------------------------------------
def test_fifo_still_works_after_r_and_R_exec_reloads(server, tmp_path):
    inst, (f0,) = start(server, tmp_path, "-p", "2")
    master = inst.pid
    first = inst.wait_workers(2)
    created = os.lstat(f0).st_ctime_ns
    fifo_write(f0, b"r")
    inst.wait_log("...gracefully killing workers...")
    inst.wait_log(f"gracefully (RE)spawned uWSGI master process (pid: {master})")
    second = inst.wait_workers(2, exclude=first)
    wait_until(lambda: os.lstat(f0).st_ctime_ns != created, what="the new image's FIFO")
    fifo_write(f0, b"w")                        # the new image reads it
    third = inst.wait_workers(2, exclude=first + second)
    fifo_write(f0, b"R")
    inst.wait_log("...brutally killing workers...")
    inst.wait_log(f"gracefully (RE)spawned uWSGI master process (pid: {master})", count=2)
    inst.wait_workers(2, exclude=first + second + third)
    fifo_write(f0, b"s")
    inst.wait_log("workers total requests")
    assert inst.pid == master and inst.proc.poll() is None and inst.get("/") == b"hello\n"


# ---- shutdown: q, Q (SHUT-1/2/3, PID-6, FIFO-9) -------------------------------------------------
def test_q_waits_for_the_in_flight_request_and_exits_0(server, tmp_path):
    pid = tmp_path / "app.pid"
    inst, (f0,) = start(server, tmp_path, "-p", "2", "--pidfile", str(pid))
    slow = Client(inst, "/slow/2")
    wait_for_busy(inst)
    fifo_write(f0, b"q")
    inst.wait_log("graceful shutdown triggered...")
    assert inst.wait_exit(20) == 0
    slow.join(10)
    assert slow.result[0] == 200 and slow.result[1].startswith(b"slow done")
    text = inst.log()
    assert text.index("graceful shutdown triggered...") < text.index("goodbye to uWSGI.")
    assert pid.exists()                      # no --vacuum: the pidfile stays (PID-6)
    assert stat.S_ISFIFO(os.lstat(f0).st_mode)  # the FIFO is never removed (FIFO-9)


def test_q_applies_mercy_and_vacuum_removes_pidfile_not_fifo(server, tmp_path):
    pid = tmp_path / "app.pid"
    inst, (f0,) = start(server, tmp_path, "-p", "2", "--pidfile", str(pid), "--vacuum",
                        "--worker-reload-mercy", "1")
    slow = Client(inst, "/slow/30")
    wait_for_busy(inst)
    started = time.monotonic()
    fifo_write(f0, b"q")
    inst.wait_log("is taking too much time to die...NO MERCY !!!")
    assert inst.wait_exit(20) == 0
    assert time.monotonic() - started < 10      # SHUT-3's fix: mercy bounds q
    slow.join(10)
    assert not isinstance(slow.result, tuple)   # cut by the SIGKILL
    assert "VACUUM: pidfile removed." in inst.log() and not pid.exists()
    assert stat.S_ISFIFO(os.lstat(f0).st_mode)


def test_Q_cuts_in_flight_requests_and_exits_0(server, tmp_path):
    inst, (f0,) = start(server, tmp_path, "-p", "2")
    slow = Client(inst, "/slow/20")
    wait_for_busy(inst)
    fifo_write(f0, b"Q")
    inst.wait_log("SIGINT/SIGTERM received...killing workers...")
    assert inst.wait_exit(15) == 0
    slow.join(10)
    assert not isinstance(slow.result, tuple)
    assert "goodbye to uWSGI." in inst.log()


# ---- pause, pidfiles ---------------------------------------------------------------------------
def test_p_pauses_and_resumes_serving(server, tmp_path):
    inst, (f0,) = start(server, tmp_path, "-p", "2")
    fifo_write(f0, b"p")
    inst.wait_log("*** PAUSE (press start to resume")
    inst.wait_log("suspended ***", count=2)
    waiting = Client(inst, "/pid")
    waiting.join(1.5)
    assert waiting.is_alive()                   # queued in the backlog, not served
    fifo_write(f0, b"p")
    inst.wait_log("*** (SIGTSTP received) resuming workers ***")
    waiting.join(10)
    assert waiting.result[0] == 200
    assert inst.get("/") == b"hello\n"


def test_P_rewrites_a_deleted_pidfile(server, tmp_path):
    pid = tmp_path / "app.pid"
    pid2 = tmp_path / "app2.pid"
    inst, (f0,) = start(server, tmp_path, "--pidfile", str(pid), "--safe-pidfile", str(pid2))
    wait_until(pid2.exists, what="the safe pidfile")
    pid.unlink()
    pid2.unlink()
    fifo_write(f0, b"P")
    wait_until(lambda: pid.exists() and pid2.exists(), what="the pidfiles")
    assert pid.read_text() == f"{inst.pid}\n" and pid2.read_text() == f"{inst.pid}\n"
    assert inst.log().count(f"writing pidfile to {pid}") == 2


# ---- logs: l, L, --log-maxsize (LOG-3, FIFO-7) ---------------------------------------------------
def start_logto(server, tmp_path, logfile, *args):
    f0 = str(tmp_path / "fifo0")
    inst = server("--master-fifo", f0, "--logto", str(logfile), *args, wait=False)
    wait_until(lambda: logfile.exists() and "spawned uWSGI worker" in logfile.read_text(),
               timeout=20, what="the server to start (logto)")
    port = re.search(r"bound to TCP address 127\.0\.0\.1:(\d+) \(port auto-assigned\)",
                     logfile.read_text())
    inst.port = int(port.group(1))
    inst.wait_serving()
    return inst, f0


def test_l_reopens_the_log_in_every_process(server, tmp_path):
    logfile = tmp_path / "app.log"
    inst, f0 = start_logto(server, tmp_path, logfile, "-p", "2")
    moved = tmp_path / "app.log.1"
    logfile.rename(moved)                      # what logrotate does
    fifo_write(f0, b"l")
    wait_until(lambda: logfile.exists() and "app.log reopened." in logfile.read_text(),
               what="the reopened log")
    assert re.search(r"\[\d+\] logsize: \d+, triggering log-reopen\.\.\.", moved.read_text())
    wait_until(lambda: both_workers_log_to(inst, logfile, "/after-reopen"),
               what="request lines of both workers in the new file")


def both_workers_log_to(inst, logfile, mark) -> bool:
    """FIFO-7's fix: every worker writes its request lines to the reopened file.
    Two overlapping slow requests keep both workers busy, one each; workers get
    the news through their control pipe, so poll with fresh requests."""
    uri = f"/slow/0.3?{mark.strip('/')}"
    pair = [Client(inst, uri), Client(inst, uri)]
    for client in pair:
        client.join(10)
    lines = [line for line in logfile.read_text().splitlines() if uri in line]
    return all(any(f"[pid: {pid}|" in line for line in lines) for pid in inst.workers())


def test_L_rotates_and_log_maxsize_rotates_by_itself(server, tmp_path):
    logfile = tmp_path / "app.log"
    inst, f0 = start_logto(server, tmp_path, logfile, "-p", "2", "--log-maxsize", "100000")
    fifo_write(f0, b"L")
    wait_until(lambda: list(tmp_path.glob("app.log.*")), what="a rotated log")
    rotated = list(tmp_path.glob("app.log.*"))[0]
    assert re.fullmatch(r"app\.log\.\d+", rotated.name)
    assert f"triggering rotation to {logfile}." in rotated.read_text()
    wait_until(lambda: both_workers_log_to(inst, logfile, "/after-rotate"),
               what="request lines of both workers in the new file")
    # --log-maxsize: grow the log past 100 kB; the master rotates it within a second or two
    for _ in range(300):
        inst.get("/" + "x" * 400)
    wait_until(lambda: len(list(tmp_path.glob("app.log.*"))) >= 2, timeout=15,
               what="a --log-maxsize rotation")


# ---- refork (FIFO-11) -------------------------------------------------------------------------
def test_f_reforks_the_master_and_P_q_retire_the_old_one(server, tmp_path):
    pidfile = tmp_path / "app.pid"
    inst, (f0, f1) = start(server, tmp_path, "-p", "1", "--pidfile", str(pidfile), fifos=2)
    old = inst.pid
    fifo_write(f0, b"1fp")                      # the documented idiom
    text = inst.wait_log("new master copy spawned with pid ")
    new = int(re.search(r"new master copy spawned with pid (\d+)", text).group(1))
    try:
        inst.wait_log(f"gracefully (RE)spawned uWSGI master process (pid: {new})")
        inst.wait_log("fork()'ing uWSGI...")
        inst.wait_log("*** PAUSE")
        assert os.getsid(new) == new            # detached: its own session
        wait_until(lambda: children_of(new), what="the new master's worker")
        wait_until(lambda: not has_no_reader(f0), what="the new master's FIFO on slot 0")
        wait_until(lambda: not has_no_reader(f1), what="the old master's FIFO on slot 1")
        fifo_write(f0, b"P")                    # the new master rewrites the pidfile
        wait_until(lambda: pidfile.read_text() == f"{new}\n", what="the new pid in the pidfile")
        fifo_write(f1, b"q")                    # retire the old master
        assert inst.wait_exit(20) == 0
        assert pid_alive(new) and inst.get("/pid")   # the new master serves on the same port
        fifo_write(f0, b"q")
        wait_until(lambda: not pid_alive(new), timeout=20, what="the new master to exit")
    finally:
        try:
            os.killpg(new, signal.SIGKILL)
        except ProcessLookupError:
            pass


# ---- cheaper mode: +, -, C ------------------------------------------------------------------
def statuses(inst) -> list[tuple[str, int]]:
    return [(w["status"], w["pid"]) for w in workers_json(inst)]


def test_plus_minus_with_manual_cheaper(server, tmp_path):
    inst, (f0,) = start(server, tmp_path, "-p", "3", "--cheaper", "1", "--cheaper-algo", "manual")
    assert len(inst.wait_workers(1)) == 1
    st = statuses(inst)
    assert st[1:] == [("cheap", 0), ("cheap", 0)] and st[0][1] > 0
    fifo_write(f0, b"+")
    inst.wait_log("spawned uWSGI worker 2")
    inst.wait_workers(2)
    fifo_write(f0, b"-")
    inst.wait_log("cheaped.")
    inst.wait_workers(1)
    assert [s for s, _ in statuses(inst)].count("cheap") == 2
    fifo_write(f0, b"-")
    inst.wait_log("the --cheaper minimum: one less refused")
    fifo_write(f0, b"++++")
    inst.wait_workers(3)
    inst.wait_log("cheaper: all 3 workers running: 2 more refused")


def test_spare_algorithm_spawns_under_load_and_cheaps_when_idle(server, tmp_path):
    inst, (f0,) = start(server, tmp_path, "-p", "3", "--cheaper", "1", "--cheaper-overload", "1")
    inst.wait_workers(1)
    slow = Client(inst, "/slow/4")
    inst.wait_log("spawned uWSGI worker 2", timeout=10)   # the only worker was busy
    slow.join(15)
    assert slow.result[0] == 200
    inst.wait_log("cheaped.", timeout=15)                 # idle again: back to the minimum
    inst.wait_workers(1)


def test_C_goes_cheap_until_the_next_connection(server, tmp_path):
    inst, (f0,) = start(server, tmp_path, "-p", "2")
    before = inst.wait_workers(2)
    fifo_write(f0, b"C")
    inst.wait_log("going cheap...")
    text = inst.wait_log("cheap mode enabled: waiting for socket connection...")
    for wid, pid in enumerate(sorted(before), 1):
        assert f"killing worker {wid} (pid: {pid})" in text
    wait_until(lambda: not children_of(inst.pid), what="every worker to be gone")
    assert inst.get("/") == b"hello\n"                   # the connection wakes the workers
    after = inst.wait_workers(2, exclude=before)
    assert statuses(inst)[0][0] in ("busy", "idle") and len(after) == 2
