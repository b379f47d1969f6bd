"""``--log-format``: uWSGI's request-log variables, compiled once into a list of getters.

The syntax is uWSGI's (``core/logging.c``): ``%(name)`` is a variable, anything
else is text. Every variable of uWSGI 2.0's list is known; ``%(var.NAME)`` is the
request variable NAME; any other name is a logvar, set by the app for its request
(``uwsgi.set_logvar``), as in uWSGI. An empty value prints ``-``, as in uWSGI. Values
can be JSON-escaped so that a JSON format stays valid JSON whatever the client sent
(``--log-format-escape``).

A getter takes ``(worker, request, uri, started, micros)`` and returns text.
"""
from __future__ import annotations

import json
import re
import time
from typing import Callable

Getter = Callable[..., str]
VAR = re.compile(r"%\(([^)]*)\)")
LOGVAR_NOTE = ("--log-format: %({name}) is not one of uWSGI's variables: it is a logvar the app "
               "sets with uwsgi.set_logvar() ('-' until then){hint}")


class FormatError(ValueError):
    pass


def _env(key: str) -> Getter:
    return lambda w, r, uri, t, us: r.vars.get(key) or ""


def _addr(w, r, uri, t, us) -> str:
    return r.vars.get("REMOTE_ADDR") or r.conn.remote or ""


def _addr_xff(w, r, uri, t, us) -> str:
    """--log-x-forwarded-for: the header as the client sent it (uWSGI copies it whole)."""
    return r.vars.get("HTTP_X_FORWARDED_FOR") or _addr(w, r, uri, t, us)


def _nvars(env: dict) -> int:
    return sum(1 for k, v in env.items() if "." not in k and isinstance(v, str))


def _pktsize(env: dict) -> int:
    """The request's vars as a uwsgi packet would carry them (2+len+2+len each)."""
    return sum(4 + len(k) + len(v) for k, v in env.items() if "." not in k and isinstance(v, str))


def _ltime(t: float) -> str:
    return time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(t))


def _memory(w, field: str) -> int:
    slot = getattr(w, "slot", None)
    board = getattr(slot, "board", None)
    try:
        return int(board.read(w.id)[field]) if board is not None else 0
    except (KeyError, TypeError, ValueError, OSError):
        return 0


