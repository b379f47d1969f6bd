"""Logging: every line is one ``write(2, ...)`` (LOG-2), formats are constants.

Operators and tests grep these lines; their text follows uWSGI 2.0 (LOG-T1).
Lines marked verbose in the SPEC get uWSGI's ctime prefix through ``vlog``;
``--log-date`` prefixes every server line (``log``), never a request line
(``raw``), as uWSGI's ``uwsgi_log`` does. The master rotates and reopens the
log files it writes (``FILES``: ``--logto`` and the logging plugin's
``file:`` loggers) by path (LOG-3).
"""
from __future__ import annotations

import os
import time
from typing import Callable

# ---- start-up --------------------------------------------------------------
BANNER = "*** Starting uwsgi-py {version} (uWSGI {compat} compatible) on [{date}] ***"
REQUEST_PATH_COMPILED = "request path: compiled with mypyc ({modules})"
REQUEST_PATH_PURE = "request path: pure Python"
REQUEST_PATH_STALE = ("uwsgi-py: warning: compiled {modules} older than the .py source, which is "
                      "not what runs: rebuild (README, \"Compiled request path\") or delete the .so files")
BOUND = "uwsgi socket {index} bound to {kind} address {address} fd {fd}"
BOUND_AUTO = "bound to TCP address {address} (port auto-assigned) fd {fd}"
INHERITED = "uwsgi socket {index} inherited {kind} address {address} fd {fd}"
ATTACHED = "uwsgi socket {index} attached to {kind} address {address} fd {fd}"
HTTP_NO_ROUTER = ("--http {address}: served by the workers themselves, with HTTP/1.1 keep-alive "
                  "(uwsgi-py starts no HTTP router process)")
HTTP_NO_WEBSOCKETS = ("--http-websockets: uwsgi-py has no websocket support; an Upgrade request "
                      "reaches the app as plain HTTP")
LISTEN_QUEUE = "listen queue (backlog) size: {listen} (kernel somaxconn: {somaxconn})"
MERCY = "your mercy for graceful operations on workers is {mercy} seconds"
NO_MASTER = "*** WARNING: you are running uWSGI without its master process manager ***"
MASTER_SPAWNED = "spawned uWSGI master process (pid: {pid})"
MASTER_RESPAWNED = "gracefully (RE)spawned uWSGI master process (pid: {pid})"
WORKER_SPAWNED = "spawned uWSGI worker {id} (pid: {pid}, cores: {cores})"
WORKER_ONLY = "spawned uWSGI worker {id} (and the only) (pid: {pid}, cores: {cores})"
NO_SOCKET = "The -s/--socket option is missing and stdin is not a socket."
NO_APP = "*** no app loaded. going in full dynamic mode ***"
NO_APP_FATAL = "*** no app loaded. GAME OVER ***"
NO_APP_REQUEST = "--- no python application found, check your startup logs for errors ---"
PIDFILE = "writing pidfile to {path}"
# ---- config (dialect, unknown keys; core/config.py) -------------------------------
CONFIG_WARNING = "uwsgi-py: warning: {message}"
CONFIG_INFO = "uwsgi-py: info: {message}"
UNKNOWN_OPTION = "unknown option {key!r} ({origin}){suggestion}"
NO_EFFECT = "--{name} has no effect in uwsgi-py: {reason} ({origin})"
NOT_IMPLEMENTED = ("not implemented in uwsgi-py yet, and it would change how the app is served: "
                   "{options}; remove it or run uWSGI")
