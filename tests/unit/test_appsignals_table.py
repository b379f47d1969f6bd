"""The pure rules of the signal framework (plugins/appsignals/table.py) and its locks."""
from __future__ import annotations

import threading
import time

import pytest

from uwsgi_py_appsignals import table
from uwsgi_py_appsignals.locks import Locks

pytestmark = pytest.mark.timeout(30)


def tm(minute, hour=10, mday=15, month=6, wday_cron=3):
    """A struct_time for 2026-month-mday hour:minute with the given cron weekday (0 = Sunday)."""
    return time.struct_time((2026, month, mday, hour, minute, 0, (wday_cron - 1) % 7, 166, -1))


@pytest.mark.parametrize("fields,minute,hour,expected", [
    ((-1, -1, -1, -1, -1), 7, 10, True),          # every minute
    ((-5, -1, -1, -1, -1), 10, 10, True),          # */5
    ((-5, -1, -1, -1, -1), 11, 10, False),
    ((30, 10, -1, -1, -1), 30, 10, True),
    ((30, 10, -1, -1, -1), 30, 11, False),
    ((0, -2, -1, -1, -1), 0, 10, True),            # every other hour
    ((0, -2, -1, -1, -1), 0, 11, False),
])
def test_cron_minutes_and_hours(fields, minute, hour, expected):
    assert table.cron_matches(tm(minute, hour), *fields) is expected


def test_cron_day_and_weekday_are_ored_when_both_are_given():
    # the 15th is a Wednesday (3) in these tests
    assert table.cron_matches(tm(0), 0, 10, 15, -1, 1)        # day matches, weekday does not
    assert table.cron_matches(tm(0), 0, 10, 1, -1, 3)         # weekday matches
    assert not table.cron_matches(tm(0), 0, 10, 1, -1, 1)
    assert table.cron_matches(tm(0, wday_cron=0), 0, 10, -1, -1, 7)   # 7 is Sunday
    assert not table.cron_matches(tm(0), 0, 10, -1, -1, 1)    # day -1: ANDed with the weekday


def test_cron_fires_once_a_minute():
    assert table.cron_due(0, 1000)
    assert not table.cron_due(1000, 1059)
    assert table.cron_due(1000, 1060)


def test_next_minute():
    assert table.next_minute(120.0) == 60.0
    assert table.next_minute(150.5) == 29.5


def test_catch_up_keeps_the_phase_and_fires_once_for_missed_periods():
    assert table.catch_up(10.0, 1.0, 10.2) == 11.0
    assert table.catch_up(10.0, 1.0, 13.5) == 14.0      # 3 periods missed: one firing, same phase
    assert table.catch_up(10.0, 2.0, 14.0) == 16.0


@pytest.mark.parametrize("target,expected", [
    ("", ("any-worker", [])), ("worker", ("any-worker", [])), ("worker0", ("any-worker", [])),
    ("workers", ("workers", [1, 2, 3])), ("active-workers", ("active-workers", [1, 2, 3])),
    ("worker2", ("workers", [2])), ("mules", ("mules", [1, 2])), ("mule", ("any-mule", [])),
    ("mule2", ("mules", [2])),
])
def test_destinations(target, expected):
    assert table.destinations(target, 3, 2) == expected


def test_bad_destinations_say_why():
    assert table.destinations("worker9", 3, 2) == "invalid signal target: worker9"
    assert table.destinations("mule3", 3, 2) == "invalid signal target: mule3"
    assert "UNSUPPORTED SIGNAL TARGET: farm1" in table.destinations("farm1", 3, 2)
    assert table.check_target("workers") is None and table.check_target("mule12") is None
    assert "unsupported signal target 'spooler'" in table.check_target("spooler")


def test_signal_numbers():
    assert table.signum(0) == 0 and table.signum(255) == 255
    with pytest.raises(ValueError):
        table.signum(256)
    with pytest.raises(TypeError):
        table.signum("1")


def test_option_syntax():
    assert table.parse_timer("30 5") == (30, 5)
    assert table.parse_file_signal("/tmp/a file 17") == ("/tmp/a file", 17)
    cron = table.parse_cron("-1 -1 -1 -1 -1 echo hi there")
    assert (cron["minute"], cron["command"]) == (-1, "echo hi there")
    cron2 = table.parse_cron2("minute=-5,unique=1,harakiri=30 backup.sh")
    assert (cron2["minute"], cron2["hour"], cron2["unique"], cron2["harakiri"]) == (-5, -1, True, 30)
    assert table.parse_cron2("backup.sh")["command"] == "backup.sh"
    for bad, parse in (("30", table.parse_timer), ("30 0", table.parse_timer),
                       ("x 1", table.parse_timer), ("file", table.parse_file_signal),
                       ("1 2 3 ls", table.parse_cron), ("minute=1", table.parse_cron2),
                       ("legion=a cmd", table.parse_cron2)):
        with pytest.raises(ValueError):
            parse(bad)


def test_locks_exclude_threads_and_report_state():
    locks = Locks(1)
    locks.lock(1)
    assert locks.is_locked(1) and not locks.is_locked(0)
    got = []
    t = threading.Thread(target=lambda: (locks.lock(1), got.append(1), locks.unlock(1)))
    t.start()
    t.join(0.2)
    assert not got, "a second thread took a held lock"
    locks.unlock(1)
    t.join(5)
    assert got == [1] and not locks.is_locked(1)
    with pytest.raises(ValueError, match="Invalid lock number"):
        locks.lock(2)
