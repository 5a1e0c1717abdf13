"""The final stage: retrain a study's models with its recipe and report the test folds once.

Protocols: the study's own split (train / val / test folds as the search used them; the default), or
a rotation over `folds` (each as the test fold once, the next present fold validating, the rest
training; on the full dataset `--folds 1,...,10` is the thesis's 10-fold protocol). With
`select_folds`, the models are also retrained with each of those folds (of the study's training and
validation folds) validating in turn, the others training, the test folds unchanged: a selection
score over more clips than one small validation fold (`report.selection`); the study's split stays
what is tested in the table and exported. Every (model, split, seed) run is appended to
`evaluation.jsonl` whole or not at all (`nas.core.appendlog`), so an interrupted evaluation resumes,
and saved under `studies/<S>/final/`. For the study's own split, the seed with the best *validation*
score of each model is recorded on the study (`final_models`), which is the model `nas.export` then
exports.
"""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import optuna
import torch
from optuna.trial import FrozenTrial

from nas.core.appendlog import append_records
from nas.core.atomic import atomic_write_bytes
from nas.core.errors import UserError
from nas.data import cache as fcache
from nas.data.urbansound import FoldSplit, parse_folds, read_metadata
from nas.data.validate import validate_dataset
from nas.evaluate import report
from nas.evaluate.retrain import retrain
from nas.study.folders import resolve_data, study_dir
from nas.study.record import TrialRecord
from nas.study.settings import recorded_settings
from nas.study.trials import pareto_front
from nas.train.distill import describe as describe_distillation, teacher_for
from nas.train.recipe import Recipe


def rotation(folds: str, present: list[int]) -> list[FoldSplit]:
    """Each of `folds` as the test fold once; the next present fold (cyclically) validates; the
    other present folds train."""
    order = sorted(present)
    splits = []
    for k in parse_folds(folds, "--folds"):
        if k not in order:
            raise UserError(f"--folds: fold {k} holds no clips (folds with clips: {', '.join(map(str, order))})")
        if len(order) < 3:
            raise UserError(f"--folds: a rotation needs at least 3 folds with clips, the dataset has {order}")
        val = order[(order.index(k) + 1) % len(order)]
        splits.append(FoldSplit(train=tuple(f for f in order if f not in (k, val)), val=(val,), test=(k,)))
    return splits


def selection_splits(split: FoldSplit, folds: str) -> list[FoldSplit]:
    """The study's split, then one per other fold of `folds` validating on it and training on the rest
    of the study's selection folds; the test folds stay the study's."""
    pool = split.selection_folds
    wanted = parse_folds(folds, "--select-folds")
    outside = [k for k in wanted if k not in pool]
    if outside or len(wanted) < 2:
        raise UserError(f"--select-folds: expected at least 2 of the study's training and validation folds "
                        f"({','.join(map(str, pool))}), got {folds}")
    return [split] + [FoldSplit(train=tuple(f for f in pool if f != k), val=(k,), test=split.test)
                      for k in wanted if (k,) != split.val]


def select(study: optuna.Study, trials: str | None) -> list[FrozenTrial]:
    if trials is None:
        chosen = pareto_front(study)
    else:
        try:
            wanted = [int(n) for n in trials.split(",")]
        except ValueError:
            raise UserError("--trials: expected comma-separated trial numbers") from None
        by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
        chosen = [by_number[n] for n in wanted if n in by_number]
    chosen = [t for t in chosen if TrialRecord.of(t).spec is not None]
    if not chosen:
        raise UserError(f"study {study.study_name!r}: no trained model to evaluate")
    return chosen


def study_recipe(study: optuna.Study, epochs: int | None) -> Recipe:
    """The recipe the search trained with (its recorded `training:` section), `epochs` overriding."""
    raw = study.user_attrs.get("recipe")
    recipe = Recipe.from_dict(raw, f"study {study.study_name} recipe") if raw else Recipe()
    return recipe.replace(epochs=epochs) if epochs else recipe


def recipe_key(recipe: Recipe) -> str:
    body = recipe.to_dict()
    body.pop("seed")
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]


LEGACY_KEYS = {"val_acc": "val_accuracy", "val_acc_int8": "val_accuracy_int8", "test_acc": "test_accuracy",
               "test_acc_int8": "test_accuracy_int8"}   # runs logged before the figures had one name each


def _finished(log_path: Path) -> dict[tuple, dict]:
    done = {}
    if log_path.is_file():
        for line in log_path.read_text().splitlines():
            try:
                rec = {LEGACY_KEYS.get(k, k): v for k, v in json.loads(line).items()}
                done[(rec["trial"], rec["split"], rec["seed"], rec["recipe"])] = rec
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a torn last line: set aside before the next append
    return done


