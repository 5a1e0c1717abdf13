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


@dataclass
class ClipSet:
    """Normalised features of a set of clips: x [N, frames, mels], labels, frames holding audio."""

    x: torch.Tensor
    y: torch.Tensor
    valid_frames: torch.Tensor

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


def gather(x: torch.Tensor, clips: torch.Tensor, starts: torch.Tensor, frames: int) -> torch.Tensor:
    offsets = starts[:, None] + torch.arange(frames)
    return x[clips[:, None], offsets].unsqueeze(1)  # [B, 1, frames, mels]


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
