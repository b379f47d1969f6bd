"""Signal tables: signal number -> master action name (SIG-1, SIG-4, SIG-6).

The only place where master signals are mapped. Worker signals are set in
``workers.Worker.setup_signals`` (SIG-5). ``--hook-master-start
unix_signal:N ACTION`` (uWSGI's hook) rewires one signal of the table.

The master's signals are caught from the moment its image has settings until
it exits, across exec reloads too (STYLE §6): the old image blocks them before
``execve`` (the mask and pending signals survive it), the new one installs
recorders as soon as it knows its table (``catch_early``) and unblocks them, so
a signal sent at any moment of a reload is acted on by the new master instead
of killing it with the default action.
"""
from __future__ import annotations

import os
import signal
from typing import Iterable

MASTER_TABLE: dict[int, str] = {
    signal.SIGHUP: "graceful_reload",
    signal.SIGTERM: "brutal_reload",
    signal.SIGINT: "immediate_shutdown",
    signal.SIGQUIT: "immediate_shutdown",
    signal.SIGUSR1: "stats",
    signal.SIGUSR2: "worker_status",      # SIG-6's fix: uWSGI's master dies of it
    signal.SIGTSTP: "toggle_pause",
    signal.SIGURG: "restore_snapshot",    # the seed's "restore a snapshot"
}

# ignored in the master: WINCH (SIG-6), PIPE
IGNORED = (signal.SIGWINCH, signal.SIGPIPE)

# uWSGI's names for the functions a unix_signal hook may name (uwsgi.c, master_utils.c),
# and the aliases operators use for them, as master actions (core/actions.py)
UWSGI_ACTIONS: dict[str, str] = {
    "gracefully_kill_them_all": "graceful_shutdown",
    "kill_them_all": "immediate_shutdown",
    "grace_them_all": "graceful_reload",
    "reload": "graceful_reload",
    "reap_them_all": "brutal_reload",
    "brutally_reload": "brutal_reload",
    "suspend_resume_them_all": "toggle_pause",
    "uwsgi_reload_workers": "reload_workers",
    "uwsgi_brutally_reload_workers": "brutal_reload_workers",
}

HOOK_KIND = "unix_signal"
# the master cannot be told what to do on these: uncatchable, or its own (children, faults)
UNHOOKABLE = {signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD, signal.SIGSEGV, signal.SIGFPE,
              signal.SIGBUS, signal.SIGILL, signal.SIGABRT}


def parse_hook(raw) -> tuple[int, str]:
    """``unix_signal:N ACTION`` -> (signal number, action name); ValueError says what is wrong.

    N is a number or a name (``15``, ``TERM``, ``SIGTERM``); ACTION is one of
    uWSGI's function names (``gracefully_kill_them_all``...) or a master action.
    """
    text = str(raw).strip()
    kind, colon, arg = text.partition(":")
    if not colon or kind.strip() != HOOK_KIND:
        raise ValueError(f"is not supported: only '{HOOK_KIND}:SIGNUM ACTION' hooks are "
                         f"(uWSGI's other hook kinds are not implemented)")
    number, _, name = arg.strip().partition(" ")
    name = name.strip()
    if not number or not name or " " in name:
        raise ValueError(f"is not '{HOOK_KIND}:SIGNUM ACTION'")
    signum = _signum(number)
    if signum in UNHOOKABLE:
        raise ValueError(f"names {signal.Signals(signum).name}, which the master cannot be "
                         f"given an action for")
    return signum, UWSGI_ACTIONS.get(name, name)


def _signum(text: str) -> int:
    if text.isdigit():
        signum = int(text)
    else:
        upper = text.upper()
        member = signal.Signals.__members__.get(upper if upper.startswith("SIG") else "SIG" + upper)
        if member is None:
            raise ValueError(f"has no signal {text!r}")
        signum = int(member)
    if not 0 < signum < signal.NSIG:
        raise ValueError(f"has no signal {text!r}")
    return signum


def hook_value(raw) -> str:
    """The ``--hook-master-start`` converter: checked, kept as written (``uwsgi.opt``)."""
    parse_hook(raw)
    return str(raw).strip()


def master_table(die_on_term: bool, hooks: Iterable[str] = ()) -> dict[int, str]:
    """The master's table; ``--die-on-term`` swaps TERM and QUIT (SIG-4), then each
    ``--hook-master-start unix_signal:N ACTION`` sets signal N's action."""
    table = dict(MASTER_TABLE)
    if die_on_term:
        table[signal.SIGTERM], table[signal.SIGQUIT] = table[signal.SIGQUIT], table[signal.SIGTERM]
    for text in hooks:
        signum, name = parse_hook(text)
        table[signum] = name
    return table


def check_hooks(settings, known) -> None:
    """Every ``--hook-master-start`` names an action in ``known`` (the action registry,
    plugins' actions included), or start-up (and the reload check) fails in one line."""
    from .errors import OptionError
    for text in settings.hook_master_start:
        name = parse_hook(text)[1]
        if name not in known:
            origin = settings.origins.get("hook-master-start", "command line")
            raise OptionError(f"--hook-master-start: {text!r} names no master action {name!r}: "
                              f"use one of uWSGI's ({', '.join(UWSGI_ACTIONS)}) or a master "
                              f"action's name ({origin})")


def caught(table: dict[int, str]) -> set[int]:
    """What the master catches: its table, and SIGCHLD (reaping)."""
    return set(table) | set(MASTER_TABLE) | {signal.SIGCHLD}


def catch_early(table: dict[int, str], first_start: bool) -> tuple[int, int]:
    """Record the master's signals from now on into a wakeup pipe that the master's
    loop reads once it runs (``Master.install_signals``); returns the pipe (r, w).

    On an exec reload the signals arrive blocked (``block_for_exec``): one sent
    during the exec or the new image's start-up is pending, delivered here, and
    acted on by the new master. On a first start SIGINT keeps Python's handler
    until the loop runs, so Ctrl-C still aborts a start that hangs (an app import).
    """
    r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    sigs = caught(table)
    if first_start:
        sigs.discard(signal.SIGINT)
    for sig in sigs:
        signal.signal(sig, record)
    # a child started meanwhile (an app's subprocess) must not inherit a blocked mask
    signal.pthread_sigmask(signal.SIG_UNBLOCK, caught(table))
    return r, w


def block_for_exec(table: dict[int, str]) -> None:
    """Before ``execve``: block what the master catches (and only that: the mask is
    inherited); pending signals and the mask survive the exec, and the next image
    unblocks them once it records them (``catch_early``)."""
    signal.pthread_sigmask(signal.SIG_SETMASK, caught(table))


def requeue(wake_r: int, table: dict[int, str]) -> list[int]:
    """Signals recorded in the wakeup pipe but not acted on yet, made pending again
    (they are blocked now) so that they cross the exec; returns them."""
    again = []
    while True:
        try:
            data = os.read(wake_r, 4096)
        except (BlockingIOError, OSError):
            break
        if not data:
            break
        again.extend(signum for signum in data if signum in table and signum not in again)
    for signum in again:
        os.kill(os.getpid(), signum)
    return again


def record(signum, frame) -> None:
    """The master's signal handler: nothing. CPython wrote ``signum`` to the wakeup fd."""
