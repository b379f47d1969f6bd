"""Crash loops and apps that cannot load (issue 10, point 2; WORKER-4/5, SHUT-5).

Choice (docs/hardening.md): as the SPEC says for uWSGI, a worker that dies at boot
is respawned with the "respawn too fast" throttle (WORKER-4), never in a tight
loop; the instance stops on its own only for an app that cannot load with
--need-app (exit 22), or after --max-boot-failures N workers in a row died before
accepting (exit 1), an opt-in.
"""
from __future__ import annotations

import os
import signal
import time

import pytest

from conftest import pid_alive, run_cli, wait_until
from hardening_helpers import BOOT_CRASH_APP, BROKEN_IMPORT_APP

pytestmark = pytest.mark.timeout(60)

MISSING = "ModuleNotFoundError: No module named 'this_module_does_not_exist'"


def test_a_worker_dying_at_boot_is_respawned_throttled_not_in_a_tight_loop(server):
    inst = server("--master", "-p", "2", "--lazy-apps", "--wsgi-file", BOOT_CRASH_APP, app=False)
    inst.wait_log("worker respawning too fast !!! i have to sleep a bit (2 seconds)...")
    start_count = inst.count("Respawned uWSGI worker")
    t0 = time.monotonic()
    time.sleep(5)                                   # observe the loop for a bounded while
    respawns = inst.count("Respawned uWSGI worker") - start_count
    elapsed = time.monotonic() - t0
    # 2 slots, each respawned at most twice per --forkbomb-delay (2 s) window
    assert respawns <= 4 * (elapsed / 2 + 1), respawns
    assert pid_alive(inst.pid) and inst.proc.poll() is None
    log = inst.log()
    assert "died before accepting any request" in log
    assert "DAMN ! worker 1 (pid: " in log and "exited with status 3" in log


def test_max_boot_failures_stops_the_instance_with_a_clear_error(server):
    inst = server("--master", "-p", "1", "--lazy-apps", "--wsgi-file", BOOT_CRASH_APP,
                  "--max-boot-failures", "3", "--forkbomb-delay", "1", app=False)
    assert inst.wait_exit(20) == 1
    log = inst.log()
    assert ("*** 3 workers in a row died before accepting (--max-boot-failures 3): "
            "stopping the instance ***") in log
    assert log.count("boot failure(s) in a row)") == 3
    assert "goodbye to uWSGI." in log


def test_a_boot_failure_counter_resets_once_a_worker_accepts(server):
    inst = server("--master", "-p", "1", "--max-boot-failures", "2")
    for _ in range(3):
        old = inst.wait_workers(1)[0]
        os.kill(old, signal.SIGKILL)                   # an accepting worker dies: no boot failure
        inst.wait_workers(1, exclude=(old,))
        inst.wait_serving()
    assert "boot failure" not in inst.log() and inst.proc.poll() is None


@pytest.mark.parametrize("extra", [(), ("--master", "-p", "2")])
def test_an_app_that_fails_to_import_gives_one_error_and_exit_22_with_need_app(tmp_path, extra):
    res = run_cli("--http-socket", "127.0.0.1:0", "--wsgi-file", BROKEN_IMPORT_APP, "--need-app",
                  *extra, cwd=tmp_path)
    out = res.stdout + res.stderr
    assert res.returncode == 22, out
    assert out.count(MISSING) == 1, out
    assert out.count("*** no app loaded. GAME OVER ***") == 1
    assert "spawned uWSGI worker" not in out                # it never forks workers


def test_a_missing_wsgi_file_exits_22_with_need_app(tmp_path):
    res = run_cli("--http-socket", "127.0.0.1:0", "--wsgi-file", "nope.py", "--need-app",
                  cwd=tmp_path)
    out = res.stdout + res.stderr
    assert res.returncode == 22, out
    assert out.count("--wsgi-file: nope.py not found") == 1


def test_lazy_apps_need_app_shuts_down_with_22(server):
    inst = server("--master", "-p", "2", "--lazy-apps", "--need-app",
                  "--wsgi-file", BROKEN_IMPORT_APP, app=False)
    assert inst.wait_exit(20) == 22
    log = inst.log()
    assert "*** no app loaded. GAME OVER ***" in log and MISSING in log
    wait_until(lambda: not inst.workers(), 5, what="no worker left")


def test_without_need_app_the_instance_stays_up_and_answers_500(server):
    inst = server("--master", "--wsgi-file", BROKEN_IMPORT_APP, app=False)
    status, _ = inst.request("/")
    assert status == 500
    log = inst.log()
    assert log.count(MISSING) == 1
    assert "*** no app loaded. going in full dynamic mode ***" in log
