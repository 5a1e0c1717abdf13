"""Softmax over the classes (`arm_softmax_s8`): the network's last layer, output scale 1/256 and zero
point -128, integer parameters from its input scale (`intref.softmax_params`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from torch import nn

from nas.int8 import intref
from nas.int8.qparams import SOFTMAX_SCALE, SOFTMAX_ZERO_POINT, f32
from nas.kinds.base import Constants, KernelCall, LayerKind, QLayer


@dataclass(frozen=True)
class Softmax:
    TYPE: ClassVar[str] = "softmax"


class SoftmaxKind(LayerKind):
    spec = Softmax
    prefix = "softmax"
    spatial = False
    flat_output = True

    def output_shape(self, layer, shape):
        return shape

    def constants(self, layer, in_shape, out_shape):
        return Constants()

    def calls(self, layer, in_shape, out_shape):
        c = in_shape[2]
        return (KernelCall("softmax", 1, 1, c, c),)

    def describe(self, layer):
        return self.type

    def summary(self, layer):
        return "", False

    def module(self, layer, in_shape):
        return nn.Identity()   # the net returns logits; predict_proba and the exporters apply the softmax

    def fake_quant(self, module, x, name, qparams):
        return x

    def quantize(self, layer, module, name, in_shape, out_shape, in_q, ranges):
        mult, shift, diff_min = intref.softmax_params(in_q[0])
        return QLayer(name=name, kind=self.type, in_shape=tuple(in_shape), out_shape=tuple(out_shape),
                      in_scale=in_q[0], in_zero_point=in_q[1], out_scale=f32(SOFTMAX_SCALE),
                      out_zero_point=SOFTMAX_ZERO_POINT, mult=np.array([mult], np.int32),
                      shift=np.array([shift], np.int32), diff_min=int(diff_min))

    def run_int8(self, q, x):
        return intref.softmax(x, int(q.mult[0]), int(q.shift[0]), q.diff_min)

    def onnx_float(self, g, layer, module, x, name):
        return g.node("Softmax", [x], name, out=g.float_output, axis=-1)

    def onnx_int8(self, g, q, xq, x, out):
        return g.qdq(g.node("Softmax", [x], q.name, axis=-1), q.out_scale, q.out_zero_point, q.name, out=out)


KIND = SoftmaxKind()
