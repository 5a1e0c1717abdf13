"""Torch builder: `ArchSpec` → `nn.Module` that trains, and its folded twin that deploys.

Training form: conv → BatchNorm → ReLU, with dropout on layer inputs. Deploy form (`fold_batchnorm`):
BatchNorm folded into the conv weights and bias, exactly the parameters the int8 exporter quantises,
so its parameter count and MACs are the cost model's. Inputs are NCHW [B, 1, frames, mels]; dense
layers flatten in NHWC order (H, W, C) so the weight matrix is already in CMSIS-NN's layout.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from nas.arch.spec import (ArchSpec, AvgPool2D, Conv2D, Dense, DepthwiseConv2D, GlobalAvgPool2D, Layer, MaxPool2D,
                           Shape, Softmax, conv_padding)


class SpecLayer(nn.Module):
    """One spec layer: optional input dropout, the operation, optional BatchNorm, optional ReLU."""

    def __init__(self, layer: Layer, in_shape: Shape):
        super().__init__()
        h, w, c = in_shape
        dropout = getattr(layer, "dropout", 0.0)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.flatten = isinstance(layer, Dense)
        self.bn: nn.Module = nn.Identity()
        relu = getattr(layer, "activation", "none") == "relu"
        if isinstance(layer, (Conv2D, DepthwiseConv2D)):
            out = layer.filters if isinstance(layer, Conv2D) else c
            groups = 1 if isinstance(layer, Conv2D) else c
            self.op: nn.Module = nn.Conv2d(c, out, layer.kernel, layer.stride, conv_padding(layer.kernel, layer.padding),
                                           groups=groups, bias=not layer.batchnorm)
            if layer.batchnorm:
                self.bn = nn.BatchNorm2d(out)
        elif isinstance(layer, MaxPool2D):
            self.op = nn.MaxPool2d(layer.pool, layer.strides)
        elif isinstance(layer, AvgPool2D):
            self.op = nn.AvgPool2d(layer.pool, layer.strides)
        elif isinstance(layer, GlobalAvgPool2D):
            self.op = nn.AdaptiveAvgPool2d(1)
        elif isinstance(layer, Dense):
            self.op = nn.Linear(h * w * c, layer.units)
        else:
            raise TypeError(f"no torch module for {layer!r}")
        self.act = nn.ReLU() if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.flatten and x.dim() == 4:
            x = x.permute(0, 2, 3, 1).flatten(1)
        return self.act(self.bn(self.op(self.drop(x))))


class Net(nn.Module):
    """Returns logits; the spec's final softmax is applied by `predict_proba` and by the exporters."""

    def __init__(self, spec: ArchSpec):
        super().__init__()
        self.spec = spec
        self.layers = nn.ModuleDict()
        for name, layer, (in_shape, _) in zip(spec.layer_names(), spec.layers, spec.layer_shapes()):
            if not isinstance(layer, Softmax):
                self.layers[name] = SpecLayer(layer, in_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for module in self.layers.values():
            x = module(x)
        return x

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.forward(x), dim=-1)


def build(spec: ArchSpec) -> Net:
    return Net(spec)


@torch.no_grad()
def fold_batchnorm(net: Net) -> Net:
    """Deploy form: every BatchNorm folded into the preceding conv (which gains a bias), in eval mode."""
    folded = copy.deepcopy(net).eval()
    for module in folded.layers.values():
        if isinstance(module.bn, nn.BatchNorm2d):
            conv, bn = module.op, module.bn
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                              groups=conv.groups, bias=True)
            fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
            base = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
            fused.bias.copy_((base - bn.running_mean) * scale + bn.bias)
            module.op, module.bn = fused, nn.Identity()
    return folded


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
