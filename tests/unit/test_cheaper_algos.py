"""Cheaper algorithms (uWSGI's spare and manual), driven check by check."""
import pytest

from uwsgi_py_cheaper.algos import ALGOS, Counters, Load, manual, spare

pytestmark = pytest.mark.timeout(10)


def run(c, loads):
    return [spare(c, load) for load in loads]


def test_spare_spawns_step_after_overload_checks():
    c = Counters(minimum=1, step=2, overload=3)
    busy = Load(active=1, busy=1, free=3)
    # overload_count must exceed 3: the 4th fully busy check spawns `step` workers
    assert run(c, [busy] * 4) == [0, 0, 0, 2]
    assert c.overload_count == 0


def test_spare_never_spawns_more_than_free_slots():
    c = Counters(minimum=1, step=5, overload=1)
    assert run(c, [Load(active=2, busy=2, free=1)] * 2) == [0, 1]


def test_spare_keeps_one_spare_worker():
    c = Counters(minimum=1, overload=1)
    assert run(c, [Load(active=3, busy=2, free=0)] * 5) == [0] * 5


def test_spare_cheaps_one_every_overload_idle_checks_down_to_minimum():
    c = Counters(minimum=1, overload=2)
    assert run(c, [Load(active=3, busy=0, free=0)] * 4) == [0, -1, 0, -1]
    c = Counters(minimum=3, overload=1)
    assert run(c, [Load(active=3, busy=0, free=0)] * 3) == [0, 0, 0]


def test_spare_overload_decays_before_cheaping():
    c = Counters(minimum=1, overload=3)
    run(c, [Load(active=2, busy=2, free=1)] * 2)       # overload_count 2
    idle = Load(active=2, busy=0, free=1)
    # 2 -> 1 (no idle count), 1 -> 0 (idle 1), idle 2, idle 3: cheap one
    assert run(c, [idle] * 4) == [0, 0, 0, -1]


def test_no_running_worker_counts_as_overload():
    c = Counters(minimum=1, overload=1)
    assert run(c, [Load(active=0, busy=0, free=2)] * 2) == [0, 1]


def test_manual_never_changes_anything():
    c = Counters(minimum=1)
    assert manual(c, Load(active=1, busy=1, free=5)) == 0
    assert set(ALGOS) == {"spare", "manual"}
