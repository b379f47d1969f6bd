"""Cheaper algorithms: how many workers to add (> 0) or cheap (< 0) on this check.

Pure functions of a ``Load`` snapshot and the algorithm's own counters, so the
unit tests drive them without processes. They follow uWSGI 2.0's
``uwsgi_cheaper_algo_spare`` and ``uwsgi_cheaper_algo_manual``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass
class Load:
    """What the master sees on one check."""

    active: int      # slots with a running, not cheaped worker
    busy: int        # of those, serving a request
    free: int        # cheaped slots with no process left (can be spawned)


@dataclass
class Counters:
    """Settings and state one algorithm keeps between checks."""

    minimum: int          # --cheaper
    step: int = 1         # --cheaper-step
    overload: int = 3     # --cheaper-overload (checks, one a second)
    overload_count: int = 0
    idle_count: int = 0


def spare(c: Counters, load: Load) -> int:
    """uWSGI's default: spawn ``step`` workers once every worker has been busy for
    more than ``overload`` checks; cheap one worker every ``overload`` idle checks
    while more than ``minimum`` run, unless exactly one spare worker is left."""
    if load.busy >= load.active:   # no idle worker (uWSGI counts none running as overload)
        c.overload_count += 1
        c.idle_count = 0
    elif c.overload_count > 0:
        c.overload_count -= 1
    if c.overload_count > c.overload:
        c.overload_count = 0
        return min(c.step, load.free)
    if c.overload_count:
        return 0
    if load.active > load.busy and load.active - load.busy == 1:
        return 0  # stable: one spare worker
    c.idle_count += 1
    if load.active > c.minimum and c.idle_count % c.overload == 0:
        return -1
    return 0


def manual(c: Counters, load: Load) -> int:
    """Only the FIFO's ``+``/``-`` change the number of workers."""
    return 0


ALGOS: dict[str, Callable[[Counters, Load], int]] = {"spare": spare, "manual": manual}
