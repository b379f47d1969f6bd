"""SIG-1 (master table, with uwsgi-py's fixes), SIG-2, SIG-5 (worker table), SIG-9."""
import json
import os
import signal
import threading

import pytest

from conftest import group_pids, pid_alive, wait_until

pytestmark = pytest.mark.timeout(60)


def start_slow(inst, path: str, results: dict) -> threading.Thread:
    def run():
        try:
            results["reply"] = inst.request(path, timeout=20)
        except Exception as e:  # noqa: BLE001 - recorded for the assertion
            results["error"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def wait_busy(inst, n: int = 1):
    """Wait until the app logged the start of ``n`` slow requests."""
    wait_until(lambda: inst.log().count("slow-started") >= n, 10, what="a slow request to start")


def test_hup_graceful_reload_keeps_master_and_inflight_request(server):
    inst = server("--master", "-p", "2")
    before = inst.wait_workers(2)
    info = json.loads(inst.get("/info"))
    assert info["is_a_reload"] is False
    results = {}
    t = start_slow(inst, "/slow/2", results)
    wait_busy(inst)
    inst.signal(signal.SIGHUP)
    inst.wait_log("...gracefully killing workers...")
    # a request sent during the reload is answered
    assert inst.get("/") == b"hello\n"
    t.join(20)
    assert results.get("reply", (None,))[0] == 200, results
    inst.wait_log("reload outcome: generation=1 kind=graceful")
    after = inst.wait_workers(2, exclude=before)
    assert set(after).isdisjoint(before)
    assert pid_alive(inst.pid)
    info2 = json.loads(inst.get("/info"))
    assert info2["is_a_reload"] is True
    assert info2["masterpid"] == inst.pid
    assert info2["leaked"] == []
    log = inst.log()
    for line in ("binary reloading uWSGI...", f"chdir() to {inst.cwd}", "closing all non-uwsgi socket fds",
                 "found fd 3 mapped to socket 0 (127.0.0.1:0)", "running ",
                 f"uwsgi socket 0 inherited INET address 127.0.0.1:{inst.port} fd 3",
                 f"gracefully (RE)spawned uWSGI master process (pid: {inst.pid})"):
        assert line in log, line
    assert log.index("binary reloading uWSGI...") < log.index("gracefully (RE)spawned")


def test_hups_during_a_reload_are_one_more_reload(server):
    """SIG-2 made a HUP during a reload a no-op; here HUPs that arrive while one is under way
    (checking, exec'ing, or the new image taking over) are coalesced into one more reload
    once it is done, so the code as it is after the last HUP is what serves."""
    inst = server("--master", "-p", "1")
    inst.signal(signal.SIGHUP)
    inst.wait_log("reload check: loading")
    for _ in range(3):
        inst.signal(signal.SIGHUP)
    inst.wait_log("graceful reload requested while one is under way")
    inst.wait_log("reload outcome: generation=2 kind=graceful")
    inst.wait_serving()
    log = inst.log()
    assert log.count("binary reloading uWSGI...") == 2
    assert log.count("graceful reload requested while one is under way") == 1
    assert log.index("reload outcome: generation=1") < log.rindex("...gracefully killing workers...")


def test_term_is_a_brutal_reload(server):
    inst = server("--master", "-p", "1")
    before = inst.wait_workers(1)
    results = {}
    t = start_slow(inst, "/slow/5", results)
    wait_busy(inst)
    inst.signal(signal.SIGTERM)
    inst.wait_log("...brutally killing workers...")
    t.join(15)
    assert "error" in results  # the in-flight request was cut (RELOAD-2)
    inst.wait_log("gracefully (RE)spawned uWSGI master process")
    inst.wait_workers(1, exclude=before)
    inst.wait_serving()
    assert pid_alive(inst.pid)


def test_die_on_term_swaps_term_and_quit(server):
    inst = server("--master", "--die-on-term")
    before = inst.wait_workers(1)
    inst.signal(signal.SIGQUIT)  # brutal reload with --die-on-term (SIG-4)
    inst.wait_log("...brutally killing workers...")
    inst.wait_workers(1, exclude=before)
    inst.wait_serving()
    inst.signal(signal.SIGTERM)
    assert inst.wait_exit() == 0
    assert "goodbye to uWSGI." in inst.log()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGQUIT])
