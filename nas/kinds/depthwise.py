"""Depthwise convolution (`arm_depthwise_conv_wrapper_s8`, channel multiplier 1): 1HWC int8 weights,
per-channel requantisation."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from nas.core.config import bounded
from nas.kinds import units
from nas.kinds.base import (Activation, Constants, KernelCall, LayerKind, Padding, conv_padding, describe_window,
                             stride_text, window_output_shape)


@dataclass(frozen=True)
class DepthwiseConv2D:
    TYPE: ClassVar[str] = "depthwise_conv2d"
    kernel: tuple[int, int] = bounded((3, 3), ge=1, le=64)
    stride: tuple[int, int] = bounded((1, 1), ge=1, le=64)
    padding: Padding = "same"
    activation: Activation = "relu"
    batchnorm: bool = True
    dropout: float = bounded(0.0, ge=0.0, lt=1.0)


class DepthwiseKind(LayerKind):
    spec = DepthwiseConv2D
    prefix = "dw"

    def output_shape(self, layer, shape):
        return window_output_shape(layer, shape, shape[2])

    def constants(self, layer, in_shape, out_shape):
        c = out_shape[2]
        return Constants(weights=layer.kernel[0] * layer.kernel[1] * c, biases=c, quant_bytes=8 * c)

    def calls(self, layer, in_shape, out_shape):
        (h, w, c), (oh, ow, oc) = in_shape, out_shape
        ph, pw = conv_padding(layer.kernel, layer.padding)
        return (KernelCall("dw", h, w, c, oc, *layer.kernel, *layer.stride, ph, pw, oh, ow),)

    def describe(self, layer):
        return describe_window(self.type, layer)

    def summary(self, layer):
        return f"dw{layer.kernel[0]}x{layer.kernel[1]}{stride_text(layer.stride)}", layer.kernel != (1, 1)

    def module(self, layer, in_shape):
        c = in_shape[2]
        return units.conv_unit(c, c, layer.kernel, layer.stride, conv_padding(layer.kernel, layer.padding), groups=c,
                               bn=layer.batchnorm, relu=layer.activation == "relu", dropout=layer.dropout)

    def fake_quant(self, module, x, name, qparams):
        return units.fake_quant_unit(module, x, qparams[name])

    def quantize(self, layer, module, name, in_shape, out_shape, in_q, ranges):
        return units.quantize_unit(units.DEPTHWISE, name, module, in_shape, out_shape, in_q, ranges[name])

    def run_int8(self, q, x):
        return units.run_unit(q, x)

    def onnx_float(self, g, layer, module, x, name):
        return units.onnx_float_unit(g, module, x, name)

    def onnx_int8(self, g, q, xq, x, out):
        return units.onnx_int8_unit(g, q, x, out)


KIND = DepthwiseKind()
