"""`python -m nas.search --budget budgets/stm32l476.yaml`: the hardware-constrained search.

Flags → `nas.search.run.search`. Every candidate is priced in int8 RAM, FLASH and MAC/s before
training; over-budget ones are rejected at once.
"""
from __future__ import annotations

from nas.core import flags
from nas.core.errors import run_cli
from nas.search.progress import MODES
from nas.search.run import DEFAULT_SPACE, search
from nas.study.folders import DEFAULT_CACHE, DEMO


def build_parser() -> flags.Parser:
    p = flags.Parser(prog="python -m nas.search",
                     description="Hardware-constrained architecture search: every candidate is priced "
                     "in int8 RAM, FLASH and MAC/s before training; over-budget ones are rejected at once.")
    p.add_argument("--budget", required=True, help="hardware budget YAML (budgets/*.yaml)")
    p.add_argument("--space", default=DEFAULT_SPACE, help="search space YAML (default: %(default)s)")
    p.add_argument("--data", default=DEMO, help="UrbanSound8K root (folder with metadata/ and audio/), or "
                   "'demo' (default) for the built-in synthetic dataset, generated under studies/demo_data")
    p.add_argument("--trials", type=flags.positive_int, default=None, help="finished trials the study should "
                   "hold, instant rejections included (default: 24 on the demo data, 200 otherwise)")
    p.add_argument("--timeout", type=flags.seconds, default=None,
                   help="stop starting new trials after this many seconds")
    p.add_argument("--study", default="nas", type=flags.name,
                   help="study name; rerun with the same name to resume (default: %(default)s)")
    p.add_argument("--storage", default=None, help="Optuna storage: a journal file path (default "
                   "studies/<study>/journal.log, shareable by local processes) or a URL such as "
                   "postgresql://user:pw@host/db for several machines")
    p.add_argument("--seed", type=flags.seed, default=0, help="sampler and training seed (default: %(default)s)")
    p.add_argument("--epochs", type=flags.positive_int, default=None, help="maximum training epochs per candidate "
                   "(default: 8 on the demo data, else the space file's training.epochs)")
    p.add_argument("--jobs", type=flags.positive_int, default=1, help="trials run in parallel threads in this "
                   "process (default: 1); for more processes or machines, start the same command again with the "
                   "same --study/--storage")
    p.add_argument("--threads", type=flags.positive_int, default=None, help="torch threads per trial (default: "
                   "$OMP_NUM_THREADS when set, else the cores divided by --jobs); with several processes on one "
                   "machine give each its share, e.g. 1 each on 2 cores: more threads than cores slow training "
                   "several-fold")
    p.add_argument("--train-folds", default=None, help="folds to train on, e.g. 1,2 (default: every fold of the "
                   "dataset that is not a validation or test fold)")
    p.add_argument("--val-fold", "--val-folds", dest="val_folds", default="9",
                   help="fold(s) used for model selection (default: %(default)s)")
    p.add_argument("--test-fold", "--test-folds", dest="test_folds", default="10",
                   help="fold(s) held out, never read by the search, or 'none' (default: %(default)s)")
    p.add_argument("--cache", default=str(DEFAULT_CACHE), help="feature cache folder (default: %(default)s)")
    p.add_argument("--teacher", default=None, help="distil from this teacher file (per-clip probabilities, "
                   "README 'Distillation'), or 'auto'/'none' (default: the space file's training.distillation.teacher)")
    p.add_argument("--export", action="store_true", help="export the Pareto front (ONNX + CMSIS-NN C) at the end")
    p.add_argument("--progress", choices=MODES, default="auto", help="live progress on stderr: bars (a terminal), "
                   "lines (one line per epoch, for several workers in one terminal), off; auto (default): bars in a "
                   "foreground terminal, lines in a background job, off when not a terminal")
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    return search(a.budget, a.space, a.data, trials=a.trials, timeout=a.timeout, study_name=a.study,
                  storage=a.storage, seed=a.seed, epochs=a.epochs, jobs=a.jobs, threads=a.threads,
                  train_folds=a.train_folds,
                  val_folds=a.val_folds, test_folds=a.test_folds, cache=a.cache, export=a.export,
                  teacher=a.teacher, progress=a.progress)


if __name__ == "__main__":
    run_cli(main)
