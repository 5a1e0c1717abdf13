"""`python -m nas.evaluate --study S`: the thesis protocol on the study's Pareto models.

Flags → `nas.evaluate.crossval.evaluate_study`: each model trained and tested once per predefined
fold, mean ± std in a table and `studies/<S>/evaluation.csv`; an interrupted evaluation resumes.
"""
from __future__ import annotations

import argparse

from nas.core.errors import run_cli
from nas.data.urbansound import FOLDS
from nas.evaluate.crossval import evaluate_study
from nas.study.study import open_study


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nas.evaluate",
                                description="10-fold cross-validation (UrbanSound8K's predefined folds) of a study's "
                                "Pareto models, as the thesis evaluated its models.")
    p.add_argument("--study", required=True, help="study name (as given to nas.search)")
    p.add_argument("--storage", default=None, help="Optuna storage (default studies/<study>/journal.log)")
    p.add_argument("--data", default=None, help="UrbanSound8K root, or 'demo' (default: the study's dataset)")
    p.add_argument("--trials", default=None, help="comma-separated trial numbers (default: the Pareto front)")
    p.add_argument("--folds", default=",".join(map(str, FOLDS)), help="test folds to run, e.g. 1,2,3")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: the study's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", default=None, help="feature cache folder (default: the study's)")
    args = p.parse_args(argv)
    study, _ = open_study(args.study, args.storage)
    return evaluate_study(study, data=args.data, trials=args.trials, folds=args.folds, epochs=args.epochs,
                          seed=args.seed, cache=args.cache)


if __name__ == "__main__":
    run_cli(main)
