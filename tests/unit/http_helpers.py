"""Read a byte stream as the server reads a connection, in-process: heads through
``proto.parse_http``, bodies through ``body.Input`` (over a socketpair whose peer
is already closed, so a reader wanting more sees EOF at once, never a wait).

``serve_stream`` returns what the server would make of the stream: one ``Served``
per request it would run (its CGI vars and the body the app reads), ending with the
status it would answer a refused request with, or ``INCOMPLETE`` when the bytes end
before a request does (the server waits, then times out).
"""
from __future__ import annotations

import socket
from dataclasses import dataclass, field

from uwsgi_py.proto import RULES, BadRequest, HttpRules, parse_http
from uwsgi_py.body import Input
from uwsgi_py.conn import ClientGone, Conn

INCOMPLETE = "incomplete"
FRAMING = ("CONTENT_LENGTH", "CONTENT_TYPE")


class _Listener:
    proto = "http"


@dataclass
class Served:
    """A request as the app would see it: the vars that come from the request and the body."""

    method: str
    uri: str
    proto: str = "HTTP/1.1"
    body: bytes = b""
    headers: dict = field(default_factory=dict)   # HTTP_* vars plus CONTENT_LENGTH/TYPE
    path: str | None = None                       # PATH_INFO, when the case says
    query: str | None = None                      # QUERY_STRING, when the case says


def req(method: str, uri: str, proto: str = "HTTP/1.1", body: bytes = b"", path=None,
        query=None, **headers: str) -> Served:
    return Served(method, uri, proto, body, headers, path, query)


def served(env: dict, body: bytes, like: Served | None = None) -> Served:
    headers = {k: v for k, v in env.items() if k.startswith("HTTP_") or k in FRAMING}
    return Served(env["REQUEST_METHOD"], env["REQUEST_URI"], env["SERVER_PROTOCOL"], body,
                  headers, env["PATH_INFO"] if like and like.path is not None else None,
                  env["QUERY_STRING"] if like and like.query is not None else None)


def serve_stream(raw: bytes, limit: int = 4096, rules: HttpRules = RULES,
                 expect: list | None = None) -> list:
    """What the server makes of ``raw`` on one connection (see the module docstring).
    ``expect`` only says which optional fields (PATH_INFO, QUERY_STRING) to report."""
    ours, theirs = socket.socketpair()
    theirs.close()
    ours.setblocking(False)
    conn = Conn(ours.detach(), _Listener(), "127.0.0.1", 0.5, 0)
    conn.buf += raw
    out: list = []
    try:
        while conn.buf:
            head = parse_http(conn.buf, limit, "80", "127.0.0.1", rules)
            if head is None:
                out.append(INCOMPLETE)
                break
            del conn.buf[:head.consumed]
            body = b""
            if head.length or head.chunked:
                body = Input(conn, head.length, head.chunked, False).read()
            like = expect[len(out)] if expect and len(out) < len(expect) else None
            out.append(served(head.vars, body, like if isinstance(like, Served) else None))
            if not head.keepalive:
                break
    except BadRequest as e:
        out.append(e.status)
    except ClientGone:
        out.append(INCOMPLETE)
    finally:
        conn.close()
    return out
