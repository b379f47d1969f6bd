"""Static files served by the workers (``--static-map``, ``--check-static``, ...).

uWSGI serves them from its core before the app runs; here a request handler
(``uwsgi_request_handler``) does, in each worker, with ``os.sendfile``. uWSGI's
offload threads do not exist: ``--offload-threads`` is accepted and the worker
sends the file itself (sendfile() costs it no copy through Python).
"""
from __future__ import annotations

import os
import re

from uwsgi_py import Option, OptionError, hookimpl, non_negative_int, string

MAPPING = "[uwsgi-static] added mapping for {mountpoint} => {root}"
OFFLOAD = ("offload-threads: uwsgi-py has no offload threads; static files are sent by the "
           "worker with sendfile()")


def _mapping(raw) -> str:
    text = string(raw).strip()
    mountpoint, sep, root = text.partition("=")
    if not sep or not root:
        raise ValueError("is not MOUNTPOINT=PATH")
    return text


def split_rule(text: str, regexp: bool) -> tuple[str, str]:
    """uWSGI's two spellings: ``REGEXP SECONDS`` for the regexp rules, ``TYPE=SECONDS``
    for the content-type rules; ("", "") when the value has neither."""
    if regexp:
        parts = text.rsplit(None, 1)
        return (parts[0], parts[1]) if len(parts) == 2 else ("", "")
    key, sep, seconds = text.rpartition("=")
    return (key, seconds) if sep else ("", "")


def _seconds_rule(regexp: bool):
    def convert(raw) -> str:
        text = string(raw).strip()
        key, seconds = split_rule(text, regexp)
        if not key or not seconds.strip().isdigit():
            raise ValueError("is not REGEXP SECONDS" if regexp else "is not TYPE=SECONDS")
        if regexp:
            try:
                re.compile(key)
            except re.error as e:
                raise ValueError(f"has an invalid regular expression ({e})") from None
        return text
    convert.__name__ = "seconds_rule"
    return convert


def _regexp(raw) -> str:
    text = string(raw)
    try:
        re.compile(text)
    except re.error as e:
        raise ValueError(f"is not a valid regular expression ({e})") from None
    return text


EXPIRES = (
    ("static-expires-type", "content type", False),
    ("static-expires-type-mtime", "content type", False),
    ("static-expires", "filename regexp", True),
    ("static-expires-mtime", "filename regexp", True),
    ("static-expires-uri", "REQUEST_URI regexp", True),
    ("static-expires-uri-mtime", "REQUEST_URI regexp", True),
    ("static-expires-path-info", "PATH_INFO regexp", True),
    ("static-expires-path-info-mtime", "PATH_INFO regexp", True),
)


@hookimpl
def uwsgi_add_options(registry):
    O = Option
    registry.add(
        O("static-map", "serve files under PATH for URLs starting with MOUNTPOINT (the rest of "
          "the URL is the file's path under PATH; PATH may be one file); repeatable",
          multiple=True, convert=_mapping, metavar="MOUNTPOINT=PATH"),
        O("static-map2", "like --static-map, but the whole PATH_INFO is appended to PATH",
          multiple=True, convert=_mapping, metavar="MOUNTPOINT=PATH"),
        O("check-static", "serve the file DIR + PATH_INFO when it exists (repeatable)",
          multiple=True, metavar="DIR"),
        O("check-static-docroot", "serve the file DOCUMENT_ROOT + PATH_INFO when it exists "
          "(DOCUMENT_ROOT from the front end's uwsgi vars)", flag=True),
        O("static-index", "file to serve when a directory is requested (repeatable, tried in "
          "order)", multiple=True, metavar="NAME"),
        O("static-skip-ext", "never serve files ending with EXT: pass them to the app "
          "(repeatable)", multiple=True, metavar="EXT"),
        O("static-safe", "allow files under DIR even when a mapping's path leads there through "
          "a symlink (repeatable)", multiple=True, metavar="DIR"),
        *(O(name, f"set the Expires header to SECONDS after the "
            f"{'file mtime' if name.endswith('-mtime') else 'request'} for files whose {what} "
            f"matches (repeatable)", multiple=True, convert=_seconds_rule(regexp),
            metavar="REGEXP SECONDS" if regexp else "TYPE=SECONDS")
          for name, what, regexp in EXPIRES),
        O("static-gzip-all", "serve FILE.br / FILE.gz, when it exists and the client accepts "
          "it, in place of any static FILE", flag=True),
        O("static-gzip", "like --static-gzip-all for files whose path matches REGEXP "
          "(repeatable)", multiple=True, convert=_regexp, metavar="REGEXP"),
        O("static-gzip-dir", "like --static-gzip-all for files under DIR (repeatable)",
          aliases=("static-gzip-prefix",), multiple=True, metavar="DIR"),
        O("static-gzip-ext", "like --static-gzip-all for files ending with EXT (repeatable)",
          aliases=("static-gzip-suffix",), multiple=True, metavar="EXT"),
        O("mimefile", "read content types from FILE (repeatable; default: the system's "
          "mime.types files)", multiple=True, metavar="FILE"),
        O("offload-threads", "accepted: there are no offload threads; workers send static "
          "files themselves with sendfile()", convert=non_negative_int, default=0,
          metavar="N"),
    )


@hookimpl
def uwsgi_configure(settings):
    s = settings
    for path in s.mimefile:
        if not os.path.isfile(path):
            raise OptionError(f"--mimefile: {path!r} is not a file ({s.origins.get('mimefile')})")
    for value in (*s.static_map, *s.static_map2):
        mountpoint, _, root = value.partition("=")
        os.write(2, (MAPPING.format(mountpoint=mountpoint, root=root) + "\n").encode())
    if s.offload_threads:
        os.write(2, (OFFLOAD + "\n").encode())
    if configured(s):
        # here in the master, shared by the workers that use them
        import mimetypes  # noqa: F401
        from . import files  # noqa: F401


def configured(s) -> bool:
    return bool(s.static_map or s.static_map2 or s.check_static or s.check_static_docroot)


@hookimpl
def uwsgi_request_handler(worker):
    s = worker.settings
    if not configured(s):
        return None
    from .files import StaticFiles    # imported by uwsgi_configure already: a dict lookup
    return StaticFiles(s, mime_lookup(s.mimefile))


def mime_lookup(files: list[str]):
    """``path -> content type or None`` by extension, from mime.types files (as uWSGI)."""
    import mimetypes   # imported by uwsgi_configure already: a dict lookup
    sources = list(files) or [f for f in mimetypes.knownfiles if os.path.isfile(f)]
    table = mimetypes.MimeTypes(filenames=sources)
    types = {**table.types_map[False], **table.types_map[True]}

    def lookup(path: bytes) -> str | None:
        name = os.fsdecode(path)
        dot = name.rfind(".")
        if dot < 0 or "/" in name[dot:]:
            return None
        return types.get(name[dot:].lower()) or types.get(name[dot:])
    return lookup
