"""Pure logic of the logging plugin: --log-format compilation, encoders, logger specs; the
Prometheus rendering of a stats document; readiness states. No sockets, no forks."""
from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest

from uwsgi_py_logging import logformat
from uwsgi_py_logging.encoders import Chain, EncoderError
from uwsgi_py_logging.targets import TargetError, parse

pytestmark = pytest.mark.timeout(30)

STARTED = 1796606054.281133   # uWSGI's sample: tmsecs=1796606054281 tmicros=1796606054281133


def request(**env):
    env.setdefault("REQUEST_METHOD", "GET")
    env.setdefault("SERVER_PROTOCOL", "HTTP/1.1")
    env.setdefault("REMOTE_ADDR", "127.0.0.1")
    return SimpleNamespace(vars=env, status=200, sent=12, hsize=45, nheaders=1, core=0,
                           head=SimpleNamespace(length=0, modifier1=0), logvars=None,
                           conn=SimpleNamespace(remote="127.0.0.1", read_errors=0,
                                                write_errors=0))


WORKER = SimpleNamespace(pid=16200, id=1, slot=None)


def render(fmt, req=None, us=667, **kw):
    return logformat.compile_format(fmt, **kw)(WORKER, req or request(), "/path?q=1", STARTED, us)


def test_every_uwsgi_variable_is_known():
    names = ("uri method user addr host proto uagent referer status rsize hsize size cl micros "
             "msecs secs tmsecs tmicros time ltime ftime ctime epoch pid wid switches vars core "
             "vsz rss vszM rssM pktsize modifier1 modifier2 headers werr rerr ioerr").split()
    line = render(" ".join(f"%({n})" for n in names))
    assert len(line.split(" ")) >= len(names)


def test_values_as_uwsgi_prints_them():
    # uWSGI 2.0.31: "... size=57 rsize=12 hsize=45 ... user=- ... cl=0 headers=1 pid=16200 wid=1"
    # and "tmsecs=1796606054281 tmicros=1796606054281133 msecs=0 micros=667 secs=0.000667"
    line = render("size=%(size) rsize=%(rsize) hsize=%(hsize) user=%(user) cl=%(cl) "
                  "headers=%(headers) pid=%(pid) wid=%(wid) tmsecs=%(tmsecs) tmicros=%(tmicros) "
                  "msecs=%(msecs) micros=%(micros) secs=%(secs) time=%(time)")
    assert line == ("size=57 rsize=12 hsize=45 user=- cl=0 headers=1 pid=16200 wid=1 "
                    "tmsecs=1796606054281 tmicros=1796606054281133 msecs=0 micros=667 "
                    "secs=0.000667 time=1796606054")


def test_text_around_and_between_variables():
    assert render("[%(method)] 100% (x) %(uri)!") == "[GET] 100% (x) /path?q=1!"
    assert render("no variables") == "no variables"


def test_var_and_x_forwarded_for():
    req = request(HTTP_X_FOO='bar"baz', HTTP_X_FORWARDED_FOR="10.1.2.3, 10.0.0.1")
    assert render("%(var.HTTP_X_FOO) %(var.NOPE)", req) == 'bar"baz -'
    assert render("%(addr)", req) == "127.0.0.1"
    assert render("%(addr)", req, xff=True) == "10.1.2.3, 10.0.0.1"


def test_ftime_uses_the_log_date_format_when_asked():
    expected = time.strftime("%Y-%m-%d", time.localtime(STARTED))
    assert render("%(ftime)", strftime="%Y-%m-%d") == expected
    assert render("%(ftime)") == render("%(ltime)")


def test_other_names_are_logvars_and_metrics_are_errors():
    # uWSGI: %(name) not in its list is the logvar the app set with uwsgi.set_logvar, else -
    req = request()
    req.logvars = {"user_id": "42", "quote": 'a"b'}
    assert render("%(user_id) %(quote) %(unset)", req) == '42 a"b -'
    assert render('{"q":"%(quote)"}', req, escape=True) == '{"q":"a\\"b"}'
    assert logformat.logvar_names("%(status) %(stauts) %(user_id) %(var.X)") == [
        ("stauts", "status"), ("user_id", "user")]
    with pytest.raises(logformat.FormatError, match="no metrics subsystem"):
        logformat.compile_format("%(metric.foo)")


