"""Static files served by the workers (--static-map, --check-static, ...), driven by http.client."""
from __future__ import annotations

import email.utils
import gzip
import http.client
import os
import time

import pytest

pytestmark = pytest.mark.timeout(60)

APP = """\
def application(environ, start_response):
    body = ("app:" + environ["PATH_INFO"]).encode("latin-1")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"""

CONTENT = b"0123456789abcdef" * 1000    # 16000 bytes


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "static.py").write_text(APP)
    www = tmp_path / "www"
    (www / "sub").mkdir(parents=True)
    (www / "data.bin").write_bytes(CONTENT)
    (www / "hello.txt").write_text("hello static\n")
    (www / "page.php").write_text("<?php ?>")
    (www / "sub" / "index.html").write_text("<h1>index</h1>\n")
    (www / "style.css").write_text("body {}\n")
    (www / "style.css.gz").write_bytes(gzip.compress(b"body {}\n"))
    (tmp_path / "secret.txt").write_text("secret\n")
    (www / "out").symlink_to(tmp_path / "secret.txt")
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "ok.txt").write_text("shared ok\n")
    (www / "shared").symlink_to(tmp_path / "shared")
    (tmp_path / "favicon.ico").write_bytes(b"ICO")
    return tmp_path


def start(server, tree, *args):
    return server("--master", "--http-keepalive", "--wsgi-file", "static.py", *args,
                  app=False, cwd=tree)


def fetch(conn, path, method="GET", headers=None):
    conn.request(method, path, headers=headers or {})
    resp = conn.getresponse()
    return resp.status, dict(resp.getheaders()), resp.read()


def test_files_with_head_ranges_and_validators(server, tree):
    inst = start(server, tree, "--static-map", "/static=www")
    conn = http.client.HTTPConnection("127.0.0.1", inst.port, timeout=10)
    try:
        status, headers, body = fetch(conn, "/static/data.bin")
        assert status == 200 and body == CONTENT
        assert headers["Content-Length"] == "16000" and headers["Accept-Ranges"] == "bytes"
        mtime = os.stat(tree / "www" / "data.bin").st_mtime
        assert email.utils.parsedate_to_datetime(headers["Last-Modified"]).timestamp() == int(mtime)
        tag = headers["ETag"]
        # every answer below comes over the same kept-alive connection
        status, head_headers, body = fetch(conn, "/static/data.bin", "HEAD")
        assert status == 200 and body == b"" and head_headers["Content-Length"] == "16000"
        status, h, body = fetch(conn, "/static/hello.txt")
        assert (status, body, h["Content-Type"]) == (200, b"hello static\n", "text/plain")
        status, h, body = fetch(conn, "/static/data.bin", headers={"Range": "bytes=16-31"})
        assert status == 206 and body == CONTENT[16:32]
        assert h["Content-Range"] == "bytes 16-31/16000" and h["Content-Length"] == "16"
        status, h, body = fetch(conn, "/static/data.bin", headers={"Range": "bytes=-5"})
        assert status == 206 and body == CONTENT[-5:]
        status, h, body = fetch(conn, "/static/data.bin", headers={"Range": "bytes=20000-"})
        assert status == 416 and h["Content-Range"] == "bytes */16000" and body == b""
        # If-Range with another validator: the whole file
        status, h, body = fetch(conn, "/static/data.bin",
                                headers={"Range": "bytes=0-1", "If-Range": '"other"'})
        assert status == 200 and body == CONTENT
        status, h, body = fetch(conn, "/static/data.bin",
                                headers={"Range": "bytes=0-1", "If-Range": tag})
        assert status == 206 and body == b"01"
        # conditional requests
        status, h, body = fetch(conn, "/static/data.bin", headers={"If-None-Match": tag})
        assert status == 304 and body == b"" and h["ETag"] == tag
        status, h, body = fetch(conn, "/static/data.bin",
                                headers={"If-Modified-Since": headers["Last-Modified"]})
        assert status == 304 and body == b""
        old = email.utils.formatdate(mtime - 3600, usegmt=True)
        status, h, body = fetch(conn, "/static/data.bin", headers={"If-Modified-Since": old})
        assert status == 200 and body == CONTENT
        status, h, body = fetch(conn, "/static/data.bin", headers={"If-None-Match": '"x"',
                                "If-Modified-Since": headers["Last-Modified"]})
        assert status == 200, "If-None-Match decides when both are sent"
        # not a file, not GET/HEAD: the app answers
        assert fetch(conn, "/static/missing.txt")[2] == b"app:/static/missing.txt"
        assert fetch(conn, "/static/hello.txt", "POST")[2] == b"app:/static/hello.txt"
        assert fetch(conn, "/other")[2] == b"app:/other"
    finally:
        conn.close()
    inst.wait_log("GET /static/data.bin => generated 16000 bytes")


