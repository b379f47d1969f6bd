"""Property-based fuzzing of the wire parsers and the request body reader (issue 10, point 3).

In-process, no server: mutated valid HTTP heads and uwsgi packets, arbitrary bytes,
arbitrary splits, and chunked/fixed-length bodies read through ``body.Input``
over a real socketpair. The only acceptable outcomes are a parsed head, "need more
bytes" (None), ``BadRequest`` with a known status, or for bodies ``ClientGone``;
never another exception and never a hang (every read has a short timeout and the
peer closes after writing).
"""
from __future__ import annotations

import socket
import string

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from uwsgi_py.proto import BadRequest, pack_uwsgi, parse_http, parse_uwsgi
from uwsgi_py.body import Input
from uwsgi_py.conn import ClientGone, Conn

pytestmark = pytest.mark.timeout(120)

LIMIT = 4096
HTTP_STATUSES = {400, 414, 431, 501, 505}
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SEEDS = [
    b"GET / HTTP/1.1\r\nHost: example\r\n\r\n",
    b"GET /a%20b/c?x=1&y=2 HTTP/1.0\r\nHost: h\r\nX-A: 1\r\nX-A: 2\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
    b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
    b"5\r\nhello\r\n0\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nConnection: close\r\n\r\n",
    b"GET http://example.com/x?q HTTP/1.1\r\nConnection: keep-alive\r\n\r\n",
    b"\r\n\r\nGET / HTTP/1.1\r\n\r\n",
]
TOKENS = [b"\r\n", b"\r\n\r\n", b":", b" ", b"\t", b"%", b"%zz", b"\x00", b"\xff", b"\n", b"\r",
          b"Content-Length: 99999999999999999999\r\n", b"Content-Length: -1\r\n",
          b"Transfer-Encoding: chunked\r\n", b"Transfer-Encoding: gzip, chunked\r\n",
          b"HTTP/1.1", b"HTTP/2.0", b"?", b"/", b"*", b"a" * 300]


