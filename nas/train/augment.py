"""Training-time augmentation of log-mel windows (normalised units)."""
from __future__ import annotations

import torch


def level_and_masks(xb: torch.Tensor, gen: torch.Generator, std: float) -> torch.Tensor:
    """+-6 dB level change, one time mask and one mel mask of up to 1/8 of the axis (SpecAugment-like)."""
    b, _, t, m = xb.shape
    gain = (torch.rand(b, 1, 1, 1, generator=gen) * 12.0 - 6.0) / std
    tw = torch.randint(0, max(t // 8, 1) + 1, (b,), generator=gen)
    t0 = (torch.rand(b, generator=gen) * (t - tw + 1)).long()
    fw = torch.randint(0, max(m // 8, 1) + 1, (b,), generator=gen)
    f0 = (torch.rand(b, generator=gen) * (m - fw + 1)).long()
    ar_t, ar_f = torch.arange(t), torch.arange(m)
    tmask = (ar_t[None] >= t0[:, None]) & (ar_t[None] < (t0 + tw)[:, None])
    fmask = (ar_f[None] >= f0[:, None]) & (ar_f[None] < (f0 + fw)[:, None])
    mask = (tmask[:, None, :, None] | fmask[:, None, None, :]).to(xb.device)
    return (xb + gain.to(xb.device)).masked_fill(mask, 0.0)