@pytest.mark.parametrize("path", [
    "/static/../secret.txt",            # a dot-dot segment
    "/static/%2e%2e/secret.txt",        # encoded dots
    "/static/..%2fsecret.txt",          # an encoded slash
    "/static/sub%2f..%2f..%2fsecret.txt",
    "/static/out",                      # a symlink that leaves the root
    "/static/hello.txt%00.png",         # a NUL byte
    "/static/shared/ok.txt",            # leaves the root (allowed only by --static-safe)
])
def test_paths_never_leave_the_root(server, tree, path):
    inst = start(server, tree, "--static-map", "/static=www")
    conn = http.client.HTTPConnection("127.0.0.1", inst.port, timeout=10)
    try:
        status, _, body = fetch(conn, path)
    finally:
        conn.close()
    assert status == 200 and body.startswith(b"app:"), body
    if "%00" not in path:
        inst.wait_log("[uwsgi-fileserve] security error:")


def test_static_safe_allows_a_symlinked_tree(server, tree):
    inst = start(server, tree, "--static-map", "/static=www", "--static-safe",
                 str(tree / "shared"))
    assert inst.get("/static/shared/ok.txt") == b"shared ok\n"
    assert inst.get("/static/out").startswith(b"app:"), "secret.txt is not under a safe path"


def test_index_skip_ext_gzip_expires_maps(server, tree):
    inst = start(server, tree, "--static-map", "/static=www", "--static-index", "index.html",
                 "--static-skip-ext", ".php", "--static-gzip-all",
                 "--static-expires-type", "text/plain=3600",
                 "--static-map", "/favicon.ico=favicon.ico",
                 "--static-map2", "/sub=www", "--check-static", "www")
    inst.wait_log("[uwsgi-static] added mapping for /static => www")
    conn = http.client.HTTPConnection("127.0.0.1", inst.port, timeout=10)
    try:
        status, h, body = fetch(conn, "/static/sub/")
        assert (status, body, h["Content-Type"]) == (200, b"<h1>index</h1>\n", "text/html")
        assert fetch(conn, "/static/page.php")[2] == b"app:/static/page.php"
        status, h, body = fetch(conn, "/static/style.css", headers={"Accept-Encoding": "gzip"})
        assert h["Content-Encoding"] == "gzip" and gzip.decompress(body) == b"body {}\n"
        assert h["Content-Type"] == "text/css" and h["Vary"] == "Accept-Encoding"
        status, h, body = fetch(conn, "/static/style.css")
        assert "Content-Encoding" not in h and body == b"body {}\n"
        status, h, body = fetch(conn, "/static/hello.txt")
        expires = email.utils.parsedate_to_datetime(h["Expires"]).timestamp()
        assert abs(expires - (time.time() + 3600)) < 60
        assert "Expires" not in fetch(conn, "/static/style.css")[1]
        assert fetch(conn, "/favicon.ico")[2] == b"ICO"           # a map to one file
        assert fetch(conn, "/sub/index.html")[2] == b"<h1>index</h1>\n"   # map2: whole path
        assert fetch(conn, "/hello.txt")[2] == b"hello static\n"          # check-static
    finally:
        conn.close()


def test_bad_static_options_are_one_line_errors(tmp_path):
    from conftest import run_cli
    result = run_cli("--http-socket", "127.0.0.1:0", "--static-map", "/static", cwd=tmp_path)
    assert result.returncode == 1
    assert "--static-map: '/static' is not MOUNTPOINT=PATH (command line)" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_cli("--http-socket", "127.0.0.1:0", "--static-expires", "([ 60", cwd=tmp_path)
    assert result.returncode == 1 and "--static-expires:" in result.stderr
    assert "Traceback" not in result.stderr
