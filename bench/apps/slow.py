"""A slow endpoint for the reload-under-load runs: 50 ms per request."""
import time

BODY = b"slow\n"


def application(environ, start_response):
    time.sleep(0.05)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))])
    return [BODY]
