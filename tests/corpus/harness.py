"""Start a corpus config with uwsgi-py or real uWSGI, app and socket given on the command line.

Both servers get the same treatment, in a sandbox (sandbox.py): the config file as
published, plus ``--http-socket 127.0.0.1:PORT --chdir RUN_DIR`` and the corpus app
in place of the config's own (``--module app`` / ``--wsgi-file app.py``, ``--callable
application``); the directories its paths need and the users it names are created,
as a deployment has them; a virtualenv it names becomes the server's own Python.
Everything else in the file stays as written, so what one server refuses or cannot
start, the other meets too.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import sandbox  # noqa: E402

CORPUS = Path(__file__).resolve().parent / "ini"
PORT = 49999
APP_KEYS = {"module", "wsgi", "wsgi-file", "file", "mount", "paste", "wsgi-env-behaviour"}
FILE_APP_KEYS = {"wsgi-file", "file"}
HOME_KEYS = {"home", "virtualenv", "venv", "pyhome"}
PATH_KEYS = {"socket", "uwsgi-socket", "http-socket", "http", "pidfile", "pidfile2",
             "safe-pidfile", "safe-pidfile2", "logto", "logto2", "daemonize", "daemonize2",
             "stats", "master-fifo", "touch-reload", "touch-chain-reload", "req-logger", "logger"}
_LINE = re.compile(r"^\s*([^;#\[=\s][^=]*?)\s*=\s*(.*?)\s*$")


def config_items(path: Path) -> list[tuple[str, str]]:
    """The (key, expanded value) pairs uwsgi-py reads; a plain line scan if it cannot."""
    from uwsgi_py import config
    from uwsgi_py.options import OptionError
    cwd = os.getcwd()
    try:
        os.chdir(path.parent)
        items, _, _ = config.gather([path.name], dict(sandbox.ENV))
        return [(i.key, "" if i.value is True else str(i.value)) for i in items]
    except OptionError:
        with open(path, encoding="utf-8", errors="replace") as f:
            return [(m.group(1), m.group(2)) for line in f if (m := _LINE.match(line))]
    finally:
        os.chdir(cwd)


def _needs(items: list[tuple[str, str]]) -> tuple[list[str], list[str], list[str]]:
    """Directories the config's paths sit in, users and groups it names."""
    dirs, users, groups = set(), set(), set()
    for key, value in items:
        value = value.split(",")[0].strip()
        if key in PATH_KEYS:
            path = value.split(":", 1)[1] if value.startswith("file:") else value
            if "/" in path and not re.match(r"^[\w.-]*:\d+$", path):
                parent = os.path.dirname(os.path.join(sandbox.RUN_DIR, path))
                if parent and parent != "/":
                    dirs.add(os.path.normpath(parent))
        elif key == "uid" and value and not value.isdigit():
            users.add(value)
        elif key == "gid" and value and not value.isdigit():
            groups.add(value)
        elif key == "chown-socket" and value:
            user, _, group = value.partition(":")
            if user and not user.isdigit():
                users.add(user)
            if group and not group.isdigit():
                groups.add(group)
    return sorted(dirs), sorted(users), sorted(groups)


def command(server: str, items: list[tuple[str, str]], uwsgi_bin: str | None = None,
            registry=None) -> list[str]:
    keys = {k for k, _ in items}
    if server == "uwsgi":
        argv = [uwsgi_bin or sandbox.uwsgi_binary(), "--ini", "{FILE}"]
    else:
        argv = [sys.executable, "-m", "uwsgi_py", "--ini", "{FILE}"]
    argv += ["--http-socket", f"127.0.0.1:{PORT}", "--chdir", sandbox.RUN_DIR,
             "--callable", "application"]
    if keys & FILE_APP_KEYS:
        argv += ["--wsgi-file", "app.py"]
    if keys & (APP_KEYS - FILE_APP_KEYS) or not keys & APP_KEYS:
        argv += ["--module", "app"]
    if keys & HOME_KEYS:
        if server == "uwsgi":
            argv += ["--home", os.path.dirname(os.path.dirname(argv[0]))]
        elif registry is not None and registry.get("virtualenv") is not None:
            argv += ["--virtualenv", sys.prefix]
    return argv


def start(name: str, server: str, registry=None, uwsgi_bin: str | None = None,
          deadline: float = 10) -> dict:
    """Start corpus file ``name`` with ``server`` ("uwsgi-py" or "uwsgi"): the job's result."""
    path = CORPUS / name
    items = config_items(path)
    dirs, users, groups = _needs(items)
    job = {"job": "start", "file": str(path), "server": command(server, items, uwsgi_bin, registry),
           "dirs": dirs, "users": users, "groups": groups, "port": PORT, "deadline": deadline}
    return sandbox.run(job, timeout=deadline + 30)
