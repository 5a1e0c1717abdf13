"""How the search spends training: rungs over epochs, and more seeds for front candidates.

Successive halving inside a multi-objective study (Optuna's pruners are single-objective only):
a candidate trains until its first rung (`min_epochs`), then until each next rung `reduction` times
longer, and finally to the recipe's epochs. At a rung it is judged against every trial that reached
the same rung (equal fidelity), on all objectives: it goes on unless some trial scored at least
`margin` better there at no more compute and no more RAM -- i.e. unless it is clearly off the front
at that fidelity. Most candidates therefore cost `min_epochs` epochs; cheap or accurate ones go on.

A candidate that completes and would join the front (within `seed_margin`) is trained again with
`seeds - 1` more seeds and ranked on the mean, so no model is on the front for one lucky run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from nas.core import config
from nas.core.config import bounded


@dataclass(frozen=True)
class Fidelity:
    """The `search:` section of a search-space file."""

    min_epochs: int = bounded(4, ge=1, le=10000, doc="epochs of the first rung")
    reduction: int = bounded(3, ge=2, le=100, doc="each rung trains this many times longer than the previous")
    margin: float = bounded(0.03, ge=0.0, le=1.0, doc="score a rival must lead by to stop a candidate at a rung")
    min_rivals: int = bounded(4, ge=0, le=10000, doc="trials a rung needs before it stops anyone")
    seeds: int = bounded(3, ge=1, le=100, doc="training runs of a front candidate; its score is their mean")
    seed_margin: float = bounded(0.02, ge=0.0, le=1.0, doc="candidates this close to the front get the extra seeds")

    def rungs(self, epochs: int) -> list[int]:
        """Epochs at which a trial is judged, below the full `epochs`: min, min*r, min*r^2, ..."""
        out, e = [], self.min_epochs
        while e < epochs:
            out.append(e)
            e *= self.reduction
        return out


@dataclass(frozen=True)
class Point:
    """A trial as the rules see it: its score and its two costs (compute, RAM)."""

    number: int
    score: float
    compute: float
    ram: float


def rival_ahead(me: Point, others: Iterable[Point], margin: float) -> Point | None:
    """The first other point at least `margin` better in score at no more compute and RAM, if any."""
    for o in others:
        if o.number != me.number and o.score >= me.score + margin and o.compute <= me.compute and o.ram <= me.ram:
            return o
    return None


def near_front(me: Point, completed: Sequence[Point], margin: float) -> bool:
    """Would `me` join the front of `completed` if its score were `margin` higher?"""
    return rival_ahead(Point(me.number, me.score + margin, me.compute, me.ram), completed, 1e-12) is None


def load_fidelity(path) -> Fidelity:
    """The `search:` section of a search-space file (the defaults where it has none)."""
    data = config.read_yaml(path)
    section = data.get("search", {}) if isinstance(data, dict) else {}
    return config.load(Fidelity, section or {}, str(path), "search")
