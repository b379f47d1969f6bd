"""systemd and Upstart: socket activation (SYSD-3/4/5) and sd_notify (SYSD-1/2).

Activation is read on a first start only and its variables are removed, so
neither workers, apps nor the next exec'd image see them; the core hands the
adopted sockets to the next image itself (SYSD-5's fix). Notifications are
sent from the master on a fresh datagram socket each time, as libsystemd's
``sd_notify()`` does: nothing to keep open, nothing to leak into workers, and
nothing to recreate after an exec reload (SYSD-2's fix).
"""
from __future__ import annotations

import os
import socket
import threading
import time

from uwsgi_py import adopt_listener, log_line

LISTEN_FDS_START = 3
SYSTEMD_VARS = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")
UPSTART_VARS = ("UPSTART_EVENTS", "UPSTART_FDS")
NOTIFY_SOCKET = "NOTIFY_SOCKET"

SYSTEMD_DETECTED = "- SystemD socket activation detected -"
UPSTART_DETECTED = "- Upstart socket bridge detected -"
NOT_A_LISTENER = "socket activation: fd {fd} is not a listening stream socket, ignored"
NOTIFY_FAILED = "sd_notify: cannot send to {address}: {error}"


# ---- socket activation ------------------------------------------------------

def activated_fds(environ=os.environ, pid: int | None = None) -> tuple[str, list[int]]:
    """(banner, fds) passed by systemd (LISTEN_FDS) or Upstart (UPSTART_FDS).

    Pops the variables either way (sd_listen_fds(unset_environment=1)).
    """
    pid = os.getpid() if pid is None else pid
    listen_pid = environ.get("LISTEN_PID", "")
    listen_fds = environ.get("LISTEN_FDS", "")
    events = environ.get("UPSTART_EVENTS", "")
    upstart_fd = environ.get("UPSTART_FDS", "")
    for name in SYSTEMD_VARS + UPSTART_VARS:
        environ.pop(name, None)
    if listen_pid.isdigit() and int(listen_pid) == pid and listen_fds.isdigit():
        return SYSTEMD_DETECTED, list(range(LISTEN_FDS_START, LISTEN_FDS_START + int(listen_fds)))
    if events == "socket" and upstart_fd.isdigit():
        return UPSTART_DETECTED, [int(upstart_fd)]
    return "", []


def adopt_activated(settings, environ=os.environ) -> list:
    """Listeners for the activated fds, in the default protocol.

    The core gives a listener whose address equals a configured socket that
    socket's protocol and place instead of binding it (SYSD-4's fix).
    """
    banner, fds = activated_fds(environ)
    if not fds:
        return []
    log_line(banner)
    out = []
    for fd in fds:
        listener = adopt_listener(fd, settings.protocol, activated=True)
        if listener is None:
            log_line(NOT_A_LISTENER.format(fd=fd))
            continue
        os.set_inheritable(fd, False)  # the core re-enables it for exec reloads only
        out.append(listener)
    return out


# ---- sd_notify ------------------------------------------------------------------

def _status(text: str) -> str:
    return f"STATUS={text}"


# master event -> builder of the datagram's lines (a human reads STATUS= in systemctl status)
EVENT_MESSAGES = {
    "ready": lambda info, reload: (
        [_status(f"uWSGI reload #{info['generation']}: new workers serving, "
                 "retiring the previous ones")] if reload
        else [_status(f"uWSGI is ready: {info['workers']} workers serving"), "READY=1",
              f"MAINPID={os.getpid()}"]),
    "reloading": lambda info, reload: [
        "RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}",
        _status(f"uWSGI is reloading ({info.get('kind', 'graceful')})")],
    "reloaded": lambda info, reload: [
        _status(f"uWSGI is ready: reload #{info.get('generation', '?')} done"), "READY=1"],
    "reload-refused": lambda info, reload: [
        _status(f"uWSGI reload refused ({info.get('error', '')}); still serving"), "READY=1"],
    "stopping": lambda info, reload: ["STOPPING=1", _status("uWSGI is stopping")],
    "paused": lambda info, reload: [_status("uWSGI is paused (send SIGTSTP to resume)")],
    "resumed": lambda info, reload: [_status("uWSGI is ready (resumed)")],
}
STARTING = [_status("initializing uWSGI")]
RESTARTING = [_status("initializing uWSGI after a reload")]
READY_NO_MASTER = [_status("uWSGI is ready (no master process)"), "READY=1"]


