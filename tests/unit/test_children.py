"""The worker table's bookkeeping (core/children.py) and what the actions report, without
forking: signals are recorded instead of sent, deaths are synthetic waitpid statuses.
The processes themselves are tested in tests/integration (test_reload, test_signals...)."""
from __future__ import annotations

import os
import signal
from types import SimpleNamespace

import pytest

from uwsgi_py import reload, upkeep, worker_reload
from uwsgi_py.children import Child, Children, Fate, Life
from uwsgi_py.master import State, graceful_shutdown, immediate_shutdown
from uwsgi_py.scoreboard import Scoreboard
from uwsgi_py.server import EXIT_APP_LOAD

pytestmark = pytest.mark.timeout(10)


def exited(code: int) -> int:
    return code << 8


class Table(Children):
    """The worker table, recording the signals and control bytes it would send."""

    def __init__(self, numproc: int = 2, **settings):
        values = dict(processes=numproc, master_as_root=False, lazy_apps=False, lazy=False,
                      need_app=False, max_boot_failures=0, forkbomb_delay=0)
        values.update(settings)
        super().__init__(SimpleNamespace(settings=SimpleNamespace(**values),
                                         scoreboard=Scoreboard(numproc)))
        self.sent: list[tuple[int, int]] = []
        self.told: list[tuple[int, bytes]] = []

    def kill(self, child, sig):
        self.sent.append((child.pid, sig))

    def tell(self, child, data):
        self.told.append((child.pid, data))

    def place(self, wid: int, pid: int, **kw) -> Child:
        child = self.workers[wid] = Child(wid, pid, **kw)
        return child

    def note(self, data: bytes) -> None:
        os.write(self.notify_w, data)
        self.read_notes()

    def close(self) -> None:
        os.close(self.notify_r)
        os.close(self.notify_w)


@pytest.fixture
def table():
    t = Table()
    yield t
    t.close()


def test_a_worker_dying_unasked_is_news_and_is_respawned(table, capfd):
    table.place(1, 101, accepting=True)
    death = table.died(101, exited(3), stopping=False)
    assert death.fate is Fate.RESPAWN and 1 in table.respawn_at and 1 not in table.workers
    err = capfd.readouterr().err
    assert "DAMN ! worker 1 (pid: 101) died :( trying respawn ..." in err
    assert table.boot_failures == 0


def test_a_worker_stopped_on_purpose_dies_quietly(table, capfd):
    child = table.place(1, 101, accepting=True)
    table.stop(child, signal.SIGHUP)
    assert child.life is Life.STOPPING and child.cursed_at and table.sent == [(101, signal.SIGHUP)]
    assert table.died(101, exited(0), stopping=False).fate is Fate.RESPAWN
    assert "worker 1 killed successfully (pid: 101)" in capfd.readouterr().err


def test_a_kill_without_purpose_keeps_the_death_news_and_never_downgrades(table):
    running, hupped, stopping = (table.place(w, 100 + w) for w in (1, 2, 3))
    hupped.life = Life.HUPPED
    stopping.life = Life.STOPPING
    for child in (running, hupped, stopping):
        table.stop(child, signal.SIGINT, on_purpose=False)
    assert [c.life for c in (running, hupped, stopping)] == [Life.KILLED, Life.HUPPED, Life.STOPPING]
    assert all(c.cursed_at for c in (running, hupped, stopping))
    assert not running.on_purpose


def test_notes_accepting_hupped_and_recycled(table):
    a, b = table.place(1, 101), table.place(2, 102)
    table.boot_failures = 2
    table.note(b"A1\nG1 101\nR2 102\nG2 999\n")     # the last is from a pid that left slot 2
    assert a.accepting and table.boot_failures == 0
    assert a.life is Life.HUPPED and not a.cursed_at           # exits on its own: no mercy
    assert b.life is Life.STOPPING and b.cursed_at              # recycled: mercy applies


def test_a_hupped_worker_leaves_without_a_damn_line(table, capfd):
    table.place(1, 101, accepting=True, life=Life.HUPPED)
    assert table.died(101, exited(0), stopping=False).fate is Fate.RESPAWN
    assert "DAMN" not in capfd.readouterr().err


def test_recycle_once(table):
    child = table.place(1, 101)
    assert table.recycle(child, "worker 1 lifetime reached")
    assert child.life is Life.STOPPING
    assert not table.recycle(child, "again")


def test_boot_failures_become_fatal_at_the_limit(capfd):
    table = Table(max_boot_failures=2)
    try:
        table.place(1, 101)
        assert table.died(101, exited(1), stopping=False).fate is Fate.RESPAWN
        table.place(1, 102)
        death = table.died(102, exited(1), stopping=False)
        assert death.fate is Fate.FATAL and death.code == 1
    finally:
        table.close()


