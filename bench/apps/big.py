"""A 64 KiB response for the benchmark: where copying the body, not parsing the request, costs."""

BODY = b"x" * 65536
LENGTH = str(len(BODY))


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", LENGTH)])
    return [BODY]