def _run_all(selected, splits, recipe, seeds, seed, root, cache, out, teachers, done, log) -> None:
    """Every (model, split, seed) not in `done`: retrained, saved under final/, appended to the log."""
    key = recipe_key(recipe)
    names = {t.number: TrialRecord.of(t).reference or TrialRecord.of(t).arch().name for t in selected}
    width = max(map(len, names.values()))
    for t in selected:
        spec = TrialRecord.of(t).arch()
        name = names[t.number]
        feats = None
        for split in splits:
            for k in range(seeds):
                if (t.number, split.describe(), seed + k, key) in done:
                    continue
                feats = feats or fcache.load_features(root, spec.frontend, cache)
                rec, ckpt = retrain(spec, feats, split, recipe.replace(seed=seed + k), teachers.get(split.describe()))
                path = out / "final" / f"trial_{t.number}" / f"test{'-'.join(map(str, split.test))}_seed{seed + k}.pt"
                buf = io.BytesIO()
                torch.save(ckpt, buf)
                atomic_write_bytes(path, buf.getvalue())
                rec = {"trial": t.number, "model": name, "split": split.describe(), "test_folds": list(split.test),
                       "seed": seed + k, "recipe": key, "checkpoint": str(path), **rec}
                done[(t.number, split.describe(), seed + k, key)] = rec
                append_records(out / "evaluation.jsonl", (json.dumps(rec) + "\n").encode("utf-8"))
                log(f"trial {t.number:>4} {name:<{width}} {split.describe()}  seed {seed + k}: test_accuracy "
                    f"{rec['test_accuracy']:.3f} float, {rec['test_accuracy_int8']:.3f} int8 ({rec['int8_method']}; "
                    f"val_score {rec['val_score']:.3f}, "
                    f"epoch {rec['best_epoch']}, {rec['seconds']:.0f} s)")


def record_final_models(study: optuna.Study, records: list[dict], split: FoldSplit) -> dict:
    """Per trial, the run on the study's own split with the best validation score: what export uses."""
    best: dict[str, dict] = {}
    for r in records:
        if r["split"] != split.describe():
            continue
        cur = best.get(str(r["trial"]))
        if cur is None or r["val_score"] > cur["val_score"]:
            best[str(r["trial"])] = {"checkpoint": r["checkpoint"], "seed": r["seed"], "val_score": r["val_score"],
                                     "recipe": r["recipe"], "int8_method": r["int8_method"]}
    merged = {**(study.user_attrs.get("final_models") or {}), **best}
    study.set_user_attr("final_models", merged)
    return merged


def evaluate_study(study: optuna.Study, data: str | None = None, trials: str | None = None, folds: str | None = None,
                   seeds: int = 3, epochs: int | None = None, seed: int = 0, cache: str | None = None,
                   log=print, out: Path | None = None, select_folds: str | None = None,
                   target_precision: float = 0.9) -> int:
    """Retrain `trials` (default: the Pareto front) on the study's split (and the `select_folds`
    rotation), or on a rotation over `folds`, with `seeds` seeds each; prints the tables, writes
    evaluation.csv and the confusion PNGs into `out` (default `studies/<study>/`), with each model's
    "unknown" threshold for `target_precision`."""
    if seeds < 1:
        raise UserError(f"--seeds: expected a positive integer, got {seeds}")
    if not 0.0 < target_precision <= 1.0:
        raise UserError(f"--target-precision: expected a share in (0, 1], e.g. 0.9, got {target_precision:g}")
    if folds and select_folds:
        raise UserError("--select-folds: a selection rotation keeps the study's test folds; it cannot go with --folds")
    selected = select(study, trials)
    recipe = study_recipe(study, epochs)
    _, root, split, cache_dir = recorded_settings(study, data=resolve_data(data, seed) if data else None,
                                                  cache=cache or None)
    present = sorted({c.fold for c in read_metadata(root).clips})
    splits = ([split] if not select_folds else selection_splits(split, select_folds)) if folds is None \
        else rotation(folds, present)
    if folds is None and not split.test:
        raise UserError(f"study {study.study_name!r} has no test fold ({split.describe()}): pass --folds for a rotation")
    validate_dataset(root, splits)
    out = Path(out) if out else study_dir(study.study_name)
    done = _finished(out / "evaluation.jsonl")
    teachers = {s.describe(): teacher_for(recipe, root, s, cache_dir, out) for s in splits}
    first = next((t for t in teachers.values() if t is not None), None)
    if first is not None:
        log(describe_distillation(recipe, first))
    torch.set_num_threads(max(1, torch.get_num_threads()))
    _run_all(selected, splits, recipe, seeds, seed, root, Path(cache_dir), out, teachers, done, log)
    key = recipe_key(recipe)
    numbers = {t.number for t in selected}
    wanted = {s.describe() for s in splits}
    records = [r for r in done.values() if r["trial"] in numbers and r["split"] in wanted and r["recipe"] == key
               and seed <= r["seed"] < seed + seeds]
    if folds is None:
        record_final_models(study, records, split)
    own = [r for r in records if folds is not None or r["split"] == split.describe()]
    log(report.write(own, selected, out, study.study_name, target_precision))
    if select_folds:
        log(report.selection(records, split.describe()))
    return 0
