"""Pure logic of the launch-mode plugin: activation variables, sd_notify tables, options."""
from __future__ import annotations

import types

import pytest

from uwsgi_py import OptionError
from uwsgi_py_inetd import BOTH_DAEMONIZE, umask_mode, uwsgi_configure
from uwsgi_py_inetd import systemd


# ---- socket activation variables (SYSD-3) -------------------------------------------

def test_listen_fds_for_this_pid_are_taken_and_unset():
    env = {"LISTEN_PID": "42", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "a:b", "OTHER": "x"}
    banner, fds = systemd.activated_fds(env, pid=42)
    assert banner == systemd.SYSTEMD_DETECTED
    assert fds == [3, 4]
    assert env == {"OTHER": "x"}


def test_listen_fds_for_another_pid_are_ignored_but_unset():
    env = {"LISTEN_PID": "41", "LISTEN_FDS": "1"}
    assert systemd.activated_fds(env, pid=42) == ("", [])
    assert env == {}


@pytest.mark.parametrize("env", [{}, {"LISTEN_PID": "42"}, {"LISTEN_PID": "42", "LISTEN_FDS": "x"},
                                 {"UPSTART_EVENTS": "started", "UPSTART_FDS": "5"}])
def test_no_activation(env):
    assert systemd.activated_fds(env, pid=42) == ("", [])


def test_upstart_socket_bridge():
    env = {"UPSTART_EVENTS": "socket", "UPSTART_FDS": "7"}
    assert systemd.activated_fds(env, pid=1) == (systemd.UPSTART_DETECTED, [7])
    assert env == {}


# ---- sd_notify messages (SYSD-1/2 and their fixes) -------------------------------------

def lines(event, reload=False, **info):
    return systemd.event_message(event, {"workers": 2, "generation": 1, **info}, reload)


def test_ready_event_sends_ready_on_a_first_start_only():
    status, ready, mainpid = lines("ready")
    assert status.startswith("STATUS=") and ready == "READY=1" and mainpid.startswith("MAINPID=")
    # in a reloaded image READY=1 waits for the "reloaded" event (the old workers are gone)
    assert not any(line.startswith("READY=") for line in lines("ready", reload=True))


def test_reload_sequence():
    reloading = lines("reloading", kind="graceful")
    assert reloading[0] == "RELOADING=1"
    key, _, usec = reloading[1].partition("=")
    assert key == "MONOTONIC_USEC" and usec.isdigit()
    assert "graceful" in reloading[2]
    assert "READY=1" in lines("reloaded", reload=True, generation=3)
    assert "READY=1" in lines("reload-refused", error="boom")  # leaves systemd's reloading state


def test_stopping_and_status_texts_are_readable():
    assert lines("stopping")[0] == "STOPPING=1"
    for event in systemd.EVENT_MESSAGES:
        status = [line for line in lines(event) if line.startswith("STATUS=")]
        assert len(status) == 1 and len(status[0]) > len("STATUS=") + 5


def test_events_without_a_message():
    assert lines("worker-respawned") is None


@pytest.mark.parametrize("value, address", [
    ("/run/systemd/notify", "/run/systemd/notify"),
    ("@abstract/name", "\0abstract/name"),
    ("", None),
    ("vsock:2:1234", None),
])
def test_notify_address(value, address):
    assert systemd.notify_address({"NOTIFY_SOCKET": value}) == address


def test_notify_without_socket_sends_nothing():
    assert systemd.notify(["READY=1"], environ={}) is False


# ---- options -------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, value", [("022", 0o22), ("0", 0), ("777", 0o777), (" 027 ", 0o27)])
def test_umask_mode(raw, value):
    assert umask_mode(raw) == value


@pytest.mark.parametrize("raw", ["8", "abc", "1777", "-1"])
def test_umask_mode_rejects(raw):
    with pytest.raises(ValueError):
        umask_mode(raw)


def settings(**kw):
    base = {"daemonize": None, "daemonize2": None, "logto": None}
    return types.SimpleNamespace(**{**base, **kw})


def test_daemonize_file_is_the_log_file():
    s = settings(daemonize="d.log", logto="other.log")
    uwsgi_configure(s)
    assert s.logto == "d.log"


def test_daemonize_and_daemonize2_exclude_each_other():
    with pytest.raises(OptionError, match=BOTH_DAEMONIZE):
        uwsgi_configure(settings(daemonize="a", daemonize2="b"))
