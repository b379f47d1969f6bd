"""The built-in demo app (``uwsgi-py --demo``): a page showing the instance."""
from __future__ import annotations

import html
import os


def application(environ, start_response):
    import uwsgi

    path = environ.get("PATH_INFO", "/")
    if path == "/health":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok\n"]
    rows = "".join(
        f"<tr><td>{w['id']}</td><td>{w['pid']}</td><td>{w['requests']}</td>"
        f"<td>{w['status'].decode()}</td></tr>" for w in uwsgi.workers())
    body = f"""<!doctype html><title>uwsgi-py demo</title>
<h1>uwsgi-py is serving</h1>
<p>worker {uwsgi.worker_id()} (pid {os.getpid()}), master pid {uwsgi.masterpid()},
started on {uwsgi.started_on}, reload: {uwsgi.is_a_reload}, path {html.escape(path)}</p>
<table border=1><tr><th>worker</th><th>pid</th><th>requests</th><th>status</th></tr>{rows}</table>
<p>Try <code>kill -HUP {uwsgi.masterpid()}</code> and reload this page.</p>
""".encode()
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
    return [body]
