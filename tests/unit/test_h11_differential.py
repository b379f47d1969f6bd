"""Differential test: the same bytes to our HTTP parser and to h11 (a test-only dependency,
h11 >= 0.16, where CVE-2025-43859 is fixed), which must agree on the first request of the
stream: both accept it with the same method, target, version, headers and body, both
refuse it, or both wait for more bytes.

The requests are generated whole (request line, headers, a Content-Length or chunked
body with extensions and trailers) and then mutated a few times at the byte level with
the bytes that matter to a parser (CR, LF, NUL, CTLs, SP, HTAB, ":", ";", "_", hex
digits, obs-text), so most examples are near-valid rather than noise.

Where h11 is deliberately more lenient or stricter than we are, the example is left
out of the comparison (``documented_difference`` names the reason; the corpus and
test_proto.py pin down our verdict on each):

- h11 takes a bare LF as a line end in the head and in trailers (RFC 9112 2.2 MAY);
  we refuse it. It accepts CTLs other than NUL in field values and trailers; we refuse them.
- h11 unfolds obs-fold; we refuse it (RFC 9112 5.2 allows either).
- h11 accepts a chunk-size line with whitespace after the size and no extension, any
  bytes after ";" and up to 20 hex digits; we follow the chunk-ext grammar and take 16.
- h11 accepts Content-Length with Transfer-Encoding (using the latter), repeated equal
  Content-Length lines or lists, Transfer-Encoding on HTTP/1.0, a repeated Content-Type,
  Content-Length/Transfer-Encoding/Host in trailers, and any HTTP/x.y version: we refuse them.
- h11 refuses an HTTP/1.1 request without Host, obs-text in the request-target and leading
  empty lines; we accept them (uWSGI and gunicorn do; RFC 9112 2.2 for the empty lines).
- h11 takes any request-target (CONNECT's authority-form, "*" with any method, "foo");
  we take origin-form, "*" for OPTIONS and absolute-form, which reaches the app as its
  path: those examples are left out too.
- A head (or trailer section) still arriving that already holds a bad byte or line is
  refused at once; h11 waits for its end first. Those examples are compared with h11's
  verdict once the stream is ended with an empty line.
- Our limits (--buffer-size, --limit-request-fields, chunk-size lines of 4 KiB) are
  kept out of reach by the generator's sizes.

Names with "_" are dropped by us and kept by h11: they are removed from h11's headers
before comparing. The example count is bounded and derandomized, so a run takes a few
seconds and always explores the same examples.
"""
from __future__ import annotations

import re

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from http_helpers import INCOMPLETE, Served, serve_stream
from uwsgi_py.chunked import FORBIDDEN_TRAILERS, SIZE_LINE

pytestmark = pytest.mark.timeout(120)

