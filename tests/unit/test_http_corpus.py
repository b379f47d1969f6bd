"""gunicorn's HTTP request corpus, as our own table, read the way the server reads it.

The requests come from gunicorn's ``tests/requests/valid`` and ``tests/requests/invalid``
(https://github.com/benoitc/gunicorn, MIT licence): one entry per gunicorn file we cover,
named in the entry, with the raw bytes as gunicorn's loader builds them from the
``.http`` file (its newlines dropped, ``\\r\\n`` made CRLF). A few very long requests
are rebuilt here with the same shape (lengths, not gunicorn's random characters).

The expectation is always ours. Where it differs from gunicorn's, the entry says why:
gunicorn's permissive options (obs-fold, spaces before the colon, dangerous framing),
its own policies beyond RFC 9112 (methods must look conventional; names with "_" are
refused where we drop them, as nginx does), what we do not implement (transfer codings
other than chunked, CONNECT tunnels, the PROXY protocol, per-field size limits).

Each outcome list holds one ``Served`` per request the app would get, then the status
of the refusal that closes the connection, or INCOMPLETE (the bytes stop mid-request).
"""
from __future__ import annotations

import pytest

from http_helpers import INCOMPLETE, req, serve_stream
from uwsgi_py.proto import HttpRules

pytestmark = pytest.mark.timeout(60)

V = "valid/"
I = "invalid/"   # noqa: E741 - the corpus folder
LONG_TARGET = "/q=" + "0123456789abcdef" * 256           # ~4 KiB, like invalid/006
LONG_VALUE = "0123456789" * 820                          # ~8 KiB, like invalid/017
CHUNKED = "Transfer-Encoding: chunked\r\n"


def lines(*parts: str, body: bytes = b"") -> bytes:
    """A request from its lines (each gets its CRLF) and the bytes after the head."""
    return "".join(p + "\r\n" for p in parts).encode("latin-1") + body


