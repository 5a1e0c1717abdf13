"""One search run: budget and space files → the study (created or resumed, references queued) → the
trial loop → the front table, `trials.csv`, `pareto.png`, and optionally the exported front."""
from __future__ import annotations

import os
import sys
import threading
from dataclasses import replace
from pathlib import Path

import optuna
import torch

from nas.arch.space import SearchSpace
from nas.budget import Budget
from nas.core.errors import UserError
from nas.cost import analytic as costmodel
from nas.data.urbansound import FoldSplit, read_metadata
from nas.data.validate import validate_dataset
from nas.search import report
from nas.search.fidelity import load_fidelity
from nas.search.objective import Objective
from nas.search.options import DEFAULT_SPACE, SearchOptions
from nas.search.progress import Progress, choose_mode
from nas.search.proposal import Proposer
from nas.search.records import record_study_note
from nas.search.worker import run_trials
from nas.study.artifacts import artifact_store
from nas.study.claim import claim_for
from nas.study.folders import default_storage, output_dir, resolve_data
from nas.study.identity import definition, require_definition
from nas.study.record import TrialRecord
from nas.study.settings import record_settings
from nas.study.storage import check_storage
from nas.study.study import load_study, register_worker, sampler
from nas.study.trials import WORKER, close_stale_trials, counted, requeue_unfinished
from nas.train.distill import describe as describe_distillation, teacher_for
from nas.train.recipe import Recipe
from nas.train.trialdata import TrialData

REPO = Path(__file__).resolve().parents[2]


def resolve_space(path: str) -> Path:
    """The space file; the checkout's default space when run from elsewhere with the default path."""
    space_path = Path(path)
    if path == DEFAULT_SPACE and not space_path.is_file() and (REPO / DEFAULT_SPACE).is_file():
        space_path = REPO / DEFAULT_SPACE
    return space_path


def enqueue_references(study: optuna.Study, space: SearchSpace, budget: Budget) -> list[str]:
    """Queue the space's reference models that fit the budget, once per study."""
    done = {TrialRecord.of(t).reference for t in study.get_trials(deepcopy=False)}
    queued = []
    for name, params in space.reference_params().items():
        if name in done:
            continue
        spec = space.build(params, name)
        if costmodel.estimate(spec, budget).fits(budget):
            study.enqueue_trial(params, user_attrs=TrialRecord(outcome="queued", reference=name).attrs(), skip_if_exists=True)
            queued.append(name)
    return queued


def fold_split(root: Path, train: str | None, val: str, test: str) -> FoldSplit:
    """The split of the flags; without `--train-folds`, every fold of the dataset at `root` that
    holds clips and neither validates nor tests (`validate_dataset` then checks each fold)."""
    present = sorted({clip.fold for clip in read_metadata(root).clips})
    split = FoldSplit.from_flags(train, val, test, present=present)
    if not split.val:
        raise UserError("--val-folds: the search needs a validation fold to select models on")
    return split


def _say_opened(study: optuna.Study, storage: str, closed: int, redone: list, queued: list[str]) -> None:
    print(f"study {study.study_name!r} in {storage}: {counted(study)} trials"
          + (f", {closed} stale running trial(s) closed" if closed else "")
          + (f", {len(redone)} unfinished trial(s) queued again" if redone else "")
          + (f", references queued: {', '.join(queued)}" if queued else ""), flush=True)


