"""How much model selection loses: the validation-picked model's test accuracy next to the best test
accuracy among all trained candidates of a study, before and after noise-robust selection.

    python bench/sweep_selection.py --study dev [--storage ...]

Scores every training run the search saved (`checkpoints/trial_<n>_seed<k>.pt`) on the study's test
folds, float, windows as the device runs them. "Before" ranks trials by their first run's validation
score (what a single-seed search would have picked) and tests that run; "after" ranks them by the
mean over their runs (the search's objective) and tests the mean of those runs. Only candidates within
the budget exist as trained trials. An analysis of a finished study: the test folds are read here,
never by the search.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    sys.path[:0] = [str(ROOT)]
    import torch
    from optuna.trial import TrialState

    from nas.data import cache as fcache
    from nas.quant.quantize import net_from_checkpoint
    from nas.study.folders import checkpoint_dir
    from nas.study.record import TrialRecord
    from nas.study.settings import recorded_settings
    from nas.study.study import open_study
    from nas.train.clips import Normalisation, clip_accuracy
    from nas.train.trialdata import to_clipset, valid_frames

    p = argparse.ArgumentParser(prog="python bench/sweep_selection.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--study", required=True)
    p.add_argument("--storage", default=None)
    args = p.parse_args(argv)
    study, storage = open_study(args.study, args.storage)
    _, root, split, cache = recorded_settings(study)
    ckpts = checkpoint_dir(args.study, storage)
    rows = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        runs = sorted(ckpts.glob(f"trial_{t.number}_seed*.pt"))
        rec = TrialRecord.of(t)
        if not runs or rec.duplicate_of is not None:
            continue
        spec = rec.arch()
        feats = fcache.load_features(root, spec.frontend, cache, progress=False)
        sel = feats.selection(split)
        train_x = np.asarray(sel.train.x)
        test = to_clipset(feats.held_out(split), Normalisation.fit(train_x, valid_frames(train_x)))
        accs = []
        for path in runs:
            net, _ = net_from_checkpoint(torch.load(path, map_location="cpu", weights_only=True))
            accs.append(clip_accuracy(net, test, spec.frontend.frames, spec.frontend.window_hop_frames))
        rows.append({"trial": t.number, "name": rec.reference or spec.name,
                     "first_val": rec.seed_scores[0], "mean_val": t.values[0],
                     "first_test": accs[0], "mean_test": float(np.mean(accs)), "runs": len(accs)})
    if not rows:
        print("no trained trial with saved runs")
        return 1
    report(rows, split.describe())
    return 0


def report(rows: list[dict], split: str) -> None:
    print(f"{len(rows)} trained candidates; {split}")
    for label, val_key, test_key in (("before (first run's score)", "first_val", "first_test"),
                                     ("after (mean over runs)", "mean_val", "mean_test")):
        picked = max(rows, key=lambda r: r[val_key])
        best = max(rows, key=lambda r: r[test_key])
        print(f"{label:<28} val-picked trial {picked['trial']} ({picked['name']}, {picked['runs']} run(s)): "
              f"test {picked[test_key]:.3f}; best test among all: trial {best['trial']} {best[test_key]:.3f}; "
              f"selection loses {100 * (best[test_key] - picked[test_key]):.1f} points")
    top = sorted(rows, key=lambda r: -r["mean_val"])[:10]
    print("top 10 by mean validation score: " + ", ".join(
        f"{r['trial']}:{r['mean_val']:.3f}/{r['mean_test']:.3f}" for r in top) + "  (val/test)")


if __name__ == "__main__":
    sys.exit(main())