CASES = [
    # ---- tests/requests/valid ------------------------------------------------------------------
    (V + "001.http", lines("PUT /stuff/here?foo=bar HTTP/1.0", "Server: http://127.0.0.1:5984",
                           "Content-Type: application/json", "Content-Length: 14", "",
                           body=b'{"nom": "nom"}'),
     [req("PUT", "/stuff/here?foo=bar", "HTTP/1.0", b'{"nom": "nom"}', path="/stuff/here",
          query="foo=bar", HTTP_SERVER="http://127.0.0.1:5984", CONTENT_TYPE="application/json",
          CONTENT_LENGTH="14")]),
    (V + "002.http", lines("GET /test HTTP/1.1", "User-Agent: curl/7.18.0 (i486-pc-linux-gnu) "
                           "libcurl/7.18.0 OpenSSL/0.9.8g zlib/1.2.3.3 libidn/1.1",
                           "Host: 0.0.0.0=5000", "Accept: */*", ""),
     [req("GET", "/test", HTTP_USER_AGENT="curl/7.18.0 (i486-pc-linux-gnu) libcurl/7.18.0 "
          "OpenSSL/0.9.8g zlib/1.2.3.3 libidn/1.1", HTTP_HOST="0.0.0.0=5000", HTTP_ACCEPT="*/*")]),
    (V + "003.http", lines("GET /favicon.ico HTTP/1.1", "Host: 0.0.0.0=5000",
                           "User-Agent: Mozilla/5.0 (X11; U; Linux i686; en-US; rv:1.9) "
                           "Gecko/2008061015 Firefox/3.0",
                           "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
                           "Accept-Language: en-us,en;q=0.5", "Accept-Encoding: gzip,deflate",
                           "Accept-Charset: ISO-8859-1,utf-8;q=0.7,*;q=0.7", "Keep-Alive: 300",
                           "Connection: keep-alive", ""),
     [req("GET", "/favicon.ico", HTTP_HOST="0.0.0.0=5000",
          HTTP_USER_AGENT="Mozilla/5.0 (X11; U; Linux i686; en-US; rv:1.9) Gecko/2008061015 Firefox/3.0",
          HTTP_ACCEPT="text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
          HTTP_ACCEPT_LANGUAGE="en-us,en;q=0.5", HTTP_ACCEPT_ENCODING="gzip,deflate",
          HTTP_ACCEPT_CHARSET="ISO-8859-1,utf-8;q=0.7,*;q=0.7", HTTP_KEEP_ALIVE="300",
          HTTP_CONNECTION="keep-alive")]),
    (V + "004.http", lines("GET /silly HTTP/1.1", "aaaaaaaaaaaaa:++++++++++", ""),
     [req("GET", "/silly", HTTP_AAAAAAAAAAAAA="++++++++++")]),
    # a fragment is not split off: it stays in QUERY_STRING as sent (gunicorn splits it)
    (V + "005.http", lines("GET /forums/1/topics/2375?page=1#posts-17408 HTTP/1.1", ""),
     [req("GET", "/forums/1/topics/2375?page=1#posts-17408", path="/forums/1/topics/2375",
          query="page=1#posts-17408")]),
    (V + "006.http", lines("GET /get_no_headers_no_body/world HTTP/1.1", ""),
     [req("GET", "/get_no_headers_no_body/world")]),
    (V + "007.http", lines("GET /get_one_header_no_body HTTP/1.1", "Accept: */*", ""),
     [req("GET", "/get_one_header_no_body", HTTP_ACCEPT="*/*")]),
    (V + "008.http", lines("GET /unusual_content_length HTTP/1.0", "conTENT-Length: 5", "",
                           body=b"HELLO"),
     [req("GET", "/unusual_content_length", "HTTP/1.0", b"HELLO", CONTENT_LENGTH="5")]),
    (V + "010.http", lines("POST /post_chunked_all_your_base HTTP/1.1", "Transfer-Encoding: chunked",
                           "", "1e", "all your base are belong to us", "0", ""),
     [req("POST", "/post_chunked_all_your_base", body=b"all your base are belong to us",
          HTTP_TRANSFER_ENCODING="chunked")]),
    # trailers are read and checked, never passed to the app
    (V + "012.http", lines("POST /chunked_w_trailing_headers HTTP/1.1", "Transfer-Encoding: chunked",
                           "", "5", "hello", "6", " world", "0", "Vary: *",
                           "Content-Type: text/plain", ""),
     [req("POST", "/chunked_w_trailing_headers", body=b"hello world",
          HTTP_TRANSFER_ENCODING="chunked")]),
    (V + "013.http", lines("POST /chunked_w_extensions HTTP/1.1", "Transfer-Encoding: chunked", "",
                           "5; some; parameters=stuff", "hello", "6; blahblah; blah", " world",
                           "0", ""),
     [req("POST", "/chunked_w_extensions", body=b"hello world", HTTP_TRANSFER_ENCODING="chunked")]),
    (V + "014.http", lines('GET /with_"quotes"?foo="bar" HTTP/1.1', ""),
     [req("GET", '/with_"quotes"?foo="bar"', path='/with_"quotes"', query='foo="bar"')]),
    # obs-fold is refused (RFC 9112 5.2 allows it); gunicorn now needs permit_obsolete_folding
    # for it too (valid/compat_obs_fold.py). The certificate is shortened to two lines.
    (V + "016.http", lines("GET / HTTP/1.1", "X-SSL-Cert:    -----BEGIN CERTIFICATE-----",
                           "    MIIFbTCCBFWgAwIBAgICH4cwDQYJKoZIhvcNAQEFBQAwcDELMAkGA1UEBhMCVUsx",
                           "    -----END CERTIFICATE-----", ""),
     [400]),
    # repeated fields are joined with "," (RFC 9110 5.3)
    (V + "017.http", lines("GET /stuff/here?foo=bar HTTP/1.0", "If-Match: bazinga!",
                           "If-Match: large-sound", ""),
     [req("GET", "/stuff/here?foo=bar", "HTTP/1.0", HTTP_IF_MATCH="bazinga!,large-sound")]),
    (V + "018.http", lines("GET /first HTTP/1.1", "", "GET /second HTTP/1.1", ""),
     [req("GET", "/first"), req("GET", "/second")]),
    # an HTTP/1.0 request without keep-alive ends the connection: /second is never read
    (V + "019.http", lines("GET /first HTTP/1.0", "", "GET /second HTTP/1.1", ""),
     [req("GET", "/first", "HTTP/1.0")]),
    (V + "020.http", lines("GET /first HTTP/1.0", "Content-Length: 24", "",
                           body=b"GET /second HTTP/1.1\r\n\r\n"),
     [req("GET", "/first", "HTTP/1.0", b"GET /second HTTP/1.1\r\n\r\n", CONTENT_LENGTH="24")]),
    (V + "021.http", lines("GET /first HTTP/1.1", "Connection: Close", "", "GET /second HTTP/1.1", ""),
     [req("GET", "/first", HTTP_CONNECTION="Close")]),
    (V + "022.http", lines("GET /first HTTP/1.0", "Connection: Keep-Alive", "",
                           "GET /second HTTP/1.1", ""),
     [req("GET", "/first", "HTTP/1.0", HTTP_CONNECTION="Keep-Alive"), req("GET", "/second")]),
    (V + "023.http", lines("POST /two_chunks_mult_zero_end HTTP/1.1", "Transfer-Encoding: chunked",
                           "", "5", "hello", "6", " world", "000", "", "GET /second HTTP/1.1", ""),
     [req("POST", "/two_chunks_mult_zero_end", body=b"hello world",
          HTTP_TRANSFER_ENCODING="chunked"), req("GET", "/second")]),
    # gunicorn raises its limits for this one; ours is --buffer-size (see the next test too)
    (V + "024.http", lines("PUT /" + "a" * 8180 + " HTTP/1.0", "Someheader: " + LONG_VALUE, ""),
     [414]),
    # a transfer coding other than chunked is not implemented: 501 (RFC 9112 6.1 SHOULD)
    (V + "025.http", lines("POST /chunked HTTP/1.1", "Transfer-Encoding: gzip,chunked", "", "5",
                           "hello", "6", " world", "0", ""), [501]),
    (V + "025_line.http", lines("POST /chunked HTTP/1.1", "Transfer-Encoding: gzip,chunked", "",
                                "5", "hello", "6", " world", "0", ""), [501]),
    # the second request has Content-Length and Transfer-Encoding: refused (RFC 9112 6.1)
    (V + "025compat.http", lines("POST /chunked_cont_h_at_first HTTP/1.1", "Transfer-Encoding: chunked",
                                 "", "5; some; parameters=stuff", "hello", "6; blahblah; blah",
                                 " world", "0", "", "PUT /chunked_cont_h_at_last HTTP/1.1",
                                 "Transfer-Encoding: chunked", "Content-Length: -1", "",
                                 "5; some; parameters=stuff", "hello", "6; blahblah; blah",
                                 " world", "0"),
     [req("POST", "/chunked_cont_h_at_first", body=b"hello world",
          HTTP_TRANSFER_ENCODING="chunked"), 400]),
    (V + "026.http", lines("GET /test HTTP/1.0", "Host: 0.0.0.0:5000", "User-Agent: ApacheBench/2.3",
                           "Accept: */*", "HTTPS: on", ""),
     [req("GET", "/test", "HTTP/1.0", HTTP_HOST="0.0.0.0:5000", HTTP_USER_AGENT="ApacheBench/2.3",
          HTTP_ACCEPT="*/*", HTTP_HTTPS="on")]),
    # obs-text in the target is passed as sent (latin-1 characters for the raw bytes)
    (V + "027.http", "GET /à%20k HTTP/1.0\r\n\r\n".encode(),
     [req("GET", "/\xc3\xa0%20k", "HTTP/1.0", path="/\xc3\xa0 k")]),
    # whitespace before the colon: 400 (RFC 9112 5.1 MUST); gunicorn's strip_header_spaces
    (V + "028.http", lines("GET /stuff/here?foo=bar HTTP/1.1", "Content-Length : 3", "",
                           body=b"xyz"), [400]),
    # chunked is not the final coding: 400 (RFC 9112 6.3)
    (V + "029.http", lines("GET /stuff/here?foo=bar HTTP/1.1", "Transfer-Encoding: chunked",
                           "Transfer-Encoding: identity", "", "5", "hello", "000"), [400]),
    # "identity" is no transfer coding (RFC 9112 dropped it): not implemented, 501
    (V + "030.http", lines("GET /stuff/here?foo=bar HTTP/1.1", "Transfer-Encoding: identity",
                           "Transfer-Encoding: chunked", "", "5", "hello", "000", ""), [501]),
    (V + "031.http", lines("-BLARGH /foo HTTP/1.1", ""), [req("-BLARGH", "/foo")]),
    # a method is any token (RFC 9110 9.1); gunicorn wants permit_unconventional_http_method
    (V + "031compat.http", lines("-blargh /foo HTTP/1.1", ""), [req("-blargh", "/foo")]),
    (V + "031compat2.http", lines("-blargh /foo HTTP/1.1", ""), [req("-blargh", "/foo")]),
    # valid/040.py reads invalid/040.http with header_map=drop: the same as our default
    (V + "040.py (invalid/040.http)",
     lines("GET /keep/same/as?invalid/040 HTTP/1.0", "Transfer_Encoding: tricked",
           "Content-Length: 7", "Content_Length: -1E23", "", body=b"tricked\r\n"),
     [req("GET", "/keep/same/as?invalid/040", "HTTP/1.0", b"tricked", CONTENT_LENGTH="7")]),
    # absolute-form: the app gets the origin-form part (RFC 9112 3.2.2)
    (V + "041.http", lines("GET scheme+ext://user+ext:password!@[::1]:8000/path?query#frag HTTP/1.1",
                           "Host: localhost", "CONTENT-LENGTH: 3", "", body=b"odd"),
     [req("GET", "/path?query#frag", body=b"odd", path="/path", query="query#frag",
          HTTP_HOST="localhost", CONTENT_LENGTH="3")]),
    (V + "042.http", lines("OPTIONS * HTTP/1.1", "Content-Length: 0", ""),
     [req("OPTIONS", "*", CONTENT_LENGTH="0")]),
    (V + "100.http", lines("GET ///keeping_slashes HTTP/1.1", ""),
     [req("GET", "///keeping_slashes", path="///keeping_slashes")]),
    # a bare LF in a value: 400; gunicorn's tolerate_dangerous_framing accepts it
    (V + "invalid_field_value_01_compat.http",
     b"GET / HTTP/1.1\r\nHost: x\r\nNewline: a\nContent-Length: 26\r\n"
     b"X-Forwarded-By: broken-proxy\r\n\r\nGET / HTTP/1.1\nHost: x\r\n\r\n", [400]),
    (V + "nonascii_01.http", "PUT /ß/germans..?ö=ä HTTP/1.1\r\nUnicode: awesome\r\n"
                             "Content-Length: 6\r\n\r\nÄÖÜ".encode(),
     [req("PUT", "/ß/germans..?ö=ä".encode().decode("latin-1"), body="ÄÖÜ".encode(),
          HTTP_UNICODE="awesome", CONTENT_LENGTH="6")]),
    (V + "nonascii_02.http", "PUT /ÿ/french..?é=è HTTP/1.1\r\nUnicode: awesome\r\n"
                             "Content-Length: 6\r\n\r\nÀÁÂ".encode(),
     [req("PUT", "/ÿ/french..?é=è".encode().decode("latin-1"), body="ÀÁÂ".encode(),
          HTTP_UNICODE="awesome", CONTENT_LENGTH="6")]),
    # a whitespace-only line is obs-fold: 400 (gunicorn: permit_obsolete_folding)
    (V + "obs_fold_whitespace.http", lines("POST /1 HTTP/1.1", "Host: example.com",
                                           "Connection: keep-alive", " ", "Content-Length: 3", "",
                                           body=b"123"), [400]),
    (V + "padding_01.http", lines("GET / HTTP/1.1", "Host: localhost", "Name: \t value \t ", ""),
     [req("GET", "/", HTTP_HOST="localhost", HTTP_NAME="value")]),
    # no PROXY protocol: its line is a malformed request line
    (V + "pp_02.http", lines("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443",
                             "GET /stuff/here?foo=bar HTTP/1.1", "Server: http://127.0.0.1:5984",
                             "Content-Type: application/json", "Content-Length: 14",
                             "Connection: keep-alive", "", body=b'{"nom": "nom"}'), [400]),
    (V + "rfc9112_chunked_ext_quoted_01.http",
     lines("POST /upload HTTP/1.1", "Host: example.com", "Transfer-Encoding: chunked", "",
           '5;foo="bar baz"', "hello", "0", ""),
     [req("POST", "/upload", body=b"hello", HTTP_HOST="example.com", HTTP_TRANSFER_ENCODING="chunked")]),
    (V + "rfc9112_chunked_size_leading_zeros_01.http",
     lines("POST /upload HTTP/1.1", "Host: example.com", "Transfer-Encoding: chunked", "",
           "0005", "hello", "0", ""),
     [req("POST", "/upload", body=b"hello", HTTP_HOST="example.com", HTTP_TRANSFER_ENCODING="chunked")]),
    (V + "rfc9112_chunked_size_uppercase_hex_01.http",
     lines("POST /upload HTTP/1.1", "Host: example.com", "Transfer-Encoding: chunked", "",
           "A", "0123456789", "0", ""),
     [req("POST", "/upload", body=b"0123456789", HTTP_HOST="example.com",
          HTTP_TRANSFER_ENCODING="chunked")]),
    (V + "rfc9112_smuggle_gzip_chunked_01.http",
     lines("POST /upload HTTP/1.1", "Host: example.com", "Transfer-Encoding: gzip, chunked", "",
           "5", "hello", "0", ""), [501]),
    (V + "rfc9112_smuggle_te_identity_chunked_01.http",
     lines("POST /upload HTTP/1.1", "Host: example.com", "Transfer-Encoding: identity, chunked", "",
           "5", "hello", "0", ""), [501]),
    (V + "rfc9112_target_absolute_01.http",
     lines("GET http://example.com/foo?q=1 HTTP/1.1", "Host: example.com", ""),
     [req("GET", "/foo?q=1", path="/foo", query="q=1", HTTP_HOST="example.com")]),
    (V + "rfc9112_target_absolute_https_01.http",
     lines("GET https://example.com/foo HTTP/1.1", "Host: example.com", ""),
     [req("GET", "/foo", HTTP_HOST="example.com")]),
    (V + "rfc9112_target_absolute_ipv6_01.http",
     lines("GET http://[::1]:8080/foo HTTP/1.1", "Host: [::1]:8080", ""),
     [req("GET", "/foo", HTTP_HOST="[::1]:8080")]),
    (V + "rfc9112_target_absolute_userinfo_01.http",
     lines("GET http://user:pass@example.com:8080/foo?q=1 HTTP/1.1", "Host: example.com:8080", ""),
     [req("GET", "/foo?q=1", HTTP_HOST="example.com:8080")]),
    (V + "rfc9112_target_asterisk_options_01.http",
     lines("OPTIONS * HTTP/1.1", "Host: example.com", ""),
     [req("OPTIONS", "*", HTTP_HOST="example.com")]),
    # CONNECT asks for a tunnel, which an application server does not make: 400
    (V + "rfc9112_target_authority_connect_01.http",
     lines("CONNECT example.com:443 HTTP/1.1", "Host: example.com:443", ""), [400]),
    (V + "rfc9112_target_authority_ipv6_01.http",
     lines("CONNECT [::1]:443 HTTP/1.1", "Host: [::1]:443", ""), [400]),

    # ---- tests/requests/invalid ----------------------------------------------------------------
    (I + "002.http", lines("GET HTTP/1.1", ""), [400]),
    (I + "003.http", b"GET\n/\nHTTP/1.1\r\n\r\n", [400]),
    (I + "003b.http", lines("bla:rgh /foo HTTP/1.1", ""), [400]),
    # "-bl" is a token, so a method (RFC 9110 9.1); gunicorn refuses unconventional methods
    (I + "003c.http", lines("-bl /foo HTTP/1.1", ""), [req("-bl", "/foo")]),
    (I + "004.http", lines("GET /foo FTP/1.1", ""), [400]),
    (I + "006.http", lines("PUT " + LONG_TARGET + " HTTP/1.0", ""), [414]),
    (I + "007.http", lines("PUT /stuff/here?foo=bar HTTP/1.0", "Server: http://127.0.0.1:5984",
                           "Content-Type: application/json", "Content-Length: 14",
                           "Someheader:" + LONG_VALUE, "", body=b'{"nom": "nom"}'), [431]),
    (I + "008.http", lines("PUT /stuff/here?foo=bar HTTP/1.0", "Server: http://127.0.0.1:5984",
                           "Content-Type: application/json", "Someheader: " + LONG_VALUE[:4096],
                           "Someheader: " + LONG_VALUE[:4096], "Someheader: " + LONG_VALUE[:4096], ""),
     [431]),
    # 100 headers after 4 others: over --limit-request-fields (100, gunicorn's default too)
    (I + "009.http", lines("PUT /stuff/here?foo=bar HTTP/1.0", "Server: http://127.0.0.1:5984",
                           "Content-Type: application/json", "Content-Length: 14",
                           *[f"header{i}: {i}" for i in range(100)], "", body=b'{"nom": "nom"}'),
     [431]),
    # gunicorn refuses it with limit_request_field_size=10; our bound is the whole head
    (I + "010.http", lines("GET /test HTTP/1.1", "Accept: */*", ""),
     [req("GET", "/test", HTTP_ACCEPT="*/*")]),
    (I + "013.http", lines("GET /test HTTP/1.1", "Accept:", " */*", ""), [400]),
    (I + "014.http", lines("PUT /stuff/here?foo=bar HTTP/1.0", "CONTENT-LENGTH: -1", "",
                           body=b'{"test": "-1}'), [400]),
    (I + "015.http", lines("POST /stuff/here?foo=bar HTTP/1.0", "CONTENT-LENGTH: bla-bla-bla", "",
                           body=b'{"test": "-1}'), [400]),
    (I + "016.http", lines("PUT s://]ufd/: HTTP/1.1", ""), [400]),
    (I + "017.http", lines("GET /test HTTP/1.1", "Long-header: " + LONG_VALUE, ""), [431]),
    (I + "018.http", lines("GET /test HTTP/111", "Host: localhost", ""), [400]),
    # gunicorn checks X-Forwarded-Proto against X-Forwarded-Ssl (forwarded_allow_ips);
    # we do not derive the scheme from headers: they reach the app as sent
    (I + "019.http", lines("GET /test HTTP/1.1", "X-Forwarded-Proto: https", "X-Forwarded-Ssl: off", ""),
     [req("GET", "/test", HTTP_X_FORWARDED_PROTO="https", HTTP_X_FORWARDED_SSL="off")]),
    (I + "020.http", lines("GET /stuff/here?foo=bar HTTP/1.1", "Content-Length : 3", "", body=b"xyz"),
     [400]),
    (I + "021.http", lines("GET /stuff/here?foo=bar HTTP/1.1", "Content-Length: 3",
                           "Content-Length: 2", "", body=b"xyz"), [400]),
    (I + "022.http", lines("GET /first HTTP/1.0", "Content-Length: -0", ""), [400]),
    (I + "023.http", lines("GET /first HTTP/1.0", "Content-Length: 0_1", ""), [400]),
    (I + "024.http", lines("GET /first HTTP/1.0", "Content-Length: +1", ""), [400]),
    # gunicorn (header_map=refuse) refuses names with "_"; we drop them, as nginx does
    (I + "040.http", lines("GET /keep/same/as?invalid/040 HTTP/1.0", "Transfer_Encoding: tricked",
                           "Content-Length: 7", "Content_Length: -1E23", "", body=b"tricked\r\n"),
     [req("GET", "/keep/same/as?invalid/040", "HTTP/1.0", b"tricked", CONTENT_LENGTH="7")]),
    (I + "041.http", lines("GET /stuff/here?foo=bar HTTP/1.1", "Host: localhost",
                           "Content-Type: application/json", "Content-Type: text/html", ""), [400]),
    (I + "042.http", lines("GET /stuff/here?foo=bar HTTP/1.1", "Host: localhost",
                           "Host: evil.example.com", ""), [400]),
    (I + "chunked_01.http", lines("POST /chunked_w_underscore_chunk_size HTTP/1.1", CHUNKED[:-2], "",
                                  "5", "hello", "6_0", " world", "0", "",
                                  "POST /after HTTP/1.1", "Transfer-Encoding: identity", ""), [400]),
    (I + "chunked_02.http", lines("POST /chunked_with_prefixed_value HTTP/1.1", "Content-Length: 12",
                                  "Transfer-Encoding: \tchunked", "", "5", "hello", "6", " world", ""),
     [400]),
    (I + "chunked_03.http", lines("POST /double_chunked HTTP/1.1",
                                  "Transfer-Encoding: identity, chunked, identity, chunked", "",
                                  "5", "hello", "6", " world", ""), [400]),
    (I + "chunked_04.http", lines("POST /chunked_twice HTTP/1.1", "Transfer-Encoding: identity",
                                  "Transfer-Encoding: chunked", "Transfer-Encoding: identity",
                                  "Transfer-Encoding: chunked", "", "5", "hello", "6", " world", ""),
     [400]),
    (I + "chunked_05.http", lines("POST /chunked_HTTP_1.0 HTTP/1.0", CHUNKED[:-2], "", "5", "hello",
                                  "6", " world", "0", "Vary: *", "Content-Type: text/plain", ""),
     [400]),
    (I + "chunked_06.http", lines("POST /chunked_not_last HTTP/1.1", "Transfer-Encoding: chunked",
                                  "Transfer-Encoding: identity", "", "5", "hello", "6", " world", ""),
     [400]),
    # gunicorn (header_map=refuse) refuses Transfer_Encoding; dropped here, chunked remains
    (I + "chunked_07.http", lines("POST /chunked_ambiguous_header_mapping HTTP/1.1",
                                  "Transfer_Encoding: gzip", "Transfer-Encoding: chunked", "", "5",
                                  "hello", "6", " world", "0", ""),
     [req("POST", "/chunked_ambiguous_header_mapping", body=b"hello world",
          HTTP_TRANSFER_ENCODING="chunked")]),
    (I + "chunked_09.http", lines("POST /chunked_ows_without_ext HTTP/1.1", CHUNKED[:-2], "", "5",
                                  "hello", "0 ", ""), [400]),
    (I + "chunked_10.http", lines("POST /chunked_ows_before HTTP/1.1", CHUNKED[:-2], "", "5",
                                  "hello", " 0", ""), [400]),
    (I + "chunked_11.http", lines("POST /chunked_ows_before HTTP/1.1", CHUNKED[:-2], "", "5\n;",
                                  "hello", "0", ""), [400]),
    (I + "chunked_12.http", lines("POST /chunked_no_chunk_size_but_ext HTTP/1.1", CHUNKED[:-2], "",
                                  " ;foo=bar", "hello", "0", ""), [400]),
    (I + "chunked_13.http", lines("POST /chunked_no_chunk_size HTTP/1.1", CHUNKED[:-2], "", "",
                                  "hello", "0", ""), [400]),
    (I + "chunked_14.http", lines("POST /chunked_bare_cr_in_extension HTTP/1.1", CHUNKED[:-2], "",
                                  "5;ext=val\rue", "hello", "0", ""), [400]),
    (I + "chunked_whitespace.http", lines("POST /upload HTTP/1.1", "Host: example.com",
                                          "Transfer-Encoding: identity, \x0bchunked", "", "5",
                                          "hello", "0", ""), [400]),
    (I + "invalid_field_value_01.http",
     b"GET / HTTP/1.1\r\nHost: x\r\nNewline: a\nContent-Length: 26\r\nGET / HTTP/1.1\nHost: x\r\n\r\n",
     [400]),
    (I + "limit_header_default_01.http", lines("GET / HTTP/1.0", "X: " + "y" * 8190, ""), [431]),
    (I + "limit_line_default_01.http", lines("GET /" + "x" * 8181 + " HTTP/1.0"), [414]),
    (I + "method_01.http", lines("CONNECT host:25 HTTP/1.1", "Content-Length: 3", "", body=b"BOO"),
     [400]),
    (I + "method_02.http", lines("CONNECT domain.example HTTP/1.1", "Content-Length: 3", "",
                                 body=b"FOO"), [400]),
    (I + "nonascii_01.http", "GETß /germans.. HTTP/1.1\r\nContent-Length: 3\r\n\r\nÄÄÄ".encode(), [400]),
    (I + "nonascii_02.http", "GETÿ /french.. HTTP/1.1\r\nContent-Length: 3\r\n\r\nÄÄÄ".encode(), [400]),
    (I + "nonascii_03.http", "GET /germans.. HTTP/1.1\r\nContent-Lengthß: 3\r\nContent-Length: 3"
                             "\r\n\r\nÄÄÄ".encode(), [400]),
    (I + "nonascii_04.http", "GET /french.. HTTP/1.1\r\nContent-Lengthÿ: 3\r\nContent-Length: 3"
                             "\r\n\r\nÄÄÄ".encode(), [400]),
    (I + "nonascii_05.http", lines("GET /one\0/two HTTP/1.1", "Content-Length: 3", "", body=b"WOW"),
     [400]),
    (I + "obs_fold_01.http", lines("GET / HTTP/1.1", "Long: one", " two", "Host: localhost", ""),
     [400]),
    # PROXY protocol: a head that never ends in CRLF CRLF (a complete one would get 400)
    (I + "pp_01.http", lines("PROXY TCP4 192.168.0.1 192.16..."), [INCOMPLETE]),
    (I + "prefix_01.http", lines("GET\0PROXY /foo HTTP/1.1", ""), [400]),
    (I + "prefix_02.http", lines("GET\0 /foo HTTP/1.1", ""), [400]),
    (I + "prefix_03.http", lines("GET /stuff/here?foo=bar HTTP/1.1", "Content-Length: 0 1", "",
                                 body=b"x"), [400]),
    (I + "prefix_04.http", lines("GET /stuff/here?foo=bar HTTP/1.1", "Content-Length: 3 1", "",
                                 body=b"xyzabc123"), [400]),
    (I + "prefix_05.http", lines("GET: /stuff/here?foo=bar HTTP/1.1", "Content-Length: 3", "",
                                 body=b"xyz"), [400]),
    (I + "prefix_06.http", lines("GET /the/future HTTP/" + "1" * 88 + ".1", "Content-Length: 7", "",
                                 body=b"Old Man"), [400]),
    (I + "rfc9110_field_value_ctl_bel_01.http", lines("GET /foo HTTP/1.1", "Host: example.com",
                                                      "X-Value: plain\x07injected", ""), [400]),
    (I + "rfc9110_field_value_ctl_del_01.http", lines("GET /foo HTTP/1.1", "Host: example.com",
                                                      "X-Value: plain\x7finjected", ""), [400]),
    (I + "rfc9110_trailer_forbidden_cl_01.http",
     lines("POST /p HTTP/1.1", "Host: example.com", CHUNKED[:-2], "", "5", "hello", "0",
           "Content-Length: 99", ""), [400]),
    (I + "rfc9110_trailer_forbidden_host_01.http",
     lines("POST /p HTTP/1.1", "Host: example.com", CHUNKED[:-2], "", "5", "hello", "0",
           "Host: evil.example.com", ""), [400]),
    (I + "rfc9110_trailer_forbidden_te_01.http",
     lines("POST /p HTTP/1.1", "Host: example.com", CHUNKED[:-2], "", "5", "hello", "0",
           "Transfer-Encoding: chunked", ""), [400]),
    # the body never ends: the server waits for the last CRLF, then times out
    (I + "rfc9112_chunked_missing_final_crlf_01.http",
     lines("POST /chunked_missing_final_crlf HTTP/1.1", "Host: a", CHUNKED[:-2], "", "0"),
     [INCOMPLETE]),
    (I + "rfc9112_chunked_size_minus_sign_01.http",
     lines("POST /upload HTTP/1.1", "Host: example.com", CHUNKED[:-2], "", "-5", "hello", "0", ""),
     [400]),
    (I + "rfc9112_chunked_size_plus_sign_01.http",
     lines("POST /upload HTTP/1.1", "Host: example.com", CHUNKED[:-2], "", "+5", "hello", "0", ""),
     [400]),
    (I + "rfc9112_smuggle_cl_te_chunked_01.http",
     lines("POST /p HTTP/1.1", "Host: example.com", "Content-Length: 3", CHUNKED[:-2], "", "0", ""),
     [400]),
    (I + "rfc9112_target_asterisk_non_options_01.http", lines("GET * HTTP/1.1", "Host: example.com", ""),
     [400]),
    (I + "rfc9112_target_authority_non_connect_01.http",
     lines("GET example.com:443 HTTP/1.1", "Host: example.com:443", ""), [400]),
    (I + "rfc9112_target_relative_01.http", lines("GET foo/bar HTTP/1.1", "Host: example.com", ""),
     [400]),
    (I + "version_01.http", lines("GET /foo HTTP/0.99", ""), [400]),
    (I + "version_02.http", lines("GET /foo HTTP/2.0", ""), [505]),
    (I + "version_03.http", lines("GET /foo HTTP/0.9", ""), [505]),
]


