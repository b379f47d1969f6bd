"""Cheaper mode (uWSGI's adaptive process spawning) and "go cheap".

``--cheaper N`` keeps between N and ``--processes`` workers running: the rest
of the slots are *cheaped* (empty, stats status ``cheap``, pid 0). Once a
second the algorithm (``--cheaper-algo spare|manual``) or the FIFO's ``+``/``-``
decide to spawn cheaped slots or to cheap idle workers. FIFO ``C`` ("go
cheap") kills every worker and waits for the next connection, with or without
``--cheaper``. The core only knows cheaped slots (``MasterView.keep_slot_empty``);
everything else is here.
"""
from __future__ import annotations

import time

from uwsgi_py import MasterView, Option, OptionError, choice, hookimpl, non_negative_int, positive_int

# the keys of algos.ALGOS (a unit test keeps them equal): the option is declared without
# loading the algorithms
ALGO_NAMES = ("spare", "manual")
BAD_CHEAPER = "--cheaper: invalid cheaper value {value}: must be lower than processes ({processes})"
BAD_INITIAL = ("--cheaper-initial: {value} must be between --cheaper ({cheaper}) and "
               "--processes ({processes})")
WAKEUP_ACTION = "cheap_wakeup"


@hookimpl
def uwsgi_add_options(registry):
    registry.add(
        Option("cheaper", "cheaper mode: keep at least N workers, spawn more under load "
               "(N lower than --processes; 0 = off)", convert=non_negative_int, default=0,
               master=True, metavar="N"),
        Option("cheaper-algo", "cheaper algorithm: spare (default) or manual (FIFO + and - only)",
               convert=choice(*ALGO_NAMES), default="spare", metavar="NAME"),
        Option("cheaper-initial", "workers spawned at start in cheaper mode (default: --cheaper)",
               convert=non_negative_int, default=0, metavar="N"),
        Option("cheaper-step", "workers spawned at once when more are needed",
               convert=positive_int, default=1, metavar="N"),
        Option("cheaper-overload", "checks (seconds) of overload before spawning, "
               "and of idleness between two cheaped workers", convert=positive_int, default=3,
               metavar="N"),
        Option("idle", "go cheap (every worker stopped until the next connection) once no "
               "request has been served for SECS seconds (0: never)", convert=non_negative_int,
               default=0, master=True, metavar="SECS"),
        Option("die-on-idle", "with --idle: shut the instance down instead of going cheap",
               flag=True),
    )


@hookimpl
def uwsgi_configure(settings):
    n, processes = settings.cheaper, settings.processes
    if n and n >= processes:
        raise OptionError(BAD_CHEAPER.format(value=n, processes=processes))
    initial = settings.cheaper_initial
    if n and initial and not n <= initial <= processes:
        raise OptionError(BAD_INITIAL.format(value=initial, cheaper=n, processes=processes))


@hookimpl
def uwsgi_master_init(master):
    """Slots beyond ``--cheaper-initial`` start cheaped (every image)."""
    s = master.settings
    if s.cheaper or s.idle:
        from . import mode     # the FIFO's first +, - or C loads it otherwise
        mode.start(master)


@hookimpl
def uwsgi_master_tick(master):
    st = MasterView(master).state_for("cheaper").get("cheaper")
    if st is not None:
        from . import mode
        mode.tick(master, st, time.time())


# ---- actions: the FIFO's bytes, loading cheaper mode at the first one ------------------------
def cheaper_increase(master) -> None:
    """uWSGI ``uwsgi_cheaper_increase`` (FIFO ``+``): one more worker at the next check."""
    from . import mode
    mode.fifo_delta(master, 1, "+")


def cheaper_decrease(master) -> None:
    """uWSGI ``uwsgi_cheaper_decrease`` (FIFO ``-``): one less worker at the next check."""
    from . import mode
    mode.fifo_delta(master, -1, "-")


def go_cheap(master) -> None:
    """uWSGI ``uwsgi_go_cheap`` (FIFO ``C``): SIGKILL every worker, cheap every slot,
    and poll the listeners; the next connection respawns the workers."""
    from . import mode
    mode.go_cheap(master)


def cheap_wakeup(master) -> None:
    """A connection arrived while cheap: spawn the workers again (``mode.cheap_wakeup``)."""
    from . import mode
    mode.cheap_wakeup(master)


@hookimpl
def uwsgi_master_actions():
    return {
        "cheaper_increase": cheaper_increase,
        "cheaper_decrease": cheaper_decrease,
        "go_cheap": go_cheap,
        WAKEUP_ACTION: cheap_wakeup,
    }
