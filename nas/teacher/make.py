"""The pretrained teacher for each fold split, written as a `nas-teacher-v1` file.

Per split, on the cached embeddings (`nas.teacher.embed`) of the split's training folds only: a
linear head (`nas.teacher.head`) on the pooled embedding and the AudioSet logits, its L2 chosen by
cross-fitting; every training clip, and each of its 1-s windows, is scored by the cross-fitting head
that never saw its recording (out of fold). The head fitted on all training clips scores the
validation clips: the teacher's validation accuracy. Test folds are never read.
The window embeddings of every training clip of any split go to `<out stem>.embeddings.npz` beside
the file, for students that mimic them (`distillation.embedding_weight`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nas.data.urbansound import FoldSplit
from nas.teacher import head
from nas.teacher.embed import WINDOW_HOP_SECONDS, WINDOW_SECONDS, Embeddings, embeddings, load_network, weights_digest
from nas.teacher.mobilenet import MobileNetAudio
from nas.train.clips import selection_score
from nas.train.teacher import teacher_entry, write_embeddings, write_teachers

NAME = "EfficientAT mn04_as (AudioSet, frozen)"


@dataclass(frozen=True)
class SplitTeacher:
    split: FoldSplit
    entry: dict                 # the split's entry of the teacher file
    train_clips: int
    l2: float
    oof_acc: float              # out-of-fold accuracy on the training clips
    val_acc: float
    val_score: float            # prior-matched (the student's selection metric)

    def describe(self) -> str:
        return (f"{self.split.describe()}: head on {self.train_clips} training clips (L2 {self.l2:g}, out-of-fold "
                f"accuracy {self.oof_acc:.3f}), validation accuracy {self.val_acc:.3f}, "
                f"prior-matched {self.val_score:.3f}")


@torch.no_grad()
def head_inputs(net: MobileNetAudio, pooled: np.ndarray) -> np.ndarray:
    """[..., D] pooled embeddings → [..., D + 527]: the embedding and the AudioSet logits."""
    x = torch.from_numpy(np.asarray(pooled, np.float32))
    return torch.cat([x, net.logits(x)], dim=-1).numpy()


def fit_split(e: Embeddings, clip_x: np.ndarray, window_x: np.ndarray, split: FoldSplit) -> SplitTeacher:
    tr, va = e.rows(split.train), e.rows(split.val)
    c = len(e.classes)
    y = e.y[tr]
    group = head.groups(e.fs_id[tr])
    oof, l2, heads = head.cross_fit(clip_x[tr], y, group, c)
    windows = np.zeros((len(tr), window_x.shape[1], c))
    for g, h in heads.items():
        windows[group == g] = h.probabilities(window_x[tr][group == g])
    entry = teacher_entry(split.train, [e.names[i] for i in tr], oof, windows, (WINDOW_SECONDS, WINDOW_HOP_SECONDS))
    probs = torch.from_numpy(head.fit(clip_x[tr], y, c, l2).probabilities(clip_x[va]))
    yv = torch.from_numpy(e.y[va])
    prior = torch.bincount(torch.from_numpy(y), minlength=c).float() / len(y)
    return SplitTeacher(split=split, entry=entry, train_clips=len(tr), l2=l2,
                        oof_acc=float((oof.argmax(1) == y).mean()),
                        val_acc=selection_score(probs, yv, "accuracy"), val_score=selection_score(probs, yv, "prior", prior))


def make_teacher(weights: str | Path, root: str | Path, splits: list[FoldSplit], cache: str | Path, out: str | Path,
                 log=print, progress: bool = True) -> list[SplitTeacher]:
    """Fit the teacher of every split and write them to `out` (one entry per split)."""
    net = load_network(weights)
    e = embeddings(root, weights, cache, progress=progress, net=net)
    log(f"teacher embeddings of {len(e.names)} clips ({'computed in %.0f s' % e.seconds if e.seconds else 'cached'})")
    clip_x, window_x = head_inputs(net, e.clip), head_inputs(net, e.windows)
    results = []
    for split in splits:
        results.append(fit_split(e, clip_x, window_x, split))
        log(results[-1].describe())
    about = {"teacher": NAME, "weights_sha256": weights_digest(weights),
             "head": "logistic regression on the pooled embedding and the AudioSet logits; training clips scored "
                     "out of fold", "validation_accuracy": {r.split.describe(): round(r.val_acc, 4) for r in results}}
    train = e.rows(sorted({f for s in splits for f in s.train}))
    out = Path(out)
    ref = write_embeddings(embeddings_path(out), [e.names[i] for i in train], e.windows[train],
                           (WINDOW_SECONDS, WINDOW_HOP_SECONDS))
    write_teachers(out, e.classes, [r.entry for r in results], about, ref)
    return results


def embeddings_path(out: Path) -> Path:
    """teacher.json → teacher.embeddings.npz beside it."""
    return out.with_name(f"{out.stem}.embeddings.npz")
