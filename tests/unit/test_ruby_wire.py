"""The ruby bridge's pure parts: value encoding, the UWSGI call table, the Rack env."""
from __future__ import annotations

import signal
import socket

import pytest

from uwsgi_py_ruby_bridge import api, wire
from uwsgi_py_ruby_bridge.app import HARAKIRI_MARGIN, ruby_deadline
from uwsgi_py_ruby_bridge.exchange import rack_vars, status_line

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize("value", [
    None, True, False, 0, -1, 2**62, b"", b"bytes\x00\xff", [], [1, [b"a", None]],
    {b"k": [True, False], b"n": {b"deep": -7}},
])
def test_values_round_trip(value):
    assert wire.unpack(bytes(wire.pack(value))) == value


def test_str_is_sent_as_utf8():
    assert wire.unpack(bytes(wire.pack("héllo"))) == "héllo".encode()


def test_env_payload_keeps_latin1_bytes():
    env = {"PATH_INFO": "/caf\xe9", "QUERY_STRING": ""}
    decoded = wire.unpack(bytes(wire.pack_env(env, -1)))
    assert decoded == [{b"PATH_INFO": b"/caf\xe9", b"QUERY_STRING": b""}, -1]


@pytest.mark.parametrize("garbage", [b"", b"Z", b"S\x00\x00\x00\x05ab", b"A\x00\x00\x00\x02N", b"NN"])
def test_garbage_is_a_protocol_error(garbage):
    with pytest.raises(wire.ProtocolError):
        wire.unpack(garbage)


def test_unsupported_types_are_refused():
    with pytest.raises(TypeError):
        wire.pack(1.5)


def test_opt_shape_matches_rbapi_2():
    opt = {"master": True, "env": [b"A=1", b"B=2"], "rack": b"config.ru", "pythonpath": [b"x"]}
    assert api.ruby_opt(opt) == {"master": True, "env": [b"A=1", b"B=2"], "rack": b"config.ru",
                                 "pythonpath": b"x"}


class FakeServer:
    master_pid = 4242
    worker_id = 3
    scoreboard = None


def call(name, *args):
    kind, payload = api.answer(FakeServer(), bytes(wire.pack([name, list(args)])))
    return kind, wire.unpack(payload)


def test_calls_answer_from_the_table():
    assert call("masterpid") == (wire.RETURN, 4242)
    assert call("worker_id") == (wire.RETURN, 3)
    assert call("request_id") == (wire.RETURN, 0)
    kind, mem = call("mem")
    assert kind == wire.RETURN and len(mem) == 2


def test_unknown_calls_raise_not_implemented_naming_the_function():
    kind, (cls, message) = call("register_signal", 1, "workers", None)
    assert kind == wire.ERROR and cls == b"NotImplementedError"
    assert message.startswith(b"UWSGI.register_signal is not available")


def test_wrong_arity_is_an_argument_error():
    kind, (cls, message) = call("worker_id", 1)
    assert kind == wire.ERROR and cls == b"ArgumentError"
    assert b"given 1, expected 0" in message
    assert call("log", 5)[1][0] == b"TypeError"


def test_reload_and_stop_signal_the_master(monkeypatch):
    sent = []
    monkeypatch.setattr(api.os, "kill", lambda pid, sig: sent.append((pid, sig)))
    assert call("reload") == (wire.RETURN, True)
    assert call("stop") == (wire.RETURN, True)
    assert sent == [(4242, signal.SIGHUP), (4242, signal.SIGQUIT)]

    def refuse(pid, sig):
        raise PermissionError(1, "Operation not permitted")
    monkeypatch.setattr(api.os, "kill", refuse)
    monkeypatch.setattr(api, "_write_log", lambda data: None)
    assert call("reload") == (wire.RETURN, None)


def test_rack_vars_drop_what_lint_refuses():
    env = rack_vars({"CONTENT_LENGTH": "", "CONTENT_TYPE": "", "HTTP_CONTENT_TYPE": "x",
                     "SCRIPT_NAME": "/", "PATH_INFO": "", "QUERY_STRING": ""})
    assert env == {"SCRIPT_NAME": "", "PATH_INFO": "/", "QUERY_STRING": "",
                   "SERVER_NAME": socket.gethostname()}
    assert rack_vars({"CONTENT_LENGTH": "3", "PATH_INFO": "/x"})["CONTENT_LENGTH"] == "3"


def test_status_lines():
    assert status_line(200) == "200 OK"
    assert status_line(599) == "599 Unknown"


def test_ruby_deadline_leaves_a_margin_before_the_masters_harakiri():
    assert ruby_deadline(0) is None
    import time
    now = time.monotonic()
    assert ruby_deadline(10) - now == pytest.approx(10 - HARAKIRI_MARGIN, abs=0.1)
    assert ruby_deadline(1) - now == pytest.approx(0.5, abs=0.1)
