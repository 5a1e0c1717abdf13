"""The thesis protocol on a study's models: 10-fold cross-validation on UrbanSound8K's predefined folds.

For each model and each predefined fold as the test fold: train from scratch on 8 folds, pick the
epoch with the best accuracy on the validation fold (the next one), score that epoch on the test
fold. Report mean ± std over folds, as a table and `studies/<S>/evaluation.csv`. Each finished
(model, fold) is appended to `evaluation.jsonl`, so an interrupted evaluation resumes where it stopped.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import torch
from optuna.trial import FrozenTrial

from nas.arch.net import build
from nas.arch.spec import ArchSpec
from nas.core.atomic import atomic_write_text
from nas.core.errors import UserError
from nas.data import cache as fcache
from nas.data.urbansound import FOLDS, cross_validation_splits
from nas.study.folders import DEFAULT_CACHE, DEMO, resolve_data, study_dir
from nas.study.trials import pareto_front
from nas.train.clips import Normalisation, clip_accuracy
from nas.train.loop import train
from nas.train.recipe import Recipe
from nas.train.trialdata import to_clipset, valid_frames


def evaluate_spec(spec: ArchSpec, feats: fcache.ClipFeatures, fold: int, cfg: Recipe) -> dict:
    """Train on the 8 training folds of split `fold`, select on its validation fold, test once."""
    split = cross_validation_splits()[fold - 1]
    sel = feats.selection(split)
    train_x = np.asarray(sel.train.x)
    norm = Normalisation.fit(train_x, valid_frames(train_x))
    result = train(spec, to_clipset(sel.train, norm), to_clipset(sel.val, norm), cfg, norm_std=norm.std)
    net = build(spec)
    net.load_state_dict(result.state_dict)
    test = to_clipset(feats.held_out(split), norm)
    fe = spec.frontend
    return {"test_fold": fold, "val_fold": split.val[0], "val_acc": result.best_acc, "best_epoch": result.best_epoch,
            "test_acc": clip_accuracy(net, test, fe.frames, fe.window_hop_frames), "train_seconds": result.seconds}


def _parse_list(folds: str, trials: str | None) -> tuple[list[int], list[int] | None]:
    try:
        fold_list = [int(f) for f in folds.split(",")]
        wanted = [int(n) for n in trials.split(",")] if trials else None
    except ValueError:
        raise UserError("--folds/--trials: expected comma-separated integers") from None
    if any(f not in FOLDS for f in fold_list):
        raise UserError(f"--folds: expected folds in 1..10, got {folds}")
    return fold_list, wanted


def _finished(log_path: Path, epochs: int, seed: int) -> dict[tuple[int, int], dict]:
    """(trial, test fold) → record of the runs already in `log_path` with the same protocol."""
    done = {}
    if log_path.is_file():
        for line in log_path.read_text().splitlines():
            try:
                rec = json.loads(line)
                if rec.get("epochs") == epochs and rec.get("seed") == seed:  # same protocol only
                    done[(rec["trial"], rec["test_fold"])] = rec
            except (json.JSONDecodeError, KeyError):
                continue  # a line cut by a kill mid-write
    return done


def _summary(done: dict, trials: list[FrozenTrial], folds: list[int]) -> pd.DataFrame:
    """Mean, std and count of test accuracy per model over `folds`, with its costs."""
    df = pd.DataFrame([r for r in done.values() if r["trial"] in {t.number for t in trials} and r["test_fold"] in folds])
    summary = (df.groupby(["trial", "model"]).test_acc.agg(["mean", "std", "count"]).reset_index()
               .rename(columns={"mean": "test_acc_mean", "std": "test_acc_std", "count": "folds"}))
    costs = pd.DataFrame([{"trial": t.number, "macs_per_second": t.values[1], "ram_bytes": t.values[2],
                           "flash_bytes": t.user_attrs.get("flash_bytes")} for t in trials])
    return summary.merge(costs, on="trial")


def evaluate_study(study: optuna.Study, data: str | None = None, trials: str | None = None,
                   folds: str = ",".join(map(str, FOLDS)), epochs: int | None = None, seed: int = 0,
                   cache: str | None = None) -> int:
    """Cross-validate `trials` (comma-separated numbers; default the Pareto front) of `study` on
    `folds`, resuming from `evaluation.jsonl`; prints the table and writes `evaluation.csv`."""
    fold_list, wanted = _parse_list(folds, trials)
    selected = pareto_front(study) if wanted is None else [study.trials[n] for n in wanted if n < len(study.trials)]
    selected = [t for t in selected if "spec" in t.user_attrs]
    if not selected:
        raise UserError(f"study {study.study_name!r}: no trained model to evaluate")
    epochs = epochs or study.user_attrs.get("epochs", 40)
    cfg = Recipe(epochs=epochs, seed=seed)
    root = resolve_data(data, seed) if data else Path(study.user_attrs.get("data") or resolve_data(DEMO, 0))
    cache = cache or study.user_attrs.get("cache", str(DEFAULT_CACHE))
    out = study_dir(study.study_name)
    log_path = out / "evaluation.jsonl"
    done = _finished(log_path, epochs, seed)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    for t in selected:
        spec = ArchSpec.from_json(t.user_attrs["spec"])
        feats = None
        for fold in fold_list:
            if (t.number, fold) in done:
                continue
            feats = feats or fcache.load_features(root, spec.frontend, cache)
            rec = {"trial": t.number, "model": t.user_attrs.get("reference", "") or spec.name,
                   "epochs": epochs, "seed": seed, **evaluate_spec(spec, feats, fold, cfg)}
            done[(t.number, fold)] = rec
            with open(log_path, "a") as fh:
                fh.write(json.dumps(rec) + "\n")
            print(f"trial {t.number:>4} test fold {fold:>2}: test acc {rec['test_acc']:.3f} "
                  f"(val {rec['val_acc']:.3f}, epoch {rec['best_epoch']})", flush=True)
    summary = _summary(done, selected, fold_list)
    atomic_write_text(out / "evaluation.csv", summary.to_csv(index=False))
    print(f"\n{len(fold_list)}-fold evaluation (predefined folds; each test fold read once, after selection):")
    for _, r in summary.iterrows():
        print(f"trial {int(r.trial):>4} {r.model:<14} {r.test_acc_mean * 100:5.1f} % ± {np.nan_to_num(r.test_acc_std) * 100:4.1f}"
              f"  ({int(r.folds)} folds)  MAC/s {r.macs_per_second / 1e6:.2f} M  RAM {r.ram_bytes / 1024:.1f} kB")
    print(f"wrote {out / 'evaluation.csv'}")
    return 0
