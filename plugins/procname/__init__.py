"""Process titles as uWSGI 2.0 sets them (``--auto-procname`` and friends).

Titles are uWSGI's: ``uWSGI master`` and ``uWSGI worker N``, with
``--procname-prefix``/``--procname-prefix-spaced`` before and ``--procname-append``
after; ``--procname-master`` names the master and ``--procname`` every process.
Any ``--procname*`` option implies ``--auto-procname`` (uWSGI's
``UWSGI_OPT_PROCNAME``).

The title is set with the ``setproctitle`` package when it is installed
(``pip install 'uwsgi-py[procname]'``): ``ps`` and ``/proc/PID/cmdline`` show it.
Without it, ``prctl(PR_SET_NAME)`` sets the 15-byte name that ``ps -o comm``,
``top`` and ``/proc/PID/comm`` show.
"""
from __future__ import annotations

from uwsgi_py import Instance, Option, hookimpl

MASTER = "uWSGI master"
WORKER = "uWSGI worker {id}"
PR_SET_NAME = 15


@hookimpl
def uwsgi_add_options(registry):
    registry.add(
        Option("auto-procname", "name processes 'uWSGI master' and 'uWSGI worker N'", flag=True),
        Option("procname-prefix", "add a prefix to the process names", metavar="TEXT"),
        Option("procname-prefix-spaced", "add a prefix and a space to the process names",
               metavar="TEXT"),
        Option("procname-append", "append a string to the process names", metavar="TEXT"),
        Option("procname", "name every process TEXT", metavar="TEXT"),
        Option("procname-master", "name the master process TEXT", metavar="TEXT"),
    )


def enabled(s) -> bool:
    return bool(s.auto_procname or s.procname_prefix or s.procname_prefix_spaced
                or s.procname_append or s.procname or s.procname_master)


def title(s, name: str) -> str:
    """uWSGI's uwsgi_set_processname: prefix + name + append."""
    prefix = s.procname_prefix or (f"{s.procname_prefix_spaced} " if s.procname_prefix_spaced else "")
    return f"{prefix}{name}{s.procname_append or ''}"


def master_title(s) -> str:
    return title(s, s.procname_master or s.procname or MASTER)


def worker_title(s, wid: int) -> str:
    return title(s, s.procname or WORKER.format(id=wid))


def set_title(text: str) -> None:
    try:
        import setproctitle
    except ImportError:
        setproctitle = None
    if setproctitle is not None:
        setproctitle.setproctitle(text)
        return
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_NAME, ctypes.c_char_p(text.encode()[:15]), 0, 0, 0)
    except (OSError, AttributeError):
        pass


@hookimpl
def uwsgi_configure(settings):
    if enabled(settings):
        try:   # now, while every module is readable (before --uid)
            import setproctitle  # noqa: F401
        except ImportError:
            pass


@hookimpl
def uwsgi_master_init(master):
    if enabled(master.settings):
        set_title(master_title(master.settings))


@hookimpl
def uwsgi_post_fork(worker):
    s = worker.settings
    if enabled(s) and Instance(worker.server).master_pid:
        set_title(worker_title(s, worker.id))
