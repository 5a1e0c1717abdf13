"""How often each selection rule picks the model that is best on the test folds, from a final stage
run with a selection rotation (`nas.evaluate --study S --trials ... --select-folds 1,3 --seeds 3`).

    python bench/selection_rotation.py --study S [--storage ...]

Per seed k, among the evaluated models: the pick by seed k's validation score on the study's split
(what selecting on the one small validation fold gives), the pick by seed k's mean validation score
over every split of the rotation (more validation clips), and the model whose seed-k run on the
study's split tests best (int8). Printed per rule: how many seeds it picked the test-best model, and
the mean test points it lost against it. The test folds are read here only to judge the rules.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def judge(records: list[dict], own: str) -> dict[str, list[float]]:
    """Per rule, the test points lost against the test-best model, one number per seed."""
    seeds = sorted({r["seed"] for r in records})
    lost: dict[str, list[float]] = {"own split": [], "rotation": []}
    for k in seeds:
        runs = [r for r in records if r["seed"] == k]
        test = {r["trial"]: r["test_accuracy_int8"] for r in runs if r["split"] == own}
        own_val = {r["trial"]: r["val_score"] for r in runs if r["split"] == own}
        splits = {r["split"] for r in runs}
        rot = {t: sum(r["val_score"] for r in runs if r["trial"] == t) / len(splits) for t in test
               if sum(r["trial"] == t for r in runs) == len(splits)}
        if len(test) < 2 or len(rot) != len(test):
            continue
        best = max(test.values())
        lost["own split"].append(best - test[max(own_val, key=own_val.get)])
        lost["rotation"].append(best - test[max(rot, key=rot.get)])
    return lost


def main(argv: list[str] | None = None) -> int:
    sys.path[:0] = [str(ROOT)]
    from nas.evaluate.stage import LEGACY_KEYS
    from nas.study.folders import output_dir
    from nas.study.settings import recorded_settings
    from nas.study.study import open_study

    p = argparse.ArgumentParser(prog="python bench/selection_rotation.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--study", required=True)
    p.add_argument("--storage", default=None)
    args = p.parse_args(argv)
    study, storage = open_study(args.study, args.storage)
    _, _, split, _ = recorded_settings(study)
    path = output_dir(args.study, storage) / "evaluation.jsonl"
    records = [{LEGACY_KEYS.get(k, k): v for k, v in json.loads(line).items()}
               for line in path.read_text().splitlines() if line.strip()]
    lost = judge(records, split.describe())
    n = len(lost["own split"])
    if not n:
        print(f"{path}: no seed with every model on every split")
        return 1
    print(f"{len({r['trial'] for r in records})} models, {n} seeds, splits: {'; '.join(sorted({r['split'] for r in records}))}")
    for rule, values in lost.items():
        print(f"  pick by {rule:<10}: the test-best model in {sum(v == 0 for v in values)}/{n} seeds, "
              f"{100 * sum(values) / n:.1f} test points lost on average")
    return 0


if __name__ == "__main__":
    sys.exit(main())
