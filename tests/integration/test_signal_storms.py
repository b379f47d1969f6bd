"""Signals at every moment of a reload (STYLE §6): pairs at delays from 0 to 1 s, storms of
graceful signals under load. The master keeps its pid and serves; no request fails.

A HUP during a reload is coalesced into one more reload once it is done. After the
signals of a step the test sends a marker, SIGRTMIN (hooked to ``update_pidfiles``:
real-time signals queue and are delivered after every standard one), waits for its
log line, then waits until each reload that started has its outcome line
(``settled``): never a fixed sleep. The delay *between* two signals is the stimulus
under test, so it is a timed pause.
"""
import http.client
import random
import signal
import threading
import time

import pytest

from conftest import children_of, pid_alive, wait_until

pytestmark = pytest.mark.timeout(120)

STARTED = "...gracefully killing workers..."
AGAIN = "graceful reload requested while one is under way"
OUTCOME = "reload outcome:"
PAUSE = "*** PAUSE (press start"
RESUME = "*** (SIGTSTP received) resuming workers ***"
MARKER = "writing pidfile to "


class Load:
    """A light, bounded load: ``clients`` threads, one request at a time each, until stop()."""

    def __init__(self, port: int, clients: int = 3):
        self.port = port
        self.ok = 0
        self.failures: list[str] = []
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.deadline = time.monotonic() + 100
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(clients)]
        for t in self.threads:
            t.start()

    def run(self):
        while not self.done.is_set() and time.monotonic() < self.deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
                conn.request("GET", "/", headers={"Connection": "close"})
                resp = conn.getresponse()
                body = resp.read()
                conn.close()
                result = None if (resp.status, body) == (200, b"hello\n") else f"{resp.status} {body!r}"
            except Exception as e:  # noqa: BLE001 - every failure is reported
                result = f"{type(e).__name__}: {e}"
            with self.lock:
                if result is None:
                    self.ok += 1
                else:
                    self.failures.append(result)
            self.done.wait(0.01)   # pacing: a light load on a 2-CPU machine

    def stop(self) -> None:
        self.done.set()
        for t in self.threads:
            t.join(30)


def instance(server, tmp_path, *args):
    pidfile = tmp_path / "app.pid"
    return server("--master", "--pidfile", str(pidfile), "--hook-master-start",
                  "unix_signal:SIGRTMIN update_pidfiles", *args)


def sync(inst) -> None:
    """Every signal sent before this call has been read by the master."""
    before = inst.log().count(MARKER)
    inst.signal(signal.SIGRTMIN)
    inst.wait_log(MARKER, count=before + 1, timeout=30)


def settled(inst) -> bool:
    """Every reload that started has its outcome, and none is still owed to a coalesced HUP."""
    log = inst.log()
    started = log.count(STARTED)
    if log.count(OUTCOME) != started:
        return False
    return log.rfind(AGAIN) < log.rfind(STARTED)


def wait_settled(inst, workers: int) -> None:
    sync(inst)
    wait_until(lambda: settled(inst), 60, what="every reload to complete")
    inst.wait_serving()
    wait_until(lambda: len(children_of(inst.pid)) == workers, 30, what=f"{workers} workers")
    assert inst.proc.poll() is None and pid_alive(inst.pid)


def pair(inst, first: int, second: int, delay: float) -> None:
    inst.signal(first)
    time.sleep(delay)   # the stimulus: the second signal lands at this point of the reload
    inst.signal(second)


DELAYS = [round(0.1 * i, 1) for i in range(11)]     # 0 .. 1.0 s


@pytest.mark.slow
def test_hup_pairs_at_every_delay_under_load(server, tmp_path):
    inst = instance(server, tmp_path, "-p", "2")
    load = Load(inst.port)
    try:
        for delay in DELAYS:
            pair(inst, signal.SIGHUP, signal.SIGHUP, delay)
            wait_settled(inst, 2)
    finally:
        load.stop()
    assert load.failures == [] and load.ok > 0
    log = inst.log()
    assert log.count(f"gracefully (RE)spawned uWSGI master process (pid: {inst.pid})") >= len(DELAYS)
    assert "refused=yes" not in log


