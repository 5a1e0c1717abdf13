"""Pooling: max (`arm_max_pool_s8`), average (`arm_avgpool_s8`) and global average (`arm_avgpool_s8`
over the whole input). Pooling keeps its input's (scale, zero point): max commutes with
quantisation, and the average of int8 values is rounded like CMSIS-NN's."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from nas.core.config import bounded
from nas.int8 import intref
from nas.kinds.base import Constants, KernelCall, LayerKind, QLayer, spatial_out


@dataclass(frozen=True)
class MaxPool2D:
    TYPE: ClassVar[str] = "max_pool2d"
    pool: tuple[int, int] = bounded((2, 2), ge=1, le=64)
    stride: tuple[int, int] | None = bounded(None, ge=1, le=64, doc="default: the pool size")

    @property
    def strides(self) -> tuple[int, int]:
        return self.stride or self.pool


@dataclass(frozen=True)
class AvgPool2D:
    TYPE: ClassVar[str] = "avg_pool2d"
    pool: tuple[int, int] = bounded((2, 2), ge=1, le=64)
    stride: tuple[int, int] | None = bounded(None, ge=1, le=64)

    @property
    def strides(self) -> tuple[int, int]:
        return self.stride or self.pool


@dataclass(frozen=True)
class GlobalAvgPool2D:
    TYPE: ClassVar[str] = "global_avg_pool2d"


class _Pool(LayerKind):
    """What the three pooling kinds share; `window` gives (kernel, stride) for an input shape."""

    op: ClassVar[str]

    def window(self, layer, in_shape) -> tuple[tuple[int, int], tuple[int, int]]:
        return tuple(layer.pool), tuple(layer.strides)

    def output_shape(self, layer, shape):
        h, w, c = shape
        (kh, kw), (sh, sw) = self.window(layer, shape)
        if kh > h or kw > w:
            raise ValueError(f"pool {kh}x{kw} is larger than its input {h}x{w}")
        return (spatial_out(h, kh, sh, 0), spatial_out(w, kw, sw, 0), c)

    def constants(self, layer, in_shape, out_shape):
        return Constants()

    def calls(self, layer, in_shape, out_shape):
        (h, w, c), (oh, ow, _) = in_shape, out_shape
        (kh, kw), (sh, sw) = self.window(layer, in_shape)
        return (KernelCall(self.op, h, w, c, c, kh, kw, sh, sw, 0, 0, oh, ow),)

    def describe(self, layer):
        return f"{self.type} {layer.pool[0]}x{layer.pool[1]}"

    def summary(self, layer):
        return f"{self.op[0]}p{layer.pool[0]}x{layer.pool[1]}", False

    def fake_quant(self, module, x, name, qparams):
        return module(x)   # pooling keeps its input's grid

    def quantize(self, layer, module, name, in_shape, out_shape, in_q, ranges):
        kernel, stride = self.window(layer, in_shape)
        return QLayer(name=name, kind=self.type, in_shape=tuple(in_shape), out_shape=tuple(out_shape),
                      in_scale=in_q[0], in_zero_point=in_q[1], out_scale=in_q[0], out_zero_point=in_q[1],
                      kernel=kernel, stride=stride)

    def run_int8(self, q, x):
        fn = intref.max_pool if self.op == "max_pool" else intref.avg_pool
        return fn(x, q.kernel, stride=q.stride, out_hw=q.out_shape[:2], act_min=q.act_min, act_max=q.act_max)

    def onnx_float(self, g, layer, module, x, name):
        kernel, stride = self.window(layer, None)
        return self.onnx_pool(g, kernel, stride, x, name)

    def onnx_pool(self, g, kernel, stride, x, name, out=None):
        op = "MaxPool" if self.op == "max_pool" else "AveragePool"
        return g.node(op, [x], name, out=out, kernel_shape=list(kernel), strides=list(stride))

    def onnx_int8(self, g, q, xq, x, out):
        return g.qdq(self.onnx_pool(g, q.kernel, q.stride, x, q.name), q.out_scale, q.out_zero_point, q.name, out=out)


class MaxPoolKind(_Pool):
    spec = MaxPool2D
    prefix = "maxpool"
    op = "max_pool"

    def module(self, layer, in_shape):
        return nn.MaxPool2d(layer.pool, layer.strides)

    def onnx_int8(self, g, q, xq, x, out):
        """Max commutes with quantisation: pool the int8 tensor itself, as CMSIS-NN does."""
        yq = self.onnx_pool(g, q.kernel, q.stride, xq, q.name, out=out)
        return yq, g.dequantize(yq, q.out_scale, q.out_zero_point, q.name)


class AvgPoolKind(_Pool):
    spec = AvgPool2D
    prefix = "avgpool"
    op = "avg_pool"

    def module(self, layer, in_shape):
        return nn.AvgPool2d(layer.pool, layer.strides)


class GlobalAvgPoolKind(_Pool):
    spec = GlobalAvgPool2D
    prefix = "gap"
    op = "avg_pool"
    flat_output = True

    def window(self, layer, in_shape):
        return (in_shape[0], in_shape[1]), (1, 1)

    def describe(self, layer):
        return self.type

    def summary(self, layer):
        return "gap", True

    def module(self, layer, in_shape):
        return nn.AdaptiveAvgPool2d(1)

    def onnx_float(self, g, layer, module, x, name):
        return self.onnx_pool(g, None, None, x, name)

    def onnx_pool(self, g, kernel, stride, x, name, out=None):
        return g.node("GlobalAveragePool", [x], name, out=out)


MAX, AVG, GLOBAL_AVG = MaxPoolKind(), AvgPoolKind(), GlobalAvgPoolKind()
