"""Fully connected (`arm_fully_connected_s8`): [C_OUT, K] int8 weights, one requantisation per tensor.
A spatial input is flattened in NHWC (H, W, C) order, as CMSIS-NN reads it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from nas.core.config import bounded
from nas.kinds import units
from nas.kinds.base import Activation, Constants, KernelCall, LayerKind


@dataclass(frozen=True)
class Dense:
    """Fully connected; a 3-D input is flattened in NHWC (H, W, C) order, as CMSIS-NN reads it."""

    TYPE: ClassVar[str] = "dense"
    units: int = bounded(ge=1, le=65536)
    activation: Activation = "relu"
    dropout: float = bounded(0.0, ge=0.0, lt=1.0)


class DenseKind(LayerKind):
    spec = Dense
    prefix = "fc"
    spatial = False
    flat_output = True
    flattens = True

    def output_shape(self, layer, shape):
        return (1, 1, layer.units)

    def constants(self, layer, in_shape, out_shape):
        h, w, c = in_shape
        return Constants(weights=h * w * c * layer.units, biases=layer.units, quant_bytes=8)

    def calls(self, layer, in_shape, out_shape):
        h, w, c = in_shape
        return (KernelCall("fc", 1, 1, h * w * c, layer.units),)

    def describe(self, layer):
        return self.type

    def summary(self, layer):
        return f"d{layer.units}", True

    def module(self, layer, in_shape):
        h, w, c = in_shape
        return units.Unit(nn.Linear(h * w * c, layer.units), relu=layer.activation == "relu", dropout=layer.dropout,
                          flatten=True)

    def fake_quant(self, module, x, name, qparams):
        return units.fake_quant_unit(module, x, qparams[name])

    def quantize(self, layer, module, name, in_shape, out_shape, in_q, ranges):
        return units.quantize_unit(units.DENSE, name, module, in_shape, out_shape, in_q, ranges[name])

    def run_int8(self, q, x):
        return units.run_unit(q, x)

    def onnx_float(self, g, layer, module, x, name):
        return units.onnx_float_unit(g, module, x, name)

    def onnx_int8(self, g, q, xq, x, out):
        return units.onnx_int8_unit(g, q, x, out)


KIND = DenseKind()
