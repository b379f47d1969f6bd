"""Log lines of the ruby bridge (operators and tests grep them), and the writer."""
from __future__ import annotations

import os

CHECKED = "ruby bridge: {app} loads (ruby {ruby}, rack {rack}) in {ms} ms"
STARTED = "ruby bridge: worker {wid} started ruby child (pid: {pid}) for {app}"
READY = "ruby bridge: ruby child (pid: {pid}) of worker {wid} is ready (ruby {ruby}, rack {rack}, {ms} ms)"
BOOT_FAILED = "ruby bridge: ruby child (pid: {pid}) could not load {app}:\n{error}"
DIED = "ruby bridge: ruby child (pid: {pid}) of worker {wid} died ({how}); starting a new one"
HARAKIRI = ("ruby bridge: *** HARAKIRI: ruby child (pid: {pid}) of worker {wid} ran {uri} for "
            "{elapsed:.1f}s (--harakiri {secs}): killed, starting a new one ***")
STOPPED = "ruby bridge: ruby child (pid: {pid}) of worker {wid} stopped ({how})"


def log(line: str) -> None:
    """One line, one write(2) on fd 2 (the server log), like the core's log.log."""
    try:
        os.write(2, (line + "\n").encode("utf-8", "backslashreplace"))
    except OSError:
        pass


def exit_text(returncode: int | None) -> str:
    """``killed by signal 9 (SIGKILL)`` / ``exit status 1`` for a Popen returncode."""
    import signal
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "?"
        return f"killed by signal {-returncode} ({name})"
    return f"exit status {returncode}"
