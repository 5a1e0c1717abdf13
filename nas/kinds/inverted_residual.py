"""Inverted residual block (MobileNetV2): 1x1 expand (ReLU) → KxK depthwise (stride, ReLU) → 1x1 project
(linear), and, when the stride is 1 and the output has the input's channels, the block's input added
back (`arm_elementwise_add_s8`, TFLite's int8 Add rules).

Four kernel calls in one layer, so the block lays its buffers out itself (`arena_bytes`, `parts`).
In a frame where the block's input sits at the near end of the arena and its output at the far end:

* residual: input [0, I) stays live until the add; expand writes E at the far end, depthwise writes D
  after the input (scratch behind it), project writes P at the far end (E is dead), the add writes the
  output over P. Arena = I + max(s_e + E, E + D + s_d, D + s_p + O).
* plain: expand writes E at the far end, depthwise writes D at the near end (the input is dead),
  project writes P at the far end. Arena = max(I + s_e + E, D + s_d + E, D + s_p + O).

(I, E, D, O: the input, expanded, depthwise and output tensors, s_*: each call's scratch, all 4-byte
aligned; I = 0 when the block reads the caller's buffer.) When the output sits at the near end instead,
the frame is mirrored.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from nas.core.config import bounded
from nas.int8 import intref
from nas.int8.qparams import activation_qparams
from nas.kinds import units
from nas.kinds.base import (Constants, KernelCall, LayerC, LayerKind, QLayer, Slot, align4, conv_padding,
                            stride_text, window_output_shape)


@dataclass(frozen=True)
class InvertedResidual:
    TYPE: ClassVar[str] = "inverted_residual"
    filters: int = bounded(ge=1, le=4096)
    expansion: int = bounded(4, ge=1, le=16, doc="expanded channels = expansion x input channels")
    kernel: tuple[int, int] = bounded((3, 3), ge=1, le=64)
    stride: tuple[int, int] = bounded((1, 1), ge=1, le=64)
    dropout: float = bounded(0.0, ge=0.0, lt=1.0, doc="dropout on the block's input while training")

    @property
    def padding(self) -> str:
        return "same"


def residual(layer: InvertedResidual, in_shape) -> bool:
    return tuple(layer.stride) == (1, 1) and layer.filters == in_shape[2]


class Block(nn.Module):
    """expand → depthwise → project units, plus the input when `residual`."""

    def __init__(self, layer: InvertedResidual, in_shape):
        super().__init__()
        c, e = in_shape[2], in_shape[2] * layer.expansion
        self.expand = units.conv_unit(c, e, (1, 1), (1, 1), (0, 0), dropout=layer.dropout)
        self.dw = units.conv_unit(e, e, layer.kernel, layer.stride, conv_padding(layer.kernel, "same"), groups=e)
        self.project = units.conv_unit(e, layer.filters, (1, 1), (1, 1), (0, 0), relu=False)
        self.residual = residual(layer, in_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.dw(self.expand(x)))
        return x + y if self.residual else y


PARTS = ("exp", "dw", "proj")


class InvertedResidualKind(LayerKind):
    spec = InvertedResidual
    prefix = "mb"

    def output_shape(self, layer, shape):
        return window_output_shape(layer, shape, layer.filters)

    def _shapes(self, layer, in_shape):
        h, w, c = in_shape
        oh, ow, _ = self.output_shape(layer, in_shape)
        e = c * layer.expansion
        return (h, w, e), (oh, ow, e)

    def constants(self, layer, in_shape, out_shape):
        c, f = in_shape[2], out_shape[2]
        e = c * layer.expansion
        k = layer.kernel[0] * layer.kernel[1]
        return (Constants(c * e, e, 8 * e) + Constants(k * e, e, 8 * e) + Constants(e * f, f, 8 * f))

    def calls(self, layer, in_shape, out_shape):
        (h, w, c), (oh, ow, f) = in_shape, out_shape
        e = c * layer.expansion
        ph, pw = conv_padding(layer.kernel, "same")
        calls = (KernelCall("conv", h, w, c, e, oh=h, ow=w),
                 KernelCall("dw", h, w, e, e, *layer.kernel, *layer.stride, ph, pw, oh, ow),
                 KernelCall("conv", oh, ow, e, f, oh=oh, ow=ow))
        return calls + ((KernelCall("add", oh, ow, f, f, oh=oh, ow=ow),) if residual(layer, in_shape) else ())

    def arena_bytes(self, calls, scratch, first):
        i, e, d, o = 0 if first else align4(calls[0].in_bytes), *(align4(c.out_bytes) for c in calls[:3])
        s_e, s_d, s_p = (align4(s) for s in scratch[:3])
        if len(calls) == 4:
            return i + max(s_e + e, e + d + s_d, d + s_p + o)
        return max(i + s_e + e, d + s_d + e, d + s_p + o)

    def parts(self, l: LayerC) -> tuple[LayerC, ...]:
        """The block's calls placed as `arena_bytes` counted (see the module docstring)."""
        a, s = l.arena_bytes, l.slot
        i = 0 if s.in_offset is None else align4(s.in_bytes)
        e, d, o = (align4(int(np.prod(p.out_shape))) for p in l.q.parts)
        near_in = s.out_offset == a - align4(s.out_bytes)      # output at the far (top) end: frame as is
        at = (lambda off, size: off) if near_in else (lambda off, size: a - off - size)
        src = s.in_offset
        res = len(l.kernels) == 4
        d_off = i if res else 0
        # (in offset, out offset, out size, scratch offset, gap) in the frame
        frames = ((0, a - e, e, i, a - e - i), (a - e, d_off, d, d_off + d, a - e - d_off - d),
                  (d_off, a - o, o, d_off + d, a - o - d_off - d))
        out = []
        for k, (q, (fin, fout, size, soff, gap)) in enumerate(zip(l.q.parts, frames)):
            in_size = s.in_bytes if k == 0 else int(np.prod(q.in_shape))
            in_off = src if k == 0 else at(fin, align4(in_size))
            slot = Slot(q.name, in_off, in_size, at(fout, size), int(np.prod(q.out_shape)),
                        at(soff, gap), gap, l.scratches[k])
            if gap < align4(l.scratches[k]):
                raise AssertionError(f"{q.name}: {gap} B of scratch in the arena, its kernel needs {l.scratches[k]} B")
            out.append(LayerC(l.index, q, slot, (l.kernels[k],), (l.scratches[k],), a, l.kind))
        if res:
            p = out[2].slot
            out.append(LayerC(l.index, l.q, Slot(l.q.name, src, s.in_bytes, p.out_offset, p.out_bytes, p.out_offset,
                                                 0, 0), (l.kernels[3],), (0,), a, l.kind))
        return tuple(out)

    def describe(self, layer):
        k = f"{layer.kernel[0]}x{layer.kernel[1]}"
        s = f"/{layer.stride[0]}x{layer.stride[1]}" if tuple(layer.stride) != (1, 1) else ""
        return f"{self.type} x{layer.expansion} {k}{s}"

    def summary(self, layer):
        return f"mb{layer.expansion} {layer.kernel[0]}x{layer.kernel[1]}{stride_text(layer.stride)} c{layer.filters}", True

    def module(self, layer, in_shape):
        return Block(layer, in_shape)

    def observed(self, name, module):
        return {f"{name}_exp": module.expand, f"{name}_dw": module.dw, f"{name}_proj": module.project, name: module}

    def fake_quant(self, module, x, name, qparams):
        y = units.fake_quant_unit(module.expand, x, qparams[f"{name}_exp"])
        y = units.fake_quant_unit(module.dw, y, qparams[f"{name}_dw"])
        y = units.fake_quant_unit(module.project, y, qparams[f"{name}_proj"])
        return units.fake_activation(x + y, *qparams[name]) if module.residual else y

    def quantize(self, layer, module, name, in_shape, out_shape, in_q, ranges):
        e_shape, d_shape = self._shapes(layer, in_shape)
        q_e = units.quantize_unit(units.CONV, f"{name}_exp", module.expand, in_shape, e_shape, in_q,
                                  ranges[f"{name}_exp"])
        q_d = units.quantize_unit(units.DEPTHWISE, f"{name}_dw", module.dw, e_shape, d_shape, q_e.out_qparams,
                                  ranges[f"{name}_dw"])
        q_p = units.quantize_unit(units.CONV, f"{name}_proj", module.project, d_shape, out_shape, q_d.out_qparams,
                                  ranges[f"{name}_proj"])
        out_q, extra = q_p.out_qparams, {}
        if module.residual:
            out_q = activation_qparams(*ranges[name])
            extra = {"in1_offset": -in_q[1], "in2_offset": -q_p.out_zero_point, "out_offset": out_q[1],
                     **intref.add_params(in_q[0], q_p.out_scale, out_q[0])}
        return QLayer(name=name, kind=self.type, in_shape=tuple(in_shape), out_shape=tuple(out_shape),
                      in_scale=in_q[0], in_zero_point=in_q[1], out_scale=out_q[0], out_zero_point=out_q[1],
                      kernel=tuple(layer.kernel), stride=tuple(layer.stride), parts=(q_e, q_d, q_p), extra=extra)

    def run_int8(self, q, x):
        y = x
        for part in q.parts:
            y = units.run_unit(part, y)
        return intref.elementwise_add(x, y, **q.extra) if q.extra else y

    def onnx_float(self, g, layer, module, x, name):
        y = x
        for part, unit in zip(PARTS, (module.expand, module.dw, module.project)):
            y = units.onnx_float_unit(g, unit, y, f"{name}_{part}")
        return g.node("Add", [x, y], name) if module.residual else y

    def onnx_int8(self, g, q, xq, x, out):
        y, last = x, len(q.parts) - 1
        for k, part in enumerate(q.parts):
            yq, y = units.onnx_int8_unit(g, part, y, out if k == last and not q.extra else None)
        if not q.extra:
            return yq, y
        return g.qdq(g.node("Add", [x, y], q.name), q.out_scale, q.out_zero_point, q.name, out=out)


KIND = InvertedResidualKind()
