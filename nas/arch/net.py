"""Torch builder: `ArchSpec` → `nn.Module` that trains, and its folded twin that deploys.

Each layer is its kind's module (`nas.kinds`): conv → BatchNorm → ReLU with dropout on the input for
the weighted kinds. Deploy form (`fold_batchnorm`): every BatchNorm folded into its conv's weights and
bias, exactly the parameters the int8 exporter quantises, so its parameter count and MACs are the
cost model's. Inputs are NCHW [B, 1, frames, mels]; dense layers flatten in NHWC order (H, W, C) so
the weight matrix is already in CMSIS-NN's layout.
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

from nas.arch.spec import ArchSpec
from nas.kinds import kind_of
from nas.kinds.units import Unit, fold


class Net(nn.Module):
    """Returns logits; the spec's final softmax is applied by `predict_proba` and by the exporters."""

    def __init__(self, spec: ArchSpec):
        super().__init__()
        self.spec = spec
        self.layers = nn.ModuleDict()
        for name, layer, (in_shape, _) in zip(spec.layer_names(), spec.layers, spec.layer_shapes()):
            self.layers[name] = kind_of(layer).module(layer, in_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features_and_logits(x)[1]

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the input of the class layer, flattened [B, F]; logits): a network ends in its class dense
        layer and softmax, so the features are the last hidden representation (what a student mimicking
        a teacher's embeddings learns from)."""
        last = len(self.layers) - 2
        for i, module in enumerate(self.layers.values()):
            if i == last:
                features = x.flatten(1)
            x = module(x)
        return features, x

    @property
    def feature_size(self) -> int:
        """F of `features_and_logits`, from the spec's shapes."""
        return math.prod(self.spec.layer_shapes()[-2][0])

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.forward(x), dim=-1)


def build(spec: ArchSpec) -> Net:
    return Net(spec)


@torch.no_grad()
def fold_batchnorm(net: Net) -> Net:
    """Deploy form: every BatchNorm folded into the preceding conv (which gains a bias), in eval mode."""
    folded = copy.deepcopy(net).eval()
    for module in folded.modules():
        if isinstance(module, Unit):
            fold(module)
    return folded


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
