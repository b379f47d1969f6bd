"""Dropping root: ``--uid``/``--gid`` as uWSGI does it (MASTER-2 step 4).

Order: ``setgid``, then the supplementary groups (the user's groups through
``initgroups`` when ``--uid`` names a user, none otherwise), then ``setuid``;
afterwards ``setuid(0)`` must fail. Without root, asking for another user or
group is an error, and asking for the current one is accepted (an exec reload
of an instance that already dropped).

Where it happens (``cli.start``): after ``--pidfile`` (PID-1) and before the
sockets are bound, unless ``--chown-socket`` (dropped right after binding, so
the chown can work) or ``--master-as-root`` (the master keeps root; each
worker drops right after fork). ``--pidfile2`` is written right after the drop
(PID-2); the safe pidfiles once the workers run (PID-3).

``--refork`` (uWSGI's, for jailing systems): right after that point the process
forks once and the parent exits 0, so the instance goes on in a new process.
uWSGI does it each time it passes its privilege code; here it happens once, on a
first start, and ``--pidfile`` is rewritten with the new pid.
"""
from __future__ import annotations

import grp
import os
import pwd
import sys

from . import log
from .options import Option, OptionError


def user(text: str) -> tuple[int, str | None]:
    """``--uid`` value -> (uid, user name if known)."""
    text = str(text).strip()
    if text.isdigit():
        uid = int(text)
        try:
            return uid, pwd.getpwuid(uid).pw_name
        except KeyError:
            return uid, None
    try:
        return pwd.getpwnam(text).pw_uid, text
    except KeyError:
        raise OptionError(f"--uid: user {text!r} not found") from None


def group(text: str) -> int:
    """``--gid`` value -> gid."""
    text = str(text).strip()
    if text.isdigit():
        return int(text)
    try:
        return grp.getgrnam(text).gr_gid
    except KeyError:
        raise OptionError(f"--gid: group {text!r} not found") from None


def owner(text: str) -> tuple[int, int]:
    """``--chown-socket USER[:GROUP]`` -> (uid, gid); -1 keeps that part."""
    name, _, gname = str(text).partition(":")
    uid = user(name)[0] if name else -1
    gid = group(gname) if gname else -1
    return uid, gid


NOT_AFTER_DROP = {"__main__", "completion"}   # run as a command, never by a started server


def import_the_rest() -> None:
    """Import now what a later path imports lazily: the new user may not be able to read
    the interpreter's library or site-packages (a Python under ~root). The stdlib modules
    the core defers (an error's traceback, a reload's or a status reply's JSON, an exec hook,
    a PROXY line, prctl through ctypes) and every module of uwsgi-py's own packages (a
    plugin's feature modules: cheaper mode at the FIFO's first ``+``, the python plugin's
    loader under --lazy-apps). Only starts that drop privileges pay for it."""
    import ctypes  # noqa: F401
    import importlib
    import ipaddress  # noqa: F401
    import json  # noqa: F401
    import pkgutil
    import subprocess  # noqa: F401
    import traceback  # noqa: F401
    packages = [name for name in list(sys.modules)
                if name == "uwsgi_py" or (name.startswith("uwsgi_py_") and "." not in name)]
    for name in packages:
        for info in pkgutil.iter_modules(getattr(sys.modules[name], "__path__", [])):
            if info.name not in NOT_AFTER_DROP and not info.name.endswith("__mypyc"):
                importlib.import_module(f"{name}.{info.name}")


def drop(settings) -> bool:
    """Switch to ``--gid``/``--uid``; True if anything changed. OptionError on failure."""
    uid, uname = user(settings.uid) if settings.uid else (None, None)
    gid = group(settings.gid) if settings.gid else None
    if uid is None and gid is None:
        if os.getuid() == 0:
            log.log(log.RUNNING_AS_ROOT)
        return False
    import_the_rest()
    if os.getuid() != 0:
        # not root: only "stay who you are" is possible (an exec reload after the drop)
        if gid is not None and gid != os.getgid():
            raise OptionError(f"--gid {settings.gid}: cannot setgid() when not running as root")
        if uid is not None and uid != os.getuid():
            raise OptionError(f"--uid {settings.uid}: cannot setuid() when not running as root")
        return False
    try:
        if gid is not None:
            os.setgid(gid)
            if uid is not None and uname:
                os.initgroups(uname, gid)
            else:
                os.setgroups([])
        elif uid is not None:
            # only --uid: keep no root group behind
            primary = pwd.getpwuid(uid).pw_gid if uname else os.getgid()
            os.setgid(primary)
            if uname:
                os.initgroups(uname, primary)
            else:
                os.setgroups([])
        if uid is not None:
            os.setuid(uid)
    except OSError as e:
        raise OptionError(f"cannot drop privileges to uid {settings.uid} gid {settings.gid}: "
                          f"{e.strerror}") from None
    if os.getuid() != 0:
        try:
            os.setuid(0)
        except OSError:
            pass
        else:
            raise OptionError("privileges were not dropped: setuid(0) still works")
    log.log(log.PRIVILEGES.format(uid=os.getuid(), user=_user_name(os.getuid()), gid=os.getgid(),
                                  group=_group_name(os.getgid()),
                                  groups=",".join(str(g) for g in os.getgroups())))
    return True


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return "?"


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return "?"



def options() -> list[Option]:
    return [Option("refork", "fork() once more after dropping privileges: the parent exits "
                   "0 and the instance goes on in the child (first start only)", flag=True)]


def refork() -> None:
    """Fork; the parent exits 0 at once, the child returns (``--refork``)."""
    log.log(log.REFORK)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    if os.fork() > 0:
        os._exit(0)