SHOW_CONFIG_BEGIN = ";uWSGI instance configuration"
SHOW_CONFIG_END = ";end of configuration"
ERROR = "uwsgi-py: error: {message}"    # a start-up error: the process exits 1
PIDFILE_FAILED = "--{option}: cannot write pidfile {path!r}: {error}"
LOGFILE_FAILED = "--{option}: cannot open log file {path!r}: {error}"
# ---- workers ---------------------------------------------------------------
DAMN_SIGNAL = "DAMN ! worker {id} (pid: {pid}) died, killed by signal {sig} :( trying respawn ..."
DAMN = "DAMN ! worker {id} (pid: {pid}) died :( trying respawn ..."
EXIT_STATUS = "worker {id} (pid: {pid}) exited with status {code}"
KILLED_OK = "worker {id} killed successfully (pid: {pid})"
RESPAWNED = "Respawned uWSGI worker {id} (new pid: {pid})"
BURIED = "worker {id} buried after {secs} seconds"
OOPS = "OOPS ! failed loading app in worker {id} (pid {pid}) :( trying again..."
TOO_FAST = "worker respawning too fast !!! i have to sleep a bit ({secs} seconds)..."
GRACEFUL_WORKER = "Gracefully killing worker {id} (pid: {pid})..."
KILLING_WORKER = "killing worker {id} (pid: {pid})"
CHEAPED = "uWSGI worker {id} cheaped."
NO_MERCY = "worker {id} (pid: {pid}) is taking too much time to die...NO MERCY !!!"
MASTER_GONE = ("uWSGI worker {id} error: the master disconnected from this worker. "
               "Shutting down the worker.")
WORKER_SUSPENDED = "*** worker {id} suspended ***"
WORKER_RESUMED = "*** worker {id} resumed ***"
WORK_DONE = "...The work of process {pid} is done. Seeya!"
HARAKIRI = "*** HARAKIRI ON WORKER {id} (pid: {pid}, try: 1) ***"
HARAKIRI_SYSCALL = "HARAKIRI: -- syscall> {text}"
HARAKIRI_WCHAN = "HARAKIRI: -- wchan> {text}"
HARAKIRI_REQUEST = "HARAKIRI: --- uWSGI worker {id} (pid: {pid}) WAS managing request {uri} since {since} ---"
HARAKIRI_CORE = ("HARAKIRI: --- uWSGI worker {id} core {core} (pid: {pid}) WAS managing request {uri} "
                 "since {since} ---")
# ---- limits (issue 10; docs/hardening.md) ------------------------------------
LIFETIME = "worker {id} lifetime reached, it was running for {secs} second(s)"
MEMORY_RECYCLE = ("worker {id} (pid: {pid}) uses {used} MB of {what} (reload-on-{kind} {limit} MB): "
                  "recycling it")
EVIL_MEMORY = ("*** evil-reload-on-{kind}: worker {id} (pid: {pid}) uses {used} MB of {what} "
               "(limit {limit} MB): SIGKILL ***")
BOOT_FAILURE = ("worker {id} (pid: {pid}) died before accepting any request "
                "({count} boot failure(s) in a row)")
BOOT_FATAL = ("*** {count} workers in a row died before accepting (--max-boot-failures {limit}): "
              "stopping the instance ***")
WORKER_STOPPED = "worker {id} (pid: {pid}) was stopped by signal {sig}: it serves nothing until SIGCONT"
WORKER_CONTINUED = "worker {id} (pid: {pid}) continued"
LISTEN_FULL = ("*** listen queue of socket {name} (fd: {fd}) is full ({queue}/{max}): new "
               "connections wait for a SYN retry; more workers or a larger --listen help ***")
LISTEN_DRAINED = "listen queue of socket {name} (fd: {fd}) is no longer full (it was for {secs}s, peak {peak}/{max})"
ACCEPT_NO_FDS = ("accept(): {error}: worker {id} (pid: {pid}) is out of file descriptors with "
                 "{conns} open connections; new connections wait in the listen queue "
                 "(logged once per burst)")
