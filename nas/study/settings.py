"""What a search records on its study (budget, dataset, fold split, cache, epochs), and reading it back,
so `nas.export` and `nas.evaluate` work from the study name alone."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import optuna

from nas.budget import Budget
from nas.core import config
from nas.core.errors import UserError
from nas.data.urbansound import FoldSplit
from nas.study.folders import DEFAULT_CACHE


def record_settings(study: optuna.Study, budget: Budget, data: str | Path, split: FoldSplit, cache: str | Path,
                    epochs: int, recipe: dict | None = None) -> None:
    """Store the search's settings as study attributes; an unchanged one is not rewritten. `recipe`
    is the training recipe as plain data, which `nas.evaluate` retrains the front with."""
    for key, value in (("budget", asdict(budget)), ("data", str(Path(data).resolve())),
                       ("split", {"train": list(split.train), "val": list(split.val), "test": list(split.test)}),
                       ("cache", str(Path(cache).resolve())), ("epochs", epochs), ("recipe", recipe)):
        if value is None:
            continue
        if study.user_attrs.get(key) != value:
            study.set_user_attr(key, value)


def recorded_budget(study: optuna.Study) -> Budget:
    """The budget the study was searched with."""
    if "budget" not in study.user_attrs:
        raise UserError(f"study {study.study_name!r} records no budget: pass --budget")
    return config.load(Budget, study.user_attrs["budget"], f"study {study.study_name} budget")


def recorded_settings(study: optuna.Study, budget: Budget | None = None, data: str | Path | None = None,
                      split: FoldSplit | None = None,
                      cache: str | Path | None = None) -> tuple[Budget, Path, FoldSplit, Path]:
    """(budget, data, split, cache): each one given, else the one the study recorded."""
    ua = study.user_attrs
    if budget is None:
        budget = recorded_budget(study)
    if data is None:
        if "data" not in ua:
            raise UserError(f"study {study.study_name!r} records no dataset: pass --data")
        data = ua["data"]
    if split is None:
        if "split" not in ua:
            raise UserError(f"study {study.study_name!r} records no fold split")
        split = FoldSplit(**{k: tuple(v) for k, v in ua["split"].items()})
    if cache is None:
        cache = ua.get("cache", str(DEFAULT_CACHE))
    return budget, Path(data), split, Path(cache)
