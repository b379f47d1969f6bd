"""uWSGI's hooks at three phases: ``--exec-PHASE CMD`` and ``--hook-PHASE ACTION:ARG``.

Phases (uWSGI 2.0's names, as its log lines spell them):

- ``asap``: once the configuration is read, before the log file, daemonizing and
  sockets: at every start of an image (so after an exec reload too), never in the
  throwaway reload check;
- ``pre app`` / ``post app``: around loading the apps, where they are loaded (the
  master, or each worker with ``--lazy-apps``), again never in the reload check.

``--exec-*`` runs a shell command (``/bin/sh -c``) and waits for it; its output goes
to the server's log. ``--hook-*`` runs one of uWSGI's hook actions (``ACTIONS``);
``exec:CMD`` is the same command. Hooks of a phase run before its exec commands.

A failing command or action, as uWSGI 2.0 handles it:

- ``--exec-*``: the process exits 1;
- ``--hook-*``: "FATAL hook failed, destroying instance", then the phase stops. In
  the asap phase and without ``--master`` the process exits 1; in a lazy-apps worker
  the master is asked to shut down (SIGINT). In a master loading its apps, uWSGI 2.0
  goes on serving (its shutdown finds no workers yet): so does uwsgi-py, with a warning.
"""
from __future__ import annotations

import os
import signal
import sys

from . import log
from .options import Option

PHASES = ("asap", "pre-app", "post-app")


def _command(arg: str) -> int:
    """``/bin/sh -c ARG``, waited for; its exit code (128+N for a signal, as a shell says)."""
    sys.stdout.flush()
    import subprocess   # only for exec hooks: not imported at start-up
    code = subprocess.run(["/bin/sh", "-c", arg], stdin=subprocess.DEVNULL).returncode
    return 128 - code if code < 0 else code


def _exec(arg: str) -> int:
    code = _command(arg)
    if code:
        log.log(log.HOOK_COMMAND_FAILED.format(cmd=arg, code=code))
    return code


def _safeexec(arg: str) -> int:
    _exec(arg)
    return 0


def _syscall(fn, arg: str) -> int:
    try:
        fn(arg)
    except OSError as e:
        log.log(f"{fn.__name__}(): {e.strerror} [{arg}]")
        return -1
    return 0


def _putenv(arg: str) -> int:
    key, _, value = arg.partition("=")
    os.environ[key] = value
    return 0


def _write(path_text: str, mode: int, newline: bool) -> int:
    path, sep, text = path_text.partition(" ")
    if not sep and not (newline and mode & os.O_APPEND):
        log.log("invalid hook syntax, must be: <file> <string>")
        return -1
    data = text + ("\n" if newline else "")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | mode, 0o666)
        try:
            os.write(fd, data.encode())
        finally:
            os.close(fd)
    except OSError as e:
        log.log(f"open(): {e.strerror} [{path}]")
        return -1
    return 0


def _print(arg: str) -> int:
    log.log(arg)
    return 0


def _exit(arg: str) -> int:
    sys.stdout.flush()
    os._exit(int(arg) if len(arg) > 1 and arg.isdigit() else 0)


ACTIONS = {
    "exec": _exec,
    "safeexec": _safeexec,
    "cd": lambda a: _syscall(os.chdir, a),
    "chdir": lambda a: _syscall(os.chdir, a),
    "mkdir": lambda a: _syscall(os.mkdir, a),
    "unlink": lambda a: _syscall(os.unlink, a),
    "putenv": _putenv,
    "create": lambda a: _write(a + " ", os.O_TRUNC, False),
    "write": lambda a: _write(a, os.O_TRUNC, False),
    "writen": lambda a: _write(a, os.O_TRUNC, True),
    "append": lambda a: _write(a, os.O_APPEND, False),
    "appendn": lambda a: _write(a, os.O_APPEND, True),
    "print": _print,
    "log": _print,
    "exit": _exit,
}


def hook_value(raw) -> str:
    """``ACTION:ARG`` with an action uwsgi-py has (checked when the value is read)."""
    text = str(raw).strip()
    action, sep, _ = text.partition(":")
    if not sep:
        raise ValueError("is not ACTION:ARG (like exec:COMMAND)")
    if action.lstrip("!") not in ACTIONS:
        raise ValueError(f"hook action {action!r} is not available in uwsgi-py (it has: "
                         f"{', '.join(sorted(ACTIONS))})")
    return text


def options() -> list[Option]:
    out = []
    for phase in PHASES:
        when = {"asap": "as soon as the configuration is read",
                "pre-app": "before the apps are loaded",
                "post-app": "after the apps are loaded"}[phase]
        out.append(Option(f"exec-{phase}", f"run the shell command CMD {when} (repeatable; a "
                          "failing command stops the server)", multiple=True, metavar="CMD"))
        out.append(Option(f"hook-{phase}", f"run the uWSGI hook ACTION:ARG {when} (repeatable; "
                          "exec:CMD, mkdir:DIR, putenv:K=V, write:FILE TEXT, ...)",
                          multiple=True, convert=hook_value, metavar="ACTION:ARG"))
    return out


def _lists(settings, phase: str) -> tuple[list[str], list[str]]:
    return {"asap": (settings.hook_asap, settings.exec_asap),
            "pre-app": (settings.hook_pre_app, settings.exec_pre_app),
            "post-app": (settings.hook_post_app, settings.exec_post_app)}[phase]


def run(settings, phase: str, *, worker: bool = False, master_pid: int = 0) -> None:
    """Run the hooks then the commands of ``phase``; a failure as uWSGI handles it
    (SystemExit(1) where uWSGI exits)."""
    hooks, commands = _lists(settings, phase)
    label = phase.replace("-", " ")
    for item in hooks:
        action, _, arg = item.partition(":")
        private = action.startswith("!")     # uWSGI's private hook: its text is not logged
        log.log(log.HOOK_PRIVATE.format(phase=label) if private
                else log.HOOK_RUNNING.format(what=item, phase=label))
        if ACTIONS[action.lstrip("!")](arg) != 0:
            log.log(log.HOOK_FATAL)
            if phase == "asap" or not settings.master:
                raise SystemExit(1)
            if worker and master_pid:
                os.kill(master_pid, signal.SIGINT)
            else:
                log.log(log.HOOK_GOES_ON.format(phase=phase))
            break
    for cmd in commands:
        log.log(log.HOOK_RUNNING.format(what=cmd, phase=label))
        if _exec(cmd) != 0:
            raise SystemExit(1)
