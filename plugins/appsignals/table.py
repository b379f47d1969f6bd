"""Pure rules of uWSGI's signal framework: targets, cron matching, schedules, option syntax.

Nothing here touches a process or an fd, so all of it is unit-tested directly.
"""
from __future__ import annotations

import math
import re
import time

MAX_ENTRIES = 64          # uWSGI: 64 timers, 64 rb timers, 64 file monitors, 64 crons
END_CODE = 30             # uWSGI's UWSGI_END_CODE: a mule that ends (end_me)

# ---- log lines (uWSGI's wording) ------------------------------------------------
REGISTERED = "[uwsgi-signal] signum {sig} registered (wid: {wid} modifier1: 0 target: {target})"
REGISTERED_DEFAULT = ("[uwsgi-signal] signum {sig} registered (wid: {wid} modifier1: 0 target: "
                      "default, any worker)")
NO_MASTER = "you cannot register signals without a master"
ONLY_MASTER_WORKERS = "only the master and the workers can register signal handlers"
REREGISTER = "[uwsgi-signal] you cannot re-register a signal as the master !!!"
UNSUPPORTED_TARGET = ("[uwsgi-signal] unsupported signal target {target!r}: uwsgi-py has no "
                      "spooler, farms or subscriptions")
INVALID_TARGET = "invalid signal target: {target}"
NOT_DELIVERED = "could not deliver signal {sig} to {what}"
QUEUE_FULL = "*** SIGNAL QUEUE IS FULL: {what} (you can tune it with --signal-bufsize) ***"
ERROR_MANAGING = "error managing signal {sig} on {kind} {id}"
TOO_MANY = "you can register max {max} {what} !!!"
CRON_SIGNAL = "[uwsgi-cron] routing signal {sig}"
CRON_RUNNING = '[uwsgi-cron] running "{command}" (pid {pid})'
CRON_EXITED = '[uwsgi-cron] command "{command}" running with pid {pid} exited after {secs} second(s)'
CRON_HARAKIRI = '*** HARAKIRI ON CRON "{command}" (pid: {pid}) ***'
TOUCH_SIGNAL = "[uwsgi-touch-signal] raising {sig}"
FS_SIGNAL = "[uwsgi-fsmon] {path} has been modified: raising signal {sig}"
FS_RELOAD = "[uwsgi-fsmon] {path} has been modified"

_WORKER_N = re.compile(r"worker([0-9]+)")
_MULE_N = re.compile(r"mule([0-9]+)")


def check_target(target: str) -> str | None:
    """None if ``target`` is one uwsgi-py routes, else the log line refusing it."""
    if target in ("", "worker", "worker0", "workers", "active-workers", "mules", "mule"):
        return None
    if _WORKER_N.fullmatch(target) or _MULE_N.fullmatch(target):
        return None
    return UNSUPPORTED_TARGET.format(target=target)


def destinations(target: str, numproc: int, mules: int) -> tuple[str, list[int]] | str:
    """Where a signal for ``target`` goes: ``(kind, ids)`` with kind ``any-worker``,
    ``workers``, ``active-workers``, ``any-mule`` or ``mules`` (ids are slot numbers),
    or the log line saying why it goes nowhere (uWSGI's ``uwsgi_route_signal``)."""
    if target in ("", "worker", "worker0"):
        return "any-worker", []
    if target == "workers":
        return "workers", list(range(1, numproc + 1))
    if target == "active-workers":
        return "active-workers", list(range(1, numproc + 1))
    if target == "mules":
        return "mules", list(range(1, mules + 1))
    if target in ("mule", "mule0"):
        return ("any-mule", []) if mules else NOT_DELIVERED.format(sig="{sig}", what="a mule")
    match = _WORKER_N.fullmatch(target)
    if match:
        n = int(match.group(1))
        return ("workers", [n]) if 1 <= n <= numproc else INVALID_TARGET.format(target=target)
    match = _MULE_N.fullmatch(target)
    if match:
        n = int(match.group(1))
        return ("mules", [n]) if 1 <= n <= mules else INVALID_TARGET.format(target=target)
    return f"^^^ UNSUPPORTED SIGNAL TARGET: {target} ^^^"


