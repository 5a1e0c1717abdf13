"""Cost-model throughput: how many candidate architectures can be priced per second on one core."""
from __future__ import annotations

import random
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run() -> list[tuple[str, float, str]]:
    from nas.arch.space import InvalidArchitecture, SearchSpace
    from nas.budget import Budget
    from nas.cost.analytic import estimate

    budget = Budget.load(ROOT / "budgets/stm32l476.yaml")
    space = SearchSpace.load(ROOT / "search_spaces/default.yaml")
    rng = random.Random(0)
    points = [space.sample(rng) for _ in range(500)]
    specs = []
    for p in points:
        try:
            specs.append(space.build(p))
        except InvalidArchitecture:
            pass
    for spec in specs:  # warm the per-front-end mel table memo, as a running search has
        estimate(spec, budget)

    def rate(fn, items, min_seconds=1.0) -> float:
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < min_seconds:
            for item in items:
                fn(item)
            n += len(items)
        return n / (time.perf_counter() - t0)

    est = rate(lambda s: estimate(s, budget), specs)
    full = rate(lambda p: _build_and_estimate(space, budget, p), points)
    return [("cost estimates / s (spec -> Cost, one core)", est, "1/s"),
            ("sample params -> spec -> cost / s (incl. validation)", full, "1/s"),
            ("valid share of random default-space points", len(specs) / len(points), "")]


def _build_and_estimate(space, budget, params):
    from nas.arch.space import InvalidArchitecture
    from nas.cost.analytic import estimate

    try:
        return estimate(space.build(params), budget)
    except InvalidArchitecture:
        return None
