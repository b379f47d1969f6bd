"""Which file a request names, and its response (uWSGI's core/static.c, in a worker).

A request is checked against ``--check-static`` directories, then ``--static-map``,
then ``--static-map2`` mappings, then (``--check-static-docroot``) its
DOCUMENT_ROOT. The first file found is served; anything else (no such file, a
method other than GET/HEAD, a skipped extension, a path that leaves its root)
passes the request on to the app, as in uWSGI.
"""
from __future__ import annotations

import os
import re
import stat
import time

from . import http

SECURITY = "[uwsgi-fileserve] security error: {path} is not under {root} or a safe path"

# encodings tried for --static-gzip*: (Accept-Encoding token, file suffix, Content-Encoding)
ENCODINGS = ((b"br", b".br", "br"), (b"gzip", b".gz", "gzip"))


class Root:
    """A directory (or a single file) that requests map onto."""

    def __init__(self, configured: str, mountpoint: str = "", append: bool = False):
        self.configured = configured
        # PATH_INFO holds one character per byte (latin-1): compare the mountpoint the same way
        self.mountpoint = mountpoint.encode("utf-8").decode("latin-1")
        self.append = append          # --static-map2: the whole PATH_INFO goes under the root
        self.real: bytes | None = None
        self.is_file = False

    def resolve(self) -> bytes | None:
        """The root's realpath, found at first use (uWSGI retries until it exists)."""
        if self.real is None:
            try:
                real = os.path.realpath(os.fsencode(self.configured), strict=True)
            except (OSError, ValueError):
                return None
            self.real = real
            self.is_file = os.path.isfile(real)
        return self.real


class Expires:
    """--static-expires*: (pattern or content type, seconds, from the file's mtime)."""

    def __init__(self, value: str, mtime: bool, regexp: bool):
        from . import split_rule
        key, seconds = split_rule(value, regexp)
        self.seconds = int(seconds)
        self.key = re.compile(key) if regexp else key
        self.mtime = mtime

    def header(self, st) -> tuple[str, str]:
        base = st.st_mtime if self.mtime else time.time()
        return ("Expires", http.http_date(base + self.seconds))


