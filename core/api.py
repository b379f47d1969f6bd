"""The plugin API besides the hooks (docs/plugins.md, "The plugin API").

- logging: ``log_line``, ``log_verbose``, and for a plugin that owns the log's output:
  ``set_log_writer``, ``add_log_file``/``remove_log_file``, ``open_log_file``, ``redirect_stdio``;
- ``MasterView``: a read-only view of the master's workers and state, plus the only
  ways a plugin acts on it (request an action, watch an fd, keep a slot empty);
- fd ownership: ``vacate_master_fds`` in a process forked from the master;
- the handoff: what plugins give (``uwsgi_handoff_give``) crosses the exec reload in
  ``UWSGI_PY_PLUGINS`` and is taken back (``uwsgi_handoff_take``) by the next image;
- response hooks (``uwsgi_response_headers``): the header lines they add.
"""
from __future__ import annotations

import array
import fcntl
import os
import signal
import stat
import termios   # here, not where used: plugins call the API after --uid drops privileges
from typing import Any, Callable, NamedTuple

from . import health, log
from .errors import OptionError
from .handoff import PLUGINS
from .instance import Instance

HANDOFF_BAD = "*** plugin {name!r}: uwsgi_handoff_give: {why}; nothing of it crosses the reload ***"
HANDOFF_FD_GONE = "*** plugin {name!r}: handed-off fd {key}={fd} did not survive the exec ***"
RESPONSE_HOOK_FAILED = "*** a response hook raised {error}; its headers are left out ***"

# What a plugin reads or calls on the core objects its hooks get, by argument name (a
# request's are in docs/plugins.md, "A request handler"). docs/plugins.md, "What the hook
# arguments offer", lists each; tests/unit/test_plugin_api.py holds every plugin to these.
# The rest of those objects is the core's: the instance's facts and the master's state are
# read through ``Instance``/``MasterView``.
PUBLIC_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "master": ("settings", "server", "hook", "request", "watch", "unwatch"),
    "server": ("settings", "hook", "listeners", "apps", "is_reload", "generation", "start_dir"),
    "worker": ("id", "pid", "server", "settings", "apps", "unwatch"),
}


def log_line(text: str) -> None:
    """One line on the instance's log, with one write (``--log-date`` prefixes it)."""
    log.log(text)


def log_verbose(text: str) -> None:
    """One line with uWSGI's date prefix (``Mon Dec  7 02:02:59 2026 - ``), as uWSGI's
    verbose messages are written."""
    log.vlog(text)


def set_log_writer(writer: Callable[[bytes], None] | None) -> None:
    """Send every line this process logs (``log_line``, the core's own lines) to
    ``writer``, one call per line with its newline, instead of fd 2; None: fd 2 again."""
    log.set_writer(writer)


def add_log_file(path: str, fd: int, maxsize: int = 0, backupname: str | None = None):
    """A log file the plugin writes through ``fd``: the master reopens it with the
    ``--logto`` file (FIFO ``l``, ``--touch-logreopen``) and rotates it at ``maxsize``
    bytes (0: ``--log-maxsize``) or on FIFO ``L``, renaming it to ``backupname`` (default
    ``PATH.EPOCH``). ``fd`` keeps its number: it points at the new file afterwards.
    Returns a handle for ``remove_log_file``."""
    entry = log.LogFile(path, fd, maxsize, backupname)
    log.FILES.append(entry)
    return entry


def remove_log_file(handle) -> None:
    """Stop reopening and rotating a file given to ``add_log_file`` (before closing it)."""
    if handle in log.FILES:
        log.FILES.remove(handle)


def open_log_file(path: str, option: str) -> int:
    """``path`` opened to append (created 0640, close-on-exec), as ``--logto`` is; an
    ``OptionError`` naming ``--option`` and the path if it cannot be opened."""
    try:
        return log.open_append(path)
    except OSError as e:
        raise OptionError(log.LOGFILE_FAILED.format(option=option, path=path,
                                                    error=e.strerror)) from None


