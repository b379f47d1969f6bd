"""The master FIFO (uWSGI >= 1.9.17's ``--master-fifo``): one byte, one master action.

``echo r > /run/app.fifo`` gracefully reloads the instance; ``uwsgi-py --reload-fifo
/run/app.fifo`` does and waits for the outcome (``client.py``). The byte table is
``table.COMMANDS`` plus whatever other plugins return from
``uwsgi_fifo_commands`` (FIFO-8); every byte becomes a named master action,
the same ones the signal table uses (STYLE §4). ``--log-maxsize`` is the
core's (the master checks it once a second).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from uwsgi_py import Instance, MasterView, Option, hookimpl

from .table import RECREATE_ACTION, UNKNOWN_ACTION, slot_actions

if TYPE_CHECKING:
    from .channel import Channel

UNKNOWN_ACTION_NAME = "master fifo: command {text} maps to unknown action {name!r}"
NO_SUBSCRIPTIONS = ("subscriptions: uwsgi-py has no subscription system (no --subscribe-to); "
                    "nothing to block or re-enable")
NO_EMPEROR_BROODLORD = ("[broodlord] instance not governed by an Emperor !!! "
                        "(uwsgi-py has no Emperor mode)")
NO_EMPEROR_RESCAN = "Emperor rescan: uwsgi-py has no Emperor mode; nothing to rescan"
NO_FIFO = "master fifo: no --master-fifo configured"


def _log(line: str) -> None:
    from uwsgi_py import log_line as log
    log(line)


def _vlog(line: str) -> None:
    from uwsgi_py import log_verbose as vlog
    vlog(line)


def _reload_fifo(path: str) -> int:
    from .client import reload_fifo     # the command line's --reload-fifo only
    return reload_fifo(path)


@hookimpl
def uwsgi_add_options(registry):
    registry.add(
        Option("master-fifo", "path of a master FIFO; repeat for slots 0-9 (write 0-9 to switch)",
               multiple=True, master=True, metavar="PATH"),
        Option("reload-fifo", "gracefully reload the instance reading the master FIFO PATH and "
               "wait for the outcome: exit 0 when the new code serves, 2 when the reload was "
               "refused (as --reload PIDFILE)", metavar="PATH", immediate=_reload_fifo),
    )


# ---- actions -------------------------------------------------------------------------------
def _channel(master) -> Channel | None:
    return Instance(master.server).state_for("fifo").get("channel")


def select_slot(master, slot: int) -> None:
    channel = _channel(master)
    if channel is None:
        _log(NO_FIFO)
        return
    from .channel import ACTIVE
    _vlog(ACTIVE.format(path=channel.select(slot)))


def fifo_recreate(master) -> None:
    """uWSGI ``uwsgi_master_fifo_manage`` at EOF: a new FIFO at the current slot's path."""
    channel = _channel(master)
    if channel is None:
        return
    from .channel import FifoError
    try:
        channel.recreate()
    except FifoError as e:
        _log(str(e))
        MasterView(master).fail(1)


def fifo_unknown(master) -> None:
    """A byte with no entry in the table: logged, then skipped (uWSGI ignores it silently)."""
    channel = _channel(master)
    byte = channel.next_unknown() if channel is not None else None
    if byte is not None:
        from .channel import UNKNOWN, describe
        _log(UNKNOWN.format(text=describe(byte)))


def refork_master(master) -> None:
    """uWSGI ``uwsgi_refork_master`` (FIFO-11): a detached copy of the master execs."""
    MasterView(master).refork()


def subscriptions_toggle(master) -> None:
    """uWSGI ``subscriptions_blocker``: uwsgi-py has no subscription system."""
    _log(NO_SUBSCRIPTIONS)


def emperor_broodlord(master) -> None:
    """uWSGI ``vassal_sos``: uwsgi-py is never an Emperor's vassal."""
    _log(NO_EMPEROR_BROODLORD)


def emperor_rescan(master) -> None:
    """uWSGI ``emperor_rescan``: uwsgi-py has no Emperor."""
    _log(NO_EMPEROR_RESCAN)


ACTIONS = {
    **slot_actions(select_slot),
    RECREATE_ACTION: fifo_recreate,
    UNKNOWN_ACTION: fifo_unknown,
    "refork_master": refork_master,
    "subscriptions_toggle": subscriptions_toggle,
    "emperor_broodlord": emperor_broodlord,
    "emperor_rescan": emperor_rescan,
}


@hookimpl
def uwsgi_master_actions():
    return dict(ACTIONS)


# ---- the channel ---------------------------------------------------------------------------
def build_table(master) -> dict[int, str]:
    from .channel import describe
    from .table import build
    table = build(master.hook.uwsgi_fifo_commands(), warn=_log)
    actions = MasterView(master).actions
    for byte, name in sorted(table.items()):
        if name not in actions:
            _log(UNKNOWN_ACTION_NAME.format(text=describe(byte), name=name))
    return table


@hookimpl
def uwsgi_master_watch(master):
    """FIFO-1/-9: every image (first start, exec reload, refork) creates slot 0's FIFO."""
    paths = master.settings.master_fifo
    if not paths:
        return None
    from .channel import Channel, FifoError     # only a master with --master-fifo
    channel = Channel(paths, build_table(master), master)
    try:
        watch = channel.open()
    except FifoError as e:
        _log(str(e))
        MasterView(master).fail(1)
        return None
    Instance(master.server).state_for("fifo")["channel"] = channel
    return [watch]
