"""Clips as tensors, and clip-level scoring as the device runs it.

A clip's features are one tensor row [frames, mels]; its inference windows are spaced as the device
runs them (by the spec's overlap), classified, and their probabilities averaged: accuracy is per
clip, as in the thesis. A batch of windows is one gather out of the clip tensor, so a step costs no
Python per sample.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from nas.train.teacher import SoftTargets


@dataclass
class ClipSet:
    """Normalised features of a set of clips: x [N, frames, mels], labels, frames holding audio,
    and, for a training set under distillation, the teacher's soft targets."""

    x: torch.Tensor
    y: torch.Tensor
    valid_frames: torch.Tensor
    soft: SoftTargets | None = None     # a teacher's tempered probabilities (training sets; nas.train.teacher)

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True)
class Normalisation:
    """Scalar dB → network-input affine map; scalar so it folds into int8 input quantisation."""

    mean: float
    std: float

    @classmethod
    def fit(cls, x: np.ndarray, valid_frames: np.ndarray) -> "Normalisation":
        total, sq, n = 0.0, 0.0, 0
        for clip, v in zip(x, valid_frames):
            part = np.asarray(clip[: max(int(v), 1)], dtype=np.float64)
            total += part.sum()
            sq += np.square(part).sum()
            n += part.size
        mean = total / n
        std = math.sqrt(max(sq / n - mean * mean, 1e-12))
        return cls(mean=float(mean), std=float(std))

    def apply(self, x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(((np.asarray(x, dtype=np.float32) - self.mean) / self.std).astype(np.float32))


def gather(x: torch.Tensor, clips: torch.Tensor, starts: torch.Tensor, frames: int,
           rates: torch.Tensor | None = None) -> torch.Tensor:
    """Windows [B, 1, frames, mels] of `frames` frames from `starts`; with `rates`, each window reads
    frames*rate frames resampled to `frames` by linear interpolation (a time stretch)."""
    if rates is None:
        offsets = starts[:, None] + torch.arange(frames, device=starts.device)
        return x[clips[:, None], offsets].unsqueeze(1)
    pos = starts[:, None].float() + torch.arange(frames, device=starts.device) * rates[:, None]
    pos = pos.clamp(max=x.shape[1] - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=x.shape[1] - 1)
    w = (pos - lo)[..., None]
    rows = clips[:, None]
    return (x[rows, lo] * (1 - w) + x[rows, hi] * w).unsqueeze(1)


def eval_windows(data: ClipSet, frames: int, hop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(clip index, start frame) of every inference window, spaced as on the device; >= 1 per clip."""
    clips, starts = [], []
    total = data.x.shape[1]
    for i, v in enumerate(data.valid_frames.tolist()):
        last = max(min(v, total) - frames, 0)
        s = torch.arange(0, last + 1, hop)
        clips.append(torch.full_like(s, i))
        starts.append(s)
    return torch.cat(clips), torch.cat(starts)


@torch.no_grad()
def clip_probabilities(net: nn.Module, data: ClipSet, frames: int, hop: int, batch: int = 1024) -> torch.Tensor:
    """Mean window softmax per clip [N, classes]."""
    net.eval()
    clips, starts = eval_windows(data, frames, hop)
    out = None
    for i in range(0, len(clips), batch):
        c, s = clips[i:i + batch], starts[i:i + batch]
        p = torch.softmax(net(gather(data.x, c, s, frames)), dim=-1)
        if out is None:
            out = torch.zeros(len(data), p.shape[1])
        out.index_add_(0, c, p)
    counts = torch.bincount(clips, minlength=len(data)).clamp(min=1)
    return out / counts[:, None]


def clip_accuracy(net: nn.Module, data: ClipSet, frames: int, hop: int) -> float:
    probs = clip_probabilities(net, data, frames, hop)
    return float((probs.argmax(1) == data.y).float().mean())


def class_recalls(pred: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per-class share of clips classified correctly [num_classes]; NaN for a class with no clip."""
    hits = torch.bincount(y[pred == y], minlength=num_classes).float()
    counts = torch.bincount(y, minlength=num_classes).float()
    return hits / counts  # 0/0 = NaN: the class is absent


def selection_score(probs: torch.Tensor, y: torch.Tensor, metric: str, prior: torch.Tensor | None = None) -> float:
    """The validation score that picks epochs and models.

    accuracy: share of clips right. balanced: mean per-class recall. prior: per-class recall weighted
    by the training folds' class shares (`prior`), i.e. the accuracy expected on a fold whose classes
    are distributed like the training folds' -- unbiased when the validation fold's class mix is
    skewed (a partial fold), equal to accuracy in expectation when it is not.
    """
    pred = probs.argmax(1)
    if metric == "accuracy":
        return float((pred == y).float().mean())
    recalls = class_recalls(pred, y, probs.shape[1])
    present = ~torch.isnan(recalls)
    if metric == "balanced":
        return float(recalls[present].mean())
    if metric == "prior":
        if prior is None:
            raise ValueError("the prior-matched score needs the training class shares")
        w = prior[present] / prior[present].sum()
        return float((recalls[present] * w).sum())
    raise ValueError(f"unknown selection metric {metric!r}")