def test_a_lazy_app_that_cannot_load_is_fatal_with_need_app():
    table = Table(lazy_apps=True, need_app=True)
    try:
        table.place(1, 101)
        death = table.died(101, exited(EXIT_APP_LOAD), stopping=False)
        assert (death.fate, death.code) == (Fate.FATAL, EXIT_APP_LOAD)
    finally:
        table.close()


def test_deaths_while_stopping_cheaped_retiring_and_strangers(table, capfd):
    table.place(1, 101)
    assert table.died(101, exited(0), stopping=True).fate is Fate.BURIED
    table.place(2, 102)
    table.cheap_slot(2)
    assert table.workers[2].life is Life.STOPPING
    assert table.died(102, exited(0), stopping=False).fate is Fate.CHEAPED
    assert 2 not in table.respawn_at
    assert table.died(555, exited(0), stopping=False).fate is Fate.STRANGER
    table.adopt([{"id": 1, "pid": 201, "ctl": -1}, {"id": 2, "pid": 202, "ctl": -1, "cursed": True}])
    assert table.retiring[201].life is Life.OLD_GENERATION and not table.retiring[201].cursed_at
    assert table.retiring[202].life is Life.STOPPING and table.retiring[202].cursed_at
    assert table.died(201, exited(0), stopping=False).fate is Fate.RETIRED
    err = capfd.readouterr().err
    assert "worker 1 buried after 0 seconds" in err and "uWSGI worker 2 cheaped." in err


def test_a_chain_victim_keeps_its_life_when_told_to_stop(table, monkeypatch):
    spawned = []
    monkeypatch.setattr(table, "spawn", lambda wid, respawn=False: spawned.append(wid))
    table.place(1, 101)
    old = table.replace(1)
    assert spawned == [1] and table.retiring[101] is old and old.life is Life.CHAIN_VICTIM
    table.stop(old, signal.SIGHUP)
    assert old.life is Life.CHAIN_VICTIM and old.on_purpose


def test_mercy_sigkills_what_overstayed(table):
    child = table.place(1, 101)
    table.stop(child, signal.SIGHUP)
    table.enforce_mercy(child.cursed_at + 5, mercy=10)
    assert table.sent == [(101, signal.SIGHUP)]
    table.enforce_mercy(child.cursed_at + 11, mercy=10)
    assert table.sent[-1] == (101, signal.SIGKILL)


# ---- what the actions report ---------------------------------------------------------------
def master_with(table: Table, state: State = State.RUNNING):
    events = []
    guard = SimpleNamespace(master=lambda caller, **kw: events.append(kw.get("event")) or [])
    return FakeMaster(children=table, state=state, paused=False, reforked=False,
                           scoreboard=table.scoreboard, guard=guard, events=events,
                           hook=SimpleNamespace(uwsgi_master_event=None),
                           reloader=reload.Reloader(), settings=table.settings)


class FakeMaster(SimpleNamespace):
    """A master for the actions: attributes only; hashable by identity and weak-referenceable,
    as the real one is (events.py keys its progress by master)."""

    __hash__ = object.__hash__


def test_worker_reloads_report_the_pids_they_signalled(table):
    table.place(1, 101)
    table.place(2, 102)
    m = master_with(table)
    assert worker_reload.reload_workers(m) == {"signalled": [101, 102], "signal": "SIGHUP"}
    assert {c.life for c in table.workers.values()} == {Life.STOPPING}
    m.state = State.RELOADING
    assert worker_reload.brutal_reload_workers(m) == {"ignored": "reloading"}


def test_chain_reload_starts_once(table):
    m = master_with(table)
    assert worker_reload.chain_reload(m) == {"chain": True}
    assert worker_reload.chain_reload(m) == {"ignored": "a chain reload is running"}


def test_toggle_pause_reports_the_new_state_and_who_was_told(table):
    table.place(1, 101)
    m = master_with(table)
    assert upkeep.toggle_pause(m) == {"paused": True, "told": []}   # no control pipe
    assert table.told == [(101, b"p")] and m.events == ["paused"] and m.scoreboard.paused


def test_shutdowns_report_and_a_second_one_is_ignored(table):
    table.place(1, 101)
    m = master_with(table)
    assert graceful_shutdown(m) == {"signalled": [101], "signal": "SIGHUP"}
    assert m.state is State.SHUTTING_DOWN and table.told == [(101, b"c")]
    assert immediate_shutdown(m) == {"ignored": "shutting-down"}
    assert m.events == ["stopping"]
