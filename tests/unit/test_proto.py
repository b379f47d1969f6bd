"""The wire parsers and pidfile reading: pure functions, fuzzed with hypothesis."""
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from http_helpers import req, serve_stream
from uwsgi_py import pidfile
from uwsgi_py.proto import U16, UWSGI_HEADER, BadRequest, HttpRules, pack_uwsgi, parse_http, parse_uwsgi
from uwsgi_py.body import Input
from uwsgi_py.conn import Conn

pytestmark = pytest.mark.timeout(60)


def http(data: bytes):
    return parse_http(data, 4096, "8000", "127.0.0.1")


@given(st.text(alphabet="%0123456789abcdefABCDEFgz/ \xe9\xff", max_size=24))
@settings(max_examples=500, deadline=None)
def test_path_unquoting_is_urllibs(path):
    # PATH_INFO's %XX decoding, written out so the master does not import urllib.parse
    # (and ipaddress with it): byte for byte what urllib's unquote_to_bytes gives
    from urllib.parse import unquote_to_bytes
    target = "/" + path.replace(" ", "%20")
    want = unquote_to_bytes(target.encode("latin-1")).decode("latin-1")
    assert http(f"GET {target} HTTP/1.1\r\nHost: h\r\n\r\n".encode("latin-1")).vars["PATH_INFO"] == want


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


# ---- RFC 9112, request smuggling (our own cases; gunicorn's are in test_http_corpus.py) ------------

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize("raw,expected", [
    # chunk data must end with CRLF: h11's CVE-2025-43859 read this as "hello" + a new request
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n"
     + SMUGGLED, [400]),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n", [400]),
    # a bare LF (or CR) inside a chunk extension, or ending a chunk-size line
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;a\nb\r\nhello\r\n0\r\n\r\n", [400]),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", [400]),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\"\r\"\r\nhello\r\n0\r\n\r\n", [400]),
    # chunk sizes: hex only, at most 16 digits
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", [400]),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + b"f" * 17 + b"\r\n", [400]),
    # NUL and other control characters in a value, the target or a name
    (b"GET / HTTP/1.1\r\nX-A: a\x00b\r\n\r\n", [400]),
    (b"GET / HTTP/1.1\r\nX-A: a\x1bb\r\n\r\n", [400]),
    (b"GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n", [400]),
    (b"GET /a\x7f HTTP/1.1\r\n\r\n", [400]),
    (b"GET / HTTP/1.1\r\nX\x01A: b\r\n\r\n", [400]),
    # LF-only line ends: refused at once, not left waiting for a CRLF CRLF
    (b"GET / HTTP/1.1\nHost: x\n\n", [400]),
    (b"GET / HTTP/1.1\r\nHost: x\n", [400]),
    # framing conflicts: TE.CL, CL.CL (even equal), a list, an obs-folded Transfer-Encoding
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n", [400]),
    (b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", [400]),
    (b"POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\nabc", [400]),
    (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", [400]),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n", [400]),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", [400]),
    (b"POST / HTTP/1.1\r\nContent-Length: " + b"9" * 20 + b"\r\n\r\n", [400]),
    # header names: a token, then the colon, nothing in between
    (b"GET / HTTP/1.1\r\n: empty\r\n\r\n", [400]),
    (b"GET / HTTP/1.1\r\nX-A : b\r\n\r\n", [400]),
    (b"GET / HTTP/1.1\r\nX-A\r\n\r\n", [400]),
    (b"GET / HTTP/1.1\r\n Host: x\r\n\r\n", [400]),
    # a refused request ends the connection: the request after it is never read
    (b"GET /\x00 HTTP/1.1\r\n\r\n" + SMUGGLED, [400]),
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n" + SMUGGLED, [400]),
    # trailers: field lines only
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nno colon\r\n\r\n", [400]),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: a\x00\r\n\r\n", [400]),
])
def test_smuggling_and_rfc9112_refusals(raw, expected):
    assert serve_stream(raw) == expected


@pytest.mark.parametrize("raw,expected", [
    # the same bytes, well formed: accepted and framed where the front-end frames them
    (b"POST / HTTP/1.1\r\nTransfer-Encoding:\tchunked \r\n\r\n5;a=b;c\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"
     + SMUGGLED, [req("POST", "/", body=b"hello", HTTP_TRANSFER_ENCODING="chunked"),
                  req("GET", "/smuggled", HTTP_HOST="x")]),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n" + b"1\r\nx\r\n" * 3 + b"0\r\n\r\n",
     [req("POST", "/", body=b"xxx", HTTP_TRANSFER_ENCODING="Chunked")]),
    # X_Forwarded_For would become HTTP_X_FORWARDED_FOR: dropped, the real one stays
    (b"GET / HTTP/1.1\r\nX_Forwarded_For: 6.6.6.6\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n",
     [req("GET", "/", HTTP_X_FORWARDED_FOR="10.0.0.1")]),
    (b"GET / HTTP/1.1\r\nX-A: caf\xe9 \t\r\n\r\n", [req("GET", "/", HTTP_X_A="caf\xe9")]),
    (b"\r\n\r\nGET / HTTP/1.1\r\n\r\n", [req("GET", "/")]),          # RFC 9112 2.2
])
def test_well_formed_neighbours_are_accepted(raw, expected):
    assert serve_stream(raw) == expected


def test_underscore_headers_pass_with_the_option():
    raw = b"GET / HTTP/1.1\r\nX_Forwarded_For: 6.6.6.6\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n"
    [got] = serve_stream(raw, rules=HttpRules(underscores=True))
    assert got.headers == {"HTTP_X_FORWARDED_FOR": "6.6.6.6,10.0.0.1"}   # uWSGI's merge


