"""Creating and opening the study: its mode's objectives, a resumable storage, one-line errors.

Two modes (`MODES`). `pareto`: three objectives, `val_score` (max, `nas.study.metrics`), compute (min: MAC/s, or the
measured CPU share when the budget's ``objectives.compute`` says so; its name is the study's second
metric name), RAM (min). `accuracy`: the user's first question, the most accurate model that fits the
budget: one objective, `val_score` (max), with every limit a constraint (as in both modes:
`cost/limit - 1` per trial, which TPE reads); the costs stay recorded and the front is still drawn
from the trained trials (`nas.study.trials.pareto_front`). FLASH is a constraint in both. A study's
mode is its number of directions. Importing this module quiets Optuna's per-trial logging and its
experimental-API warnings for every verb.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import optuna

from nas.core.errors import UserError
from nas.study.folders import default_storage
from nas.study.storage import check_storage, open_storage

OBJECTIVES = ("val_score", "macs_per_second", "ram_bytes")   # nas.study.metrics names the first
DIRECTIONS = ("maximize", "minimize", "minimize")
MODES = {"accuracy": ("maximize",), "pareto": DIRECTIONS}

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def sampler(seed: int | None) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=10)


def objectives(compute: str = "macs_per_second", mode: str = "pareto") -> tuple[str, ...]:
    """The metric names of a study of `mode` whose compute objective is `compute`."""
    return (OBJECTIVES[0], compute, OBJECTIVES[2]) if mode == "pareto" else (OBJECTIVES[0],)


def study_mode(study: optuna.Study) -> str | None:
    """`accuracy` or `pareto` by the study's directions; None for a study nas.search did not create."""
    names = [d.name.lower() for d in study.directions]
    return next((mode for mode, dirs in MODES.items() if names == list(dirs)), None)


def load_study(study: str, storage: str, seed: int | None, compute: str = "macs_per_second",
               mode: str = "pareto") -> optuna.Study:
    """The study `study` in `storage`, created when absent (TPE sampler seeded with `seed`) in `mode`,
    with `compute` (a cost-summary key) as its compute objective. A study of the other mode is opened
    as it is: `nas.study.identity` refuses it with the definition's other parts."""
    try:
        s = optuna.create_study(study_name=study, storage=open_storage(storage), directions=list(MODES[mode]),
                                sampler=sampler(seed), load_if_exists=True)
    except (optuna.exceptions.StorageInternalError, ImportError, ValueError) as exc:
        raise UserError(f"--storage {storage}: cannot open the study ({exc})") from None
    found = study_mode(s)
    if found is None:
        raise UserError(f"study {study!r} in {storage} was not created by nas.search (other objectives)")
    if not s.metric_names:
        s.set_metric_names(list(objectives(compute, found)))
    elif found == "pareto" and s.metric_names[1] != compute:
        raise UserError(f"study {study!r} in {storage} minimises {s.metric_names[1]}, the budget's "
                        f"objectives.compute is {compute}: use another --study or the same objective")
    return s


def open_study(name: str, storage: str | None = None) -> tuple[optuna.Study, str]:
    """An existing study (never creates one); UserError when the storage or the study is missing."""
    storage = storage or default_storage(name)
    if "://" not in storage and not Path(storage).is_file():
        raise UserError(f"--study {name}: no study storage at {storage} (run nas.search first, or pass --storage)")
    check_storage(storage, write=False)
    backend = open_storage(storage)
    try:
        return optuna.load_study(study_name=name, storage=backend), storage
    except KeyError:
        names = optuna.get_all_study_names(storage=backend)
        raise UserError(f"--study {name}: unknown study in {storage}"
                        + (f" (it has: {', '.join(sorted(names))})" if names else " (it has no study)")) from None


def register_worker(study: optuna.Study, worker: str, seed: int) -> int:
    """Record `worker` on the study and return the seed its sampler should use: `seed` for the
    first worker with that seed, a derived one for every later worker given the same seed (workers
    with one seed would otherwise propose the same architectures in the same order). Call it under
    the study's claim lock."""
    workers = list(study.user_attrs.get("workers") or [])
    same = sum(1 for w in workers if w.get("seed") == seed)
    sampler_seed = seed if same == 0 else seed + 7919 * same
    workers.append({"worker": worker, "seed": seed, "sampler_seed": sampler_seed})
    study.set_user_attr("workers", workers)
    return sampler_seed