def signum(value) -> int:
    """A uWSGI signal number (0-255)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"a signal number must be an int, not {type(value).__name__}")
    if not 0 <= value <= 255:
        raise ValueError(f"signal number {value} is not in 0-255")
    return value


# ---- cron (uWSGI's uwsgi_cron_task_needs_execution) -------------------------------------

def cron_matches(tm: time.struct_time, minute: int, hour: int, day: int, month: int,
                 week: int) -> bool:
    """Whether a cron entry runs in the minute of ``tm`` (local time).

    -1 means every value and -N every value divisible by N (``*/N``); week 7 is
    Sunday; day of month and day of week are ORed when both are given (as cron
    does), ANDed otherwise, exactly as uWSGI 2.0 decides.
    """
    now = {"min": tm.tm_min, "hour": tm.tm_hour, "mon": tm.tm_mon, "mday": tm.tm_mday,
           "wday": (tm.tm_wday + 1) % 7}   # struct_time: Monday is 0; cron: Sunday is 0
    want = {"min": minute, "hour": hour, "mon": month, "mday": day, "wday": 0 if week == 7 else week}
    for key, value in (("min", minute), ("hour", hour), ("mon", month), ("mday", day),
                       ("wday", week)):
        if value < 0 and now[key] % abs(value) == 0:
            want[key] = now[key]
    same = now["min"] == want["min"] and now["hour"] == want["hour"] and now["mon"] == want["mon"]
    if day >= 0 and week >= 0:
        return same and (now["mday"] == want["mday"] or now["wday"] == want["wday"])
    return same and now["mday"] == want["mday"] and now["wday"] == want["wday"]


def cron_due(last_job: int, now: int) -> bool:
    """uWSGI fires a matching cron once per minute: ``now - last_job >= 60``."""
    return now - last_job >= 60


def next_minute(wall: float) -> float:
    """Seconds from ``wall`` (epoch) to the start of the next minute."""
    return (math.floor(wall / 60) + 1) * 60 - wall


# ---- timers ------------------------------------------------------------------------------

def catch_up(deadline: float, period: float, now: float) -> float:
    """The next deadline after a firing due at ``deadline``: one period later, or, when
    more periods than one were missed (a reload took longer), the next one on the
    same phase: a timer fires once for what it missed, never once per missed period."""
    nxt = deadline + period
    if nxt <= now:
        nxt += math.ceil((now - nxt) / period) * period
        if nxt <= now:
            nxt += period
    return nxt


# ---- option syntax ---------------------------------------------------------------------

def parse_timer(raw: str) -> tuple[int, int]:
    """``--timer "SIGNAL SECONDS"``."""
    parts = str(raw).split()
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ValueError("is not '<signal> <seconds>'")
    sig, secs = int(parts[0]), int(parts[1])
    if sig > 255 or secs < 1:
        raise ValueError("needs a signal in 0-255 and at least 1 second")
    return sig, secs


def parse_file_signal(raw: str) -> tuple[str, int]:
    """``--touch-signal "FILE SIGNAL"`` (also ``FILE:SIGNAL`` is not uWSGI's: refused)."""
    path, _, sig = str(raw).rstrip().rpartition(" ")
    if not path or not sig.isdigit() or int(sig) > 255:
        raise ValueError("is not '<file> <signal>' with a signal in 0-255")
    return path, int(sig)


def _cron_field(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"cron field {text!r} is not a number (uWSGI's syntax: -1 for every, "
                         f"-N for every Nth)") from None


def parse_cron(raw: str) -> dict:
    """``--cron "MIN HOUR DAY MONTH WEEKDAY command"`` (uWSGI's uwsgi_cron_add)."""
    parts = str(raw).split(None, 5)
    if len(parts) < 6:
        raise ValueError("is not 'minute hour day month weekday command' (invalid cron syntax)")
    minute, hour, day, month, week = (_cron_field(p) for p in parts[:5])
    return {"minute": minute, "hour": hour, "day": day, "month": month, "week": week,
            "command": parts[5], "unique": False, "harakiri": None}


def parse_cron2(raw: str) -> dict:
    """``--cron2 "minute=5,hour=-1,unique=1,harakiri=30 command"``: unset fields are -1."""
    text = str(raw)
    spec, sep, command = text.partition(" ")
    if not sep or "=" not in spec:
        if "=" in text:
            raise ValueError("has no command (unable to parse cron definition)")
        spec, command = "", text
    entry = {"minute": -1, "hour": -1, "day": -1, "month": -1, "week": -1,
             "command": command.strip(), "unique": False, "harakiri": None}
    for item in filter(None, spec.split(",")):
        key, eq, value = item.partition("=")
        if not eq or key not in ("minute", "hour", "day", "month", "week", "unique", "harakiri",
                                 "legion"):
            raise ValueError(f"has an unknown key {key!r} (unable to parse cron definition)")
        if key == "legion":
            raise ValueError("uses legion=, and uwsgi-py has no legions")
        number = _cron_field(value)
        entry[key] = bool(number) if key == "unique" else number
    if not entry["command"]:
        raise ValueError("has no command (invalid command in cron definition)")
    return entry
