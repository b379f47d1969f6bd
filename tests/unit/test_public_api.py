"""The public plugin API's helpers (docs/plugins.md, "The plugin API"), called as a third-party
plugin calls them: only names from ``uwsgi_py.__all__``."""
from __future__ import annotations

import os
import socket
from types import SimpleNamespace

import pytest

from uwsgi_py import (Instance, OptionError, add_log_file, adopt_listener, address_text,
                      daemonized, open_log_file, parse_address, remove_log_file, status_address,
                      write_pidfile)

pytestmark = pytest.mark.timeout(30)


def test_state_for_is_one_dict_per_plugin_and_server():
    server = SimpleNamespace(plugin_state={})
    mine = Instance(server).state_for("hello")
    mine["fd"] = 7
    assert Instance(server).state_for("hello") is mine
    assert Instance(server).state_for("other") == {}
    assert Instance(SimpleNamespace(plugin_state={})).state_for("hello") == {}


def test_adopt_listener_takes_a_listening_socket_only():
    with socket.socket() as lst, socket.socket() as plain:
        lst.bind(("127.0.0.1", 0))
        lst.listen(8)
        listener = adopt_listener(os.dup(lst.fileno()), "http", activated=True)
        try:
            assert listener.name == address_text(lst) == f"127.0.0.1:{lst.getsockname()[1]}"
            assert listener.unix_path is None and listener.fd >= 0
            assert listener.proto == "http"
        finally:
            listener.sock.close()
        assert adopt_listener(plain.fileno(), "http") is None      # not listening
    assert adopt_listener(9999, "uwsgi") is None                     # not open


def test_adopt_listener_of_a_unix_socket_knows_its_path(tmp_path):
    path = str(tmp_path / "s.sock")
    with socket.socket(socket.AF_UNIX) as lst:
        lst.bind(path)
        lst.listen(1)
        listener = adopt_listener(os.dup(lst.fileno()), "uwsgi")
        try:
            assert listener.unix_path == path == listener.name
        finally:
            listener.sock.close()


def test_parse_address_reads_uwsgi_syntax():
    assert parse_address(":9090") == (socket.AF_INET, ("0.0.0.0", 9090))
    assert parse_address("[::1]:80") == (socket.AF_INET6, ("::1", 80))
    assert parse_address("@name") == (socket.AF_UNIX, "\0name")
    assert parse_address("/run/x.sock") == (socket.AF_UNIX, "/run/x.sock")
    with pytest.raises(OptionError):
        parse_address("127.0.0.1:70000")


def test_log_files_open_and_join_the_rotation(tmp_path):
    path = str(tmp_path / "plugin.log")
    fd = open_log_file(path, "hello-log")
    try:
        handle = add_log_file(path, fd, maxsize=10)
        import uwsgi_py.log   # the core's list the master rotates and reopens
        assert handle in uwsgi_py.log.FILES
        remove_log_file(handle)
        remove_log_file(handle)                                     # twice is harmless
        assert handle not in uwsgi_py.log.FILES
        assert not os.get_inheritable(fd)
    finally:
        os.close(fd)
    with pytest.raises(OptionError, match=r"--hello-log: cannot open log file .*nodir"):
        open_log_file(str(tmp_path / "nodir" / "x.log"), "hello-log")


def test_write_pidfile_and_daemonized(tmp_path):
    first, second = tmp_path / "a.pid", tmp_path / "b.pid"
    write_pidfile(str(first))
    assert first.read_text() == f"{os.getpid()}\n"
    first.unlink()
    server = SimpleNamespace(master_pid=1, settings=SimpleNamespace(pidfile=str(first),
                                                                    pidfile2=str(second)))
    daemonized(server)
    assert server.master_pid == os.getpid()
    assert first.read_text() == second.read_text() == f"{os.getpid()}\n"
    with pytest.raises(OptionError, match="--pidfile2: cannot write pidfile"):
        write_pidfile(str(tmp_path / "nodir" / "c.pid"), "pidfile2")


def test_status_address_is_abstract_and_per_pid():
    assert status_address(42).startswith("\0") and "/42/" in status_address(42)
    assert status_address(42) != status_address(43)
