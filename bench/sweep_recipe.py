"""Recipe ablation on real clips: the default recipe, each element switched off, and the earlier recipe.

    python bench/sweep_recipe.py --data ~/UrbanSound8K --train-folds 1 --val-folds 3 --test-folds 2 \
        --seeds 3 [--models specs/thesis/stride-ds-24.yaml ...] [--variants default,no_mixup,...] \
        [--frontends float,fixed]

`--frontends` trains each model with its front-end's arithmetic replaced (float: CMSIS-DSP f32; fixed:
the q15 front-end of nas.arch.fixedfe), each on its own cached features.

Every run goes through the final stage's `retrain` (train, select on validation, int8 with QAT when
it loses, test once) and is appended to `--log` (resumable); the table shows mean ± std over seeds of
the validation score, and the float and int8 test accuracy. A slow sweep (minutes per run on a CPU):
it is not part of `bench/run.py`.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

PRETRAINED = "pretrained"   # stands for the --teacher file
# name -> changes to the default recipe (nested sections as dicts); a `+` joins variants, e.g.
# pre_window_w0.9_t1+no_mixup
VARIANTS = {
    "default": {},
    "no_mel_shift": {"augment": {"mel_shift": 0}},
    "gain_6db": {"augment": {"gain_db": 6.0}},
    "no_tilt": {"augment": {"tilt_db": 0.0}},
    "no_mixup": {"augment": {"mixup_alpha": 0.0}},
    "mixup_1": {"augment": {"mixup_alpha": 1.0}},
    "no_masks": {"augment": {"time_masks": 0, "mel_masks": 0}},
    "select_accuracy": {"selection_metric": "accuracy"},
    "select_raw_epoch": {"select_smoothing": 1},
    "label_smoothing": {"label_smoothing": 0.1},
    "ema": {"ema_decay": 0.995},
    "time_stretch": {"augment": {"time_stretch": 0.2}},
    "distill_auto": {"distillation": {"teacher": "auto"}},
    # the default distillation from the pretrained teacher: its probabilities and its embeddings
    "pretrained": {"distillation": {"teacher": PRETRAINED}},
    # the pretrained teacher of `--teacher FILE` (python -m nas.teacher): weight, temperature, clip or
    # window targets, and mixup of the (soft) targets
    **{f"pre_{level}_w{w:g}_t{t:g}": {"distillation": {"teacher": PRETRAINED, "weight": w, "temperature": t,
                                                       "level": level, "embedding_weight": 0.0}}
       for level in ("clip", "window") for w in (0.5, 0.7, 0.9, 1.0) for t in (1.0, 2.0, 3.0)},
    # mimicking the pretrained teacher's window embeddings with weight b, labels as class targets
    # (`pre_window_w0.5_t2+mimic_b1` adds the teacher's probabilities: the default, `pretrained`)
    **{f"mimic_b{b:g}": {"distillation": {"teacher": PRETRAINED, "weight": 0.0, "embedding_weight": b}}
       for b in (0.3, 1.0, 3.0)},
    # the recipe before the ablation: one-cycle over 40 epochs, patience 8, +-6 dB, 1+1 masks, no
    # mixup/shift/tilt, raw-accuracy selection of the best single epoch
    "previous": {"epochs": 40, "schedule": "onecycle", "warmup_share": 0.3, "patience": 8, "select_smoothing": 1,
                 "selection_metric": "accuracy",
                 "augment": {"gain_db": 6.0, "tilt_db": 0.0, "mel_shift": 0, "mixup_alpha": 0.0}},
}


def variant(base, name: str, teacher: str | None):
    """The default recipe with the changes of each `+`-joined part of `name`."""
    for part in name.split("+"):
        if part not in VARIANTS:
            raise SystemExit(f"--variants: unknown variant {part!r} (known: {', '.join(VARIANTS)})")
        out = {}
        for key, value in VARIANTS[part].items():
            out[key] = dataclasses.replace(getattr(base, key), **value) if isinstance(value, dict) else value
        base = dataclasses.replace(base, **out)
    if base.distillation.teacher == PRETRAINED:
        if teacher is None:
            raise SystemExit(f"--variants: {name} needs --teacher FILE (python -m nas.teacher)")
        base = dataclasses.replace(base, distillation=dataclasses.replace(base.distillation, teacher=teacher))
    return base


def main(argv: list[str] | None = None) -> int:
    sys.path[:0] = [str(ROOT)]
    from nas.arch.spec import ArchSpec
    from nas.data import cache as fcache
    from nas.data.urbansound import FoldSplit
    from nas.evaluate.retrain import retrain
    from nas.evaluate.stage import LEGACY_KEYS
    from nas.train.distill import teacher_for
    from nas.train.recipe import Recipe

    p = argparse.ArgumentParser(prog="python bench/sweep_recipe.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--train-folds", default="1")
    p.add_argument("--val-folds", default="3")
    p.add_argument("--test-folds", default="2")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--models", nargs="+", default=[str(ROOT / "specs/thesis/stride-ds-24.yaml")])
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--frontends", default="float", help="front-end arithmetics to train each model with")
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs (smoke runs)")
    p.add_argument("--cache", default="studies/.cache/features")
    p.add_argument("--teacher", default=None, help="teacher file for the pre_* variants (python -m nas.teacher)")
    p.add_argument("--log", default="studies/sweep_recipe.jsonl")
    args = p.parse_args(argv)
    split = FoldSplit.from_flags(args.train_folds, args.val_folds, args.test_folds)
    log = Path(args.log)
    log.parent.mkdir(parents=True, exist_ok=True)
    done = [{LEGACY_KEYS.get(k, k): v for k, v in json.loads(line).items()}
            for line in log.read_text().splitlines()] if log.is_file() else []
    base = Recipe.from_space_file(ROOT / "search_spaces/default.yaml")
    if args.epochs:
        base = base.replace(epochs=args.epochs)
    runs = [(ArchSpec.load(model), a) for model in args.models for a in args.frontends.split(",")]
    for spec, arith in runs:
        spec = spec.replace(frontend=dataclasses.replace(spec.frontend, arithmetic=arith))
        feats = fcache.load_features(args.data, spec.frontend, args.cache, progress=False)
        for name in args.variants.split(","):
            recipe = variant(base, name, args.teacher)
            teacher = teacher_for(recipe, Path(args.data), split, args.cache, log.parent)
            for seed in range(args.seeds):
                key = {"model": spec.name, "frontend": arith, "variant": name, "split": split.describe(), "seed": seed}
                if any(all(r.get(k, "float" if k == "frontend" else None) == v for k, v in key.items()) for r in done):
                    continue
                rec, _ = retrain(spec, feats, split, recipe.replace(seed=seed), teacher)
                rec = {**key, **rec}
                done.append(rec)
                with open(log, "a") as fh:
                    fh.write(json.dumps(rec) + "\n")
                print(f"{spec.name:<14} {arith:<6} {name:<30} seed {seed}: val_score {rec['val_score']:.3f}  "
                      f"test_accuracy {rec['test_accuracy']:.3f} float {rec['test_accuracy_int8']:.3f} int8 "
                      f"({rec['int8_method']}, {rec['seconds']:.0f} s)", flush=True)
    print_table(done, split.describe())
    return 0


def print_table(records: list[dict], split: str) -> None:
    print(f"\n{split}; mean ± std over seeds")
    print(f"{'model':<14} {'front':<6} {'variant':<30} {'n':>2}  {'val_score':>13}  {'test_accuracy':>13}  {'int8':>13}")
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        if r["split"] == split:
            groups.setdefault((r["model"], r.get("frontend", "float"), r["variant"]), []).append(r)
    for (model, arith, name), runs in groups.items():
        cells = []
        for key in ("val_score", "test_accuracy", "test_accuracy_int8"):
            v = np.array([r[key] for r in runs])
            cells.append(f"{v.mean() * 100:5.1f} ± {v.std(ddof=1) * 100 if len(v) > 1 else 0:4.1f}")
        print(f"{model:<14} {arith:<6} {name:<30} {len(runs):>2}  {cells[0]:>13}  {cells[1]:>13}  {cells[2]:>13}")


if __name__ == "__main__":
    sys.exit(main())