class StaticFiles:
    """The request handler: serve a file if the request names one, else pass."""

    def __init__(self, settings, mime_lookup):
        s = settings
        self.roots = [Root(d, "", True) for d in s.check_static]
        self.roots += [Root(v.split("=", 1)[1], v.split("=", 1)[0]) for v in s.static_map]
        self.roots += [Root(v.split("=", 1)[1], v.split("=", 1)[0], True) for v in s.static_map2]
        self.docroot = s.check_static_docroot
        self.index = [os.fsencode(name) for name in s.static_index]
        self.skip = tuple(os.fsencode(ext) for ext in s.static_skip_ext)
        self.safe = [os.path.realpath(os.fsencode(p)) for p in s.static_safe]
        self.mime = mime_lookup
        self.expires_type = [Expires(v, False, False) for v in s.static_expires_type] + \
            [Expires(v, True, False) for v in s.static_expires_type_mtime]
        self.expires_file = [Expires(v, False, True) for v in s.static_expires] + \
            [Expires(v, True, True) for v in s.static_expires_mtime]
        self.expires_uri = [Expires(v, False, True) for v in s.static_expires_uri] + \
            [Expires(v, True, True) for v in s.static_expires_uri_mtime]
        self.expires_path = [Expires(v, False, True) for v in s.static_expires_path_info] + \
            [Expires(v, True, True) for v in s.static_expires_path_info_mtime]
        self.gzip_all = s.static_gzip_all
        self.gzip_dirs = [os.fsencode(d) for d in s.static_gzip_dir]
        self.gzip_exts = tuple(os.fsencode(e) for e in s.static_gzip_ext)
        self.gzip_re = [re.compile(os.fsencode(p)) for p in s.static_gzip]
        self.gzip = bool(self.gzip_all or self.gzip_dirs or self.gzip_exts or self.gzip_re)

    # ---- which file ------------------------------------------------------------------
    def __call__(self, req) -> bool:
        env = req.vars
        path = env.get("PATH_INFO", "")
        raw = path.encode("latin-1", "surrogateescape")
        if self.skip and raw.endswith(self.skip):
            return False
        for root in self.roots:
            if not path.startswith(root.mountpoint):
                continue
            base = root.resolve()
            if base is None:
                continue
            rest = raw if root.append else raw[len(root.mountpoint):]
            if self.serve(req, base, rest, root.is_file):
                return True
        if self.docroot and env.get("DOCUMENT_ROOT"):
            try:
                base = os.path.realpath(os.fsencode(env["DOCUMENT_ROOT"]), strict=True)
            except (OSError, ValueError):
                return False
            return self.serve(req, base, raw, False)
        return False

    def find(self, base: bytes, rest: bytes, is_file: bool) -> tuple[bytes, int] | None:
        """(realpath, open fd) of the regular file under ``base`` that ``rest`` names, or of
        the first --static-index file when it names a directory."""
        if b"\0" in rest:
            return None
        real = self.resolve(base, base if is_file else base + b"/" + rest, is_file)
        if real is None:
            return None
        fd = _open_regular(real)
        if fd is None and self.index and os.path.isdir(real):
            for index in self.index:
                found = self.resolve(base, real + b"/" + index, False)
                fd = _open_regular(found) if found is not None else None
                if fd is not None:
                    return found, fd
        return (real, fd) if fd is not None else None

    def resolve(self, base: bytes, name: bytes, is_file: bool) -> bytes | None:
        """``name`` with every symlink resolved, if it exists and stays under ``base`` (or a
        --static-safe directory); a path that leaves is logged."""
        try:
            real = os.path.realpath(name, strict=True)
        except (OSError, ValueError):
            return None
        if is_file or real == base or real.startswith(base + b"/") \
                or any(real == p or real.startswith(p + b"/") for p in self.safe):
            return real
        os.write(2, (SECURITY.format(path=os.fsdecode(real), root=os.fsdecode(base))
                     + "\n").encode("utf-8", "backslashreplace"))
        return None

    def serve(self, req, base: bytes, rest: bytes, is_file: bool) -> bool:
        env = req.vars
        if env.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return False
        found = self.find(base, rest, is_file)
        if found is None:
            return False
        real, fd = found
        fds = [fd]
        try:
            if self.skip and real.endswith(self.skip):
                return False
            content_type = self.mime(real)
            headers = []
            if content_type:
                headers.append(("Content-Type", content_type))
            if self.gzip:
                headers.append(("Vary", "Accept-Encoding"))
                variant = self.variant(env, real)
                if variant is not None:
                    fd, coding = variant
                    fds.append(fd)
                    headers.append(("Content-Encoding", coding))
            st = os.fstat(fd)
            headers += self.expires(env, real, content_type, st)
            respond(req, fd, st, headers)
        finally:
            for each in fds:
                os.close(each)
        return True

    # ---- the response ------------------------------------------------------------------
    def variant(self, env, real: bytes) -> tuple[int, str] | None:
        """--static-gzip*: (fd, Content-Encoding) of a .br/.gz file next to ``real`` that the
        client accepts, or None."""
        accepted = env.get("HTTP_ACCEPT_ENCODING", "").encode("latin-1", "replace")
        if not accepted or not (self.gzip_all or real.startswith(tuple(self.gzip_dirs))
                                or (self.gzip_exts and real.endswith(self.gzip_exts))
                                or any(p.search(real) for p in self.gzip_re)):
            return None
        for token, suffix, coding in ENCODINGS:
            if token in accepted:
                fd = _open_regular(real + suffix)
                if fd is not None:
                    return fd, coding
        return None

    def expires(self, env, real: bytes, content_type: str | None, st) -> list[tuple[str, str]]:
        for rule in self.expires_file:
            if rule.key.search(os.fsdecode(real)):
                return [rule.header(st)]
        for rule in self.expires_path:
            if rule.key.search(env.get("PATH_INFO", "")):
                return [rule.header(st)]
        for rule in self.expires_uri:
            if rule.key.search(env.get("REQUEST_URI", "")):
                return [rule.header(st)]
        for rule in self.expires_type:
            if content_type is not None and rule.key == content_type:
                return [rule.header(st)]
        return []


def _open_regular(path: bytes) -> int | None:
    try:
        # the path is resolved already: a symlink here was planted since (never followed)
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOFOLLOW)
    except (OSError, ValueError):
        return None
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


def respond(req, fd: int, st, headers: list[tuple[str, str]]) -> None:
    """200, 206, 304 or 416 for the open regular file ``fd`` (``st``: its fstat)."""
    env = req.vars
    tag = http.etag(st)
    validators = [("Last-Modified", http.http_date(st.st_mtime)), ("ETag", tag)]
    inm = env.get("HTTP_IF_NONE_MATCH")
    if inm is not None:
        fresh = http.etag_matches(inm, tag)
    else:
        since = http.parse_http_date(env.get("HTTP_IF_MODIFIED_SINCE") or "")
        fresh = since is not None and int(st.st_mtime) <= since
    if fresh:
        req.start("304 Not Modified", validators + [h for h in headers if h[0] in ("Vary", "Expires")])
        return
    size = st.st_size
    offset, length, status = 0, size, "200 OK"
    headers = headers + validators + [("Accept-Ranges", "bytes")]
    wanted = env.get("HTTP_RANGE")
    if wanted and _if_range(env.get("HTTP_IF_RANGE"), tag, st):
        found = http.parse_range(wanted, size)
        if found == "unsatisfiable":
            req.start("416 Requested Range Not Satisfiable",
                      [("Content-Range", f"bytes */{size}"), ("Content-Length", "0")])
            return
        if found is not None:
            first, last = found
            offset, length, status = first, last - first + 1, "206 Partial Content"
            headers.append(("Content-Range", f"bytes {first}-{last}/{size}"))
    headers.append(("Content-Length", str(length)))
    req.start(status, headers)
    req.sendfile(fd, offset, length)


def _if_range(value: str | None, tag: str, st) -> bool:
    """Honour Range: no If-Range, or one that names this version of the file."""
    if value is None:
        return True
    value = value.strip()
    if value.startswith(('"', 'W/"')):
        return value == tag
    since = http.parse_http_date(value)
    return since is not None and int(st.st_mtime) <= since