def table(strftime: str | None, xff: bool) -> dict[str, Getter]:
    """Every variable uWSGI 2.0 registers (``uwsgi_register_logchunks``), by name."""
    def ftime(w, r, uri, t, us):
        return time.strftime(strftime, time.localtime(t)) if strftime else _ltime(t)

    return {
        # request fields (uWSGI's offsetof chunks)
        "uri": lambda w, r, uri, t, us: uri,
        "method": _env("REQUEST_METHOD"),
        "user": _env("REMOTE_USER"),
        "addr": _addr_xff if xff else _addr,
        "host": _env("HTTP_HOST"),
        "proto": _env("SERVER_PROTOCOL"),
        "uagent": _env("HTTP_USER_AGENT"),
        "referer": _env("HTTP_REFERER"),
        # functions
        "status": lambda w, r, uri, t, us: str(r.status),
        "rsize": lambda w, r, uri, t, us: str(r.sent),
        "hsize": lambda w, r, uri, t, us: str(r.hsize),
        "size": lambda w, r, uri, t, us: str(r.sent + r.hsize),
        "cl": lambda w, r, uri, t, us: str(r.head.length or 0),
        "micros": lambda w, r, uri, t, us: str(us),
        "msecs": lambda w, r, uri, t, us: str(us // 1000),
        "secs": lambda w, r, uri, t, us: "%f" % (us / 1e6),
        "tmsecs": lambda w, r, uri, t, us: str(int(t * 1000)),
        "tmicros": lambda w, r, uri, t, us: str(int(t * 1_000_000)),
        "time": lambda w, r, uri, t, us: str(int(t)),
        "ltime": lambda w, r, uri, t, us: _ltime(t),
        "ftime": ftime,
        "ctime": lambda w, r, uri, t, us: time.ctime(t),
        "epoch": lambda w, r, uri, t, us: str(int(time.time())),
        "pid": lambda w, r, uri, t, us: str(w.pid),
        "wid": lambda w, r, uri, t, us: str(w.id),
        # one switch per response that has a body: uwsgi-py runs no async cores
        "switches": lambda w, r, uri, t, us: "1" if r.sent else "0",
        "vars": lambda w, r, uri, t, us: str(_nvars(r.vars)),
        "core": lambda w, r, uri, t, us: str(r.core),   # the request thread's (--threads)
        "vsz": lambda w, r, uri, t, us: str(_memory(w, "vsz")),
        "rss": lambda w, r, uri, t, us: str(_memory(w, "rss")),
        "vszM": lambda w, r, uri, t, us: str(_memory(w, "vsz") // 1048576),
        "rssM": lambda w, r, uri, t, us: str(_memory(w, "rss") // 1048576),
        "pktsize": lambda w, r, uri, t, us: str(_pktsize(r.vars)),
        "modifier1": lambda w, r, uri, t, us: str(getattr(r.head, "modifier1", 0)),
        "modifier2": lambda w, r, uri, t, us: "0",
        "headers": lambda w, r, uri, t, us: str(r.nheaders),
        "werr": lambda w, r, uri, t, us: str(r.conn.write_errors),
        "rerr": lambda w, r, uri, t, us: str(r.conn.read_errors),
        "ioerr": lambda w, r, uri, t, us: str(r.conn.read_errors + r.conn.write_errors),
    }


def _logvar(key: str) -> Getter:
    def get(w, r, uri, t, us) -> str:
        logvars = r.logvars
        return logvars.get(key, "") if logvars else ""
    return get


def logvar_names(fmt: str) -> list[tuple[str, str | None]]:
    """The logvars ``fmt`` uses: (name, the variable it is close to, if any: a typo?)."""
    import difflib
    known = table(None, False)
    out = []
    for match in VAR.finditer(fmt):
        name = match.group(1)
        if name in known or name.startswith(("var.", "metric.")) or not name:
            continue
        close = difflib.get_close_matches(name, list(known), n=1)
        out.append((name, close[0] if close else None))
    return out


def _json(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)[1:-1]


def escaping(fmt: str, mode: str) -> bool:
    """--log-format-escape: ``json``, ``none``, or ``auto`` (json when the format is a JSON object)."""
    if mode == "auto":
        return fmt.lstrip().startswith("{")
    return mode == "json"


def compile_format(fmt: str, strftime: str | None = None, xff: bool = False,
                   escape: bool = False) -> Callable[..., str]:
    """``fmt`` as a function ``(worker, request, uri, started, micros) -> line``.

    Raises FormatError for ``%(metric.NAME)`` or an empty name.
    """
    known = table(strftime, xff)
    parts: list = []
    pos = 0
    for match in VAR.finditer(fmt):
        if match.start() > pos:
            parts.append(fmt[pos:match.start()])
        name = match.group(1)
        if name.startswith("var.") and len(name) > 4:
            getter = _env(name[4:])
        elif name in known:
            getter = known[name]
        elif name.startswith("metric."):
            raise FormatError(f"%({name}): uwsgi-py has no metrics subsystem")
        elif not name:
            raise FormatError("%() names no variable")
        else:
            getter = _logvar(name)
        parts.append(getter)
        pos = match.end()
    if pos < len(fmt):
        parts.append(fmt[pos:])
    getters = [(p, None) if isinstance(p, str) else ("", p) for p in parts]

    def render(w, r, uri, t, us) -> str:
        out = []
        for text, getter in getters:
            if getter is None:
                out.append(text)
                continue
            value = getter(w, r, uri, t, us) or "-"
            out.append(_json(value) if escape else value)
        return "".join(out)
    return render
