"""The PROXY protocol, version 1 (HAProxy's text header), before an HTTP request.

A load balancer that speaks it opens each connection with one line naming the client
it proxies: ``PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\\r\\n`` (``TCP6`` alike, or
``PROXY UNKNOWN ...\\r\\n`` when it cannot tell). The line is at most 107 bytes.

uWSGI 2.0 reads it on HTTP listeners when asked: ``--enable-proxy-protocol`` for its
HTTP parser (``--http-socket``, ``--http11-socket``, sockets speaking HTTP) and
``--http-enable-proxy-protocol`` for its HTTP router (``--http``, which uwsgi-py serves
from the workers). A connection without the line is served as usual; with it, the
client's address and port become REMOTE_ADDR and REMOTE_PORT of its requests.
"""
from __future__ import annotations


from .proto import BadRequest

PREFIX = b"PROXY "
MAX_LINE = 107           # the longest v1 line, CRLF included (the spec's worst case)


def parse_v1(buf: bytes | bytearray) -> tuple[int, str, str] | None:
    """``(consumed, address, port)`` for a complete PROXY line at the start of ``buf``;
    ``(0, "", "")`` while ``buf`` may still become one (more bytes needed); None when
    ``buf`` does not start with one. ``address`` and ``port`` are empty for UNKNOWN.
    Raises BadRequest for a malformed line."""
    head = bytes(buf[:len(PREFIX)])
    if not PREFIX.startswith(head):
        return None
    if len(buf) < len(PREFIX):
        return 0, "", ""
    end = buf.find(b"\r\n", 0, MAX_LINE)
    if end < 0:
        if len(buf) >= MAX_LINE:
            raise BadRequest("PROXY protocol line longer than 107 bytes")
        return 0, "", ""
    fields = bytes(buf[len(PREFIX):end]).decode("ascii", "replace").split(" ")
    consumed = end + 2
    if fields[0] == "UNKNOWN":
        return consumed, "", ""
    if fields[0] not in ("TCP4", "TCP6") or len(fields) != 5:
        raise BadRequest("malformed PROXY protocol line")
    family, src, _dst, sport, _dport = fields
    try:
        import ipaddress   # only behind a PROXY-protocol balancer: not imported at start-up
        addr = ipaddress.ip_address(src)
        port = int(sport)
    except ValueError:
        raise BadRequest("malformed PROXY protocol line") from None
    if addr.version != (4 if family == "TCP4" else 6) or not 0 <= port <= 65535 \
            or not sport.isdigit():
        raise BadRequest("malformed PROXY protocol line")
    return consumed, str(addr), sport


def take(conn) -> bool:
    """At the start of a connection on a listener with the protocol on: consume a PROXY
    line from ``conn.buf`` and make its client the connection's remote address. False
    while more bytes are needed.

    The client's port is kept in ``conn.listener.proxied[fd]`` with the very address
    object put in ``conn.remote``: a later connection on the same fd has its own address
    object, so it never sees a port that is not its own (``port``)."""
    entry = conn.listener.proxied.get(conn.fd)
    if entry is not None and entry[0] is conn.remote:
        return True         # this connection's line was taken already
    found = parse_v1(conn.buf)
    if found is None:
        return True
    consumed, address, port = found
    if not consumed:
        return False
    del conn.buf[:consumed]
    if address:
        conn.remote = address
        conn.listener.proxied[conn.fd] = (address, port)
    return True


def port(conn) -> str | None:
    """REMOTE_PORT from this connection's PROXY line, or None."""
    entry = conn.listener.proxied.get(conn.fd)
    return entry[1] if entry is not None and entry[0] is conn.remote else None
