"""The pipes between the master and its workers: every byte either end writes.

master -> worker: each worker reads its own pipe (``Child.ctl``); a command is one byte.
worker -> master: every worker writes one shared pipe; a note is one line, its kind byte
then ``<worker id>[ <pid>]`` (``note()``), short enough to be written atomically
(PIPE_BUF). The pid tells the master a note from a worker that has since left the slot.

Both ends use these names: no other module spells the bytes.
"""
from __future__ import annotations

# ---- master -> worker: commands ---------------------------------------------------
CTL_PAUSE = b"p"            # stop accepting and reading clients (SIG-8: TSTP, FIFO p)
CTL_RESUME = b"u"           # accept and read again
CTL_REOPEN_LOG = b"l"       # the master reopened or rotated --logto: reopen it too
CTL_RECYCLE = b"r"          # finish the current request, log Seeya, exit (WORKER-6)
CTL_CLOSE_LISTENERS = b"c"  # sent with the HUP of a graceful stop: make the listeners refuse

# ---- worker -> master: notes ------------------------------------------------------
NOTE_ACCEPTING = b"A"       # "A<id>": the loop is ready, the worker booted
NOTE_GRACEFUL = b"G"        # "G<id> <pid>": HUPed, exiting gracefully (no DAMN line, WORKER-3)
NOTE_RECYCLED = b"R"        # "R<id> <pid>": exiting on purpose (max-requests, recycle): no DAMN line


def note(kind: bytes, wid: int, pid: int = 0) -> bytes:
    """The line a worker writes to the master: ``kind``, its id and, if given, its pid."""
    return kind + (b"%d %d\n" % (wid, pid) if pid else b"%d\n" % wid)
