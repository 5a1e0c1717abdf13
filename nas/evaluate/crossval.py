"""`python -m nas.evaluate --study S`: the thesis protocol on the study's Pareto models.

For each model and each of the 10 predefined folds as the test fold: train from scratch on 8 folds,
pick the epoch with the best accuracy on the validation fold (the next one), score that epoch on the
test fold. Report mean ± std over folds, as a table and `studies/<S>/evaluation.csv`. Each finished
(model, fold) is appended to `evaluation.jsonl`, so an interrupted evaluation resumes where it stopped.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from nas.atomic import atomic_write_text
from nas.data import cache as fcache
from nas.data.urbansound import FOLDS, cross_validation_splits
from nas.errors import UserError, run_cli
from nas.model import build
from nas.report import pareto_front
from nas.search import DEMO, open_study, resolve_data, study_dir
from nas.spec import ArchSpec
from nas.train import Normalisation, TrainConfig, clip_accuracy, train
from nas.trialdata import to_clipset, valid_frames


def evaluate_spec(spec: ArchSpec, feats: fcache.ClipFeatures, fold: int, cfg: TrainConfig) -> dict:
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
    try:
        folds = [int(f) for f in args.folds.split(",")]
        wanted = [int(n) for n in args.trials.split(",")] if args.trials else None
    except ValueError:
        raise UserError("--folds/--trials: expected comma-separated integers") from None
    if any(f not in FOLDS for f in folds):
        raise UserError(f"--folds: expected folds in 1..10, got {args.folds}")
    trials = pareto_front(study) if wanted is None else [study.trials[n] for n in wanted if n < len(study.trials)]
    trials = [t for t in trials if "spec" in t.user_attrs]
    if not trials:
        raise UserError(f"study {args.study!r}: no trained model to evaluate")
    epochs = args.epochs or study.user_attrs.get("epochs", 40)
    cfg = TrainConfig(epochs=epochs, seed=args.seed)
    root = resolve_data(args.data, args.seed) if args.data else Path(study.user_attrs.get("data") or resolve_data(DEMO, 0))
    cache = args.cache or study.user_attrs.get("cache", "studies/.cache/features")
    out = study_dir(args.study)
    log_path = out / "evaluation.jsonl"
    done = {}
    if log_path.is_file():
        for line in log_path.read_text().splitlines():
            try:
                rec = json.loads(line)
                if rec.get("epochs") == epochs and rec.get("seed") == args.seed:  # same protocol only
                    done[(rec["trial"], rec["test_fold"])] = rec
            except (json.JSONDecodeError, KeyError):
                continue  # a line cut by a kill mid-write
    torch.set_num_threads(max(1, torch.get_num_threads()))
    for t in trials:
        spec = ArchSpec.from_json(t.user_attrs["spec"])
        feats = None
        for fold in folds:
            if (t.number, fold) in done:
                continue
            feats = feats or fcache.load_features(root, spec.frontend, cache)
            rec = {"trial": t.number, "model": t.user_attrs.get("reference", "") or spec.name,
                   "epochs": epochs, "seed": args.seed,
                   **evaluate_spec(spec, feats, fold, cfg)}
            done[(t.number, fold)] = rec
            with open(log_path, "a") as fh:
                fh.write(json.dumps(rec) + "\n")
            print(f"trial {t.number:>4} test fold {fold:>2}: test acc {rec['test_acc']:.3f} "
                  f"(val {rec['val_acc']:.3f}, epoch {rec['best_epoch']})", flush=True)
    df = pd.DataFrame([r for r in done.values() if r["trial"] in {t.number for t in trials} and r["test_fold"] in folds])
    summary = (df.groupby(["trial", "model"]).test_acc.agg(["mean", "std", "count"]).reset_index()
               .rename(columns={"mean": "test_acc_mean", "std": "test_acc_std", "count": "folds"}))
    costs = pd.DataFrame([{"trial": t.number, "macs_per_second": t.values[1], "ram_bytes": t.values[2],
                           "flash_bytes": t.user_attrs.get("flash_bytes")} for t in trials])
    summary = summary.merge(costs, on="trial")
    atomic_write_text(out / "evaluation.csv", summary.to_csv(index=False))
    print(f"\n{len(folds)}-fold evaluation (predefined folds; each test fold read once, after selection):")
    for _, r in summary.iterrows():
        print(f"trial {int(r.trial):>4} {r.model:<14} {r.test_acc_mean * 100:5.1f} % ± {np.nan_to_num(r.test_acc_std) * 100:4.1f}"
              f"  ({int(r.folds)} folds)  MAC/s {r.macs_per_second / 1e6:.2f} M  RAM {r.ram_bytes / 1024:.1f} kB")
    print(f"wrote {out / 'evaluation.csv'}")
    return 0


if __name__ == "__main__":
    run_cli(main)
