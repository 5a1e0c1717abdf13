"""Quantisation-aware fine-tuning, for models whose post-training int8 version loses accuracy.

The deploy form (BatchNorm folded, as `quantize` quantises it) is fine-tuned for a few epochs with
every weight rounded as `quantize` rounds it (symmetric int8 per output channel for convolutions, per
tensor for dense layers) and every activation rounded to the int8 grid its calibration gave; the
rounding is passed straight through in the backward pass (straight-through estimator). The result is
a plain folded `Net`: `quantize` then calibrates and quantises it as any other, and the C exporter
needs nothing new.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from nas.arch.net import Net, fold_batchnorm
from nas.quant.quantize import activation_qparams, observe_ranges
from nas.train.clips import ClipSet
from nas.train.loop import TrainResult, train
from nas.train.recipe import Recipe


def _round_ste(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


def fake_activation(x: torch.Tensor, scale: float, zero_point: int) -> torch.Tensor:
    """x on the asymmetric int8 grid (scale, zero point), saturated to [-128, 127]."""
    q = torch.clamp(_round_ste(x / scale) + zero_point, -128, 127)
    return (q - zero_point) * scale


def fake_weight(w: torch.Tensor, per_channel_dim: int | None) -> torch.Tensor:
    """w on the symmetric int8 grid [-127, 127]: one scale per index of `per_channel_dim`, or per tensor."""
    if per_channel_dim is None:
        amax = w.detach().abs().max()
    else:
        dims = [d for d in range(w.dim()) if d != per_channel_dim]
        amax = w.detach().abs().amax(dim=dims, keepdim=True)
    scale = torch.where(amax > 0, amax / 127.0, torch.full_like(amax, 1.0 / 127.0))
    return torch.clamp(_round_ste(w / scale), -127, 127) * scale


class FakeQuantNet(nn.Module):
    """A folded `Net` run through int8 rounding; `folded` holds the weights being fine-tuned."""

    def __init__(self, folded: Net, input_qparams: tuple[float, int], output_qparams: dict[str, tuple[float, int]]):
        super().__init__()
        self.folded = folded
        self.input_qparams = input_qparams
        self.output_qparams = output_qparams

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = fake_activation(x, *self.input_qparams)
        for name, m in self.folded.layers.items():
            if m.flatten and x.dim() == 4:
                x = x.permute(0, 2, 3, 1).flatten(1)
            x = m.drop(x)
            op = m.op
            if isinstance(op, nn.Conv2d):   # depthwise weights [C, 1, kh, kw]: per channel along dim 0 too
                x = F.conv2d(x, fake_weight(op.weight, 0), op.bias, op.stride, op.padding, groups=op.groups)
            elif isinstance(op, nn.Linear):
                x = F.linear(x, fake_weight(op.weight, None), op.bias)
            else:                            # pooling keeps its input's grid
                x = op(x)
                continue
            x = fake_activation(m.act(x), *self.output_qparams[name])
        return x


def finetune(net: Net, train_set: ClipSet, val_set: ClipSet, recipe: Recipe, calib: torch.Tensor, norm_std: float,
             epochs: int = 4, lr_share: float = 0.1) -> tuple[Net, TrainResult]:
    """Fine-tune `net` through int8 rounding for `epochs` at `lr_share` of the recipe's learning rate
    (no warm-up, no weight average); returns the folded net of the best smoothed epoch."""
    folded = fold_batchnorm(net)
    in_range, ranges = observe_ranges(folded, calib)
    wrapper = FakeQuantNet(copy.deepcopy(folded), activation_qparams(*in_range),
                           {name: activation_qparams(*r) for name, r in ranges.items()})
    r = recipe.replace(epochs=epochs, lr=recipe.lr * lr_share, warmup_share=0.0, ema_decay=0.0, patience=0)
    result = train(net.spec, train_set, val_set, r, norm_std=norm_std, net=wrapper, device="cpu")
    wrapper.load_state_dict(result.state_dict)
    return wrapper.folded.eval(), result
