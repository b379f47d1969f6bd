"""Several WSGI apps in one worker: ``--mount`` and ``--manage-script-name``.

uWSGI keeps one app per mountpoint; a request goes to the app whose mountpoint
equals its SCRIPT_NAME, else to the first app loaded (the default app). With
``--manage-script-name`` the longest mountpoint that starts PATH_INFO (at a
``/`` boundary) moves from PATH_INFO to SCRIPT_NAME first. uWSGI gives each
mount its own sub-interpreter; here every app shares the worker's interpreter.
With ``--vhost`` (``--vhost-host``) the app id is ``SERVER_NAME|SCRIPT_NAME``
(``HTTP_HOST|SCRIPT_NAME``), so ``--mount 'example.com|/=app.py'`` serves one host.
"""
from __future__ import annotations

SKIP = "mountpoint {mountpoint} already configured. skip."
MOUNTING = "mounting {target} on {mountpoint}"
UNABLE = "unable to load app {n} (mountpoint='{mountpoint}') (callable not found or import error)"


def parse_mount(value: str) -> tuple[str, str]:
    """``/prefix=target`` -> (mountpoint, target); ValueError when malformed."""
    mountpoint, sep, target = value.partition("=")
    if not sep or not target.strip():
        raise ValueError("is not MOUNTPOINT=APP (a .py/.wsgi file or module:callable)")
    return mountpoint.strip(), target.strip()


def is_file_target(target: str) -> bool:
    return target.endswith((".py", ".wsgi"))


def split_script_name(path: str, mountpoints: list[str]) -> tuple[str, str] | None:
    """(SCRIPT_NAME, PATH_INFO) for the longest mountpoint that starts ``path`` at a
    ``/`` boundary (a trailing ``/`` of a mountpoint is ignored), or None."""
    best = None
    best_len = 0
    for mountpoint in mountpoints:
        mp = mountpoint[:-1] if mountpoint.endswith("/") else mountpoint
        n = len(mp)
        if n <= best_len or not path.startswith(mp):
            continue
        if len(path) > n and path[n] != "/":
            continue     # /appx is not under /app
        best, best_len = mp, n
    if best is None:
        return None
    return best, path[best_len:]


class Mounts:
    """The one app the core sees (modifier1 0) when several are loaded or
    ``--manage-script-name`` is on: it picks the app of each request."""

    modifier1 = 0

    def __init__(self, apps: list, manage_script_name: bool, vhost: str | None = None):
        self.apps = {}           # mountpoint -> app, in load order
        for app in apps:
            self.apps.setdefault(app.name, app)
        self.default = apps[0]
        self.name = self.default.name
        self.manage = manage_script_name
        self.mountpoints = [mp for mp in self.apps if mp]
        # --vhost/--vhost-host: the request variable that names the host of the app id
        self.vhost = vhost

    def __call__(self, req) -> None:
        env = req.vars
        if self.manage:
            path = env.get("PATH_INFO", "")
            if len(path) > 1:
                found = split_script_name(path, self.mountpoints)
                if found is not None:
                    env["SCRIPT_NAME"], env["PATH_INFO"] = found
        key = env.get("UWSGI_APPID")
        if not key:
            key = env.get("SCRIPT_NAME", "")
            if self.vhost:
                key = f"{env.get(self.vhost, '')}|{key}"
        self.apps.get(key, self.default)(req)
