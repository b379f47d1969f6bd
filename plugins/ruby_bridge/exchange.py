"""One request's conversation with the Ruby child, frame by frame."""
from __future__ import annotations

import os
import socket
from http import HTTPStatus

from . import wire
from .child import RubyChild, RubyError

REASONS = {status.value: status.phrase for status in HTTPStatus}
MAX_READ = 1 << 16
# the worker's CGI vars that Rack::Lint refuses (use the names without HTTP_)
NOT_RACK = ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH")
OPTIONAL_WHEN_EMPTY = ("CONTENT_LENGTH", "CONTENT_TYPE")


def rack_vars(cgi: dict[str, str]) -> dict[str, str]:
    """The CGI part of the Rack env (SPEC: omit vars that would be empty)."""
    env = dict(cgi)
    for key in OPTIONAL_WHEN_EMPTY:
        if key in env and not env[key]:
            del env[key]
    for key in NOT_RACK:
        env.pop(key, None)
    if env.get("SCRIPT_NAME") == "/":
        env["SCRIPT_NAME"] = ""
    if not env.get("SCRIPT_NAME") and not env.get("PATH_INFO"):
        env["PATH_INFO"] = "/"
    if not env.get("SERVER_NAME"):  # nginx's $server_name is empty without server_name
        env["SERVER_NAME"] = socket.gethostname()
    return env


def status_line(code: int) -> str:
    return f"{code} {REASONS.get(code, 'Unknown')}"


class Exchange:
    """Sends the request, then serves Ruby's frames until DONE or EXCEPTION.

    A failure on our side (the client left, a bad body) is remembered, Ruby is
    told to stop (ABORT), the rest of its frames are drained so the channel
    stays in step, and the failure is raised at the end.
    """

    def __init__(self, child: RubyChild, req, deadline: float | None):
        self.child = child
        self.req = req
        self.deadline = deadline
        self.failure: BaseException | None = None
        self.handlers = {
            wire.HEAD: self.head, wire.BODY: self.body, wire.PATH: self.path,
            wire.READ: self.read, wire.DONE: self.done, wire.EXCEPTION: self.exception,
        }

    def run(self) -> None:
        req = self.req
        length = -1 if req.head.chunked else req.head.length
        self.send(wire.REQUEST, wire.pack_env(rack_vars(req.vars), length))
        while True:
            kind, payload = self.child.next_frame(self.deadline)
            handler = self.handlers.get(kind)
            if handler is None:
                raise wire.ProtocolError(f"unexpected frame {kind!r} during a request")
            try:
                if handler(payload):
                    break
            except (wire.RubyGone, wire.RubyTimeout, wire.ProtocolError):
                raise
            except Exception as e:  # noqa: BLE001 - remembered, raised once Ruby is done
                self.abort(e)
        if self.failure is not None:
            raise self.failure

    def send(self, kind: bytes, payload: bytes | bytearray = b"") -> None:
        self.child.chan.send(kind, payload, self.deadline)

    def abort(self, error: BaseException) -> None:
        if self.failure is None:
            self.failure = error
            self.send(wire.ABORT)

    # ---- frame handlers: True ends the exchange ---------------------------------
    def head(self, payload: bytes) -> bool:
        code, headers = wire.unpack(payload)
        if self.failure is None:
            self.req.start(status_line(code),
                           [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers])
        return False

    def body(self, payload: bytes) -> bool:
        if self.failure is None:
            self.req.write(payload)
        return False

    def path(self, payload: bytes) -> bool:
        if self.failure is None:
            fd = os.open(payload, os.O_RDONLY | os.O_CLOEXEC)
            try:
                self.req.sendfile(fd, 0, os.fstat(fd).st_size)
            finally:
                os.close(fd)
        return False

    def read(self, payload: bytes) -> bool:
        want = max(0, min(wire.unpack(payload), MAX_READ))
        if self.failure is not None:
            self.send(wire.DATA)
            return False
        try:
            data = self.req.input.read(want)
        except Exception as e:  # noqa: BLE001 - the client's fault: Ruby sees an IOError
            self.failure = e
            self.send(wire.ERROR, wire.pack(["IOError", f"reading the request body: {e}"]))
            return False
        self.send(wire.DATA, data)
        return False

    def done(self, payload: bytes) -> bool:
        return True

    def exception(self, payload: bytes) -> bool:
        if self.failure is None:
            self.failure = RubyError.from_payload(payload)
        return True
