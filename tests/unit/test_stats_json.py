"""The stats document: uWSGI 2.0's layout (Appendix A), keys, order and types (STATS-2/3/4)."""
from __future__ import annotations

import json
import os
import time
from types import SimpleNamespace

import pytest

from uwsgi_py import Instance, MasterView
from uwsgi_py.scoreboard import BUSY, CHEAP, IDLE, PAUSE, Scoreboard, WorkerSlot, memory, status_name
from uwsgi_py_stats import document, render
from uwsgi_py_stats.requestvars import SIZE, RequestVars, parse, stable_vars

pytestmark = pytest.mark.timeout(30)

# Appendix A (E1), minified, the wrapping removed
APPENDIX_A = (
    '{"version":"2.0.31","listen_queue":0,"listen_queue_errors":0,"signal_queue":0,"load":0,"pid":11095,'
    '"uid":0,"gid":0,"cwd":"<workdir>","locks":[{"user 0":0},{"signal":0},{"filemon":0},{"timer":0},'
    '{"rbtimer":0},{"cron":0},{"rpc":0},{"snmp":0}],"sockets":[{"name":"127.0.0.1:17001","proto":"http",'
    '"queue":0,"max_queue":100,"shared":0,"can_offload":0}],"workers":[{"id":2,"pid":11097,"accepting":1,'
    '"requests":3,"delta_requests":3,"exceptions":0,"harakiri_count":0,"signals":0,"signal_queue":0,'
    '"status":"idle","rss":0,"vsz":0,"running_time":1386,"last_spawn":1795847258,"respawn_count":1,'
    '"tx":2036,"avg_rt":389,"apps":[{"id":0,"modifier1":0,"mountpoint":"","startup_time":0,"requests":3,'
    '"exceptions":0,"chdir":""}],"cores":[{"id":0,"requests":3,"static_requests":0,"routed_requests":0,'
    '"offloaded_requests":0,"write_errors":0,"read_errors":0,"in_request":0,"vars":[],"req_info":{}}]}]}'
)
TOP_KEYS = ["version", "listen_queue", "listen_queue_errors", "signal_queue", "load", "pid", "uid",
            "gid", "cwd", "locks", "sockets", "workers"]
WORKER_KEYS = ["id", "pid", "accepting", "requests", "delta_requests", "exceptions", "harakiri_count",
               "signals", "signal_queue", "status", "rss", "vsz", "running_time", "last_spawn",
               "respawn_count", "tx", "avg_rt", "apps", "cores"]
CORE_KEYS = ["id", "requests", "static_requests", "routed_requests", "offloaded_requests",
             "write_errors", "read_errors", "in_request", "vars", "req_info"]
SOCKET_KEYS = ["name", "proto", "queue", "max_queue", "shared", "can_offload"]
APP_KEYS = ["id", "modifier1", "mountpoint", "startup_time", "requests", "exceptions", "chdir"]


# ---- layout -------------------------------------------------------------------------------

def test_minified_reproduces_appendix_a_byte_for_byte():
    doc = json.loads(APPENDIX_A)
    assert render.render(doc, minified=True) == APPENDIX_A


def test_default_layout_is_uwsgi_tab_indented_one_key_per_line():
    doc = {"version": "2.0.31", "locks": [{"user 0": 0}],
           "workers": [{"id": 1, "cores": [{"in_request": 1, "vars": ["A=1", ""],
                                             "req_info": {"request_start": 7}}],
                        "apps": []}]}
    expected = (
        '{\n'
        '\t"version":"2.0.31",\n'
        '\t"locks":[\n'
        '\t\t{\n'
        '\t\t\t"user 0":0\n'
        '\t\t}\n'
        '\t],\n'
        '\t"workers":[\n'
        '\t\t{\n'
        '\t\t\t"id":1,\n'
        '\t\t\t"cores":[\n'
        '\t\t\t\t{\n'
        '\t\t\t\t\t"in_request":1,\n'
        '\t\t\t\t\t"vars":[\n'
        '"A=1",\n'                       # list strings are not indented
        '""\n'                           # uWSGI's trailing empty var
        '\t\t\t\t\t],\n'
        '\t\t\t\t\t"req_info":\t\t\t\t\t{\n'   # an object value is indented after its key
        '\t\t\t\t\t\t"request_start":7\n'
        '\t\t\t\t\t}\n'
        '\t\t\t\t}\n'
        '\t\t\t],\n'
        '\t\t\t"apps":[\n'
        '\n'                             # an empty list keeps its blank line
        '\t\t\t]\n'
        '\t\t}\n'
        '\t]\n'
        '}'
    )
    assert render.render(doc) == expected
    assert json.loads(expected) == doc


