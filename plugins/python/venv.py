"""``--virtualenv``/``--home``/``--venv``/``--pyhome``: the app runs with that environment's packages.

uWSGI embeds the interpreter and points PYTHONHOME at the environment. uwsgi-py
is already a running interpreter, so:

- when the environment has uwsgi-py installed, the server re-executes itself
  with the environment's own interpreter (first start only, before anything is
  bound); its exec reloads then keep that interpreter;
- otherwise the environment must be for this server's Python version, and its
  site-packages (with their ``.pth`` files) go first on ``sys.path``;
- any other case is a one-line start-up error naming the two versions.
"""
from __future__ import annotations

import glob
import os
import site
import sys

from . import EXEC_MARK

REEXEC = "--virtualenv {path}: re-executing with {python} (uwsgi-py is installed there)"
SITE_FIRST = "--virtualenv {path}: its site-packages come first on sys.path ({site})"


class VenvError(Exception):
    """The one line the user sees."""


class Venv:
    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        self.python = os.path.join(self.path, "bin", "python")
        self.site_dirs = sorted(glob.glob(os.path.join(self.path, "lib", "python3*", "site-packages")))

    def version(self) -> str | None:
        """``3.11`` from its ``lib/python3.11/site-packages``."""
        if self.site_dirs:
            return os.path.basename(os.path.dirname(self.site_dirs[-1]))[len("python"):]
        return None

    def has_uwsgi_py(self) -> bool:
        return any(glob.glob(os.path.join(d, "uwsgi_py-*.dist-info")) for d in self.site_dirs) \
            and os.access(self.python, os.X_OK)

    def is_running(self) -> bool:
        """True when this interpreter is the environment's own."""
        return os.path.realpath(sys.prefix) == os.path.realpath(self.path)


def check(path: str, exec_ok: bool = True) -> tuple[Venv, str]:
    """What to do with ``path``: ``"running"``, ``"exec"`` or ``"site"``; VenvError otherwise.

    ``"exec"`` (re-exec with its interpreter) only when ``exec_ok``; the sys.path way needs
    the same Python version."""
    if not os.path.isdir(path):
        raise VenvError(f"--virtualenv: {path!r} is not a directory")
    venv = Venv(path)
    if venv.is_running():
        return venv, "running"
    if exec_ok and venv.has_uwsgi_py():
        return venv, "exec"
    ours = f"{sys.version_info[0]}.{sys.version_info[1]}"
    theirs = venv.version()
    if theirs is None:
        raise VenvError(f"--virtualenv: {path!r} has no lib/python3.X/site-packages: "
                        f"not a Python environment")
    if theirs != ours:
        raise VenvError(f"--virtualenv: {path!r} is a Python {theirs} environment and this "
                        f"server runs Python {ours}: install uwsgi-py in it, or use a "
                        f"Python {ours} environment")
    return venv, "site"


def site_first(venv: Venv) -> list[str]:
    """Put the environment's site-packages (and what its .pth files add) first on sys.path."""
    before = list(sys.path)
    for directory in venv.site_dirs:
        site.addsitedir(directory)
    added = [p for p in sys.path if p not in before]
    sys.path[:] = added + before
    return added


def reexec(venv: Venv) -> None:
    """Become the environment's interpreter running the same command line (never returns)."""
    env = dict(os.environ)
    env[EXEC_MARK] = venv.path
    env["VIRTUAL_ENV"] = venv.path
    args = [venv.python, "-m", "uwsgi_py", *sys.argv[1:]]
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os.execve(venv.python, args, env)
