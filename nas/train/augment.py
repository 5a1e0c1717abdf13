"""Training-time augmentation of log-mel windows, in the network's normalised units.

Every transform acts on a batch [B, 1, frames, mels] with one random draw per window from the
caller's generator, so a seeded run is reproducible. Levels are in dB (divided by the input
normalisation's std): a device hears sounds louder or fainter than the recordings (gain) and
through microphones and rooms that colour them (tilt); a shift along the mel axis is a cheap pitch
shift; masks are SpecAugment's; mixup blends two windows and their targets.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from nas.train.recipe import Augment


def _uniform(n: int, gen: torch.Generator, half_width: float) -> torch.Tensor:
    return (torch.rand(n, generator=gen) * 2.0 - 1.0) * half_width


def _band_masks(b: int, size: int, count: int, share: float, gen: torch.Generator) -> torch.Tensor:
    """[b, size] bool: the union of `count` random bands of up to share*size cells per row."""
    mask = torch.zeros(b, size, dtype=torch.bool)
    ar = torch.arange(size)
    widest = max(int(size * share), 1)
    for _ in range(count):
        width = torch.randint(0, widest + 1, (b,), generator=gen)
        start = (torch.rand(b, generator=gen) * (size - width + 1)).long()
        mask |= (ar[None] >= start[:, None]) & (ar[None] < (start + width)[:, None])
    return mask


def apply(xb: torch.Tensor, aug: Augment, gen: torch.Generator, db_per_unit: float) -> torch.Tensor:
    """Gain, tilt, mel shift and masks on a batch of windows; `db_per_unit` converts dB to input units."""
    b, _, t, m = xb.shape
    dev = xb.device
    if aug.gain_db:
        xb = xb + (_uniform(b, gen, aug.gain_db) / db_per_unit).to(dev)[:, None, None, None]
    if aug.tilt_db:
        slope = (_uniform(b, gen, aug.tilt_db) / db_per_unit).to(dev)
        xb = xb + slope[:, None, None, None] * torch.linspace(-0.5, 0.5, m, device=dev)
    if aug.mel_shift:
        shift = torch.randint(-aug.mel_shift, aug.mel_shift + 1, (b,), generator=gen)
        idx = (torch.arange(m)[None] - shift[:, None]).clamp(0, m - 1).to(dev)  # edge bands repeat
        xb = torch.gather(xb, 3, idx[:, None, None, :].expand(b, 1, t, m))
    if aug.time_masks or aug.mel_masks:
        tm = _band_masks(b, t, aug.time_masks, aug.time_mask_share, gen)
        fm = _band_masks(b, m, aug.mel_masks, aug.mel_mask_share, gen)
        xb = xb.masked_fill((tm[:, None, :, None] | fm[:, None, None, :]).to(dev), 0.0)
    return xb


def stretch_rates(n: int, aug: Augment, gen: torch.Generator) -> torch.Tensor | None:
    """Per-window time-stretch rates, log-uniform in [1/(1+s), 1+s]; None when stretching is off."""
    if not aug.time_stretch:
        return None
    return torch.exp(_uniform(n, gen, math.log1p(aug.time_stretch)))


def mixup(xb: torch.Tensor, targets: torch.Tensor, alpha: float, gen: torch.Generator,
          rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend every window with another of the batch, lam ~ Beta(alpha, alpha), targets alike."""
    if not alpha:
        return xb, targets
    lam = float(rng.beta(alpha, alpha))
    perm = torch.randperm(xb.shape[0], generator=gen).to(xb.device)
    return lam * xb + (1 - lam) * xb[perm], lam * targets + (1 - lam) * targets[perm]