def test_strings_are_escaped_into_valid_json():
    doc = {"cwd": 'a "quoted"\\path\n\twith ctrl \x01 and é', "vars": ['X=1"', ""]}
    for minified in (False, True):
        assert json.loads(render.render(doc, minified)) == doc


def test_extension_value_types_render():
    doc = {"reloads": [{"refused": True, "error": "", "x": None, "ms": 1.9}]}
    assert json.loads(render.render(doc, True)) == {"reloads": [{"refused": True, "error": "",
                                                                 "x": None, "ms": 1}]}


# ---- status rule (STATS-3), shared with uwsgi.workers() -------------------------------------

@pytest.mark.parametrize("code,paused,expected", [
    (IDLE, False, "idle"), (BUSY, False, "busy"), (CHEAP, False, "cheap"), (CHEAP, True, "cheap"),
    (IDLE, True, "pause"), (PAUSE, False, "pause"), (PAUSE, True, "pause"),
    (BUSY, True, "busy"),          # paused but busy: finishes its request first
])
def test_status_rule(code, paused, expected):
    assert status_name(code, paused) == expected


def test_memory_reads_proc_and_tolerates_missing_pids():
    rss, vsz = memory(os.getpid())
    assert 0 < rss <= vsz
    assert memory(0) == (0, 0)
    assert memory(2 ** 22 + 12345) == (0, 0)


# ---- request vars -------------------------------------------------------------------------

def test_request_vars_round_trip_and_cut():
    board = RequestVars(2)
    publish = board.writer(2)
    env = {"REQUEST_METHOD": "GET", "REQUEST_URI": "/a=b", "QUERY_STRING": ""}
    publish(env)
    assert parse(board.raw(2)) == ["REQUEST_METHOD=GET", "REQUEST_URI=/a=b", "QUERY_STRING="]
    assert board.raw(1) == b""
    publish({"A": "1", "BIG": "x" * (SIZE * 2)})
    assert parse(board.raw(2)) == ["A=1"]          # the cut var is dropped, not shown half
    publish(None)
    assert parse(board.raw(2)) == []


def _board_with_busy_worker():
    board = Scoreboard(2)
    board.set_pid(1, os.getpid())
    slot = WorkerSlot(board, 1)
    rv = RequestVars(2)
    slot.publish = rv.writer(1)
    return board, slot, rv


def test_stable_vars_only_while_busy():
    board, slot, rv = _board_with_busy_worker()
    view = Instance(fake_server(board))
    slot.flush(IDLE)
    assert stable_vars(rv, view, 1) is None
    slot.busy(time.time(), "/x", {"REQUEST_URI": "/x"})
    assert stable_vars(rv, view, 1) == ["REQUEST_URI=/x"]
    slot.flush(IDLE)
    assert stable_vars(rv, view, 1) is None


# ---- the document ------------------------------------------------------------------------------

class FakeListener:
    name, proto, fd = "127.0.0.1:0", "http", 3
    sock = SimpleNamespace(family=None)

    def address(self):
        return "127.0.0.1:4242"


def fake_server(board, apps=1, listeners=()):
    return SimpleNamespace(listeners=list(listeners), scoreboard=board, generation=2,
                           apps=[SimpleNamespace(modifier1=0, name="")] * apps,
                           settings=SimpleNamespace(processes=board.workers))


def fake_master(board, apps=1, reloads=(), ctl=-1):
    """A ``MasterView`` over what it reads of a master: the document is built from one."""
    master = SimpleNamespace(server=fake_server(board, apps), workers={1: SimpleNamespace(ctl=ctl)},
                             reloads=list(reloads), state=SimpleNamespace(value="running"))
    return MasterView(master)


def fake_state(cores=True, memory_report=False, request_vars=None):
    return SimpleNamespace(cores=cores, memory_report=memory_report, request_vars=request_vars,
                           listen_queue_errors=3)


OUTCOME = {"generation": 2, "kind": "graceful", "duration_ms": 812, "workers_replaced": 2,
           "refused": False, "error": "", "time": 1795847300}


