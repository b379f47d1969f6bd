"""The master FIFO's byte table (FIFO-4, FIFO-8), decoding and FIFO creation (FIFO-1)."""
import os
import stat

import pytest

from uwsgi_py import actions as core_actions
from uwsgi_py import hookspecs
from uwsgi_py_cheaper import uwsgi_master_actions as cheaper_actions
from uwsgi_py_fifo import ACTIONS as FIFO_ACTIONS
from uwsgi_py_fifo.channel import Channel, FifoError, create, describe
from uwsgi_py_fifo.table import COMMANDS, build, decode

pytestmark = pytest.mark.timeout(10)

# FIFO-4, written out once more by hand: the table must match the SPEC letter by letter
SPEC = {
    "+": "cheaper_increase", "-": "cheaper_decrease", "B": "emperor_broodlord",
    "C": "go_cheap", "c": "chain_reload", "E": "emperor_rescan", "f": "refork_master",
    "l": "reopen_logs", "L": "rotate_logs", "p": "toggle_pause", "P": "update_pidfiles",
    "q": "graceful_shutdown", "Q": "immediate_shutdown", "r": "graceful_reload",
    "R": "brutal_reload", "S": "subscriptions_toggle", "s": "stats", "w": "reload_workers",
    "W": "brutal_reload_workers",
    **{str(n): f"fifo_slot_{n}" for n in range(10)},
}


def test_table_is_fifo_4():
    assert COMMANDS == SPEC


def test_every_command_names_a_registered_action():
    known = set(core_actions.BUILTIN) | set(FIFO_ACTIONS) | set(cheaper_actions())
    assert set(COMMANDS.values()) <= known


def test_signals_and_fifo_share_action_names():
    # STYLE §4: r/R/q/Q/s/p route to the very actions the signal table uses
    from uwsgi_py.signals import MASTER_TABLE
    for byte in "rRQsp":
        assert COMMANDS[byte] in MASTER_TABLE.values()


def test_plugins_add_override_and_remove_bytes():
    warnings = []
    table = build([{"X": "stats"}, None, {"r": "brutal_reload", "q": None}, {"toolong": "stats"}],
                  warn=warnings.append)
    assert table[ord("X")] == "stats"
    assert table[ord("r")] == "brutal_reload"
    assert ord("q") not in table
    assert table[ord("w")] == "reload_workers"
    assert len(warnings) == 1 and "toolong" in warnings[0]


def test_decode_keeps_order_and_reports_unknown_bytes():
    table = build([])
    assert decode(b"+++s\n", table) == [("cheaper_increase", 43)] * 3 + [("stats", 115)]
    assert decode(b"x\n", table) == [(None, ord("x"))]
    assert decode(b"\r\n", table) == []
    assert decode(b"1w", table) == [("fifo_slot_1", 49), ("reload_workers", 119)]
    assert describe(ord("x")) == "'x' (0x78)"


def test_hooked_newline_is_a_command():
    table = build([{"\n": "stats"}])
    assert decode(b"\n", table) == [("stats", 10)]


def test_slot_without_path_falls_back_to_first(tmp_path):
    ch = Channel([str(tmp_path / "a"), str(tmp_path / "b")], build([]), master=None)
    assert ch.path().endswith("/a")
    assert ch.select(1).endswith("/b")
    assert ch.select(7).endswith("/a")   # FIFO-5 QUIRK


def test_create_makes_a_0600_fifo(tmp_path):
    path = str(tmp_path / "fifo")
    old = os.umask(0)
    try:
        fd = create(path)
    finally:
        os.umask(old)
    try:
        st = os.lstat(path)
        assert stat.S_ISFIFO(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o600
        assert os.get_inheritable(fd) is False
        assert not os.get_blocking(fd)
    finally:
        os.close(fd)


def test_create_replaces_whatever_is_there_without_following_symlinks(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    link = tmp_path / "fifo"
    link.symlink_to(victim)
    fd = create(str(link))
    os.close(fd)
    assert stat.S_ISFIFO(os.lstat(link).st_mode)
    assert victim.read_text() == "precious\n"
    assert stat.S_ISREG(os.lstat(victim).st_mode)
    regular = tmp_path / "regular"
    regular.write_text("x")
    os.close(create(str(regular)))
    assert stat.S_ISFIFO(os.lstat(regular).st_mode)


def test_create_failure_is_one_line(tmp_path):
    with pytest.raises(FifoError, match=r"^uwsgi_master_fifo\(\)/mkfifo\(\): No such file"):
        create(str(tmp_path / "missing" / "fifo"))


def test_master_init_hook_is_declared():
    assert callable(hookspecs.uwsgi_master_init)


class _Loop:
    """What a Channel needs of the master: request/watch/unwatch, recorded."""

    def __init__(self):
        self.requests, self.watched = [], []

    def request(self, name):
        self.requests.append(name)

    def watch(self, w):
        self.watched.append(w.fd)

    def unwatch(self, fd):
        self.watched.remove(fd)


def test_a_command_in_the_old_fifo_between_eof_and_recreate_is_carried_out(tmp_path):
    """A writer's close is an EOF and the master answers it by making the FIFO anew. A script's
    next write can reach the old FIFO in between (its open comes before the new path exists):
    the write succeeds, so the byte must be read from the old FIFO before it is closed."""
    loop = _Loop()
    ch = Channel([str(tmp_path / "f")], build([]), master=loop)
    loop.watch(ch.open())
    first = ch.fd
    w = os.open(str(tmp_path / "f"), os.O_WRONLY | os.O_NONBLOCK)
    os.write(w, b"r")
    os.close(w)
    ch.readable()                      # "r"
    ch.readable()                      # EOF: the recreate is queued
    assert loop.requests == ["graceful_reload", "fifo_recreate"]
    late = os.open(str(tmp_path / "f"), os.O_WRONLY | os.O_NONBLOCK)   # the old FIFO still
    os.write(late, b"x")
    os.close(late)
    ch.readable()                      # at EOF already: left for the recreate
    ch.recreate()
    assert loop.requests == ["graceful_reload", "fifo_recreate", "fifo_unknown"]
    assert ch.next_unknown() == ord("x")
    assert ch.fd != first and loop.watched == [ch.fd]
    with pytest.raises(OSError):
        os.fstat(first)                # the old FIFO is closed
    os.close(ch.fd)
