"""The WSGI handler (PEP 3333) over a core ``Request``."""
from __future__ import annotations

import os
import sys

from uwsgi_py import ClientGone


class FileWrapper:
    """``wsgi.file_wrapper``: served with ``os.sendfile`` when the file has an fd."""

    def __init__(self, filelike, blksize: int = 8192):
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self):
        while True:
            data = self.filelike.read(self.blksize)
            if not data:
                return
            yield data

    def fileno(self) -> int | None:
        try:
            fd = self.filelike.fileno()
        except (AttributeError, OSError, ValueError):
            return None
        try:
            import stat
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
        except OSError:
            return None
        return fd


class _Errors:
    """``wsgi.errors``: lines go to the server log."""

    def write(self, text: str) -> int:
        if text:
            os.write(2, text.encode("utf-8", "backslashreplace"))
        return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        pass


ERRORS = _Errors()


_NO_CLOSE = (list, tuple)   # exactly these types: a subclass may define close()


class WSGIApp:
    """A loaded WSGI callable, served for modifier1 0."""

    modifier1 = 0

    def __init__(self, callable_, name: str, scheme: str = "http", file_wrapper: bool = True,
                 write_exception: bool = True, write_errors_tolerance: int = 0,
                 multithread: bool = False):
        self.app = callable_
        self.name = name
        self.base = {
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": scheme,
            "wsgi.errors": ERRORS,
            "wsgi.multithread": multithread,   # --threads N > 1
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        if file_wrapper:   # --wsgi-disable-file-wrapper leaves it out (PEP 3333: optional)
            self.base["wsgi.file_wrapper"] = FileWrapper
        # --disable-write-exception: write() to a client that went away raises nothing in the
        # app; the error ends the request once the app returns
        self.write_exception = write_exception
        # --write-errors-tolerance N: the app's first N failed write() calls raise nothing
        self.tolerance = write_errors_tolerance
        # --collect-header/--pull-header: lowercased header -> (request variable, remove it)
        self.collect: dict[str, tuple[str, bool]] = {}

    def collected(self, env: dict, headers: list) -> list:
        """Copy the collected response headers into request variables; drop pulled ones."""
        kept = []
        for item in headers:
            hit = self.collect.get(str(item[0]).lower()) if type(item) is tuple and item else None
            if hit is not None:
                env[hit[0]] = item[1]
                if hit[1]:
                    continue
            kept.append(item)
        return kept

    def __call__(self, req) -> None:
        env = req.vars
        env.update(self.base)
        env["wsgi.input"] = req.input
        # only a front end (uwsgi protocol) says https; an HTTP client's headers are HTTP_*
        if not req.http and (env.get("HTTPS") in ("on", "1") or env.get("UWSGI_SCHEME") == "https"):
            env["wsgi.url_scheme"] = "https"

        def start_response(status, headers, exc_info=None):
            if exc_info is not None:
                try:
                    if req.committed:
                        raise exc_info[1].with_traceback(exc_info[2])
                finally:
                    exc_info = None
            elif req.prepared is not None:
                raise AssertionError("start_response() called twice without exc_info")
            if type(headers) is not list:
                raise TypeError("WSGI response headers must be a list")
            if self.collect:
                headers = self.collected(env, headers)
            # PEP 3333 wants a bad status or header raised here, while the app runs
            req.prepare(status, headers)
            if req.started:  # replaced after an error, before anything was sent
                req.begin()
            return write

        gone = []   # the write errors kept from the app (--disable-write-exception, tolerance)

        def write(data):
            if type(data) is not bytes:
                raise TypeError("WSGI write() takes bytes")
            if gone:
                gone.append(gone[0])
                if self.write_exception and len(gone) > self.tolerance:
                    raise gone[0]
                return
            if not req.started:
                if req.prepared is None:
                    raise AssertionError("write() before start_response()")
                req.begin()
            if self.write_exception and not self.tolerance:
                req.write(data)
                return
            try:
                req.write(data)
            except ClientGone as e:
                gone.append(e)
                if self.write_exception and len(gone) > self.tolerance:
                    raise

        result = self.app(env, start_response)
        if gone:
            _close(result)
            raise gone[0]
        try:
            if type(result) in _NO_CLOSE:
                if not req.started:   # the whole response is known: one write, Content-Length
                    if req.prepared is None:
                        raise AssertionError("the app returned without calling start_response()")
                    req.respond(result)
                    return
                for chunk in result:
                    if type(chunk) is not bytes:
                        raise TypeError("WSGI response body items must be bytes")
                    req.write(chunk)
                return
            if req.prepared is not None and type(result) is FileWrapper \
                    and result.fileno() is not None:
                if not req.started:
                    req.begin()
                fd = result.fileno()
                offset = result.filelike.tell() if hasattr(result.filelike, "tell") else 0
                req.sendfile(fd, offset, req.length)
                return
            for chunk in result:
                if type(chunk) is not bytes:
                    raise TypeError("WSGI response body items must be bytes")
                if not chunk:
                    continue
                if not req.started:
                    if req.prepared is None:
                        raise AssertionError("the app returned without calling start_response()")
                    req.begin()
                req.write(chunk)
            if req.prepared is None:
                raise AssertionError("the app returned without calling start_response()")
            if not req.started:
                req.begin()
        finally:
            if type(result) not in _NO_CLOSE:      # a failed getattr() costs an exception
                _close(result)


def _close(result) -> None:
    close = getattr(result, "close", None)
    if close is not None:
        close()


def load_callable(module, name: str):
    app = getattr(module, name, None)
    if app is None:
        raise LookupError(f"callable {name!r} not found in {module.__name__}")
    return app


def flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001
            pass
