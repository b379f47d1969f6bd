"""The app of the logging tests: a status chosen by the path, a body, an app print()."""
import os
import sys
import time

import uwsgi

try:                       # outside a request: an error, as in uWSGI
    uwsgi.set_logvar("k", "v")
    OUTSIDE = "no error"
except SystemError:
    OUTSIDE = "SystemError"


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path.startswith("/status/"):
        code = int(path[8:])
        start_response(f"{code} Status {code}", [("Content-Type", "text/plain"), ("X-A", "1")])
        return [b"nope\n"]
    if path == "/empty":
        start_response("204 No Content", [])
        return []
    if path.startswith("/slow/"):
        time.sleep(float(path[6:]))
    if path == "/print":
        print("print from the app", os.getpid(), flush=True)
        sys.stderr.write("stderr from the app\n")
        sys.stderr.flush()
    if path == "/lv":
        uwsgi.set_logvar("user_id", "41")
        uwsgi.set_logvar("user_id", "42")
        got = (uwsgi.get_logvar("user_id"), uwsgi.get_logvar("nope"))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [repr(got).encode(), b" ", OUTSIDE.encode()]
    if path == "/file":       # wsgi.file_wrapper: sent with sendfile()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5000")])
        return environ["wsgi.file_wrapper"](open(__file__ + ".data", "rb"))
    if path == "/stream":     # more than a socket buffer holds, for a client that goes away
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return (b"x" * 65536 for _ in range(400))
    if path == "/long":
        print("long:" + "x" * 300, flush=True)
    if path == "/big":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"x" * 5000]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello world\n"]
