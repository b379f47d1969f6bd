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
from dataclasses import dataclass, field

from uwsgi_py import (MasterView, Option, OptionError, Watch, choice, hookimpl, log_line,
                      non_negative_int, positive_int)

from .algos import ALGOS, Counters, Load

GOING_CHEAP = "going cheap..."
KILLING = "killing worker {id} (pid: {pid})"
CHEAP_ENABLED = "cheap mode enabled: waiting for socket connection..."
NOT_ENABLED = "cheaper mode is not enabled (--cheaper N): FIFO '{cmd}' ignored"
AT_MINIMUM = "cheaper: {n} workers running, the --cheaper minimum: one less refused"
AT_MAXIMUM = "cheaper: all {n} workers running: {extra} more refused"
CHEAP_REFUSED = "going cheap refused: {why}"
BAD_CHEAPER = "--cheaper: invalid cheaper value {value}: must be lower than processes ({processes})"
BAD_INITIAL = ("--cheaper-initial: {value} must be between --cheaper ({cheaper}) and "
               "--processes ({processes})")
WAKEUP_ACTION = "cheap_wakeup"
INACTIVE = "workers have been inactive for more than {idle} seconds ({now}-{since})"


@hookimpl
def uwsgi_add_options(registry):
    registry.add(
        Option("cheaper", "cheaper mode: keep at least N workers, spawn more under load "
               "(N lower than --processes; 0 = off)", convert=non_negative_int, default=0,
               master=True, metavar="N"),
        Option("cheaper-algo", "cheaper algorithm: spare (default) or manual (FIFO + and - only)",
               convert=choice(*ALGOS), default="spare", metavar="NAME"),
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


@dataclass
class Cheaper:
    """Per-master cheaper state (``state_for("cheaper")["cheaper"]``)."""

    enabled: bool
    counters: Counters
    algo: str = "spare"
    fifo_delta: int = 0            # uWSGI's cheaper_fifo_delta: + and - since the last check
    is_cheap: bool = False         # after FIFO C, until the next connection
    waking: bool = False
    watched: list[int] = field(default_factory=list)
    idle_since: float = 0.0        # --idle: when the request count last changed
    idle_count: int = -1


def state(master) -> Cheaper:
    return MasterView(master).state_for("cheaper")["cheaper"]


@hookimpl
def uwsgi_master_init(master):
    """Slots beyond ``--cheaper-initial`` start cheaped (every image)."""
    s = master.settings
    view = MasterView(master)
    view.state_for("cheaper")["cheaper"] = Cheaper(
        enabled=bool(s.cheaper), algo=s.cheaper_algo,
        counters=Counters(minimum=s.cheaper, step=s.cheaper_step, overload=s.cheaper_overload))
    if s.cheaper:
        for wid in range((s.cheaper_initial or s.cheaper) + 1, view.numproc + 1):
            view.keep_slot_empty(wid)


# ---- the once-a-second check (uWSGI's uwsgi_calc_cheaper) ------------------------------------
def load(master) -> Load:
    view = MasterView(master)
    active = [w.id for w in view.workers_now if w.id not in view.cheaped]
    busy = sum(1 for wid in active if view.worker(wid)["busy"])
    return Load(active=len(active), busy=busy, free=len(free_slots(master)))


def free_slots(master) -> list[int]:
    view = MasterView(master)
    return [wid for wid in sorted(view.cheaped) if view.worker_info(wid) is None]


def oldest_idle(master) -> int | None:
    """The idle worker spawned first: the one uWSGI cheaps."""
    view = MasterView(master)
    idle = [w for w in view.workers_now if w.id not in view.cheaped
            and not w.stopping and not view.worker(w.id)["busy"]]
    return min(idle, key=lambda w: w.spawned).id if idle else None


def apply(master, st: Cheaper, needed: int) -> None:
    from uwsgi_py import log_line as log
    view = MasterView(master)
    if needed > 0:
        slots = free_slots(master)
        for wid in slots[:needed]:
            view.fill_slot(wid)
        if needed > len(slots):
            log(AT_MAXIMUM.format(n=view.numproc, extra=needed - len(slots)))
        return
    for _ in range(-needed):
        if load(master).active <= st.counters.minimum:
            log(AT_MINIMUM.format(n=st.counters.minimum))
            return
        wid = oldest_idle(master)
        if wid is None:
            st.fifo_delta -= 1     # uWSGI keeps it for the next check
            return
        view.keep_slot_empty(wid)


def check_idle(master, st: Cheaper, now: float) -> None:
    """uWSGI's ``uwsgi_master_check_idle``: no request for ``--idle`` seconds and no busy
    worker: go cheap (or shut down with ``--die-on-idle``)."""
    if st.is_cheap:
        st.idle_since = 0.0
        return
    view = MasterView(master)
    slots = [view.worker(w.id) for w in view.workers_now]
    if any(slot["busy"] for slot in slots):
        return
    count = sum(slot["requests"] for slot in slots)
    if not st.idle_since or count != st.idle_count:
        st.idle_since, st.idle_count = now, count
    elif now - st.idle_since > master.settings.idle:
        log_line(INACTIVE.format(idle=master.settings.idle, now=int(now), since=int(st.idle_since)))
        if master.settings.die_on_idle:
            master.request("immediate_shutdown")
        else:
            go_cheap(master)
        st.idle_since = 0.0


@hookimpl
def uwsgi_master_tick(master):
    view = MasterView(master)
    st = view.state_for("cheaper").get("cheaper")
    if st is not None and master.settings.idle and not view.paused:
        check_idle(master, st, time.time())
    if st is None or not st.enabled or st.is_cheap or view.paused:
        return
    if st.fifo_delta:
        needed, st.fifo_delta = st.fifo_delta, 0
    else:
        needed = ALGOS[st.algo](st.counters, load(master))
    if needed:
        apply(master, st, needed)


# ---- actions ---------------------------------------------------------------------------------
def _fifo_delta(master, delta: int, cmd: str) -> None:
    st = state(master)
    if not st.enabled:
        from uwsgi_py import log_line as log
        log(NOT_ENABLED.format(cmd=cmd))
        return
    st.fifo_delta += delta


def cheaper_increase(master) -> None:
    """uWSGI ``uwsgi_cheaper_increase`` (FIFO ``+``): one more worker at the next check."""
    _fifo_delta(master, 1, "+")


def cheaper_decrease(master) -> None:
    """uWSGI ``uwsgi_cheaper_decrease`` (FIFO ``-``): one less worker at the next check."""
    _fifo_delta(master, -1, "-")


def go_cheap(master) -> None:
    """uWSGI ``uwsgi_go_cheap`` (FIFO ``C``): SIGKILL every worker, cheap every slot,
    and poll the listeners; the next connection respawns the workers."""
    from uwsgi_py import log_line as log, log_verbose as vlog
    st = state(master)
    if st.is_cheap:
        return
    view = MasterView(master)
    why = ("a reload or shutdown is in progress" if not view.running
           else "a chain reload is in progress" if view.chain_reloading else "")
    if why:
        log(CHEAP_REFUSED.format(why=why))
        return
    vlog(GOING_CHEAP)
    st.is_cheap, st.waking = True, False
    for wid in range(1, view.numproc + 1):
        worker = view.worker_info(wid)
        if worker is not None:
            log(KILLING.format(id=wid, pid=worker.pid))
        view.keep_slot_empty(wid, brutal=True)
    st.watched = [lst.fd for lst in master.server.listeners]
    for fd in st.watched:
        master.watch(Watch(fd, lambda: _connection(master)))
    log(CHEAP_ENABLED)


def _connection(master) -> None:
    """Watch callback on a listener while cheap: queue the wake-up once."""
    st = state(master)
    if st.is_cheap and not st.waking:
        st.waking = True
        master.request(WAKEUP_ACTION)


def cheap_wakeup(master) -> None:
    """A connection arrived while cheap: stop polling the listeners (so workers keep
    them), then spawn ``--cheaper`` workers, or all of them without cheaper mode."""
    st = state(master)
    if not st.is_cheap:
        return
    for fd in st.watched:
        master.unwatch(fd)
    st.watched, st.is_cheap, st.waking = [], False, False
    view = MasterView(master)
    needed = st.counters.minimum if st.enabled else view.numproc
    for wid in range(1, needed + 1):
        view.fill_slot(wid)


@hookimpl
def uwsgi_master_actions():
    return {
        "cheaper_increase": cheaper_increase,
        "cheaper_decrease": cheaper_decrease,
        "go_cheap": go_cheap,
        WAKEUP_ACTION: cheap_wakeup,
    }
