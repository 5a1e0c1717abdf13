"""How the search spends training: rungs over epochs, and more seeds for front candidates.

Successive halving inside the study (Optuna's pruners are single-objective only, and rank every
candidate against every other): a candidate trains until its first rung (`min_epochs`), then until
each next rung `reduction` times longer, and finally to the recipe's epochs. At a rung it is judged
against the trials that reached the same rung (equal fidelity) *and cost about as much*: it goes on
unless a rival at no more compute and RAM, but at most `band` times cheaper in compute, scored at
least `margin` better there. Like is compared with like because a larger network starts slower: at 4
epochs a much cheaper network is often ahead of one that ends better (docs/results.md, "Rung rule":
any cheaper rival stopped 31 of 39 dev candidates above 1 M MAC/s, a band of 2 stops 15).

A candidate that completes and would join the front (within `seed_margin`; in an accuracy-mode study:
would be the most accurate) is trained again with `seeds - 1` more seeds and ranked on the mean, so no
model is on the front, or the answer, for one lucky run.
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
    band: float = bounded(2.0, ge=1.0, le=1e9, doc="a rival stops a candidate only when at most this many times "
                          "cheaper in compute (like with like); 1e9 = any cheaper rival")
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


def rival_ahead(me: Point, others: Iterable[Point], margin: float, band: float = float("inf")) -> Point | None:
    """The first other point at least `margin` better in score at no more compute and RAM, and at most
    `band` times cheaper in compute, if any."""
    for o in others:
        if (o.number != me.number and o.score >= me.score + margin and o.compute <= me.compute and o.ram <= me.ram
                and o.compute * band >= me.compute):
            return o
    return None


def near_front(me: Point, completed: Sequence[Point], margin: float) -> bool:
    """Would `me` join the front of `completed` if its score were `margin` higher?"""
    return rival_ahead(Point(me.number, me.score + margin, me.compute, me.ram), completed, 1e-12) is None


def near_top(me: Point, completed: Sequence[Point], margin: float) -> bool:
    """Would `me` be the most accurate of `completed` if its score were `margin` higher? (the extra
    seeds of an accuracy-mode study go to the contenders for the answer)"""
    return all(o.score < me.score + margin for o in completed if o.number != me.number)


def load_fidelity(path) -> Fidelity:
    """The `search:` section of a search-space file (the defaults where it has none)."""
    data = config.read_yaml(path)
    section = data.get("search", {}) if isinstance(data, dict) else {}
    return config.load(Fidelity, section or {}, str(path), "search")
