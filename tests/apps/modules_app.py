"""Writes ``sorted(sys.modules)`` of the process that imports it (the master, unless
--lazy-apps) to ``$MODULES_FILE.import`` at import and to ``$MODULES_FILE.exit`` when that
process exits (atexit; workers inherit the handler and skip it). ``/cache`` goes through
``uwsgi.cache_set``/``cache_get``; anything else answers ``hello``."""
import atexit
import os
import sys

OUT = os.environ["MODULES_FILE"]
LOADER = os.getpid()


def _dump(when: str) -> None:
    tmp = f"{OUT}.{when}.tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(sorted(sys.modules)) + "\n")
    os.rename(tmp, f"{OUT}.{when}")     # a reader never sees half a list


def _at_exit() -> None:
    if os.getpid() == LOADER:
        _dump("exit")


_dump("import")
atexit.register(_at_exit)


def application(environ, start_response):
    body = b"hello"
    if environ["PATH_INFO"] == "/cache":
        import uwsgi
        uwsgi.cache_set("key", b"cached")
        body = uwsgi.cache_get("key")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