def training_threads(jobs: int) -> int:
    """Torch threads per trial: $OMP_NUM_THREADS when the user set it (several processes sharing the
    cores), else the cores divided among the process's `jobs`."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    return int(env) if env.isdigit() and int(env) > 0 else max(1, (os.cpu_count() or 1) // max(1, jobs))


def _run(study: optuna.Study, objective: Objective, trials: int, claim, jobs: int, timeout: float | None,
         stop: threading.Event, bars: Progress, seed: int) -> bool:
    """The trial loop with its progress; True when it was interrupted (Ctrl-C, SIGTERM)."""
    interrupted = False
    propose = Proposer(objective.space, objective.budget, seed)
    try:
        run_trials(study, objective, trials, claim, jobs=jobs, timeout=timeout, stop=stop, progress=bars,
                   propose=propose)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bars.close()  # before anything else is printed
    if interrupted:
        print("interrupted: unfinished trials are redone when you rerun the same command", file=sys.stderr)
    return interrupted


def _open(study_name: str, storage: str, claim, seed: int, budget: Budget, space: SearchSpace, defines: dict,
          settings: tuple, mode: str) -> tuple[optuna.Study, int]:
    """The study, created or resumed under the claim lock (workers starting together: one creates it
    and queues the references), checked against what defines it, with this worker's sampler; and the
    worker's seed (distinct per worker)."""
    with claim:
        study = load_study(study_name, storage, seed, budget.objectives.compute, mode)
        require_definition(study, defines)
        closed = close_stale_trials(study)
        redone = requeue_unfinished(study)
        queued = enqueue_references(study, space, budget)
        record_settings(study, *settings)
        worker_seed = register_worker(study, WORKER, seed)
        study.sampler = sampler(worker_seed)
        record_study_note(study, budget, space, mode)
    _say_opened(study, storage, closed, redone, queued)
    return study, worker_seed


def search(options: SearchOptions) -> int:
    """Run the search `options` describe (`python -m nas.search`'s flags); returns the exit code."""
    space_file = resolve_space(options.space)
    budget, space = Budget.load(options.budget), SearchSpace.load(space_file)
    recipe, fidelity = Recipe.from_space_file(space_file), load_fidelity(space_file)
    o = options.resolved(recipe.epochs, training_threads(options.jobs))
    if o.demo:  # the synthetic demo shows the machinery in minutes: one run per candidate
        fidelity = replace(fidelity, seeds=1)
    recipe = recipe.replace(epochs=o.epochs, seed=o.seed)
    FoldSplit.from_flags(o.train_folds, o.val_folds, o.test_folds)  # malformed fold flags fail before any data work
    if o.teacher is not None:
        recipe = recipe.replace(distillation=replace(recipe.distillation, teacher=o.teacher))
    root = resolve_data(o.data, o.seed)
    split = fold_split(root, o.train_folds, o.val_folds, o.test_folds)
    dataset = validate_dataset(root, split)  # a dataset problem is one line before the study starts
    defines = definition(budget, o.budget, space_file, dataset, split, recipe.to_dict(), o.mode)
    storage = o.storage or default_storage(o.study)
    check_storage(storage)
    out = output_dir(o.study, storage)
    out.mkdir(parents=True, exist_ok=True)
    claim = claim_for(storage, o.study)
    study, sampler_seed = _open(o.study, storage, claim, o.seed, budget, space, defines,
                  (budget, root, split, o.cache, o.epochs, recipe.to_dict()), o.mode)
    torch.set_num_threads(o.threads)
    stop = threading.Event()
    bars = Progress(choose_mode(o.progress), o.trials, o.epochs, o.jobs, label=WORKER)
    store = artifact_store(out)
    teacher = teacher_for(recipe, root, split, o.cache, out)
    if teacher is not None:
        print(describe_distillation(recipe, teacher), flush=True)
    provider = TrialData(root, split, o.cache, teacher=teacher, temperature=recipe.distillation.temperature,
                         progress=False)  # the slot's line says it
    objective = Objective(space, budget, provider, recipe, checkpoints=out / "checkpoints", fidelity=fidelity,
                          stop=stop, log=bars.log, artifacts=store, progress=bars, mode=o.mode)
    interrupted = _run(study, objective, o.trials, claim, o.jobs, o.timeout, stop, bars, sampler_seed)
    print(report.summarise(study, budget, out), flush=True)
    if interrupted:
        return 130
    if o.export:
        from nas.export.pipeline import StudyExport, export_study

        export_study(study, Path("export") / o.study, StudyExport(budget=budget, data=root, split=split, cache=o.cache,
                                                                  checkpoints=out / "checkpoints"), artifacts=store)
    return 0
