"""The master FIFO's command table: one byte -> one master action name (FIFO-4, FIFO-8).

This is the only place FIFO letters appear. Other plugins add or override
bytes through the ``uwsgi_fifo_commands`` hook; ``build`` merges them.
"""
from __future__ import annotations

from typing import Iterable

SLOTS = 10  # FIFO-5: bytes 0-9 select a slot
SLOT_ACTION = "fifo_slot_{n}"
RECREATE_ACTION = "fifo_recreate"   # queued at EOF: the FIFO is created again
UNKNOWN_ACTION = "fifo_unknown"     # queued for a byte with no entry

# byte -> action (core/actions.py, or the fifo/cheaper plugins' uwsgi_master_actions)
COMMANDS: dict[str, str] = {
    **{str(n): SLOT_ACTION.format(n=n) for n in range(SLOTS)},
    "+": "cheaper_increase",
    "-": "cheaper_decrease",
    "B": "emperor_broodlord",
    "C": "go_cheap",
    "c": "chain_reload",
    "E": "emperor_rescan",
    "f": "refork_master",
    "l": "reopen_logs",
    "L": "rotate_logs",
    "p": "toggle_pause",
    "P": "update_pidfiles",
    "q": "graceful_shutdown",
    "Q": "immediate_shutdown",
    "r": "graceful_reload",
    "R": "brutal_reload",
    "S": "subscriptions_toggle",
    "s": "stats",
    "w": "reload_workers",
    "W": "brutal_reload_workers",
}

# bytes skipped without a log line: the newline ``echo`` adds
SILENT = frozenset(b"\r\n")

BAD_ENTRY = "master fifo: plugin command {key!r} -> {value!r} ignored (the key must be one byte)"


def build(extras: Iterable[dict | None], warn=None) -> dict[int, str]:
    """The byte table: ``COMMANDS`` with every hook result merged over it.

    A value of None removes the byte. A key that is not exactly one character
    in the latin-1 range is refused (reported through ``warn``).
    """
    table = {ord(k): v for k, v in COMMANDS.items()}
    for extra in extras:
        for key, value in (extra or {}).items():
            if not isinstance(key, str) or len(key) != 1 or ord(key) > 255:
                if warn is not None:
                    warn(BAD_ENTRY.format(key=key, value=value))
                continue
            if value is None:
                table.pop(ord(key), None)
            else:
                table[ord(key)] = value
    return table


def decode(data: bytes, table: dict[int, str]) -> list[tuple[str | None, int]]:
    """Bytes read from the FIFO as ``(action name or None if unknown, byte)``, in
    order; bytes in ``SILENT`` are dropped."""
    return [(table.get(byte), byte) for byte in data if byte in table or byte not in SILENT]


def slot_actions(select) -> dict:
    """``fifo_slot_0`` .. ``fifo_slot_9`` -> ``select(master, n)``: one function, ten names."""
    def bind(n: int):
        def action(master) -> None:
            select(master, n)
        action.__name__ = SLOT_ACTION.format(n=n)
        action.__doc__ = f"uWSGI ``uwsgi_fifo_set_slot_*``: make FIFO slot {n} current (FIFO-5)."
        return action
    return {SLOT_ACTION.format(n=n): bind(n) for n in range(10)}
