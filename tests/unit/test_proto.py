"""The wire parsers and pidfile reading: pure functions, fuzzed with hypothesis."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from uwsgi_py import pidfile
from uwsgi_py.proto import BadRequest, pack_uwsgi, parse_http, parse_uwsgi

pytestmark = pytest.mark.timeout(60)


def http(data: bytes):
    return parse_http(data, 4096, "8000", "127.0.0.1")


def test_http_request_to_cgi_vars():
    h = http(b"GET /a%20b/c?x=1&y=2 HTTP/1.1\r\nHost: example\r\nX-Thing: 1\r\nX-Thing: 2\r\n"
             b"Content-Type: text/plain\r\nContent-Length: 3\r\n\r\nabc")
    v = h.vars
    assert v["REQUEST_METHOD"] == "GET"
    assert v["REQUEST_URI"] == "/a%20b/c?x=1&y=2"
    assert v["PATH_INFO"] == "/a b/c"
    assert v["QUERY_STRING"] == "x=1&y=2"
    assert v["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert v["SCRIPT_NAME"] == ""
    assert v["SERVER_PORT"] == "8000"
    assert v["REMOTE_ADDR"] == "127.0.0.1"
    assert v["HTTP_HOST"] == "example"
    assert v["HTTP_X_THING"] == "1,2"
    assert v["CONTENT_TYPE"] == "text/plain"
    assert v["CONTENT_LENGTH"] == "3"
    assert "HTTP_CONTENT_LENGTH" not in v
    assert h.length == 3 and h.keepalive


def test_http_incomplete_returns_none():
    assert http(b"GET / HTTP/1.1\r\nHost: x\r\n") is None


@pytest.mark.parametrize("raw,status", [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET / HTTP/9.9\r\n\r\n", 505),
    (b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 400),   # chunked not last: RFC 9112 6.3
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
    (b"GET / HTTP/1.1\r\nX: " + b"a" * 5000 + b"\r\n\r\n", 431),
    (b"GET / HTTP/1.1\r\nHost\n: x\r\n\r\n", 400),          # a bare LF is not a token
    (b"GE\nT / HTTP/1.1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nContent-Length: \xb2\r\n\r\n", 400),  # superscript two
])
def test_http_bad_requests(raw, status):
    with pytest.raises(BadRequest) as e:
        http(raw)
    assert e.value.status == status


def test_http_keepalive_rules():
    assert http(b"GET / HTTP/1.1\r\n\r\n").keepalive
    assert not http(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keepalive
    assert not http(b"GET / HTTP/1.0\r\n\r\n").keepalive
    assert http(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keepalive
    assert http(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n").expect_continue


def test_uwsgi_roundtrip():
    env = {"REQUEST_METHOD": "POST", "PATH_INFO": "/x", "CONTENT_LENGTH": "4", "HTTP_HOST": "h"}
    packet = pack_uwsgi(env, modifier1=7)
    h = parse_uwsgi(packet + b"body", 4096)
    assert h.modifier1 == 7
    assert h.consumed == len(packet)
    assert h.length == 4
    assert h.vars["PATH_INFO"] == "/x"
    assert parse_uwsgi(packet[:10], 4096) is None


def test_uwsgi_block_too_large():
    # HTTP sent to a uwsgi socket: "GE" + "T " read as a header (PROTO-2)
    with pytest.raises(BadRequest) as e:
        parse_uwsgi(b"GET / HTTP/1.1\r\n", 4096)
    assert "invalid request block size: 21573 (max 4096)...skip" in str(e.value)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_http_parser_never_crashes(data):
    try:
        http(data)
    except BadRequest:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_uwsgi_parser_never_crashes(data):
    try:
        parse_uwsgi(data, 4096)
    except BadRequest:
        pass


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1,
                                max_size=20),
                       st.text(alphabet=st.characters(max_codepoint=255), max_size=40), max_size=10))
def test_uwsgi_pack_parse_roundtrip(env):
    cl = env.get("CONTENT_LENGTH", "")
    if cl and not (cl.isascii() and cl.isdigit()):   # hypothesis can draw one: refused then
        with pytest.raises(BadRequest):
            parse_uwsgi(pack_uwsgi(env), 65535)
        return
    h = parse_uwsgi(pack_uwsgi(env), 65535)
    for k, v in env.items():
        assert h.vars[k] == v


@pytest.mark.parametrize("text,pid", [(b"123\n", 123), (b"  42  \n", 42)])
def test_pidfile_read(tmp_path, text, pid):
    p = tmp_path / "p"
    p.write_bytes(text)
    assert pidfile.read_pid(str(p)) == pid


@pytest.mark.parametrize("text", [b"", b"\n", b"abc", b"0\n", b"-5\n", b"12x\n"])
def test_pidfile_garbage_is_invalid(tmp_path, text):
    p = tmp_path / "p"
    p.write_bytes(text)
    with pytest.raises(ValueError):
        pidfile.read_pid(str(p))


def test_pidfile_write_replaces_a_planted_symlink(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep")
    link = tmp_path / "app.pid"
    link.symlink_to(victim)
    pidfile.write(str(link), 1234)
    assert victim.read_text() == "keep"
    assert not link.is_symlink()
    assert link.read_text() == "1234\n"
