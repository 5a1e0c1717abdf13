"""What defines a study, recorded on it, and the refusal of a resume that would change it.

A study's trials mean something only together with what produced them: the budget they were priced
against, the search space they were sampled from (the space file's parsed content as a whole, so a
`training:` section or a reference counts too), the dataset (its fingerprint), the folds, the recipe
of the features, the training recipe and the search mode (`--mode`: what the trials' values mean). The first run records a hash and a readable label of each; every
later run, and every parallel worker, must bring the same ones, or it stops with one line naming what
changed, before any trial is sampled (Optuna would refuse the changed parameters, and trials priced
for two devices would mix in one front).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import optuna

from nas.budget import Budget
from nas.core.config import read_yaml
from nas.core.errors import UserError
from nas.data import cache as fcache
from nas.data.urbansound import FoldSplit
from nas.data.validate import DatasetReport

ATTR = "definition"
MODE_LABELS = {"accuracy": "accuracy: the most accurate model within the budget",
               "pareto": "pareto: accuracy, compute and RAM as three objectives"}
LEGACY = {"search mode": ("pareto", MODE_LABELS["pareto"])}  # what a study recorded before the part existed


def _hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _folds(split: FoldSplit) -> str:
    return (f"train {','.join(map(str, split.train))}, validation {','.join(map(str, split.val))}, "
            f"test {','.join(map(str, split.test)) or 'none'}")


def definition(budget: Budget, budget_file: str | Path, space_file: str | Path, dataset: DatasetReport,
               split: FoldSplit, recipe: dict, mode: str = "pareto") -> dict[str, dict[str, str]]:
    """Each part of what defines a study: {part: {"sha256": ..., "label": ...}}. `recipe` is the
    training recipe as trials use it (the space file's, with --epochs and --teacher applied; the seed
    left out: workers have their own)."""
    parts = {
        "budget": (asdict(budget), f"{budget.name} from {budget_file}"),
        "search space": (read_yaml(space_file), str(space_file)),
        "dataset": (dataset.fingerprint, dataset.label),
        "folds": ({"train": split.train, "val": split.val, "test": split.test}, _folds(split)),
        "features": ({"format": fcache.FORMAT_VERSION, **fcache.feature_recipe()},
                     f"feature format {fcache.FORMAT_VERSION}"),
        "training recipe": ({k: v for k, v in recipe.items() if k != "seed"},
                            f"{recipe['epochs']} epochs, teacher {recipe['distillation']['teacher']}"),
        "search mode": (mode, MODE_LABELS[mode]),
    }
    return {name: {"sha256": _hash(value), "label": label} for name, (value, label) in parts.items()}


def require_definition(study: optuna.Study, wanted: dict[str, dict[str, str]]) -> None:
    """Record `wanted` on a study that has none; refuse (UserError) a study defined otherwise."""
    recorded = study.user_attrs.get(ATTR)
    if recorded is None:
        study.set_user_attr(ATTR, wanted)
        return
    recorded = {**{k: {"sha256": _hash(v), "label": label} for k, (v, label) in LEGACY.items()}, **recorded}
    changed = [k for k in wanted if (recorded.get(k) or {}).get("sha256") != wanted[k]["sha256"]]
    if not changed:
        return
    what = "; ".join(_change(k, recorded.get(k) or {}, wanted[k]) for k in changed)
    raise UserError(f"study {study.study_name!r} was created with another {' and '.join(changed)} ({what}): "
                    "its trials would not mean the same; rerun with the study's own inputs, or start a new "
                    "study with --study NEW")


def _change(part: str, was: dict, now: dict) -> str:
    if was.get("label") == now["label"]:
        return f"{part} {now['label']} changed since the study was created"
    return f"{part} was {was.get('label', 'not recorded')}, now {now['label']}"