def redirect_stdio(fd: int, master_pipe: bool = False) -> None:
    """Point this process's fds 1 and 2 (its log, and what ``print`` writes) at ``fd``,
    then close ``fd``. ``master_pipe``: ``fd`` is a pipe the master reads and logs (a
    worker with ``--log-master``), so the core never re-points fds 1 and 2 at the
    ``--logto`` file when it is reopened."""
    log.use_logfile(fd)
    if master_pipe:
        log.capture()


class WorkerInfo(NamedTuple):
    """One worker process the master has now (``MasterView.workers``)."""

    id: int              # its slot, 1..numproc
    pid: int
    accepting: bool      # it has told the master it accepts connections
    stopping: bool       # asked to stop (reload, max-requests, cheaper); still running
    spawned: float       # time.monotonic() in the master when it was forked


class MasterView(Instance):
    """The master as a plugin sees it: ``Instance`` facts, the worker table and the
    state, read-only; ``request``, ``watch``/``unwatch``, the cheaper's slot controls
    and, inside an action, ``fail``/``refork`` are the ways to act. Build one where you
    need it: ``MasterView(master)``."""

    __slots__ = ("master",)

    def __init__(self, master):
        super().__init__(master.server)
        self.master = master

    @property
    def settings(self):
        return self.master.settings

    @property
    def state(self) -> str:
        """``running``, ``reload-check``, ``reloading``, ``shutting-down`` or ``exited``."""
        return self.master.state.value

    @property
    def running(self) -> bool:
        """Running normally: no reload (or its check) and no shutdown under way."""
        return self.master.state.value == "running"

    @property
    def paused(self) -> bool:
        return bool(self.master.paused)

    @property
    def chain_reloading(self) -> bool:
        return bool(self.master.chain)

    @property
    def workers_now(self) -> list[WorkerInfo]:
        """The workers serving this image's slots, by slot id (not the retiring ones)."""
        return [_info(child) for _, child in sorted(self.master.workers.items())]

    @property
    def retiring(self) -> list[WorkerInfo]:
        """Workers replaced by a reload that are finishing their requests."""
        return [_info(child) for child in self.master.retiring.values()]

    def worker_info(self, wid: int) -> WorkerInfo | None:
        """The worker serving slot ``wid`` now; None if the slot is empty."""
        child = self.master.workers.get(wid)
        return _info(child) if child is not None else None

    @property
    def cheaped(self) -> frozenset[int]:
        """Slots kept empty on purpose (cheaper mode, FIFO ``C``)."""
        return frozenset(self.master.cheaped)

    @property
    def reloads(self) -> list[dict]:
        """The last exec reloads' outcomes, oldest first (the ``reloaded`` event's info)."""
        return [dict(outcome) for outcome in self.master.reloads]

    @property
    def actions(self) -> frozenset[str]:
        """The names ``request`` can queue: the built-in actions and the plugins'."""
        return frozenset(self.master.actions)

    @property
    def has_log_files(self) -> bool:
        """There is a log file to reopen or rotate (``--logto``, ``add_log_file``)."""
        return bool(self.master.log_files())

    def readiness(self) -> dict:
        """What ``uwsgi-py --status PIDFILE`` prints (docs/health.md): ``ready``, ``state``
        (``starting``, ``ready``, ``reloading``, ``refused``, ``paused``, ``stopping``),
        ``pid``, ``generation``, ``reloads``, ``last_reload``, ``reload_waitable``."""
        return health.status(self.master)

    def control_backlog(self, wid: int) -> int:
        """Bytes the master sent worker ``wid`` that it has not read yet."""
        child = self.master.workers.get(wid)
        return _pending(child.ctl) if child is not None else 0

    # ---- acting --------------------------------------------------------------------
    def request(self, action: str) -> None:
        """Queue the named action; the loop performs it next, with its usual guards."""
        self.master.request(action)

    def watch(self, fd: int, callback: Callable[[], Any], writable: bool = False) -> None:
        """Poll ``fd`` in the master loop: ``callback()`` runs when it is readable (or, with
        ``writable``, writable). It belongs to the master from now on (the core makes it
        unusable in every process forked later: ``vacate_master_fds``)."""
        from .server import Watch
        self.master.watch(Watch(fd, callback, writable))

    def unwatch(self, fd: int) -> None:
        self.master.unwatch(fd)

    def keep_slot_empty(self, wid: int, brutal: bool = False) -> None:
        """Stop worker ``wid`` gracefully (``brutal``: kill it) and do not respawn it
        (cheaper mode)."""
        self.master.cheap_slot(wid, signal.SIGKILL if brutal else signal.SIGHUP)

    def fill_slot(self, wid: int) -> bool:
        """Spawn a worker in a slot kept empty; False if it was not empty."""
        return self.master.uncheap_slot(wid)

    # ---- inside an action only: the loop is the caller ------------------------------
    def fail(self, code: int) -> None:
        """Shut down at once (as SIGINT) and exit with status ``code``: the instance
        cannot go on (a control channel the user asked for cannot be created)."""
        self.master.fail(code)

    def refork(self) -> int:
        """uWSGI's refork (FIFO ``F``): a detached copy of this master execs and serves the
        same sockets; its pid (0 if the fork failed)."""
        return self.master.refork()


