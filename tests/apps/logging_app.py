"""The app of the logging tests: a status chosen by the path, a body, an app print()."""
import os
import sys
import time


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
    if path == "/big":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"x" * 5000]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello world\n"]
