"""`python -m nas.search --budget budgets/stm32l476.yaml`: the hardware-constrained search.

Wires the pieces together: budget and space files, the study (resumable, shareable storage), the
reference models queued first, the trial loop (`nas.worker`) running `nas.objective.Objective`, and
the outputs (`nas.report`). Objectives: validation accuracy (max), MAC/s (min), RAM (min); FLASH is
a constraint.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import warnings
from dataclasses import asdict
from pathlib import Path

import optuna
import torch

from nas import cost as costmodel
from nas.budget import Budget
from nas.data.urbansound import FoldSplit, find_root
from nas.errors import UserError, run_cli
from nas.objective import DIRECTIONS, OBJECTIVES, Objective
from nas.space import SearchSpace
from nas.storage import open_storage
from nas.train import TrainConfig
from nas.trialdata import TrialData
from nas.worker import claim_for, close_stale_trials, counted, run_trials

DEMO = "demo"
STUDIES = Path("studies")
DEFAULT_SPACE = "search_spaces/default.yaml"
REPO = Path(__file__).resolve().parents[1]

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def study_dir(study: str) -> Path:
    return STUDIES / study


def default_storage(study: str) -> str:
    return str(study_dir(study) / "journal.log")


def load_study(study: str, storage: str, seed: int | None) -> optuna.Study:
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=10)
    try:
        s = optuna.create_study(study_name=study, storage=open_storage(storage), directions=list(DIRECTIONS),
                                sampler=sampler, load_if_exists=True)
    except (optuna.exceptions.StorageInternalError, ImportError, ValueError) as exc:
        raise UserError(f"--storage {storage}: cannot open the study ({exc})") from None
    if list(s.directions) != [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE,
                              optuna.study.StudyDirection.MINIMIZE]:
        raise UserError(f"study {study!r} in {storage} was not created by nas.search (other objectives)")
    if not s.metric_names:
        s.set_metric_names(list(OBJECTIVES))
    return s


def open_study(name: str, storage: str | None = None) -> tuple[optuna.Study, str]:
    """An existing study (never creates one); UserError when the storage or the study is missing."""
    storage = storage or default_storage(name)
    if "://" not in storage and not Path(storage).is_file():
        raise UserError(f"--study {name}: no study storage at {storage} (run nas.search first, or pass --storage)")
    backend = open_storage(storage)
    try:
        return optuna.load_study(study_name=name, storage=backend), storage
    except KeyError:
        names = optuna.get_all_study_names(storage=backend)
        raise UserError(f"--study {name}: unknown study in {storage}"
                        + (f" (it has: {', '.join(sorted(names))})" if names else " (it has no study)")) from None


def enqueue_references(study: optuna.Study, space: SearchSpace, budget: Budget) -> list[str]:
    """Queue the space's reference models that fit the budget, once per study."""
    done = {t.user_attrs.get("reference") for t in study.get_trials(deepcopy=False)}
    queued = []
    for name, params in space.reference_params().items():
        if name in done:
            continue
        spec = space.build(params, name)
        if costmodel.estimate(spec, budget).fits(budget):
            study.enqueue_trial(params, user_attrs={"reference": name}, skip_if_exists=True)
            queued.append(name)
    return queued


