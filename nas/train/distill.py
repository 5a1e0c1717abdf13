"""The built-in distillation teacher, trained once per fold split and written as a teacher file."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from nas.arch.net import build
from nas.data import cache as fcache
from nas.data.urbansound import FoldSplit
from nas.train.clips import Normalisation, clip_probabilities
from nas.train.loop import train
from nas.train.recipe import Distillation, Recipe
from nas.train.teacher import teacher_spec, write_teacher
from nas.train.trialdata import to_clipset, valid_frames


def train_teacher(root: Path, split: FoldSplit, cache: Path, recipe: Recipe, path: Path, log=print) -> Path:
    """Train the built-in teacher on the split's training folds (selected on its validation folds)
    and write its probabilities for the training clips to `path`; an existing file is reused."""
    if path.is_file():
        return path
    spec = teacher_spec()
    feats = fcache.load_features(root, spec.frontend, cache)
    sel = feats.selection(split)
    train_x = np.asarray(sel.train.x)
    norm = Normalisation.fit(train_x, valid_frames(train_x))
    train_set, val_set = to_clipset(sel.train, norm), to_clipset(sel.val, norm)
    log(f"training the distillation teacher on folds {','.join(map(str, split.train))} ...")
    result = train(spec, train_set, val_set, recipe.replace(distillation=Distillation()), norm.std)
    net = build(spec)
    net.load_state_dict(result.state_dict)
    probs = clip_probabilities(net, train_set, spec.frontend.frames, spec.frontend.window_hop_frames)
    log(f"teacher: validation score {result.best_score:.3f} (accuracy {result.best_acc:.3f}) at epoch {result.best_epoch}")
    write_teacher(path, sel.train.names, probs, split, feats.classes)
    return path