def test_document_keys_order_and_types():
    board, slot, rv = _board_with_busy_worker()
    slot.requests, slot.tx, slot.avg_rt, slot.running_time = 5, 900, 300, 1500
    slot.flush(IDLE)
    master = fake_master(board, reloads=[OUTCOME])
    doc = document.build(master, fake_state(request_vars=rv))
    assert list(doc)[:len(TOP_KEYS)] == TOP_KEYS
    assert list(doc)[len(TOP_KEYS):] == ["uwsgi_py_version", "generation", "state", "reloads", "time"]
    assert doc["version"] == "2.0.31" and doc["listen_queue_errors"] == 3
    assert doc["locks"][0] == {"user 0": 0} and doc["pid"] == os.getpid()
    for key in ("listen_queue", "signal_queue", "load", "pid", "uid", "gid"):
        assert type(doc[key]) is int, key
    assert isinstance(doc["cwd"], str)
    assert doc["generation"] == 2 and doc["reloads"] == [OUTCOME]
    w1, w2 = doc["workers"]
    assert list(w1) == WORKER_KEYS
    assert (w1["id"], w1["pid"], w1["requests"], w1["status"]) == (1, os.getpid(), 5, "idle")
    assert (w1["tx"], w1["avg_rt"], w1["running_time"]) == (900, 300, 1500)
    assert (w2["pid"], w2["status"]) == (0, "idle")
    for key in WORKER_KEYS:
        if key not in ("status", "apps", "cores"):
            assert type(w1[key]) is int, key
    assert list(w1["apps"][0]) == APP_KEYS and w1["apps"][0]["requests"] == 5
    assert list(w1["cores"][0]) == CORE_KEYS
    assert w1["cores"][0]["vars"] == [] and w1["cores"][0]["req_info"] == {}
    assert (w1["rss"], w1["vsz"]) == (0, 0)
    text = render.render(doc)
    assert json.loads(text) == doc


def test_document_busy_core_has_vars_with_trailing_empty_string():
    board, slot, rv = _board_with_busy_worker()
    started = time.time()
    slot.busy(started, "/slow/4", {"REQUEST_METHOD": "GET", "REQUEST_URI": "/slow/4"})
    doc = document.build(fake_master(board), fake_state(request_vars=rv))
    w1 = doc["workers"][0]
    assert w1["status"] == "busy"
    core = w1["cores"][0]
    assert core["in_request"] == 1
    assert core["vars"] == ["REQUEST_METHOD=GET", "REQUEST_URI=/slow/4", ""]
    assert core["req_info"] == {"request_start": int(started)}


def test_document_pause_no_cores_and_memory_report():
    board, slot, rv = _board_with_busy_worker()
    slot.flush(IDLE)
    board.paused = True
    doc = document.build(fake_master(board), fake_state(cores=False, memory_report=True))
    w1 = doc["workers"][0]
    assert w1["status"] == "pause" and "cores" not in w1
    assert w1["rss"] > 0 and w1["vsz"] >= w1["rss"]
    assert doc["workers"][1]["rss"] == 0          # no process: nothing to report


def test_socket_entries_and_listen_queue(monkeypatch):
    import uwsgi_py.instance
    monkeypatch.setattr(uwsgi_py.instance, "queue", lambda listener: (7, 100))
    view = Instance(fake_server(Scoreboard(1), listeners=[FakeListener()]))
    socks, backlog = document.sockets(view)
    assert backlog == 7
    assert list(socks[0]) == SOCKET_KEYS
    assert socks[0]["name"] == "127.0.0.1:4242"   # the auto-assigned port, resolved
    assert (socks[0]["queue"], socks[0]["max_queue"], socks[0]["proto"]) == (7, 100, "http")
    assert view.sockets()[0]["configured"] == "127.0.0.1:0"   # what the queue-full line names


def test_signal_queue_counts_the_unread_control_bytes():
    board, slot, rv = _board_with_busy_worker()
    r, w = os.pipe()
    try:
        os.write(w, b"pu")
        view = fake_master(board, ctl=w)
        assert view.control_backlog(1) == 2
        assert view.control_backlog(2) == 0          # no worker in the slot
        assert document.build(view, fake_state())["workers"][0]["signal_queue"] == 2
    finally:
        os.close(r)
        os.close(w)
