"""`python -m nas.evaluate --study S`: the final stage on the study's models.

Flags → `nas.evaluate.stage.evaluate_study`: each model retrained with the study's recipe and several
seeds on the study's fold split (or a rotation over `--folds`), tested once, float and int8; tables,
`evaluation.csv` and confusion PNGs under `studies/<S>/`; an interrupted evaluation resumes.
"""
from __future__ import annotations

from nas.core import flags
from nas.core.errors import run_cli


def main(argv: list[str] | None = None) -> int:
    p = flags.Parser(prog="python -m nas.evaluate",
                     description="Final stage: retrain a study's models with its recipe and several seeds, "
                     "select on the validation folds, test once (float and int8).")
    p.add_argument("--study", required=True, type=flags.name, help="study name (as given to nas.search)")
    p.add_argument("--storage", default=None, help="Optuna storage (default studies/<study>/journal.log)")
    p.add_argument("--data", default=None, help="UrbanSound8K root, or 'demo' (default: the study's dataset)")
    p.add_argument("--trials", default=None, help="comma-separated trial numbers (default: the Pareto front)")
    p.add_argument("--folds", default=None, help="rotate over these test folds, e.g. 1,2,3,4,5,6,7,8,9,10 for the "
                   "thesis's 10-fold protocol (default: the study's own train/val/test split)")
    p.add_argument("--select-folds", default=None, help="also retrain with each of these folds (of the study's "
                   "training and validation folds) validating in turn, e.g. 1,3, and report the pick by the mean "
                   "validation score over them: for a small validation fold (docs/results.md)")
    p.add_argument("--seeds", type=flags.positive_int, default=3,
                   help="training seeds per model and split (default: %(default)s)")
    p.add_argument("--epochs", type=flags.positive_int, default=None,
                   help="training epochs (default: the study's recipe)")
    p.add_argument("--seed", type=flags.seed, default=0, help="first seed (default: %(default)s)")
    p.add_argument("--cache", default=None, help="feature cache folder (default: the study's)")
    p.add_argument("--target-precision", type=flags.share, default=0.9, metavar="P", help="report each model's 'unknown' "
                   "threshold: the lowest whose validation precision reaches P (default: %(default)s)")
    args = p.parse_args(argv)
    from nas.evaluate.stage import evaluate_study  # torch and optuna load after the flags parse: --help is instant
    from nas.study.folders import output_dir
    from nas.study.study import open_study

    study, storage = open_study(args.study, args.storage)
    return evaluate_study(study, data=args.data, trials=args.trials, folds=args.folds, seeds=args.seeds,
                          epochs=args.epochs, seed=args.seed, cache=args.cache, out=output_dir(args.study, storage),
                          select_folds=args.select_folds, target_precision=args.target_precision)


if __name__ == "__main__":
    run_cli(main)
