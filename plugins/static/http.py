"""HTTP details of file responses: dates, validators, byte ranges (pure functions)."""
from __future__ import annotations

import time

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(epoch: float) -> str:
    """RFC 1123 date: ``Sun, 06 Nov 1994 08:49:37 GMT``."""
    t = time.gmtime(epoch)
    return (f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT")


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to a proleptic Gregorian date (what calendar.timegm counts)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def parse_http_date(text: str) -> int | None:
    """Epoch seconds of an RFC 1123 date (the only form uWSGI reads), or None.

    By hand: time.strptime imports a module on first use, which a worker running as
    another user may not be able to read any more."""
    parts = text.strip().split()
    if len(parts) != 6 or parts[5] != "GMT" or parts[2] not in _MONTHS:
        return None
    clock = parts[4].split(":")
    try:
        day, year = int(parts[1]), int(parts[3])
        hour, minute, second = (int(x) for x in clock)
        return _days_from_civil(year, _MONTHS.index(parts[2]) + 1, day) * 86400 \
            + hour * 3600 + minute * 60 + second
    except ValueError:
        return None


def etag(st) -> str:
    """A strong validator from the file's inode, mtime (ns) and size."""
    return f'"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"'


def etag_matches(header: str, tag: str) -> bool:
    """If-None-Match: ``*`` or a list of tags; weak comparison (``W/`` ignored)."""
    header = header.strip()
    if header == "*":
        return True
    bare = tag[2:] if tag.startswith("W/") else tag
    for item in header.split(","):
        item = item.strip()
        if item.startswith("W/"):
            item = item[2:]
        if item == bare:
            return True
    return False


def parse_range(header: str, size: int) -> tuple[int, int] | str | None:
    """One ``bytes=`` range of a ``size``-byte file.

    Returns ``(first, last)`` (inclusive), ``"unsatisfiable"`` (416), or None when
    the header is to be ignored (malformed, several ranges, another unit): the
    whole file is sent, as RFC 9110 allows.
    """
    unit, sep, spec = header.partition("=")
    if not sep or unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition("-")
    if not dash:
        return None
    first_text, last_text = first_text.strip(), last_text.strip()
    if not first_text:
        if not last_text.isdigit():
            return None
        suffix = int(last_text)
        if suffix == 0:
            return "unsatisfiable"
        return max(0, size - suffix), size - 1
    if not first_text.isdigit() or (last_text and not last_text.isdigit()):
        return None
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if last_text and last < first:
        return None
    if first >= size:
        return "unsatisfiable"
    return first, min(last, size - 1)