def resolve_data(data: str, seed: int) -> Path:
    """`demo` → the built-in synthetic dataset (generated once under studies/), else a dataset root."""
    if data != DEMO:
        return Path(data)
    root = STUDIES / "demo_data"
    if not (root / "metadata" / "UrbanSound8K.csv").is_file():
        from nas.data import synth

        print(f"generating the demo dataset in {root} (synthetic, UrbanSound8K layout) ...", file=sys.stderr)
        synth.generate(root, seed=seed)
    return root


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nas.search",
                                description="Hardware-constrained architecture search: every candidate is priced "
                                "in int8 RAM, FLASH and MAC/s before training; over-budget ones are rejected at once.")
    p.add_argument("--budget", required=True, help="hardware budget YAML (budgets/*.yaml)")
    p.add_argument("--space", default=DEFAULT_SPACE, help="search space YAML (default: %(default)s)")
    p.add_argument("--data", default=DEMO, help="UrbanSound8K root (folder with metadata/ and audio/), or "
                   "'demo' (default) for the built-in synthetic dataset, generated under studies/demo_data")
    p.add_argument("--trials", type=int, default=None, help="finished trials the study should hold, instant "
                   "rejections included (default: 24 on the demo data, 200 otherwise)")
    p.add_argument("--timeout", type=float, default=None, help="stop starting new trials after this many seconds")
    p.add_argument("--study", default="nas", help="study name; rerun with the same name to resume (default: %(default)s)")
    p.add_argument("--storage", default=None, help="Optuna storage: a journal file path (default "
                   "studies/<study>/journal.log, shareable by local processes) or a URL such as "
                   "postgresql://user:pw@host/db for several machines")
    p.add_argument("--seed", type=int, default=0, help="sampler and training seed (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=None, help="maximum training epochs per candidate "
                   "(default: 12 on the demo data, 40 otherwise)")
    p.add_argument("--jobs", type=int, default=1, help="trials run in parallel threads in this process (default: 1); "
                   "for more processes or machines, start the same command again with the same --study/--storage")
    p.add_argument("--val-fold", type=int, default=9, help="fold used for model selection (default: %(default)s)")
    p.add_argument("--test-fold", type=int, default=10, help="fold held out, never read by the search (default: %(default)s)")
    p.add_argument("--cache", default="studies/.cache/features", help="feature cache folder (default: %(default)s)")
    p.add_argument("--export", action="store_true", help="export the Pareto front (ONNX + CMSIS-NN C) at the end")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    budget = Budget.load(args.budget)
    space_path = Path(args.space)
    if args.space == DEFAULT_SPACE and not space_path.is_file() and (REPO / DEFAULT_SPACE).is_file():
        space_path = REPO / DEFAULT_SPACE  # run from elsewhere than the checkout: its default space
    space = SearchSpace.load(space_path)
    demo = args.data == DEMO
    trials = args.trials if args.trials is not None else (24 if demo else 200)
    epochs = args.epochs if args.epochs is not None else (12 if demo else 40)
    for flag, value in (("--trials", trials), ("--epochs", epochs), ("--jobs", args.jobs)):
        if value < 1:
            raise UserError(f"{flag}: expected a positive integer, got {value}")
    split = FoldSplit.for_test_fold(args.test_fold, args.val_fold)
    root = resolve_data(args.data, args.seed)
    find_root(root)  # a missing dataset is one clear error before the study starts
    out = study_dir(args.study)
    out.mkdir(parents=True, exist_ok=True)
    storage = args.storage or default_storage(args.study)
    claim = claim_for(storage, args.study)
    with claim:  # workers starting together: one creates the study and queues the references
        study = load_study(args.study, storage, args.seed)
        closed = close_stale_trials(study)
        queued = enqueue_references(study, space, budget)
        for key, value in (("budget", asdict(budget)), ("data", str(Path(root).resolve())),
                           ("split", {"train": list(split.train), "val": list(split.val), "test": list(split.test)}),
                           ("cache", str(Path(args.cache).resolve())), ("epochs", epochs)):
            if study.user_attrs.get(key) != value:
                study.set_user_attr(key, value)
    done = counted(study)
    print(f"study {args.study!r} in {storage}: {done} trials"
          + (f", {closed} stale running trial(s) closed" if closed else "")
          + (f", references queued: {', '.join(queued)}" if queued else ""), flush=True)
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // args.jobs))
    stop = threading.Event()
    objective = Objective(space, budget, TrialData(root, split, args.cache), TrainConfig(epochs=epochs, seed=args.seed),
                          checkpoints=out / "checkpoints", stop=stop)
    interrupted = False
    try:
        run_trials(study, objective, trials, claim, jobs=args.jobs, timeout=args.timeout,
                   stop=stop)
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted: unfinished trials are redone when you rerun the same command", file=sys.stderr)
    from nas import report

    print(report.summarise(study, budget, out), flush=True)
    if interrupted:
        return 130
    if args.export:
        from nas.export.__main__ import export_study

        export_study(study, out_dir=Path("export") / args.study, budget=budget, data=root, split=split,
                     cache=args.cache)
    return 0


if __name__ == "__main__":
    run_cli(main)