def status_address(pid: int) -> str:
    """The abstract unix socket name where ``uwsgi-py --status``/``--reload PIDFILE`` ask
    master ``pid`` for its readiness (the health plugin listens there)."""
    return health.address(pid)


def _info(child) -> WorkerInfo:
    return WorkerInfo(child.id, child.pid, bool(child.accepting), bool(child.cursed_at),
                      child.spawned)


def _pending(fd: int) -> int:
    if fd < 0:
        return 0
    buf = array.array("i", [0])
    try:
        fcntl.ioctl(fd, termios.FIONREAD, buf)
    except OSError:
        return 0
    return buf[0]


# ---- fd ownership ------------------------------------------------------------------------

def master_fds(master) -> set[int]:
    """Every fd the master owns: its pipes, watched fds, the workers' control pipes."""
    return set(master.private_fds) | {master.notify_w}


def vacate(fds) -> None:
    """In a process just forked from the master: close each of ``fds`` by putting
    /dev/null (close-on-exec) in its place. The file is closed as with ``close()``,
    but its number stays taken, so no pipe or socket this process opens later can get
    it: a plugin that closes an fd it remembers from the master closes a placeholder,
    never something of the new process (the fd-reuse trap)."""
    null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    for fd in fds:
        if fd != null and fd >= 0:
            try:
                os.dup2(null, fd, inheritable=False)
            except OSError:
                pass
    if null not in fds:
        os.close(null)


def vacate_master_fds(master) -> None:
    """For a process a plugin forks from the master (a mule, a helper): make every fd
    of the master unusable here without freeing its number (``vacate``)."""
    vacate(master_fds(master))


def unlinked_file() -> int:
    """A new, empty file with no name (close-on-exec fd, mode 0600), gone when its last fd
    closes: what record locks shared by forked processes need. ``O_TMPFILE`` in ``$TMPDIR``
    (or /tmp); on a file system without it, the tempfile module's unlinked file."""
    directory = os.environ.get("TMPDIR") or "/tmp"
    try:
        return os.open(directory, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)
    except (OSError, AttributeError):
        import tempfile   # shutil, random, bz2, lzma: about a megabyte nobody else needs
        with tempfile.TemporaryFile() as f:
            return os.dup(f.fileno())


