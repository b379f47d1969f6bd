"""Reading the options public uWSGI configs use (tests/corpus): ports as uWSGI reads them,
plugin paths, the PROXY protocol v1 line, hook values, --vhost app ids, collected headers,
--write-errors-tolerance, the file logger that cannot open yet, and the compat tables."""
from __future__ import annotations

import os

import pytest

from uwsgi_py import cli, compat, hooks, plugins, proxy_protocol, sockets
from uwsgi_py.options import OptionError
from uwsgi_py.proto import BadRequest

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(scope="module")
def registry():
    return cli.build_registry(plugins.build())


# ---- ports -----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, port", [
    (":", 0), ("127.0.0.1:", 0), ("127.0.0.1:port", 0), (":$(PORT)", 0), ("127.0.0.1:12x", 12),
    ("0.0.0.0:8000", 8000), ("[::1]:", 0),
])
def test_a_port_is_read_as_uwsgi_reads_it(text, port):
    assert sockets.parse_address(text)[1][1] == port


def test_odd_ports_are_told_apart_from_numbers_and_unix_paths():
    assert sockets.odd_port("127.0.0.1:$(PORT)") and sockets.odd_port(":")
    assert not sockets.odd_port(":8000") and not sockets.odd_port("/run/app.sock")
    assert not sockets.odd_port("@abstract")


def test_a_port_beyond_65535_is_still_an_error():
    with pytest.raises(OptionError, match="bad port"):
        sockets.parse_address(":70000")


# ---- plugins ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name, plugin", [
    ("/usr/lib/uwsgi/plugins/python39_plugin.so", "python"), ("python3_plugin.so", "python"),
    ("python310", "python"), ("python3.11", "python"), ("./logfile_plugin.so", "core"),
    ("/opt/escape_json_plugin.so", "escape_json"),
])
def test_a_plugin_path_names_its_plugin(name, plugin):
    assert plugins.alias(name) == plugin


# ---- PROXY protocol v1 -------------------------------------------------------------------------