ACCEPT_FDS_BACK = "worker {id} (pid: {pid}) accepts again: {failures} accept() call(s) ran out of fds in that burst"
CLIENT_GONE = "client {addr} dropped during {uri}: {why}"
CHDIR2_FAILED = "chdir2: chdir() to {path}: {error}"
# ---- privileges (MASTER-2 step 4) ----------------------------------------------
PRIVILEGES = "dropped privileges: uid {uid} ({user}), gid {gid} ({group}), groups [{groups}]"
RUNNING_AS_ROOT = "*** WARNING: running as root without --uid: the workers and the app run as root ***"
# ---- reload / shutdown -----------------------------------------------------
GRACEFUL_RELOAD = "...gracefully killing workers..."
BRUTAL_RELOAD = "...brutally killing workers..."
SHUTDOWN = "SIGINT/SIGTERM received...killing workers..."
GRACEFUL_SHUTDOWN = "graceful shutdown triggered..."
GOODBYE = "goodbye to uWSGI."
GAME_OVER = "uWSGI: GAME OVER (insert coin)"
BINARY_RELOADING = "binary reloading uWSGI..."
FORKING = "fork()'ing uWSGI..."
REFORKED = "new master copy spawned with pid {pid}"
REFORK_FAILED = "uwsgi_refork_master()/fork(): {error}"
CHDIR = "chdir() to {path}"
CLOSING_FDS = "closing all non-uwsgi socket fds > 2 (max_fd = {max_fd})..."
FD_MAPPED = "found fd {fd} mapped to socket {index} ({name})"
RUNNING = "running {path}"
PAUSE = "*** PAUSE (press start to resume, if you do not have a joypad send SIGTSTP) ***"
RESUME = "*** (SIGTSTP received) resuming workers ***"
SNAPSHOT = "*** restoring snapshot: replacing every worker with a fresh fork of the loaded app ***"
RELOAD_CHECKING = "reload check: loading the new configuration and code in a throwaway process..."
RELOAD_REFUSED = "*** RELOAD REFUSED: {why}; the running generation keeps serving ***"
RELOAD_AGAIN = "graceful reload requested while one is under way: reloading again once it is done"
PAUSE_KEPT = "*** the instance stays paused across the reload (send SIGTSTP to resume) ***"
LISTENERS_CLOSED = "worker {id} (pid: {pid}) shut down listening socket {name}: new connections are refused"
REFORK = "re-fork()ing..."
HOOK_RUNNING = 'running "{what}" ({phase})...'
HOOK_PRIVATE = "running --- PRIVATE HOOK --- ({phase})..."
HOOK_COMMAND_FAILED = 'command "{cmd}" exited with non-zero code: {code}'
HOOK_FATAL = "FATAL hook failed, destroying instance"
HOOK_GOES_ON = ("uwsgi-py: warning: --hook-{phase}: as in uWSGI 2.0, a failed hook in a master "
                "loading its apps does not stop the instance")
HOOK_SIGNAL = "hook-master-start: signal {signum} ({name}) -> {action}"
RELOAD_OUTCOME = ("reload outcome: generation={generation} kind={kind} duration={ms}ms "
                  "workers_replaced={replaced} refused={refused}{error}")
NO_MASTER_RELOAD = "*** WARNING: no master process: this reload request stops the server ***"
CHAIN_START = "chain reload starting..."
CHAIN_RUNNING = "chain reload already running..."
CHAIN_VICTIM = "chain next victim is worker {id}"
CHAIN_WAITING = "chain is still waiting for worker {id}..."
CHAIN_DONE = "chain reloading complete"
VACUUM = "VACUUM: {what} removed."
VACUUM_SOCKET = "VACUUM: unix socket {path} removed."
# ---- plugins ---------------------------------------------------------------
PLUGIN_FAILED = ("*** plugin {name!r} (distribution {dist}) failed in {where}: {error}; "
                 "the master carries on (failure {count}) ***")
WATCH_DROPPED = "*** fd {fd} of plugin {name!r} is no longer watched: its callback raised ***"
# ---- signals / requests ----------------------------------------------------
REQUEST = ("[pid: {pid}|app: 0|req: {wreq}/{treq}] {addr} ({user}) {{{nvars} vars in {vsize} bytes}} "
           "[{date}] {method} {uri} => generated {size} bytes in {time} {unit}{via}({proto} {status}) "
           "{nheaders} headers in {hsize} bytes (1 switches on core {core})")
UNAVAILABLE_MODIFIER = "-- unavailable modifier requested: {modifier} --"
BAD_REQUEST = "bad request from {addr}: {why}"


LOG_ROTATING = "logsize: {size}, triggering rotation to {target}..."
LOG_REOPENING = "[{epoch}] logsize: {size}, triggering log-reopen..."
LOG_REOPENED = "[{epoch}] {path} reopened."
ROTATE_FAILED = "unable to rotate log {path}: {error}"

