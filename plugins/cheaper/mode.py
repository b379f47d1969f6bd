"""Cheaper mode's state and work in the master: the once-a-second check, ``--idle`` and
going cheap (FIFO ``C``).

Loaded by the plugin (``__init__.py``) only once the feature is in use: ``--cheaper`` or
``--idle`` at start, or the first FIFO ``+``, ``-`` or ``C``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from uwsgi_py import MasterView, Watch
from uwsgi_py import log_line as log, log_verbose as vlog

from . import WAKEUP_ACTION
from .algos import ALGOS, Counters, Load

GOING_CHEAP = "going cheap..."
KILLING = "killing worker {id} (pid: {pid})"
CHEAP_ENABLED = "cheap mode enabled: waiting for socket connection..."
NOT_ENABLED = "cheaper mode is not enabled (--cheaper N): FIFO '{cmd}' ignored"
AT_MINIMUM = "cheaper: {n} workers running, the --cheaper minimum: one less refused"
AT_MAXIMUM = "cheaper: all {n} workers running: {extra} more refused"
CHEAP_REFUSED = "going cheap refused: {why}"
INACTIVE = "workers have been inactive for more than {idle} seconds ({now}-{since})"


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


def start(master) -> Cheaper:
    """This image's state; slots beyond ``--cheaper-initial`` start cheaped."""
    s = master.settings
    view = MasterView(master)
    st = view.state_for("cheaper")["cheaper"] = Cheaper(
        enabled=bool(s.cheaper), algo=s.cheaper_algo,
        counters=Counters(minimum=s.cheaper, step=s.cheaper_step, overload=s.cheaper_overload))
    if s.cheaper:
        for wid in range((s.cheaper_initial or s.cheaper) + 1, view.numproc + 1):
            view.keep_slot_empty(wid)
    return st


def state(master) -> Cheaper:
    """This image's state, made at the first FIFO command when neither ``--cheaper`` nor
    ``--idle`` made it at start."""
    st = MasterView(master).state_for("cheaper").get("cheaper")
    return st if st is not None else start(master)


def tick(master, st: Cheaper, now: float) -> None:
    """The once-a-second check: ``--idle``, then the algorithm or the FIFO's ``+``/``-``."""
    view = MasterView(master)
    if master.settings.idle and not view.paused:
        check_idle(master, st, now)
    if not st.enabled or st.is_cheap or view.paused:
        return
    if st.fifo_delta:
        needed, st.fifo_delta = st.fifo_delta, 0
    else:
        needed = ALGOS[st.algo](st.counters, load(master))
    if needed:
        apply(master, st, needed)


# ---- uWSGI's uwsgi_calc_cheaper ---------------------------------------------------------------
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
        log(INACTIVE.format(idle=master.settings.idle, now=int(now), since=int(st.idle_since)))
        if master.settings.die_on_idle:
            master.request("immediate_shutdown")
        else:
            go_cheap(master)
        st.idle_since = 0.0


# ---- actions ---------------------------------------------------------------------------------
def fifo_delta(master, delta: int, cmd: str) -> None:
    st = state(master)
    if not st.enabled:
        log(NOT_ENABLED.format(cmd=cmd))
        return
    st.fifo_delta += delta


def go_cheap(master) -> None:
    """uWSGI ``uwsgi_go_cheap`` (FIFO ``C``): SIGKILL every worker, cheap every slot,
    and poll the listeners; the next connection respawns the workers."""
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