@pytest.mark.parametrize("data, expected", [
    (b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\nGET", (44, "203.0.113.7", "51234")),
    (b"PROXY TCP6 2001:db8::7 2001:db8::1 4000 80\r\n", (44, "2001:db8::7", "4000")),
    (b"PROXY UNKNOWN\r\nGET / HTTP/1.1", (15, "", "")),
    (b"PROXY UNKNOWN ff::1 ff::2 1 2\r\n", (31, "", "")),
    (b"PRO", (0, "", "")),
    (b"PROXY TCP4 203.0.113.7 192.0.2.1 5", (0, "", "")),
    (b"GET / HTTP/1.1\r\n", None), (b"", (0, "", "")), (b"P", (0, "", "")), (b"PUT /", None),
])
def test_parse_v1(data, expected):
    assert proxy_protocol.parse_v1(bytearray(data)) == expected


@pytest.mark.parametrize("data", [
    b"PROXY TCP4 203.0.113.7 192.0.2.1 51234\r\n",           # a field missing
    b"PROXY TCP4 2001:db8::7 192.0.2.1 1 2\r\n",              # a v6 address under TCP4
    b"PROXY TCP6 203.0.113.7 2001:db8::1 1 2\r\n",            # and the reverse
    b"PROXY TCP4 203.0.113.7 192.0.2.1 70000 80\r\n",         # a port out of range
    b"PROXY TCP4 203.0.113.7 192.0.2.1 -1 80\r\n",
    b"PROXY UDP4 203.0.113.7 192.0.2.1 1 2\r\n",              # not a v1 protocol
    b"PROXY TCP4 " + b"1" * 120,                              # longer than 107 bytes
])
def test_parse_v1_refuses_a_malformed_line(data):
    with pytest.raises(BadRequest):
        proxy_protocol.parse_v1(bytearray(data))


class _Conn:
    def __init__(self, data: bytes, listener):
        self.buf = bytearray(data)
        self.fd = 7
        self.remote = "127.0.0.1"
        self.listener = listener


def test_take_consumes_the_line_once_and_keeps_the_port_for_that_connection_only():
    lst = sockets.Listener("http-socket#0", ":0", "http", sock=None)
    conn = _Conn(b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 80\r\nGET / HT", lst)
    assert proxy_protocol.take(conn) and conn.remote == "203.0.113.7"
    assert conn.buf == b"GET / HT" and proxy_protocol.port(conn) == "51234"
    conn.buf += b"PROXY TCP4 1.1.1.1 2.2.2.2 1 2\r\n"     # taken already: never twice
    assert proxy_protocol.take(conn) and conn.remote == "203.0.113.7"
    later = _Conn(b"GET / HTTP/1.1\r\n\r\n", lst)          # the same fd, a new connection
    later.remote = "".join(["127.0.0.", "1"])
    assert proxy_protocol.take(later) and proxy_protocol.port(later) is None
    partial = _Conn(b"PROXY TCP4 203.0", lst)
    assert proxy_protocol.take(partial) is False and partial.buf == b"PROXY TCP4 203.0"


# ---- options ---------------------------------------------------------------------------------

def test_hook_values_name_an_action_uwsgi_py_has(registry):
    opt = registry.get("hook-pre-app")
    assert opt.parse("exec:./manage.py migrate") == "exec:./manage.py migrate"
    assert opt.parse("!exec:secret") == "!exec:secret"
    with pytest.raises(ValueError, match="not ACTION:ARG"):
        opt.parse("migrate")
    with pytest.raises(ValueError, match="hook action 'mount' is not available"):
        opt.parse("mount:proc none /proc")


def test_hook_actions_run(tmp_path, monkeypatch):
    target = tmp_path / "f"
    assert hooks.ACTIONS["write"](f"{target} one") == 0 and target.read_text() == "one"
    assert hooks.ACTIONS["appendn"](f"{target} two") == 0 and target.read_text() == "onetwo\n"
    assert hooks.ACTIONS["mkdir"](str(tmp_path / "d")) == 0 and (tmp_path / "d").is_dir()
    assert hooks.ACTIONS["mkdir"](str(tmp_path / "d")) != 0          # exists: fails
    monkeypatch.setenv("HOOK_TEST", "old")
    assert hooks.ACTIONS["putenv"]("HOOK_TEST=new") == 0 and os.environ["HOOK_TEST"] == "new"
    assert hooks.ACTIONS["exec"]("exit 4") == 4
    assert hooks.ACTIONS["safeexec"]("exit 4") == 0


@pytest.mark.parametrize("name", [
    "http11-socket", "enable-proxy-protocol", "http-enable-proxy-protocol", "reload-on-as",
    "evil-reload-on-as", "exec-asap", "exec-pre-app", "exec-post-app", "hook-asap",
    "hook-pre-app", "hook-post-app", "optimize", "paste", "vhost", "vhost-host", "idle",
    "die-on-idle", "collect-header", "pull-header", "write-errors-tolerance", "refork", "cache2",
])
def test_the_options_of_real_configs_are_declared(registry, name):
    assert registry.get(name) is not None


def test_no_site_and_harakiri_graceful_are_accepted_without_effect():
    for name in ("no-site", "harakiri-graceful-timeout", "harakiri-graceful-signal"):
        assert compat.classify(name) == compat.NO_EFFECT_KIND
    assert compat.classify("zerg") == compat.NOT_IMPLEMENTED_KIND


def test_collect_header_takes_a_header_and_a_variable(registry):
    assert registry.get("collect-header").parse("X-Sendfile X_SENDFILE") == "X-Sendfile X_SENDFILE"
    with pytest.raises(ValueError):
        registry.get("collect-header").parse("X-Sendfile")


# ---- apps -------------------------------------------------------------------------------------

class _Req:
    def __init__(self, env):
        self.vars = env


class _App:
    def __init__(self, name):
        self.name = name
        self.seen = []

    def __call__(self, req):
        self.seen.append(req.vars.get("SCRIPT_NAME"))


def test_vhost_app_ids_are_host_and_script_name():
    from uwsgi_py_python.mounts import Mounts
    default, one = _App(""), _App("one.test|/api")
    mounts = Mounts([default, one], False, "HTTP_HOST")
    mounts(_Req({"HTTP_HOST": "one.test", "SCRIPT_NAME": "/api"}))
    mounts(_Req({"HTTP_HOST": "two.test", "SCRIPT_NAME": "/api"}))
    mounts(_Req({"SCRIPT_NAME": "/api"}))
    assert one.seen == ["/api"] and default.seen == ["/api", "/api"]


def test_collected_headers_become_request_variables():
    from uwsgi_py_python.wsgi import WSGIApp
    app = WSGIApp(lambda e, s: [], "")
    app.collect = {"x-sendfile": ("SENDFILE", False), "x-secret": ("SECRET", True)}
    env = {}
    kept = app.collected(env, [("Content-Type", "text/plain"), ("X-SENDFILE", "/f"),
                               ("X-Secret", "s")])
    assert env == {"SENDFILE": "/f", "SECRET": "s"}
    assert kept == [("Content-Type", "text/plain"), ("X-SENDFILE", "/f")]


# ---- logging -----------------------------------------------------------------------------------

def test_a_file_logger_opens_once_its_directory_exists(tmp_path, capfd):
    from uwsgi_py_logging.targets import FileTarget
    path = tmp_path / "logs" / "x.log"
    target = FileTarget(str(path))
    assert "cannot open" in capfd.readouterr().err
    target.write(b"dropped\n")
    assert not path.exists()
    path.parent.mkdir()
    target.write(b"kept\n")
    target.close()
    assert path.read_bytes() == b"kept\n"


# ---- cache2 -----------------------------------------------------------------------------------

def test_cache2_specs(registry):
    opt = registry.get("cache2")
    assert opt.parse("name=sessions,items=2") == "name=sessions,items=2"
    for bad, why in (("items=2", "needs name"), ("name=x", "needs items"),
                     ("name=x,items=2,store=/tmp/c", "store: not implemented"),
                     ("name=x,items=two", "needs items"), ("sessions", "key=value")):
        with pytest.raises(ValueError, match=why):
            opt.parse(bad)


def test_cache_table_set_update_expire_delete_clear():
    import time
    from uwsgi_py_cache.table import Table
    t = Table(4, 16, 8)
    assert t.put(b"a", b"1", 0, replace=False) and t.get(b"a") == b"1"
    assert not t.put(b"a", b"2", 0, replace=False) and t.get(b"a") == b"1"
    assert t.put(b"a", b"2", 0, replace=True) and t.get(b"a") == b"2"
    assert not t.put(b"big", b"123456789", 0, replace=True)       # above blocksize
    assert not t.put(b"k" * 17, b"1", 0, replace=True)             # above keysize
    for k in (b"b", b"c", b"d"):
        assert t.put(k, k, 0, replace=False)
    assert not t.put(b"e", b"e", 0, replace=False)                 # full
    assert t.delete(b"b") and t.get(b"b") is None and not t.delete(b"b")
    assert t.put(b"e", b"e", 0, replace=False)                     # the tombstone is reused
    assert sorted(t.keys()) == [b"a", b"c", b"d", b"e"]
    t.put(b"c", b"x", 1, replace=True)
    t.mem[:0]   # no-op: the table is plain memory
    from uwsgi_py_cache.table import SLOT
    for i in range(t.items):                                       # expire it now
        off = i * t.stride
        state, klen, vlen, expires = SLOT.unpack_from(t.mem, off)
        if expires:
            SLOT.pack_into(t.mem, off, state, klen, vlen, int(time.time()) - 1)
    assert t.get(b"c") is None and b"c" not in t.keys()
    t.clear()
    assert t.keys() == [] and t.get(b"a") is None
