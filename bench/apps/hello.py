"""Hello world for the benchmark: the same app for every WSGI server."""

BODY = b"Hello, World!"
LENGTH = str(len(BODY))


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", LENGTH)])
    return [BODY]
