"""The real ``uwsgidecorators`` module (from PyPI, a test dependency) runs unmodified.

tests/apps/signals_app.py uses @postfork, @timer, @cron, @filemon, @signal, @lock,
@mulefunc and @thread; each effect is a line in events.log that these tests read.
Not tested here: @thread with --threads (uwsgi-py has no --threads yet: the
decorator only needs Python threads, which every worker has).
"""
from __future__ import annotations

import signal
import threading
import time

import pytest

from conftest import wait_until
from signals_helpers import events, start_app

pytestmark = pytest.mark.timeout(150)

APP = "signals_app.py"


def test_every_decorator_has_its_effect(server, tmp_path):
    inst = start_app(server, tmp_path, APP, "--processes", "2", "--mules", "1")
    # @postfork: every worker and the mule ran it once
    wait_until(lambda: {(e.wid, e.mule) for e in events(tmp_path, "postfork")} == {(1, 0), (2, 0), (0, 1)},
               what="postfork in workers 1, 2 and mule 1")
    # @timer(1): the master raises it every second, a worker runs it
    wait_until(lambda: len(events(tmp_path, "timer")) >= 2, what="two timer firings")
    assert all(e.wid in (1, 2) for e in events(tmp_path, "timer"))
    # @cron(-1, ...): every minute, so also in the minute the server started
    wait_until(lambda: events(tmp_path, "cron"), what="the cron job")
    # @filemon: a change of the file raises its signal
    (tmp_path / "watched").write_text("changed")
    wait_until(lambda: events(tmp_path, "filemon"), timeout=10, what="the file monitor")
    # @signal(17, target="workers") raised with uwsgi.signal(17) from a request
    inst.get("/raise")
    wait_until(lambda: {e.wid for e in events(tmp_path, "signal17")} == {1, 2},
               what="signal 17 in both workers")
    # @signal(18, target="mules")
    inst.get("/raise-mules")
    wait_until(lambda: [e.mule for e in events(tmp_path, "signal18")] == [1], what="signal 18 in the mule")
    # @mulefunc: the call runs in the mule
    inst.get("/mule")
    wait_until(lambda: events(tmp_path, "mulefunc"), what="the mulefunc")
    assert [(e.mule, e.detail) for e in events(tmp_path, "mulefunc")] == [(1, "hello")]
    # @thread: runs in a thread of the worker that called it
    inst.get("/thread")
    wait_until(lambda: events(tmp_path, "thread"), what="the thread")
    # @lock: concurrent requests in two workers never overlap inside the section
    results = []

    def hit():
        results.append(inst.request("/lock")[0])

    threads = [threading.Thread(target=hit) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [200] * 16
    wait_until(lambda: len(events(tmp_path, "locked")) == 16, what="16 locked sections")
    assert {e.wid for e in events(tmp_path, "locked")} == {1, 2}, "both workers took the lock"
    assert not events(tmp_path, "lock-violated")


def test_timer_and_cron_keep_their_schedule_across_10_graceful_reloads(server, tmp_path):
    """A 1 s timer keeps its phase and a cron job (every minute) fires once, on time,
    while the instance reloads 10 times around the cron's next run: counts within one
    period. The cron ran first in the minute the server started; as in uWSGI it runs
    again 60 s later (``now - last_job >= 60``)."""
    inst = start_app(server, tmp_path, APP, "--processes", "2")
    first_cron = wait_until(lambda: events(tmp_path, "cron"), what="the first cron run")[0].time
    expected = int(first_cron) + 60
    wait_until(lambda: time.time() >= expected - 7, timeout=70, interval=0.2,
               what="a few seconds before the next cron run")
    start = time.time()
    for n in range(1, 11):
        inst.signal(signal.SIGHUP)
        inst.wait_log("reload outcome: generation=", count=n, timeout=30)
        # pace the reloads so that they surround the cron's run (about 1.5 s apart)
        target = start + n * 1.5
        wait_until(lambda: time.time() >= target, timeout=5, interval=0.05, what="the next reload")
    end = time.time()
    assert end > expected + 2, "the reloads did not surround the cron's run"
    wait_until(lambda: time.time() >= end + 1.5, timeout=5, interval=0.05, what="a last firing")
    window = [e for e in events(tmp_path, "timer") if start <= e.time < end]
    expected_count = end - start
    assert expected_count - 1 <= len(window) <= expected_count + 1, (len(window), expected_count)
    # no firing lost or doubled: a reload may delay one delivery (the new workers run what
    # was due while the new image started), never skip or repeat one
    times = [e.time for e in window]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(0.05 < g < 2.5 for g in gaps), gaps
    crons = [e for e in events(tmp_path, "cron") if e.time > first_cron + 1]
    assert len(crons) == 1, crons
    assert expected <= crons[0].time < expected + 2.5, (crons, expected)
    assert inst.count("generation=10") == 1
    pids = {e.pid for e in events(tmp_path, "timer") if e.time >= end}
    assert pids and pids <= set(inst.workers()), "the last firings ran in the new workers"


def test_lazy_apps_register_in_the_workers(server, tmp_path):
    """With --lazy-apps the registrations come from the workers: one timer, not one per
    worker; signal targets as registered; @postfork does not run (as in uWSGI: the
    post-fork hook runs before a lazy app is imported)."""
    inst = start_app(server, tmp_path, APP, "--processes", "2", "--lazy-apps")
    wait_until(lambda: len(events(tmp_path, "timer")) >= 1, what="the first timer firing")
    first = events(tmp_path, "timer")[0].time
    wait_until(lambda: time.time() > first + 4.2, timeout=10, interval=0.05, what="4 s of timer")
    fired = [e for e in events(tmp_path, "timer") if first <= e.time <= first + 4.2]
    assert 4 <= len(fired) <= 6, fired
    inst.get("/raise")
    wait_until(lambda: {e.wid for e in events(tmp_path, "signal17")} == {1, 2},
               what="signal 17 in both workers")
    assert not events(tmp_path, "postfork")
    assert inst.count("[uwsgi-signal] signum 17 registered (wid: 1") == 1
    assert inst.count("[uwsgi-signal] signum 17 registered (wid: 2") == 1


def test_spool_fails_with_one_clear_line(server, tmp_path):
    from conftest import run_cli
    result = run_cli("--http-socket", "127.0.0.1:0", "--spooler", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--spooler" in lines[0] and "not part of uwsgi-py" in lines[0], lines
    assert "Traceback" not in result.stderr


def test_decorators_with_request_threads(server, tmp_path):
    """@lock and @thread with several request threads per worker: uwsgi-py has no --threads
    yet, so this part of the issue is skipped until it does."""
    from conftest import run_cli
    if "--threads" not in run_cli("--help").stdout:
        pytest.skip("uwsgi-py has no --threads yet (request threads): @lock/@thread are "
                    "tested with one request thread per worker")
    inst = start_app(server, tmp_path, APP, "--processes", "2", "--threads", "4")
    results = []
    threads = [threading.Thread(target=lambda: results.append(inst.request("/lock")[0]))
               for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [200] * 16
    wait_until(lambda: len(events(tmp_path, "locked")) == 16, what="16 locked sections")
    assert not events(tmp_path, "lock-violated")