def test_snapshot_then_hup_sigchld_storm(server, tmp_path):
    """URG makes every worker exit at once (a SIGCHLD per worker) while HUP starts a reload."""
    inst = instance(server, tmp_path, "-p", "6")
    load = Load(inst.port)
    try:
        for delay in (0, 0.05, 0.2):
            pair(inst, signal.SIGURG, signal.SIGHUP, delay)
            wait_settled(inst, 6)
    finally:
        load.stop()
    assert load.failures == []


@pytest.mark.parametrize("delay", [0.05, 0.15, 0.3])
def test_int_during_a_reload_stops_the_instance_cleanly(server, delay):
    inst = server("--master", "-p", "2")
    workers = inst.wait_workers(2)
    pair(inst, signal.SIGHUP, signal.SIGINT, delay)
    assert inst.wait_exit() == 0          # not killed by the signal: a clean immediate shutdown
    assert "goodbye to uWSGI." in inst.log()
    wait_until(lambda: not any(pid_alive(p) for p in workers), what="the workers to be gone")


def test_term_during_a_reload_is_a_brutal_reload(server, tmp_path):
    """TERM keeps its table meaning (a brutal reload) at every point of a graceful one."""
    inst = instance(server, tmp_path, "-p", "2")
    for n, delay in enumerate((0, 0.1, 0.2, 0.3, 0.5), 1):
        pair(inst, signal.SIGHUP, signal.SIGTERM, delay)
        sync(inst)
        inst.wait_log("...brutally killing workers...", count=n)
        wait_until(lambda: inst.log().rfind("kind=brutal") > inst.log().rfind("brutally killing"),
                   30, what="the brutal reload's outcome")
        inst.wait_serving()
        wait_until(lambda: len(children_of(inst.pid)) == 2, 30, what="2 workers")
        assert inst.proc.poll() is None


def test_pause_survives_a_reload(server, tmp_path):
    """TSTP (pause), HUP, TSTP at several delays: the second TSTP resumes, whenever it lands."""
    inst = instance(server, tmp_path, "-p", "2")
    load = Load(inst.port)
    try:
        toggles = 0
        for delay in (0, 0.15, 0.3, 0.6):
            inst.signal(signal.SIGTSTP)
            toggles += 1
            wait_until(lambda: toggled(inst) == toggles, 15, what="the pause")
            pair(inst, signal.SIGHUP, signal.SIGTSTP, delay)
            toggles += 1
            wait_until(lambda: toggled(inst) == toggles, 30, what="the resume")
            wait_settled(inst, 2)
    finally:
        load.stop()
    assert load.failures == [] and load.ok > 0


def toggled(inst) -> int:
    log = inst.log()
    return log.count(PAUSE) + log.count(RESUME)


GRACEFUL = [signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH, signal.SIGURG, "TSTP"]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_storms_of_graceful_signals_under_load(server, tmp_path, seed):
    rng = random.Random(seed)
    inst = instance(server, tmp_path, "-p", "2")
    load = Load(inst.port)
    try:
        toggles = 0
        for _ in range(14):
            sig = rng.choice(GRACEFUL)
            if sig == "TSTP":
                # one TSTP handled before the next is sent: two pending at once are one to the
                # kernel (a standard signal does not queue), which would leave it paused
                wait_until(lambda: toggled(inst) == toggles, 30, what="the previous TSTP")
                sig = signal.SIGTSTP
                toggles += 1
            inst.signal(sig)
            time.sleep(rng.uniform(0, 0.3))   # the stimulus: signals at random moments
        if toggles % 2:
            wait_until(lambda: toggled(inst) == toggles, 30, what="the previous TSTP")
            inst.signal(signal.SIGTSTP)
            toggles += 1
        wait_until(lambda: toggled(inst) == toggles, 30, what="every TSTP")
        wait_settled(inst, 2)
    finally:
        load.stop()
    assert load.failures == [] and load.ok > 0
