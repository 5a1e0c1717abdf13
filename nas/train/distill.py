"""The teacher a recipe distils from: the built-in one (an ensemble), trained once per fold split and
written as a teacher file, or the file the recipe names."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from nas.arch.net import build
from nas.core.errors import UserError
from nas.core.locks import FileLock
from nas.data import cache as fcache
from nas.data.urbansound import FoldSplit, read_metadata
from nas.train.clips import Normalisation, clip_probabilities
from nas.train.loop import train
from nas.train.recipe import Distillation, Recipe
from nas.train.teacher import MEMBERS, Teacher, load_teacher, teacher_spec, write_teacher
from nas.train.trialdata import to_clipset, valid_frames


def train_teacher(root: Path, split: FoldSplit, cache: Path, recipe: Recipe, path: Path, log=print) -> Path:
    """Train the built-in teacher's `MEMBERS` networks on the split's training folds (each selected on
    the validation folds) and write their mean probabilities for the training clips to `path`; an
    existing file is reused."""
    if path.is_file():
        return path
    spec = teacher_spec()
    feats = fcache.load_features(root, spec.frontend, cache)
    sel = feats.selection(split)
    train_x = np.asarray(sel.train.x)
    norm = Normalisation.fit(train_x, valid_frames(train_x))
    train_set, val_set = to_clipset(sel.train, norm), to_clipset(sel.val, norm)
    fe = spec.frontend
    probs = []
    for k in range(MEMBERS):
        log(f"training distillation teacher {k + 1}/{MEMBERS} on folds {','.join(map(str, split.train))} ...")
        result = train(spec, train_set, val_set, recipe.replace(distillation=Distillation(), seed=recipe.seed + k),
                       norm.std)
        net = build(spec)
        net.load_state_dict(result.state_dict)
        probs.append(clip_probabilities(net, train_set, fe.frames, fe.window_hop_frames))
        log(f"teacher {k + 1}: validation score {result.best_score:.3f} at epoch {result.best_epoch}")
    write_teacher(path, sel.train.names, torch.stack(probs).mean(0), split, feats.classes)
    return path


def teacher_for(recipe: Recipe, root: Path, split: FoldSplit, cache: str | Path, out: Path) -> Teacher | None:
    """The teacher the recipe distils from on `split` (None without distillation); `auto` trains the
    built-in one once per fold split into `out`, under a lock other workers wait on."""
    source = recipe.distillation.teacher
    if source == "none":
        return None
    path = Path(source)
    if source == "auto":
        path = out / f"teacher_folds{'-'.join(map(str, split.train))}.json"
        with FileLock(path.with_suffix(".lock")):
            train_teacher(root, split, Path(cache), recipe, path)
    d = recipe.distillation
    teacher = load_teacher(path, split, read_metadata(root).classes, d.level, embeddings=d.embedding_weight > 0)
    if not d.weight and teacher.embeddings is None:
        raise UserError(f"training.distillation: teacher {source} would teach nothing: weight is 0 and "
                        + ("embedding_weight is 0" if not d.embedding_weight else "it has no window embeddings")
                        + "; set weight > 0 to learn from its probabilities")
    return teacher


def describe(recipe: Recipe, teacher: Teacher) -> str:
    """One line on what training learns from the teacher, for the start of a search or a final stage."""
    d = recipe.distillation
    parts = [f"its {'window' if teacher.windows is not None else 'clip'} probabilities (weight {d.weight:g}, "
             f"temperature {d.temperature:g})"] if d.weight else []
    if d.embedding_weight:
        parts.append(f"its window embeddings (weight {d.embedding_weight:g})" if teacher.embeddings is not None
                     else "not its window embeddings: the file has none")
    return f"distilling from teacher {d.teacher}: " + "; ".join(parts)