def test_int_and_quit_stop_the_whole_stack(server, sig):
    inst = server("--master", "-p", "3")
    workers = inst.wait_workers(3)
    inst.signal(sig)
    assert inst.wait_exit() == 0
    log = inst.log()
    assert "SIGINT/SIGTERM received...killing workers..." in log
    assert "goodbye to uWSGI." in log
    assert log.count("buried after") == 3
    wait_until(lambda: not any(pid_alive(w) for w in workers), 5, what="workers gone")
    assert not group_pids(inst.pgid)


def test_usr1_stats_dump(server):
    inst = server("--master", "-p", "2", "--env", "X=1", "--env", "Y=2")
    inst.get("/")
    inst.signal(signal.SIGUSR1)
    log = inst.wait_log(";end of configuration")
    assert ";uWSGI instance configuration\n[uwsgi]\n" in log
    assert "master = true" in log and "env = X=1\nenv = Y=2" in log
    assert "\tworkers total requests: " in log
    assert "\tworker 1 app 0 [] requests: " in log
    assert "\n-----------------\n" in log


def test_usr2_on_master_dumps_worker_status_and_master_survives(server):
    inst = server("--master", "-p", "2")
    workers = inst.wait_workers(2)
    results = {}
    t = start_slow(inst, "/slow/1.5", results)
    wait_busy(inst)
    inst.signal(signal.SIGUSR2)
    inst.wait_log("*** backtrace of", count=2)
    inst.wait_log("*** end of backtrace ***", count=2)
    inst.wait_log("is managing request /slow/1.5 since")
    t.join(10)
    assert pid_alive(inst.pid)
    assert inst.workers() == workers


def test_tstp_pauses_without_refusing_then_resumes(server):
    inst = server("--master", "-p", "2")
    inst.signal(signal.SIGTSTP)
    inst.wait_log("*** PAUSE (press start to resume, if you do not have a joypad send SIGTSTP) ***")
    inst.wait_log("suspended ***", count=2)
    results = {}
    t = start_slow(inst, "/pid", results)
    t.join(1.0)
    assert t.is_alive() and not results  # waiting in the backlog, not refused
    inst.signal(signal.SIGTSTP)
    inst.wait_log("*** (SIGTSTP received) resuming workers ***")
    t.join(10)
    assert results["reply"][0] == 200


def test_urg_restores_the_snapshot_without_exec(server):
    inst = server("--master", "-p", "2")
    before = inst.wait_workers(2)
    inst.signal(signal.SIGURG)
    inst.wait_log("*** restoring snapshot")
    after = inst.wait_workers(2, exclude=before)
    assert set(after).isdisjoint(before)
    assert "binary reloading" not in inst.log()
    inst.wait_serving()


def test_winch_is_ignored_by_the_master_and_harmless_to_workers(server):
    inst = server("--master", "-p", "1")
    workers = inst.wait_workers(1)
    inst.signal(signal.SIGWINCH)
    os.kill(workers[0], signal.SIGWINCH)
    assert inst.get("/") == b"hello\n"
    assert inst.workers() == workers
    assert "DAMN" not in inst.log()