LIMIT = 8192
ACCEPT, REFUSE = "accept", "refuse"
DIFF = settings(max_examples=600, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ---- the two parsers ------------------------------------------------------------------------------

def ours(data: bytes):
    first = serve_stream(data, limit=LIMIT)[0]
    if isinstance(first, Served):
        return ACCEPT, first
    return (INCOMPLETE, None) if first == INCOMPLETE else (REFUSE, first)


def theirs(data: bytes):
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    request, body = None, bytearray()
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                return INCOMPLETE, None
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return ACCEPT, (request, bytes(body))
    except h11.RemoteProtocolError:
        return REFUSE, None


def as_served(request: h11.Request, body: bytes) -> Served:
    headers: dict[str, str] = {}
    for name, value in request.headers:
        name = name.decode("latin-1")
        if "_" in name:                       # we drop these
            continue
        key = {"content-length": "CONTENT_LENGTH", "content-type": "CONTENT_TYPE"}.get(
            name, "HTTP_" + name.upper().replace("-", "_"))
        value = value.decode("latin-1")
        headers[key] = headers[key] + "," + value if key in headers else value
    return Served(request.method.decode("latin-1"), request.target.decode("latin-1"),
                  "HTTP/" + request.http_version.decode(), body, _lower_te(headers))


def _lower_te(headers: dict) -> dict:
    """h11 lower-cases the Transfer-Encoding value; we pass it as sent."""
    if "HTTP_TRANSFER_ENCODING" in headers:
        headers = dict(headers, HTTP_TRANSFER_ENCODING=headers["HTTP_TRANSFER_ENCODING"].lower())
    return headers


# ---- the documented differences ----------------------------------------------------------------------

_BARE_LF = re.compile(rb"(?<!\r)\n")
_LENIENT_CTL = re.compile(rb"[\x01-\x08\x0e-\x1f\x7f]")         # h11: anything but NUL and \s
_H11_CHUNK = re.compile(rb"[0-9A-Fa-f]{1,20}(?:;[^\n]*)?[ \t]*")


def documented_difference(data: bytes) -> str | None:
    """The first documented divergence the bytes run into, if any (see the docstring)."""
    if data.startswith(b"\r\n"):
        return "leading empty line"
    end = data.find(b"\r\n\r\n")
    lf_end = re.search(rb"\n\r?\n", data)
    if _BARE_LF.search(data, 0, end if end >= 0 else len(data)) or (
            lf_end and (end < 0 or lf_end.start() < end)):
        return "bare LF in the head"
    if end < 0:
        return None
    lines = data[:end].split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3:
        return None
    method, target, version = parts
    if version not in (b"HTTP/1.0", b"HTTP/1.1"):
        return "version"
    if not target.startswith(b"/") or method == b"CONNECT":
        return "request-target form"
    if re.search(rb"[\x80-\xff]", target):
        return "obs-text in the target"
    names: dict[bytes, list[bytes]] = {}
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t"):
            return "obs-fold"
        name, _, value = line.partition(b":")
        if _LENIENT_CTL.search(value):
            return "CTL in a field value"
        names.setdefault(name.lower(), []).append(value.strip(b" \t"))
    if len(lines) > 100 or end > LIMIT:
        return "our limits"
    if version == b"HTTP/1.1" and b"host" not in names:
        return "no Host"
    lengths, te = names.get(b"content-length", []), names.get(b"transfer-encoding")
    if len(lengths) > 1 or any(b"," in v or len(v) > 19 for v in lengths):
        return "Content-Length repeated or a list"
    if len(names.get(b"content-type", [])) > 1:
        return "Content-Type repeated"
    if te and (lengths or version == b"HTTP/1.0" or any(b"," in v for v in te)):
        return "Transfer-Encoding with Content-Length, on HTTP/1.0, or a list"
    if te and [v.lower() for v in te] == [b"chunked"]:
        return _chunked_difference(data, end + 4)
    return None


def _chunked_difference(data: bytes, pos: int) -> str | None:
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return None
        line = data[pos:eol]
        ours_ok, theirs_ok = bool(SIZE_LINE.fullmatch(line)), bool(_H11_CHUNK.fullmatch(line))
        if ours_ok != theirs_ok:
            return "chunk-size line grammar"
        if not ours_ok:
            return None
        size = int(SIZE_LINE.fullmatch(line).group(1), 16)
        if not size:
            break
        pos = eol + 2 + size
        if data[pos:pos + 2] != b"\r\n":
            return None
        pos += 2
    trailers = data[eol + 2:]
    end = trailers.find(b"\r\n\r\n")
    section = trailers if end < 0 else trailers[:end + 2]
    if (_BARE_LF.search(section) or _LENIENT_CTL.search(section) or b"\n " in section
            or b"\n\t" in section):
        return "trailer line h11 takes"
    for line in section.split(b"\r\n"):
        if line.partition(b":")[0].lower() in FORBIDDEN_TRAILERS:
            return "forbidden trailer field"
    return None


# ---- the generator ------------------------------------------------------------------------------------

token = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~",
                min_size=1, max_size=10)
value = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xff,
                              blacklist_characters="\x7f"), max_size=20)
NAMES = ["Host", "X-A", "Accept", "User-Agent", "Content-Type", "Connection", "Expect",
         "X_Forwarded_For", "X-Forwarded-For", "Cookie"]
EXTENSIONS = [b"", b";a", b";a=b", b'; a="b c"', b";a=", b"; ;", b" ;x", b";a=\"\\\"\"", b";\x01"]
TRAILERS = [b"X-T: 1\r\n", b"Vary: *\r\n", b"X_T: 2\r\n", b"Content-Length: 3\r\n", b"x\r\n"]
MUTATION_BYTES = [b"\r", b"\n", b"\r\n", b"\x00", b"\x01", b"\x0b", b"\x7f", b" ", b"\t", b":",
                  b";", b"_", b"-", b",", b"0", b"f", b"\x80", b"\xff", b"chunked", b"Host: h\r\n"]


