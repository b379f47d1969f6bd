"""uWSGI options that uwsgi-py does not declare: accepted without effect, or refused.

A key that is not a declared option is looked up here (the registry always
wins, so declaring an option later simply takes it out of these tables):

- ``NO_EFFECT``: uWSGI options that change nothing here; they are accepted and
  one info line per option says why.
- every other uWSGI 2.0 option (``uwsgi_names.NAMES``): not implemented yet and
  it would change behaviour, so start-up fails with one line naming them.
- anything else is unknown to uWSGI too: a placeholder (``%(key)``), with a
  warning unless the config refers to it.
"""
from __future__ import annotations

NO_EFFECT_KIND, NOT_IMPLEMENTED_KIND = "no effect", "not implemented"

_QUIET_CLIENT = "a client that went away never raises an error in the app here"
_LOG_FORMAT = "log lines keep uwsgi-py's format"
_TITLES = "process titles are not changed"

NO_EFFECT: dict[str, str] = {
    "thunder-lock": "the kernel already wakes one worker per connection (EPOLLEXCLUSIVE), "
                    "and with --threads one thread of the worker, waiting in its shared epoll",
    "single-interpreter": "each worker runs a single interpreter",
    "offload-threads": "workers write their own responses (sendfile for files)",
    "offload-thread": "workers write their own responses (sendfile for files)",
    "py-call-osafterfork": "os.fork() hooks run as in any Python process",
    "py-callos-afterfork": "os.fork() hooks run as in any Python process",
    "py-call-uwsgi-fork-hooks": "os.fork() hooks run as in any Python process",
    "ignore-sigpipe": _QUIET_CLIENT,
    "ignore-write-errors": _QUIET_CLIENT,
    "disable-write-exception": _QUIET_CLIENT,
    "wsgi-disable-file-wrapper": "wsgi.file_wrapper here serves any file-like object",
    "post-buffering": "the app reads the request body as it asks for it",
    "post-buffering-bufsize": "the app reads the request body as it asks for it",
    "harakiri-verbose": "the harakiri log lines are always the same",
    "auto-procname": _TITLES, "procname": _TITLES, "procname-prefix": _TITLES,
    "procname-prefix-spaced": _TITLES, "procname-append": _TITLES, "procname-master": _TITLES,
    "log-date": _LOG_FORMAT, "log-master": _LOG_FORMAT, "log-4xx": _LOG_FORMAT,
    "log-5xx": _LOG_FORMAT, "log-slow": _LOG_FORMAT, "log-micros": _LOG_FORMAT,
    "log-x-forwarded-for": _LOG_FORMAT, "log-big": _LOG_FORMAT, "log-zero": _LOG_FORMAT,
    "logformat": _LOG_FORMAT, "log-format": _LOG_FORMAT, "logformat-strftime": _LOG_FORMAT,
    "log-format-strftime": _LOG_FORMAT, "threaded-logger": _LOG_FORMAT,
    "max-fd": "the open-files limit is left as the system set it",
    "cpu-affinity": "workers are not pinned to CPUs",
    "reaper": "the master always reaps its workers",
    "close-on-exec": "listening sockets are already close-on-exec in the app's children",
    "close-on-exec2": "listening sockets are already close-on-exec in the app's children",
    "binary-path": "a reload re-executes the same Python",
    "ksm": "memory pages are not marked mergeable",
    "manage-script-name": "without mount points there is no SCRIPT_NAME to strip",
    "so-keepalive": "TCP keepalive probes are left to the system",
    "plugin-dir": "plugins are found through Python entry points",
    "no-site": ("the Python running uwsgi-py has imported site already (that is how it finds "
                "uwsgi-py): its site-packages stay on sys.path"),
    # upkeep.check_harakiri kills at once; the graceful attempt belongs there (after issue 17)
    "harakiri-graceful-timeout": ("a harakiri SIGKILLs the worker at once, without the "
                                  "graceful signal first"),
    "harakiri-graceful-signal": ("a harakiri SIGKILLs the worker at once, without the "
                                 "graceful signal first"),
    "plugins-dir": "plugins are found through Python entry points",
}


def classify(name: str) -> str | None:
    """NO_EFFECT_KIND, NOT_IMPLEMENTED_KIND, or None for a name uWSGI does not know."""
    if name in NO_EFFECT:
        return NO_EFFECT_KIND
    from .uwsgi_names import NAMES     # 940 names: loaded only when a key is not declared
    return NOT_IMPLEMENTED_KIND if name in NAMES else None


def known_names() -> frozenset[str]:
    """Every name worth suggesting for a misspelled key (besides declared options)."""
    from .uwsgi_names import NAMES
    return NAMES | frozenset(NO_EFFECT)
