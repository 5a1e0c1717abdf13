"""Quantisation-aware fine-tuning, for models whose post-training int8 version loses accuracy.

The deploy form (BatchNorm folded, as `quantize` quantises it) is fine-tuned for a few epochs with
every weight rounded as `quantize` rounds it (symmetric int8 per output channel for convolutions, per
tensor for dense layers) and every activation rounded to the int8 grid its calibration gave; the
rounding is passed straight through in the backward pass (straight-through estimator). The result is
a plain folded `Net`: `quantize` then calibrates and quantises it as any other, and the C exporter
needs nothing new. Each layer's fake-quantised forward is its kind's (`LayerKind.fake_quant`).
"""
from __future__ import annotations

import copy
import dataclasses

import torch
from torch import nn

from nas.arch.net import Net, fold_batchnorm
from nas.kinds import kind_of
from nas.kinds.units import fake_activation
from nas.quant.quantize import activation_qparams, observe_ranges
from nas.train.clips import ClipSet
from nas.train.loop import TrainResult, train
from nas.train.recipe import Recipe


class FakeQuantNet(nn.Module):
    """A folded `Net` run through int8 rounding; `folded` holds the weights being fine-tuned."""

    def __init__(self, folded: Net, input_qparams: tuple[float, int], output_qparams: dict[str, tuple[float, int]]):
        super().__init__()
        self.folded = folded
        self.input_qparams = input_qparams
        self.output_qparams = output_qparams

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = fake_activation(x, *self.input_qparams)
        for (name, module), layer in zip(self.folded.layers.items(), self.folded.spec.layers):
            x = kind_of(layer).fake_quant(module, x, name, self.output_qparams)
        return x


def finetune(net: Net, train_set: ClipSet, val_set: ClipSet, recipe: Recipe, calib: torch.Tensor, norm_std: float,
             epochs: int = 4, lr_share: float = 0.1) -> tuple[Net, TrainResult]:
    """Fine-tune `net` through int8 rounding for `epochs` at `lr_share` of the recipe's learning rate
    (no warm-up, no weight average, no embedding mimicry); returns the folded net of the best smoothed
    epoch."""
    folded = fold_batchnorm(net)
    in_range, ranges = observe_ranges(folded, calib)
    wrapper = FakeQuantNet(copy.deepcopy(folded), activation_qparams(*in_range),
                           {name: activation_qparams(*r) for name, r in ranges.items()})
    r = recipe.replace(epochs=epochs, lr=recipe.lr * lr_share, warmup_share=0.0, ema_decay=0.0, patience=0,
                       distillation=dataclasses.replace(recipe.distillation, embedding_weight=0.0))
    result = train(net.spec, train_set, val_set, r, norm_std=norm_std, net=wrapper, device="cpu")
    wrapper.load_state_dict(result.state_dict)
    return wrapper.folded.eval(), result
