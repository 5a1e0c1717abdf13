"""Training throughput of one candidate: windows/s, seconds per epoch (training and validation) and
per trial, for Stride-DS-24 with the default recipe.

Runs on real clips when `NAS_BENCH_DATA` names an UrbanSound8K-layout folder (e.g. the dev clips:
`NAS_BENCH_DATA=~/us8k-dev NAS_BENCH_FOLDS=1/3` trains on fold 1 and validates on fold 3), else on
a generated demo set (the figures then say so). Threads: 1 and every core, to show which a worker
should use.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _data(tmp: Path):
    from nas.data.synth import generate
    from nas.data.urbansound import FoldSplit

    root = os.environ.get("NAS_BENCH_DATA")
    train, val = os.environ.get("NAS_BENCH_FOLDS", "1/3").split("/")
    if root:
        return Path(root).expanduser(), FoldSplit.from_flags(train, val, "none"), "dev clips"
    return generate(tmp / "demo", seed=0, clips_per_class=40, progress=False), FoldSplit.for_test_fold(10, 9), "demo set"


def run() -> list[tuple[str, float, str]]:
    import torch

    from nas.arch.spec import ArchSpec
    from nas.train.clips import clip_probabilities
    from nas.train.loop import train
    from nas.train.recipe import Recipe
    from nas.train.trialdata import TrialData

    spec = ArchSpec.load(ROOT / "specs/thesis/stride-ds-24.yaml")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root, split, what = _data(Path(tmp))
        train_set, val_set, norm = TrialData(root, split, Path(tmp) / "cache", progress=False).get(spec.frontend)
        epochs = 4
        recipe = Recipe.from_space_file(ROOT / "search_spaces/default.yaml").replace(epochs=epochs)
        for threads in sorted({1, os.cpu_count() or 1}):
            torch.set_num_threads(threads)
            t0 = time.perf_counter()
            result = train(spec, train_set, val_set, recipe, norm_std=norm.std, device="cpu")
            total = time.perf_counter() - t0
            t_val = time.perf_counter()
            clip_probabilities(result_model(spec, result), val_set, spec.frontend.frames, spec.frontend.window_hop_frames)
            val_s = time.perf_counter() - t_val
            per_epoch = total / epochs
            tag = f"Stride-DS-24, {what}, {threads} thread(s)"
            rows += [(f"{tag}: training windows/s", result.train_windows / (total - epochs * val_s), "windows/s"),
                     (f"{tag}: seconds per epoch (train + validation)", per_epoch, "s"),
                     (f"{tag}: of which validation ({len(val_set)} clips)", val_s, "s"),
                     (f"{tag}: seconds per full trial ({Recipe().epochs} epochs)", per_epoch * Recipe().epochs, "s"),
                     (f"{tag}: seconds to the first rung (4 epochs)", per_epoch * 4, "s")]
    return rows


def result_model(spec, result):
    from nas.arch.net import build

    net = build(spec)
    net.load_state_dict(result.state_dict)
    return net.eval()
