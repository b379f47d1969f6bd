"""A Ruby child process: started by a worker, loads the app, answers requests."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass

from uwsgi_py import Instance

from . import api, logs, wire

BRIDGE_RB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bridge.rb")
BOOT_TIMEOUT = 60.0   # seconds a Ruby child may take to load the app
STOP_TIMEOUT = 5.0    # seconds it may take to exit once its channel is closed
GONE_GRACE = 1.0      # seconds to let a child that closed its channel finish dying


class RubyError(Exception):
    """A Ruby exception (the app's, or a load error), with its Ruby backtrace."""

    def __init__(self, cls: str, message: str, backtrace: list[str]):
        self.cls = cls
        self.message = message
        self.backtrace = backtrace
        lines = "".join(f"\n    {line}" for line in backtrace)
        super().__init__(f"{cls}: {message}{lines}")

    @classmethod
    def from_payload(cls, payload: bytes) -> "RubyError":
        name, message, backtrace = wire.unpack(payload)
        text = _text
        return cls(text(name), text(message), [text(line) for line in backtrace])


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


@dataclass(frozen=True)
class Launch:
    """How to start a Ruby child: interpreter, its flags, the config.ru."""

    ruby: str
    config: str
    flags: tuple[str, ...] = ()

    def argv(self, fd: int) -> list[str]:
        return [self.ruby, *self.flags, BRIDGE_RB, str(fd), self.config]


def _death_signal():
    """A preexec function: the child gets SIGKILL when its worker dies (Linux)."""
    try:
        import ctypes
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def preexec() -> None:
        prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    return preexec


class RubyChild:
    """One Ruby process and this side of its socketpair."""

    def __init__(self, launch: Launch, server):
        self.launch = launch
        self.server = server
        self.proc: subprocess.Popen | None = None
        self.chan: wire.Channel | None = None
        self.ready = False
        self.started = 0.0
        self.info: dict = {}

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else 0

    def spawn(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.proc = subprocess.Popen(
                self.launch.argv(theirs.fileno()), pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL, preexec_fn=_death_signal())
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        self.chan = wire.Channel(ours)
        self.started = time.monotonic()
        init = api.init_constants(self.server)
        init["worker"] = Instance(self.server).worker_id
        self.chan.send_value(wire.INIT, init, time.monotonic() + BOOT_TIMEOUT)

    def next_frame(self, deadline: float | None) -> tuple[bytes, bytes]:
        """The next frame that needs the caller; UWSGI calls and log writes are served here."""
        chan = self.chan
        while True:
            kind, payload = chan.frame(deadline)
            if kind == wire.CALL:
                answer, data = api.answer(self.server, payload)
                chan.send(answer, data, deadline)
            elif kind == wire.WRITE:
                api.write_log(payload)
            else:
                return kind, payload

    def wait_ready(self, deadline: float | None) -> dict:
        """Block until the app is loaded; RubyError if Ruby could not load it."""
        kind, payload = self.next_frame(deadline)
        if kind == wire.EXCEPTION:
            raise RubyError.from_payload(payload)
        if kind != wire.READY:
            raise wire.ProtocolError(f"expected READY from the ruby child, got {kind!r}")
        self.ready = True
        self.info = {_text(k): (_text(v) if isinstance(v, bytes) else v)
                     for k, v in wire.unpack(payload).items()}
        return self.info

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_text(self) -> str:
        return logs.exit_text(self.proc.returncode if self.proc else None)

    def kill(self, grace: float = 0.0) -> str:
        """Make sure the process is gone (after ``grace`` seconds, SIGKILL); how it ended."""
        if self.chan is not None:
            self.chan.close()
        if self.proc is None:
            return "not started"
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.exit_text()

    def stop(self) -> str:
        """Graceful: close the channel (Ruby exits at end of file), wait, then kill."""
        return self.kill(STOP_TIMEOUT)
