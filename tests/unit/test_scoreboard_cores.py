"""--threads: each request thread writes only its own core entry; the scoreboard's read adds the
cores into the worker's numbers (threads.py's CoreSlot, scoreboard.py's read and fold_cores)."""
from __future__ import annotations

import os
import time

from uwsgi_py.scoreboard import BUSY, DEAD, IDLE, PAUSE, Scoreboard, WorkerSlot
from uwsgi_py.threads import CoreSlot


class FakeLoop:
    """What a CoreSlot asks its loop: the other cores (for the worker's request count)."""

    def __init__(self):
        self.cores: tuple = ()

    def totals(self) -> tuple[int, int]:
        return sum(c.delta for c in self.cores), sum(c.running_time for c in self.cores)


def threaded(cores: int = 4) -> tuple[Scoreboard, WorkerSlot, list[CoreSlot]]:
    board = Scoreboard(2, cores)
    slot = WorkerSlot(board, 1)
    loop = FakeLoop()
    loop.cores = tuple(CoreSlot(slot, board, core, loop) for core in range(cores))
    slot.flush(IDLE)
    return board, slot, list(loop.cores)


def test_the_worker_is_the_sum_of_its_cores_and_busy_while_one_is():
    board, slot, cores = threaded()
    assert board.read(1)["status"] == IDLE
    cores[2].busy(1000.0, "/slow")
    cores[0].busy(1001.0, "/quick")
    w = board.read(1)
    assert (w["status"], w["busy_since"], w["uri"]) == (BUSY, 1000.0, "/slow")   # the oldest
    cores[0].done(10, 300)
    cores[0].exceptions += 1
    cores[0].busy(1002.0, "/again")
    cores[0].done(5, 100)
    assert board.read(1)["uri"] == "/slow"
    cores[2].done(7, 50_000)
    w = board.read(1)
    assert (w["status"], w["busy_since"]) == (IDLE, 0.0)
    assert (w["requests"], w["delta_requests"], w["exceptions"], w["tx"], w["running_time"]) == \
        (3, 3, 1, 22, 50_400)
    assert [c["requests"] for c in board.read_cores(1)] == [2, 0, 1, 0]
    assert [c["in_request"] for c in board.read_cores(1)] == [0, 0, 0, 0]
    assert board.read_cores(1)[0]["uri"] == ""
    assert board.total_requests() == 3
    assert cores[1].worker_requests == 3


def test_a_paused_worker_shows_busy_only_while_a_core_serves_and_a_dead_one_never():
    board, slot, cores = threaded()
    slot.flush(PAUSE, 0)
    assert board.read(1)["status"] == PAUSE
    cores[1].busy(time.time(), "/x")
    assert board.read(1)["status"] == BUSY
    board.write(1, status=DEAD)
    assert board.read(1)["status"] == DEAD
    board.write(1, pid=0, status=IDLE)       # gone: a stale core does not make it busy
    assert board.read(1)["status"] == IDLE


def test_a_new_worker_keeps_the_totals_and_starts_its_cores_idle(monkeypatch):
    board, slot, cores = threaded()
    for n, core in enumerate(cores):
        core.busy(2000.0 + n, f"/{n}")
        core.done(100, 1_000)
    cores[3].busy(2010.0, "/killed mid-request")
    before = board.read(1)
    board.write(1, delta_requests=0, status=IDLE)          # the master respawns the slot
    monkeypatch.setattr(os, "getpid", lambda: 4242)       # the next worker
    WorkerSlot(board, 1)
    after = board.read(1)
    assert after["requests"] == before["requests"] == 4
    assert (after["tx"], after["running_time"]) == (before["tx"], before["running_time"])
    assert (after["status"], after["delta_requests"]) == (IDLE, 0)
    assert [c["requests"] for c in board.read_cores(1)] == [1, 1, 1, 1]   # each core's, kept
    assert not any(c["in_request"] or c["delta_requests"] for c in board.read_cores(1))


def test_a_worker_whose_slot_was_given_away_writes_nothing(monkeypatch):
    board, slot, cores = threaded()
    board.set_pid(1, os.getpid() + 1)       # a reload gave the slot to the replacement
    cores[0].busy(3000.0, "/late")
    cores[0].done(1, 1)
    assert board.read(1)["requests"] == 0
    assert board.read_cores(1)[0]["in_request"] == 0