def die_with_master(sig: int = 9) -> None:
    """In a process forked from the master: get ``sig`` (SIGKILL) when the master dies,
    as workers do (Linux ``PR_SET_PDEATHSIG``; elsewhere nothing)."""
    set_pdeathsig(sig)


def set_pdeathsig(sig: int) -> None:
    """Linux: get ``sig`` when the parent dies (no orphans after kill -9)."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, sig, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError, ImportError):  # ImportError: unreadable after --uid
        pass


# ---- the handoff across an exec reload -------------------------------------------------------

def give_handoffs(master) -> None:
    """Before the exec: each plugin's ``uwsgi_handoff_give`` result, checked, goes into
    ``UWSGI_PY_PLUGINS``; its fds stay open (``master.exec_fds``)."""
    import json   # a reload's path: not imported at start-up
    carried = {}
    for name, gift in master.guard.each(master.hook.uwsgi_handoff_give, master=master):
        try:
            state, fds = _checked(gift)
        except (TypeError, ValueError) as e:
            log.log(HANDOFF_BAD.format(name=name, why=e))
            continue
        master.exec_fds.update(fds.values())
        carried[name] = {"state": state, "fds": fds}
    if carried:
        os.environ[PLUGINS] = json.dumps(carried)


def _checked(gift) -> tuple[Any, dict[str, int]]:
    if not isinstance(gift, dict) or not set(gift) <= {"state", "fds"}:
        raise TypeError("return a dict with the keys 'state' and 'fds'")
    state = gift.get("state")
    import json
    json.dumps(state)   # TypeError/ValueError: not JSON
    fds = dict(gift.get("fds") or {})
    for key, fd in fds.items():
        if not isinstance(key, str) or not isinstance(fd, int) or fd < 3:
            raise ValueError(f"fds: {key!r}: {fd!r} is not a name and an fd above 2")
        if not _open(fd):
            raise ValueError(f"fds: {key!r}: fd {fd} is not open")
    return state, fds


def _open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def take_handoffs(server) -> None:
    """In an image started by an exec reload, once its sockets are bound and before apps
    load: give each plugin what it handed off (``uwsgi_handoff_take``). The fds become
    close-on-exec again; those of a plugin that is gone or takes nothing are closed."""
    for name, entry in server.handoff.plugins.items():
        fds = {}
        for key, fd in entry.get("fds", {}).items():
            if _open(fd) and not stat.S_ISDIR(os.fstat(fd).st_mode):
                os.set_inheritable(fd, False)
                fds[key] = fd
            else:
                log.log(HANDOFF_FD_GONE.format(name=name, key=key, fd=fd))
        caller = server.hook.uwsgi_handoff_take
        if any(impl.plugin_name == name for impl in caller.get_hookimpls()):
            server.guard.each(caller, only=name, server=server, state=entry.get("state"),
                              fds=dict(fds))
        else:
            for fd in fds.values():
                os.close(fd)
    server.handoff.plugins = {}


# ---- response hooks --------------------------------------------------------------------------

def response_lines(hooks, request, status: int) -> list[str]:
    """The header lines ``hooks`` add to a response with ``status`` (``request`` is None
    for a request the core could not parse). A hook that raises adds nothing."""
    lines = []
    for hook in hooks:
        try:
            added = hook(request, status)
            for name, value in added or ():
                if not (isinstance(name, str) and isinstance(value, str)) or any(
                        c in name + value for c in "\r\n\0") or not name or ":" in name:
                    raise ValueError(f"bad header {name!r}: {value!r}")
                lines.append(f"{name}: {value}\r\n")
        except Exception as e:  # noqa: BLE001 - never fail a response for a plugin's header
            log.log(RESPONSE_HOOK_FAILED.format(error=f"{type(e).__name__}: {e}"))
    return lines


def error_headers(hooks, request, status: int) -> str:
    """``response_lines`` for the core's own error responses (400, 408, 500...)."""
    return "".join(response_lines(hooks, request, status)) if hooks else ""