@pytest.mark.parametrize("head,rules,status", [
    (b"GET /" + b"a" * 200 + b" HTTP/1.1\r\n\r\n", HttpRules(max_line=100), 414),
    (b"GET /" + b"a" * 200, HttpRules(max_line=100), 414),           # known before the head ends
    (b"GET /" + b"a" * 5000, HttpRules(), 414),                      # the line alone > buffer-size
    (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 101 + b"\r\n", HttpRules(), 431),
    (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 3 + b"\r\n", HttpRules(max_fields=2), 431),
])
def test_limits(head, rules, status):
    with pytest.raises(BadRequest) as e:
        parse_http(head, 4096, "80", "r", rules)
    assert e.value.status == status


def test_limits_off_and_at_the_edge():
    assert http(b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 100 + b"\r\n").vars["HTTP_X"].count("y") == 100
    many = b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 500 + b"\r\n"
    assert parse_http(many, 4096, "80", "r", HttpRules(max_fields=0)).headers == 500
    line = b"GET /" + b"a" * 95 + b" HTTP/1.1\r\n\r\n"          # a 109-byte request line
    assert parse_http(line, 4096, "80", "r", HttpRules(max_line=109))
    assert http(b"GET /" + b"a" * 100) is None                  # still arriving


def test_chunked_decoding_is_linear_in_the_body():
    """64 KiB of 1-byte chunks: the decoder copies each byte of the stream a bounded
    number of times, instead of the whole buffer once per chunk (quadratic before)."""

    class CountingBuffer(bytearray):
        copied = 0

        def __getitem__(self, index):
            part = super().__getitem__(index)
            if isinstance(index, slice):
                CountingBuffer.copied += len(part)
            return part

        def __bytes__(self):
            CountingBuffer.copied += len(self)
            return bytes(memoryview(self))

        def __setitem__(self, index, value):
            CountingBuffer.copied += len(value) if isinstance(index, slice) else 1
            super().__setitem__(index, value)

    body = bytes(range(256)) * 256
    stream = b"".join(b"1\r\n%c\r\n" % b for b in body) + b"0\r\n\r\n"
    ours, theirs = socket.socketpair()
    theirs.close()
    conn = Conn(ours.detach(), None, "127.0.0.1", 0.5, 0)
    conn.buf = CountingBuffer(stream)
    try:
        assert Input(conn, 0, True, False).read() == body
    finally:
        conn.close()
    assert CountingBuffer.copied <= 2 * len(stream), CountingBuffer.copied


# ---- uwsgi packets (PROTO-1/2/3) ------------------------------------------------------------------

def packet(*pairs: tuple[bytes, bytes], modifier1: int = 0, modifier2: int = 0) -> bytes:
    """A uwsgi packet with the vars exactly as given (repeats and empty names included)."""
    block = b"".join(U16.pack(len(k)) + k + U16.pack(len(v)) + v for k, v in pairs)
    return UWSGI_HEADER.pack(modifier1, len(block), modifier2) + block


@pytest.mark.parametrize("data,why", [
    (packet((b"", b"x")), "empty name"),
    (packet((b"CONTENT_LENGTH", b"3"), (b"CONTENT_LENGTH", b"5")), "more than one CONTENT_LENGTH"),
    (packet((b"CONTENT_LENGTH", b"3"), (b"CONTENT_LENGTH", b"3")), "more than one CONTENT_LENGTH"),
    (packet((b"CONTENT_LENGTH", b"-1")), "invalid CONTENT_LENGTH"),
    (packet((b"CONTENT_LENGTH", b"3 ")), "invalid CONTENT_LENGTH"),
    (packet((b"CONTENT_LENGTH", b"9" * 20)), "invalid CONTENT_LENGTH"),
    (UWSGI_HEADER.pack(0, 6, 0) + b"\x01\x00A\xff\xffb", "truncated"),         # value past the block
    (UWSGI_HEADER.pack(0, 3, 0) + b"\x05\x00A", "truncated"),                # key past the block
    (UWSGI_HEADER.pack(0, 1, 0) + b"\x01", "truncated"),                     # half a length
    (UWSGI_HEADER.pack(0, 4097, 0), "invalid request block size: 4097 (max 4096)"),
])
def test_uwsgi_packets_refused(data, why):
    with pytest.raises(BadRequest) as e:
        parse_uwsgi(data, 4096)
    assert why in str(e.value)
    assert e.value.status == 0      # no answer on the uwsgi protocol: the connection closes


def test_uwsgi_packet_bounds_and_modifiers():
    assert parse_uwsgi(UWSGI_HEADER.pack(0, 4096, 0), 4096) is None       # exactly buffer-size
    h = parse_uwsgi(packet(modifier1=255, modifier2=9), 4096)              # an empty block
    assert (h.modifier1, h.consumed, h.length) == (255, 4, 0)
    assert h.vars["REQUEST_METHOD"] == "GET" and h.vars["PATH_INFO"] == "/"
    h = parse_uwsgi(packet((b"CONTENT_LENGTH", b""), (b"HTTP_X", b"a\x00b")), 4096)
    assert h.length == 0 and h.vars["HTTP_X"] == "a\x00b"   # nginx sends "" for no body
    # a repeated var other than CONTENT_LENGTH: the last one wins, as in uWSGI
    assert parse_uwsgi(packet((b"PATH_INFO", b"/a"), (b"PATH_INFO", b"/b")), 4096).vars["PATH_INFO"] == "/b"
    # the CONTENT_LENGTH key's bytes inside a value are not a second CONTENT_LENGTH
    sneaky = U16.pack(14) + b"CONTENT_LENGTH"
    assert parse_uwsgi(packet((b"CONTENT_LENGTH", b"2"), (b"X", sneaky)), 4096).length == 2