def event_message(event: str, info: dict, reload: bool) -> list[str] | None:
    """The sd_notify lines for a master event, or None if it has none."""
    build = EVENT_MESSAGES.get(event)
    return None if build is None else build(info, reload)


def notify_address(environ=os.environ) -> str | bytes | None:
    """NOTIFY_SOCKET as a sockaddr: a path, or ``@name`` for the abstract namespace."""
    value = environ.get(NOTIFY_SOCKET, "")
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None  # vsock and other address kinds are not supported


def notify(lines: list[str], environ=os.environ) -> bool:
    """Send ``lines`` as one datagram to NOTIFY_SOCKET; never blocks, never raises."""
    address = notify_address(environ)
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.setblocking(False)
            sock.sendto(("\n".join(lines) + "\n").encode(), address)
    except OSError as e:
        log_line(NOTIFY_FAILED.format(address=environ.get(NOTIFY_SOCKET), error=e.strerror or e))
        return False
    return True


# ---- the watchdog (WatchdogSec=) and start-up extensions ------------------------------------

def watchdog_interval(environ=os.environ, pid: int | None = None) -> float:
    """Seconds between two ``WATCHDOG=1`` (half of WATCHDOG_USEC, as sd_watchdog_enabled()
    advises), or 0 when systemd set no watchdog for this process."""
    usec = environ.get("WATCHDOG_USEC", "")
    owner = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return 0.0
    if owner and owner != str(os.getpid() if pid is None else pid):
        return 0.0
    return int(usec) / 2e6


class Watchdog:
    """Pings from the master's loop (every pass, every state: a long reload check too)."""

    def __init__(self, interval: float):
        self.interval = interval
        self.next = 0.0

    def cycle(self, now: float) -> None:
        if now >= self.next:
            self.next = now + self.interval
            notify(["WATCHDOG=1"])


def extend_timeout(seconds: int) -> list[str]:
    """Ask systemd for ``seconds`` more before READY=1 (a slow app is about to load)."""
    return [f"EXTEND_TIMEOUT_USEC={seconds * 1_000_000}",
            _status(f"loading the app (start-up timeout extended by {seconds} s)")]


class StartupExtension:
    """``--systemd-extend-timeout SECS``: EXTEND_TIMEOUT_USEC=SECS again every SECS/2 until
    READY=1, so an app that loads for longer than SECS (but keeps loading) is not killed.

    While the master imports the app its thread is busy: a helper thread renews then, and
    is joined before anything forks (``stop_thread``); afterwards the master's loop renews
    (``cycle``: lazy apps load in the workers) until the instance is ready (``done``).
    systemd accepts these only from the main pid, hence a thread, not a child process.
    """

    def __init__(self, seconds: int):
        self.seconds = seconds
        self.interval = max(0.5, seconds / 2)
        self.next = 0.0
        self.active = True
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def renew(self, now: float) -> None:
        if self.active and now >= self.next:
            self.next = now + self.interval
            notify(extend_timeout(self.seconds))

    def start_thread(self) -> None:
        self.renew(time.monotonic())
        self._thread = threading.Thread(target=self._run, name="sd-extend-timeout", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(max(0.0, self.next - time.monotonic())):
            self.renew(time.monotonic())

    def stop_thread(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def cycle(self, now: float) -> None:
        self.renew(now)

    def done(self) -> None:
        self.active = False
        self.stop_thread()