# ---- how lines are written (set once per process) ---------------------------------
_date: str | None = None       # --log-date: None (off), "" (ctime) or a strftime format
_writer: Callable[[bytes], None] | None = None   # None: fd 2
_captured = False              # this worker's fds 1/2 go to the master (--log-master)


def configure(date: str | None) -> None:
    """``--log-date``: prefix every server line with ctime ("") or a strftime format."""
    global _date
    _date = date


def set_writer(writer: Callable[[bytes], None] | None) -> None:
    """Send every line to ``writer`` (one call per line) instead of fd 2; None restores fd 2.

    The logging plugin sets it in the master when loggers own the output."""
    global _writer
    _writer = writer


def capture() -> None:
    """This process's fds 1 and 2 are a pipe to the master (--log-master): never re-point them."""
    global _captured
    _captured = True


def now() -> str:
    return time.ctime()


def _stamp() -> str:
    return (time.strftime(_date) if _date else time.ctime()) + " - "


def _write(data: bytes) -> None:
    if _writer is not None:
        _writer(data)
        return
    try:
        os.write(2, data)
    except (BlockingIOError, BrokenPipeError, OSError):
        pass


def log(line: str) -> None:
    """Write one line to the log (fd 2) with a single write()."""
    if _date is not None:
        line = _stamp() + line
    _write((line + "\n").encode("utf-8", "backslashreplace"))


def exc_text() -> str:
    """The exception being handled, formatted as Python prints it (``traceback`` is
    imported by the first error, not at start-up)."""
    import traceback
    return traceback.format_exc()


def raw(line: str) -> None:
    """A request line: never dated (uWSGI writes request lines without ``--log-date``)."""
    _write((line + "\n").encode("utf-8", "backslashreplace"))


def vlog(line: str) -> None:
    """A verbose line: ``ctime - `` prefix (or ``--log-date``'s format), as uWSGI's uwsgi_log_verbose."""
    _write((_stamp() + line + "\n").encode("utf-8", "backslashreplace"))


# ---- log files ----------------------------------------------------------------------
class LogFile:
    """A log file written through ``fd``; rotation renames it and re-points ``fd``."""

    def __init__(self, path: str, fd: int, maxsize: int = 0, backupname: str | None = None):
        self.path = path
        self.fd = fd
        self.maxsize = maxsize
        self.backupname = backupname

    def size(self) -> int:
        try:
            return os.fstat(self.fd).st_size
        except OSError:
            return 0


FILES: list[LogFile] = []   # the master's log files beside --logto (the logging plugin's)


def open_logfile(path: str) -> int:
    """Open ``path`` for append (LOG-1) and point fds 1 and 2 at it; OSError if it cannot
    be opened (fds 1 and 2 are then untouched)."""
    return use_logfile(open_append(path))


def open_append(path: str) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)


def use_logfile(fd: int) -> int:
    """Point fds 1 and 2 at ``fd`` (from ``open_append``) and close it."""
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    return 2


def follow(path: str) -> None:
    """A worker re-points fds 1 and 2 at the reopened ``--logto`` file, unless they go to
    the master (--log-master), which writes the file itself."""
    if not _captured:
        open_logfile(path)


def _reattach(path: str, fd: int) -> None:
    if fd == 2:
        open_logfile(path)
        return
    new = open_append(path)
    try:
        os.dup2(new, fd)
    finally:
        os.close(new)


def reopen(path: str, fd: int = 2) -> None:
    """Re-point ``fd`` (fds 1 and 2 for --logto) at ``path`` (after logrotate moved it)."""
    size = LogFile(path, fd).size()
    raw(LOG_REOPENING.format(epoch=int(time.time()), size=size))
    _reattach(path, fd)
    raw(LOG_REOPENED.format(epoch=int(time.time()), path=path))


def rotate(path: str, backup: str | None = None, fd: int = 2) -> None:
    """Rename ``path`` to ``backup`` (default ``path.EPOCH``) and reopen a fresh file (LOG-3)."""
    target = backup or f"{path}.{int(time.time())}"
    raw(f"{time.ctime()} - " + LOG_ROTATING.format(size=LogFile(path, fd).size(), target=target))
    try:
        os.rename(path, target)
    except OSError as e:
        log(ROTATE_FAILED.format(path=path, error=e.strerror))
    _reattach(path, fd)
