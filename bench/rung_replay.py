"""How well a rung rule keeps the candidates that end best: replayed on a study whose candidates all
trained to the end (a search run with `search: {margin: 1.0}`, so no rival stopped anyone).

    python bench/rung_replay.py --study norung [--storage ...] [--study other --storage ...] [--bands 1e9,4,2]

Each trained trial recorded its smoothed validation score at every rung (4 and 12 epochs) and its
first run's final score. Trials are replayed in the order they started (one process: each saw all
earlier trials at its rungs); a rule stops a trial at a rung when an earlier trial that reached that
rung under the same rule, at no more compute and RAM and at most `band` times cheaper in compute,
scored `margin` better there (`band` 1e9 = the former rule: any cheaper rival). Printed per rule:
trials stopped at each rung, epochs trained, how many of the final top 10 it stops, how many trials
above 1 M MAC/s it stops, how often a pair it compares is ordered at the rung as at the end, and how
many stopped trials ended at least as good as the rival that stopped them. Also the
rank correlation of rung and final score for trials above 1 M MAC/s (rule-independent).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load(study_name: str, storage: str | None) -> tuple[list[dict], int]:
    """Trained trials (not duplicates) with their rung scores, final first-run score and costs."""
    from optuna.trial import TrialState

    from nas.study.record import TrialRecord
    from nas.study.study import open_study

    study, _ = open_study(study_name, storage)
    rows = []
    epochs = int(study.user_attrs.get("epochs") or 0)
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        rec = TrialRecord.of(t)
        if rec.duplicate_of is not None or not rec.seed_scores or not rec.rungs:
            continue
        rows.append({"number": t.number, "name": rec.name, "rungs": rec.rungs, "final": rec.seed_scores[0],
                     "compute": rec.macs_per_second, "ram": rec.ram_bytes, "params": rec.params,
                     "start": t.datetime_start})
    rows.sort(key=lambda r: r["start"])
    return rows, epochs


def replay(rows: list[dict], rungs: list[int], margin: float, band: float, epochs: int, min_rivals: int = 4,
           axis: str = "compute") -> dict:
    """Which trials the rule stops, and at which rung; the compared (candidate, rival) pairs. `axis`:
    the cost the band is measured on (the search's rule: compute; `params` is replayed to compare)."""
    from nas.search.fidelity import Point, rival_ahead

    reached: dict[int, list[tuple[Point, dict]]] = {r: [] for r in rungs}
    stopped: dict[int, int] = {}
    pairs, wrong = [], 0
    for row in rows:
        for rung in rungs:
            if rung not in row["rungs"]:
                break
            me = Point(row["number"], row["rungs"][rung], row["compute"], row["ram"])
            rivals = [p for p, o in reached[rung] if o[axis] * band >= row[axis]]
            compared = [(p, o) for p, o in reached[rung] if p.compute <= me.compute and p.ram <= me.ram
                        and o[axis] * band >= row[axis]]
            pairs += [(row, o, rung) for _, o in compared]
            reached[rung].append((me, row))
            ahead = rival_ahead(me, rivals, margin) if len(reached[rung]) > min_rivals else None
            if ahead is not None:
                stopped[row["number"]] = rung
                final = next(o["final"] for p, o in reached[rung] if p.number == ahead.number)
                wrong += row["final"] >= final
                break
    spent = sum(stopped.get(r["number"], epochs) for r in rows)
    return {"stopped": stopped, "pairs": pairs, "epochs": spent, "wrong": wrong}


def spearman(xs: list[float], ys: list[float]) -> float:
    import numpy as np
    from scipy.stats import spearmanr

    return float(spearmanr(np.asarray(xs), np.asarray(ys)).statistic) if len(xs) > 2 else float("nan")


def concordance(pairs: list[tuple[dict, dict, int]]) -> float:
    """Share of compared pairs whose order at the rung is their order at the end."""
    if not pairs:
        return float("nan")
    agree = sum((a["rungs"][r] - b["rungs"][r]) * (a["final"] - b["final"]) > 0 for a, b, r in pairs)
    return agree / len(pairs)


def replay_all(groups: list[list[dict]], rungs: list[int], margin: float, band: float, epochs: int,
               axis: str) -> dict:
    """`replay` on each study's own sequence, the results pooled (trials keyed by (study, number))."""
    out = {"stopped": {}, "pairs": [], "epochs": 0, "wrong": 0}
    for g, rows in enumerate(groups):
        one = replay(rows, rungs, margin, band, epochs, axis=axis)
        out["stopped"].update({(g, n): r for n, r in one["stopped"].items()})
        out["pairs"] += one["pairs"]
        out["epochs"] += one["epochs"]
        out["wrong"] += one["wrong"]
    return out


def table(groups: list[list[dict]], rungs: list[int], margin: float, bands: list[float], epochs: int) -> None:
    rows = [dict(r, key=(g, r["number"])) for g, rs in enumerate(groups) for r in rs]
    top = {(g, r["number"]) for g, rs in enumerate(groups) for r in sorted(rs, key=lambda r: -r["final"])[:10]}
    big = [r for r in rows if r["compute"] > 1e6]
    print(f"{len(rows)} trials trained to {epochs} epochs in {len(groups)} studies, rungs {rungs}; "
          f"{len(big)} above 1 M MAC/s; top 10 = each study's 10 best final scores ({len(top)})")
    for rung in rungs:
        have = [r for r in big if rung in r["rungs"]]
        print(f"  rung {rung:>2}: Spearman(rung, final) above 1 M MAC/s "
              f"{spearman([r['rungs'][rung] for r in have], [r['final'] for r in have]):.2f} (n={len(have)}); "
              f"all trials {spearman([r['rungs'][rung] for r in rows], [r['final'] for r in rows]):.2f}")
    print(f"{'rule':<26} {'stopped':>14} {'epochs':>8} {'top-10 stopped':>15} {'>1M stopped':>12} {'pairs in order':>15} "
          f"{'ended >= stopper':>17}")
    for band, axis in [(b, a) for a in ("compute", "params") for b in bands if a == "compute" or b < 1e8]:
        out = replay_all(groups, rungs, margin, band, epochs, axis)
        per_rung = "/".join(str(sum(1 for v in out["stopped"].values() if v == r)) for r in rungs)
        label = "any cheaper rival" if band >= 1e8 else f"band x{band:g} on {axis}"
        print(f"{label:<26} {per_rung:>14} {out['epochs']:>8} {len(top & set(out['stopped'])):>15} "
              f"{sum(1 for r in big if r['key'] in out['stopped']):>12} {concordance(out['pairs']):>15.2f} "
              f"{out['wrong']:>17}")


def main(argv: list[str] | None = None) -> int:
    sys.path[:0] = [str(ROOT)]
    p = argparse.ArgumentParser(prog="python bench/rung_replay.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--study", action="append", required=True, help="a study (repeat for several, pooled)")
    p.add_argument("--storage", action="append", default=None, help="its storage (repeat in the same order)")
    p.add_argument("--margin", type=float, default=0.03)
    p.add_argument("--bands", default="1e9,8,4,2", help="compute bands to replay (1e9 = any cheaper rival)")
    args = p.parse_args(argv)
    storages = args.storage or [None] * len(args.study)
    loaded = [load(name, storage) for name, storage in zip(args.study, storages)]
    groups, epochs = [rows for rows, _ in loaded], max(e for _, e in loaded)
    rungs = sorted({r for rows in groups for row in rows for r in row["rungs"]})
    if sum(map(len, groups)) < 10:
        print(f"{sum(map(len, groups))} trained trials with rung scores: too few to replay")
        return 1
    table(groups, rungs, args.margin, [float(b) for b in args.bands.split(",")], epochs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