def test_worker_signal_table(server):
    inst = server("--master", "-p", "2")
    w1, w2 = inst.wait_workers(2)
    # HUP: graceful exit, respawned, no DAMN line
    os.kill(w1, signal.SIGHUP)
    inst.wait_log(f"Gracefully killing worker 1 (pid: {w1})...")
    inst.wait_log("Respawned uWSGI worker 1")
    assert f"DAMN ! worker 1 (pid: {w1})" not in inst.log()
    # INT / TERM: exit at once, DAMN line, respawn
    os.kill(w2, signal.SIGINT)
    inst.wait_log(f"DAMN ! worker 2 (pid: {w2}) died :( trying respawn ...")
    inst.wait_log(f"worker 2 (pid: {w2}) exited with status 30")
    w1b, w2b = sorted(inst.wait_workers(2, exclude=(w1, w2)))
    os.kill(w2b, signal.SIGTERM)
    inst.wait_log(f"DAMN ! worker 2 (pid: {w2b}) died :( trying respawn ...")
    # USR1: per-worker stats; USR2: backtrace
    os.kill(w1b, signal.SIGUSR1)
    inst.wait_log("worker 1 total requests:")
    os.kill(w1b, signal.SIGUSR2)
    inst.wait_log(f"*** backtrace of {w1b} ***")
    # SEGV: faulthandler traceback, worker respawned (SIG-10)
    os.kill(w1b, signal.SIGSEGV)
    inst.wait_log("Fatal Python error: Segmentation fault")
    inst.wait_log(f"DAMN ! worker 1 (pid: {w1b}) died, killed by signal 11 :( trying respawn ...")
    inst.wait_workers(2, exclude=(w1, w2, w1b, w2b))
    inst.wait_serving()


def test_uwsgi_reload_and_stop_from_the_app(server):
    inst = server("--master", "-p", "1")
    before = inst.wait_workers(1)
    assert inst.get("/reload") == b"True"
    inst.wait_log("reload outcome:")
    inst.wait_workers(1, exclude=before)
    inst.wait_serving()
    assert pid_alive(inst.pid)
    # stop() is an immediate shutdown (SIGQUIT): the worker may be cut before its answer
    try:
        assert inst.request("/stop")[1] == b"True"
    except OSError:
        pass
    assert inst.wait_exit() == 0
    assert "SIGINT/SIGTERM received...killing workers..." in inst.log()


def test_no_master_reload_from_app_stops_the_server(server):
    inst = server()
    inst.get("/reload")
    assert inst.wait_exit() in (17, 30)
    assert "this reload request stops the server" in inst.log()


def test_exec_reload_closes_fds_the_app_opened_in_the_master(server, tmp_path):
    (tmp_path / "opener.py").write_text(
        "import os\n"
        "FD = os.open(__file__, os.O_RDONLY)\n"
        "os.set_inheritable(FD, True)\n"
        "def application(env, sr):\n"
        "    sr('200 OK', [])\n"
        "    return [str(FD).encode()]\n")
    inst = server("--master", "--wsgi-file", "opener.py", app=False)
    inst.wait_serving()
    fd = int(inst.get("/"))
    target = os.readlink(f"/proc/{inst.pid}/fd/{fd}")
    assert target.endswith("opener.py")
    inst.signal(signal.SIGHUP)
    inst.wait_log("reload outcome:")
    inst.wait_serving()
    # the new image opened the file again; the old descriptor did not leak across exec
    opened = [n for n in os.listdir(f"/proc/{inst.pid}/fd")
              if os.readlink(f"/proc/{inst.pid}/fd/{n}").endswith("opener.py")]
    assert len(opened) == 1


def test_uwsgi_workers_from_the_app(server):
    inst = server("--master", "-p", "2")
    pids = sorted(inst.wait_workers(2))
    for _ in range(4):
        inst.get("/")
    workers = json.loads(inst.get("/workers"))
    assert [w["id"] for w in workers] == [1, 2]
    assert sorted(w["pid"] for w in workers) == pids
    assert sum(w["requests"] for w in workers) >= 4
    assert {w["status"] for w in workers} <= {"idle", "busy"}
    assert all(w["respawn_count"] == 0 for w in workers)