@st.composite
def requests(draw) -> bytes:
    method = draw(st.sampled_from(["GET", "POST", "PUT", "OPTIONS", "DELETE"]) | token)
    path = draw(st.text("abcxyz/-._~%20?=&#", max_size=20))
    version = draw(st.sampled_from(["HTTP/1.1"] * 6 + ["HTTP/1.0"] * 2 + ["HTTP/2.0"]))
    headers = draw(st.lists(st.tuples(st.sampled_from(NAMES) | token, value), max_size=6))
    if version == "HTTP/1.1" and draw(st.integers(0, 9)):
        headers.insert(draw(st.integers(0, len(headers))), ("Host", "example.com"))
    framing = draw(st.sampled_from(["none", "length", "chunked"]))
    body = b""
    if framing == "length":
        body = draw(st.binary(max_size=40))
        headers.append(("Content-Length", str(len(body))))
    elif framing == "chunked":
        headers.append(("Transfer-Encoding", draw(st.sampled_from(["chunked", "Chunked", "chunked "]))))
        for data in draw(st.lists(st.binary(min_size=1, max_size=20), max_size=4)):
            ext = draw(st.sampled_from(EXTENSIONS))
            body += b"%x%s\r\n%s\r\n" % (len(data), ext, data)
        body += b"0" + draw(st.sampled_from(EXTENSIONS)) + b"\r\n"
        body += b"".join(draw(st.lists(st.sampled_from(TRAILERS), max_size=2))) + b"\r\n"
    head = f"{method} /{path} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    data = bytearray(head.encode("latin-1") + body)
    for _ in range(draw(st.integers(0, 3))):
        pos = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["insert", "replace", "delete", "crlf-to-lf"]))
        if op == "insert":
            data[pos:pos] = draw(st.sampled_from(MUTATION_BYTES))
        elif op == "replace" and pos < len(data):
            data[pos:pos + 1] = draw(st.sampled_from(MUTATION_BYTES))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 4))]
        else:
            i = data.find(b"\r\n", pos)
            if i >= 0:
                del data[i]
    return bytes(data)


# ---- the property ----------------------------------------------------------------------------------

@DIFF
@given(requests())
def test_same_verdict_and_fields_as_h11(data):
    if documented_difference(data):
        return
    (verdict, got), (expected, other) = ours(data), theirs(data)
    if (verdict, expected) == (REFUSE, INCOMPLETE):
        # we refuse a bad line (or byte) as soon as it arrives; h11 waits for the end of the
        # head or of the trailers first: end them, and it must refuse too
        expected = theirs(data + b"\r\n\r\n")[0]
    assert verdict == expected, (data, got, other)
    if verdict == ACCEPT:
        want = as_served(*other)
        got.headers = _lower_te(got.headers)
        assert got == want, data


@pytest.mark.parametrize("data,ours_,theirs_", [
    (b"GET / HTTP/1.1\nHost: x\n\n", REFUSE, ACCEPT),                     # bare LF line ends
    (b"GET / HTTP/1.1\r\nHost: x\r\nA: b\x01c\r\n\r\n", REFUSE, ACCEPT),   # a CTL in a value
    (b"GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n c\r\n\r\n", REFUSE, ACCEPT),  # obs-fold
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0 \r\n\r\n", REFUSE, ACCEPT),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", REFUSE, ACCEPT),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     REFUSE, ACCEPT),
    (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", REFUSE, ACCEPT),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nHost: y\r\n\r\n",
     REFUSE, ACCEPT),
    (b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", REFUSE, ACCEPT),
    (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", REFUSE, ACCEPT),
    (b"GET / HTTP/1.1\r\n\r\n", ACCEPT, REFUSE),                               # no Host
    (b"GET /\xc3\xa0 HTTP/1.1\r\nHost: x\r\n\r\n", ACCEPT, REFUSE),            # obs-text target
    (b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", ACCEPT, REFUSE),                # a leading CRLF
])
def test_documented_differences(data, ours_, theirs_):
    """Each exclusion above, with both verdicts; the property skips exactly these shapes."""
    assert documented_difference(data)
    assert (ours(data)[0], theirs(data)[0]) == (ours_, theirs_)


def test_both_refuse_chunk_data_without_its_crlf():
    """CVE-2025-43859, fixed in h11 0.16: both refuse, neither reads a second request."""
    data = (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n"
            b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
    assert documented_difference(data) is None
    assert ours(data)[0] == theirs(data)[0] == REFUSE