@st.composite
def mutated(draw, seeds: list[bytes]) -> bytes:
    """A seed with a few random edits: replace, insert, delete, duplicate, truncate, splice."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["replace", "insert", "delete", "dup", "truncate", "token"]))
        pos = draw(st.integers(0, len(data)))
        if op == "replace" and data:
            data[min(pos, len(data) - 1)] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            data[pos:pos + draw(st.integers(1, 16))] = b""
        elif op == "dup":
            end = pos + draw(st.integers(1, 32))
            data[pos:pos] = data[pos:end]
        elif op == "truncate":
            del data[pos:]
        else:
            data[pos:pos] = draw(st.sampled_from(TOKENS))
    return bytes(data)


def http(data: bytes, limit: int = LIMIT):
    return parse_http(data, limit, "8000", "127.0.0.1")


def check_http(data: bytes):
    """Parse; assert the outcome is one of the allowed ones and self-consistent."""
    try:
        head = http(data)
    except BadRequest as e:
        assert e.status in HTTP_STATUSES, e.status
        return None
    skip = 0
    while data.startswith(b"\r\n", skip):      # leading empty lines are tolerated
        skip += 2
    end = data.find(b"\r\n\r\n", skip)
    if head is None:
        assert end < 0 and len(data) <= LIMIT
        return None
    assert head.consumed == end + 4 <= len(data)
    assert head.length >= 0 and not (head.chunked and head.length)
    for k, v in head.vars.items():
        assert type(k) is str and type(v) is str
    for key in ("REQUEST_METHOD", "REQUEST_URI", "PATH_INFO", "QUERY_STRING", "SERVER_PROTOCOL"):
        assert key in head.vars
    return head


# ---- HTTP heads ---------------------------------------------------------------------------------

@FUZZ
@given(mutated(SEEDS))
def test_mutated_http_requests_parse_or_fail_cleanly(data):
    check_http(data)


@FUZZ
@given(st.binary(max_size=2000))
@example(b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 1000 + b"\r\n")
@example(b"\r\n" * 3000)
def test_arbitrary_bytes_parse_or_fail_cleanly(data):
    check_http(data)


@FUZZ
@given(st.sampled_from(SEEDS), st.data())
def test_any_split_of_a_request_gives_the_same_head(seed, data):
    """Bytes arrive in pieces: every strict prefix of the head is 'need more', then the
    complete head parses exactly as if it had arrived at once."""
    whole = http(seed)
    end = whole.consumed
    cut = data.draw(st.integers(0, end - 1))
    assert http(seed[:cut]) is None
    part = http(seed[:end])
    assert part.vars == whole.vars and part.consumed == whole.consumed


token = st.text(alphabet=string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~", min_size=1,
                max_size=12)
header_value = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=40)


@FUZZ
@given(method=token, path=st.text(alphabet=string.ascii_letters + "/-._~", max_size=30),
       query=st.text(alphabet=string.ascii_letters + "=&", max_size=20),
       headers=st.lists(st.tuples(token, header_value), max_size=8))
def test_generated_valid_requests_round_trip(method, path, query, headers):
    unique = {}
    for k, v in headers:     # one header per CGI name: repeated ones are joined with ","
        unique.setdefault("HTTP_" + k.upper().replace("-", "_"), (k, v))
    headers = [(k, v) for k, v in unique.values()
               if k.lower() not in ("content-length", "transfer-encoding", "content-type")]
    target = "/" + path + ("?" + query if query else "")
    assume(method != "CONNECT")    # refused: it takes an authority-form target only
    raw = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    assume(len(raw) <= LIMIT)
    head = http(raw.encode())
    assert head.vars["REQUEST_METHOD"] == method
    assert head.vars["REQUEST_URI"] == target
    assert head.vars["QUERY_STRING"] == query
    for k, v in headers:
        key = "HTTP_" + k.upper().replace("-", "_")
        if "_" in k:                  # names with "_" are dropped (X_Forwarded_For spoofing)
            assert key not in head.vars
        else:
            assert head.vars[key] == v.strip(" \t")


# ---- uwsgi packets ----------------------------------------------------------------------------------

UWSGI_SEEDS = [
    pack_uwsgi({"REQUEST_METHOD": "GET", "PATH_INFO": "/", "SERVER_PROTOCOL": "HTTP/1.1"}),
    pack_uwsgi({"REQUEST_METHOD": "POST", "PATH_INFO": "/x", "CONTENT_LENGTH": "4",
                "HTTP_HOST": "h"}, modifier1=7) + b"body",
    pack_uwsgi({}),
]


def check_uwsgi(data: bytes):
    try:
        head = parse_uwsgi(data, LIMIT)
    except BadRequest as e:
        assert e.status == 0          # the uwsgi protocol answers garbage by closing (PROTO-2)
        return None
    if head is None:
        assert len(data) < 4 or len(data) < 4 + int.from_bytes(data[1:3], "little")
        return None
    assert head.consumed == 4 + int.from_bytes(data[1:3], "little") <= len(data)
    assert head.length >= 0
    assert all(type(k) is str and type(v) is str for k, v in head.vars.items())
    return head


@FUZZ
@given(mutated(UWSGI_SEEDS))
def test_mutated_uwsgi_packets_parse_or_fail_cleanly(data):
    check_uwsgi(data)


@FUZZ
@given(st.binary(max_size=1000))
def test_arbitrary_bytes_as_uwsgi_packets(data):
    check_uwsgi(data)


@FUZZ
@given(st.dictionaries(st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=255),
                               min_size=1, max_size=30),
                       st.text(alphabet=st.characters(max_codepoint=255), max_size=60), max_size=20),
       st.integers(0, 255), st.data())
def test_uwsgi_packets_split_anywhere(env, modifier1, data):
    packet = pack_uwsgi(env, modifier1=modifier1)
    assume(len(packet) - 4 <= LIMIT)
    length = env.get("CONTENT_LENGTH", "")
    assume(not length or length.isascii() and length.isdigit())  # else BadRequest, by design
    cut = data.draw(st.integers(0, len(packet) - 1))
    assert parse_uwsgi(packet[:cut], LIMIT) is None
    head = parse_uwsgi(packet, LIMIT)
    assert head.modifier1 == modifier1 and head.consumed == len(packet)


# ---- request bodies through body.Input over a socketpair ------------------------------------------

class FakeListener:
    proto = "http"

    def port(self) -> str:
        return "80"


def body_reader(stream: bytes, length: int, chunked: bool, limit: int = 0) -> Input:
    """An Input whose connection reads ``stream`` from a socketpair; the peer closes
    after writing, so a reader that wants more sees EOF (ClientGone), never a hang."""
    ours, theirs = socket.socketpair()
    theirs.sendall(stream)
    theirs.close()
    ours.setblocking(False)
    conn = Conn(ours.detach(), FakeListener(), "127.0.0.1", 0.5, 1024)
    return Input(conn, length, chunked, False, limit)


def chunked(body: bytes, sizes: list[int], extensions: bool, trailers: bool) -> bytes:
    out, pos, i = bytearray(), 0, 0
    while pos < len(body):
        n = max(1, sizes[i % len(sizes)]) if sizes else len(body)
        piece = body[pos:pos + n]
        ext = b";name=value" if extensions and i % 2 else b""
        out += b"%x%s\r\n%s\r\n" % (len(piece), ext, piece)
        pos += n
        i += 1
    out += b"0\r\n" + (b"X-Trailer: 1\r\n" if trailers else b"") + b"\r\n"
    return bytes(out)


def read_all(inp: Input, how: str, step: int) -> bytes:
    if how == "all":
        return inp.read()
    if how == "lines":
        return b"".join(inp)
    out = bytearray()
    while True:
        data = inp.read(step) if how == "sized" else inp.readline(step)
        if not data:
            return bytes(out)
        out += data


READS = st.sampled_from(["all", "sized", "lines", "readline"])


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=5000), st.lists(st.integers(1, 700), max_size=10), st.booleans(),
       st.booleans(), READS, st.integers(1, 900))
def test_chunked_bodies_are_decoded_whatever_the_chunking(body, sizes, ext, trailers, how, step):
    inp = body_reader(chunked(body, sizes, ext, trailers), 0, True)
    assert read_all(inp, how, step) == body
    assert inp.read() == b""


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=5000), READS, st.integers(1, 900))
def test_fixed_length_bodies_stop_at_content_length(body, how, step):
    inp = body_reader(body + b"NEXT REQUEST", len(body), False)
    assert read_all(inp, how, step) == body
    assert inp.conn.buf == bytearray(b"NEXT REQUEST"[:len(inp.conn.buf)])


@settings(max_examples=300, deadline=None)
@given(mutated([chunked(b"hello world, " * 20, [7, 50], True, True),
                chunked(b"x" * 300, [300], False, False)]), READS, st.integers(1, 500))
def test_mutated_chunked_bodies_fail_cleanly(stream, how, step):
    inp = body_reader(stream, 0, True)
    try:
        read_all(inp, how, step)
    except (BadRequest, ClientGone):
        pass


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 3000), st.lists(st.integers(1, 700), min_size=1, max_size=5))
def test_chunked_bodies_over_limit_post_are_refused_with_413(size, sizes):
    inp = body_reader(chunked(b"b" * size, sizes, False, False), 0, True, limit=1000)
    if size <= 1000:
        assert inp.read() == b"b" * size
        return
    with pytest.raises(BadRequest) as e:
        inp.read()
    assert e.value.status == 413


def test_truncated_bodies_end_with_client_gone_not_a_hang():
    with pytest.raises(ClientGone):
        body_reader(b"abc", 10, False).read()
    with pytest.raises(ClientGone):
        body_reader(b"a\r\nabc", 0, True).read()


def test_chunked_trailers_are_bounded():
    with pytest.raises(BadRequest):           # one endless trailer line
        body_reader(b"0\r\nX-T: " + b"t" * 5000, 0, True).read()
    with pytest.raises(BadRequest):           # endless trailer lines
        body_reader(b"0\r\n" + b"X-T: tttttttttttttttttttttttttttttttt\r\n" * 2000, 0, True).read()
    assert body_reader(b"0\r\nX-T: 1\r\n\r\n", 0, True).read() == b""