@pytest.mark.parametrize("source,raw,expected", CASES, ids=[c[0] for c in CASES])
def test_gunicorn_corpus(source, raw, expected):
    assert serve_stream(raw, expect=expected) == expected


# ---- the same files with gunicorn's settings, where we have the equivalent -----------------------

def test_gunicorn_024_long_lines_pass_with_a_larger_buffer_size():
    """valid/024.http (gunicorn raises limit_request_line and limit_request_field_size)."""
    raw = lines("PUT /" + "a" * 8180 + " HTTP/1.0", "Someheader: " + LONG_VALUE, "")
    [got] = serve_stream(raw, limit=32768)
    assert got == req("PUT", "/" + "a" * 8180, "HTTP/1.0", HTTP_SOMEHEADER=LONG_VALUE)


def test_gunicorn_006_and_limit_request_line():
    """invalid/006.py sets limit_request_line 4094: our --limit-request-line."""
    raw = lines("PUT " + LONG_TARGET + " HTTP/1.0", "")
    assert serve_stream(raw, limit=65536, rules=HttpRules(max_line=4094)) == [414]
    assert serve_stream(raw, limit=65536)[0].uri == LONG_TARGET


def test_gunicorn_011_and_limit_request_fields():
    """invalid/011.py sets limit_request_fields 2 (the request has 3): our --limit-request-fields."""
    raw = lines("GET /test HTTP/1.1", "User-Agent: curl/7.18.0", "Host: 0.0.0.0=5000", "Accept: */*", "")
    assert serve_stream(raw, rules=HttpRules(max_fields=2)) == [431]
    assert len(serve_stream(raw, rules=HttpRules(max_fields=3))[0].headers) == 3


def test_gunicorn_040_with_underscore_headers_allowed():
    """valid/040_compat.py (header_map=dangerous): --http-allow-underscore-headers passes them
    on under their own names; Content_Length is not CONTENT_LENGTH, so the framing holds."""
    raw = lines("GET /keep/same/as?invalid/040 HTTP/1.0", "Transfer_Encoding: tricked",
                "Content-Length: 7", "Content_Length: -1E23", "", body=b"tricked\r\n")
    [got] = serve_stream(raw, rules=HttpRules(underscores=True))
    assert got.body == b"tricked"
    assert got.headers == {"HTTP_TRANSFER_ENCODING": "tricked", "CONTENT_LENGTH": "7",
                           "HTTP_CONTENT_LENGTH": "-1E23"}