def test_io_error_counts():
    req = request()
    req.conn.read_errors, req.conn.write_errors = 1, 2
    assert render("%(rerr) %(werr) %(ioerr)", req) == "1 2 3"


def test_json_escaping():
    fmt = '{"ua":"%(uagent)","uri":"%(uri)"}'
    assert logformat.escaping(fmt, "auto") and not logformat.escaping("x %(uri)", "auto")
    req = request(HTTP_USER_AGENT='a "q" \\ \n\x01')
    line = logformat.compile_format(fmt, escape=True)(WORKER, req, "/é", STARTED, 1)
    assert json.loads(line) == {"ua": 'a "q" \\ \n\x01', "uri": "/é"}


def test_encoders():
    msg = b'[pid: 1] GET /"x" => generated\n'
    chain = Chain(['json {"unix":${unix},"msg":"${msg}"}', "nl"])
    out = chain.encode(msg)
    assert out.endswith(b"}\n") and json.loads(out)["msg"] == msg.decode()[:-1]
    assert Chain(["prefix [a] ", "suffix !"]).encode(b"x\n") == b"[a] x\n!"
    assert Chain(["format <${msgnl}>"]).encode(b"x\n") == b"<x\n>"
    assert json.loads(Chain(["json"]).encode(b"hi\n"))["msg"] == "hi"   # uwsgi-py's default template
    scoped = Chain(["prefix:errors E: "])
    assert scoped.encode(b"x", "errors") == b"E: x" and scoped.encode(b"x", "") == b"x"
    with pytest.raises(EncoderError, match="not found"):
        Chain(["gzip"])


def test_logger_specs(tmp_path):
    target = parse(f"errors file:logfile={tmp_path / 'e.log'},maxsize=10,backupname=b")
    assert target.name == "errors" and target.file.maxsize == 10 and target.file.backupname == "b"
    target.close()
    assert parse("syslog").pri == 3 * 8 + 6 and parse("syslog:app,local3").pri == 19 * 8 + 6
    assert parse("rsyslog:127.0.0.1:514,host app,30").pri == 30
    for bad, why in (("file", "needs a path"), ("nope:x", "unknown logger"), ("fd:x", "number"),
                     ("socket:host:port", "not a number")):
        with pytest.raises(TargetError, match=why):
            parse(bad)


# ---- Prometheus rendering --------------------------------------------------------------------

def test_metrics_render_parses():
    parser = pytest.importorskip("prometheus_client.parser")
    from uwsgi_py_stats import metrics
    worker = {"id": 1, "requests": 5, "exceptions": 1, "harakiri_count": 0, "respawn_count": 2,
              "running_time": 1500000, "tx": 99, "avg_rt": 2000, "accepting": 1, "status": "busy",
              "rss": 0, "vsz": 0, "last_spawn": 1700000000}
    doc = {"version": "2.0.31", "listen_queue": 0, "listen_queue_errors": 0, "generation": 2,
           "sockets": [{"name": 'we"ird\\', "proto": "http", "queue": 0, "max_queue": 100}],
           "workers": [worker], "reloads": [{"refused": True, "duration_ms": 1500, "time": 1}]}
    text = metrics.render(doc, {"ready": False, "state": "refused"})
    fams = {f.name: f for f in parser.text_string_to_metric_families(text)}
    busy = [s for s in fams["uwsgi_worker_busy_seconds"].samples][0]
    assert busy.value == 1.5 and busy.labels == {"worker": "1"}
    assert [s.labels["socket"] for s in fams["uwsgi_socket_queue"].samples] == ['we"ird\\']
    assert fams["uwsgi_last_reload_refused"].samples[0].value == 1
    assert {s.labels["state"]: s.value for s in fams["uwsgi_state"].samples}["refused"] == 1
