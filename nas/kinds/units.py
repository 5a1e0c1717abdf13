"""The weighted unit most kinds are made of (dropout → conv or linear → BatchNorm → ReLU), and what
every stage does to one: fold its BatchNorm, quantise it, run it in int8, fake-quantise it, write it
as ONNX. Kinds compose units; a kind of several calls (e.g. an inverted residual) holds several."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nas.int8 import intref
from nas.int8.qparams import (activation_qparams, quantize_bias, quantize_weights_per_channel,
                              quantize_weights_per_tensor)
from nas.kinds.base import QLayer, QParams, Shape

CONV = "conv2d"
DEPTHWISE = "depthwise_conv2d"
DENSE = "dense"


class Unit(nn.Module):
    """Optional input dropout, the operation, optional BatchNorm, optional ReLU; `flatten` flattens an
    NCHW input in NHWC order first (dense layers read CMSIS-NN's layout)."""

    def __init__(self, op: nn.Module, bn: bool = False, relu: bool = False, dropout: float = 0.0,
                 flatten: bool = False):
        super().__init__()
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.op = op
        self.bn: nn.Module = nn.BatchNorm2d(op.out_channels) if bn else nn.Identity()
        self.act = nn.ReLU() if relu else nn.Identity()
        self.flatten = flatten

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.flatten and x.dim() == 4:
            x = x.permute(0, 2, 3, 1).flatten(1)
        return self.act(self.bn(self.op(self.drop(x))))


def conv_unit(cin: int, cout: int, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
              groups: int = 1, bn: bool = True, relu: bool = True, dropout: float = 0.0) -> Unit:
    op = nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=not bn)
    return Unit(op, bn=bn, relu=relu, dropout=dropout)


@torch.no_grad()
def fold(unit: Unit) -> None:
    """BatchNorm folded into the unit's conv (which gains a bias), in place."""
    if not isinstance(unit.bn, nn.BatchNorm2d):
        return
    conv, bn = unit.op, unit.bn
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                      groups=conv.groups, bias=True)
    fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
    base = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    fused.bias.copy_((base - bn.running_mean) * scale + bn.bias)
    unit.op, unit.bn = fused, nn.Identity()


def quantize_unit(kind: str, name: str, unit: Unit, in_shape: Shape, out_shape: Shape, in_q: QParams,
                  out_range: tuple[float, float]) -> QLayer:
    """int8 parameters of a folded conv, depthwise or dense unit (deploy.md section 2)."""
    w = unit.op.weight.detach().cpu().numpy().astype(np.float32)
    b = unit.op.bias.detach().cpu().numpy().astype(np.float32) if unit.op.bias is not None \
        else np.zeros(w.shape[0], np.float32)
    s_in, zp_in = in_q
    s_out, zp_out = activation_qparams(*out_range)
    relu = isinstance(unit.act, nn.ReLU)
    act_min, act_max = intref.activation_range(s_out, zp_out, "relu" if relu else "none")
    geo: dict = {}
    if kind == DENSE:
        wq, ws = quantize_weights_per_tensor(w)                       # [units, K], K in NHWC order already
    else:
        layout = (0, 2, 3, 1) if kind == CONV else (1, 2, 3, 0)       # OIHW -> OHWI, C1HW -> 1HWC
        wq, ws = quantize_weights_per_channel(w.transpose(*layout), axis=0 if kind == CONV else 3)
        geo = dict(kernel=tuple(unit.op.kernel_size), stride=tuple(unit.op.stride), padding=tuple(unit.op.padding))
    mult, shift = intref.quantize_multipliers(intref.effective_scales(s_in, ws, s_out))
    return QLayer(name=name, kind=kind, in_shape=tuple(in_shape), out_shape=tuple(out_shape), in_scale=s_in,
                  in_zero_point=zp_in, out_scale=s_out, out_zero_point=zp_out, act_min=act_min, act_max=act_max,
                  relu=relu, weights=wq, weight_scales=ws, bias=quantize_bias(b, s_in, ws),
                  mult=mult.astype(np.int32), shift=shift.astype(np.int32), **geo)


def run_unit(q: QLayer, x: np.ndarray) -> np.ndarray:
    """The integer reference of a quantised conv, depthwise or dense unit on NHWC int8 `x`."""
    common = dict(input_offset=q.input_offset, output_offset=q.output_offset, act_min=q.act_min, act_max=q.act_max)
    if q.kind == DENSE:
        y = intref.fully_connected(x.reshape(x.shape[0], -1), q.weights, q.bias, int(q.mult[0]), int(q.shift[0]),
                                   **common)
        return y.reshape(x.shape[0], 1, 1, -1)
    fn = intref.conv2d if q.kind == CONV else intref.depthwise_conv2d
    return fn(x, q.weights, q.bias, q.mult, q.shift, stride=q.stride, padding=q.padding,
              out_hw=(q.out_shape[0], q.out_shape[1]), **common)


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


def fake_quant_unit(unit: Unit, x: torch.Tensor, out_q: QParams) -> torch.Tensor:
    """A folded unit with its weights and output on their int8 grids (depthwise weights [C, 1, kh, kw]
    are per channel along dim 0 too; dense per tensor)."""
    if unit.flatten and x.dim() == 4:
        x = x.permute(0, 2, 3, 1).flatten(1)
    x, op = unit.drop(x), unit.op
    if isinstance(op, nn.Conv2d):
        y = F.conv2d(x, fake_weight(op.weight, 0), op.bias, op.stride, op.padding, groups=op.groups)
    else:
        y = F.linear(x, fake_weight(op.weight, None), op.bias)
    return fake_activation(unit.act(y), *out_q)


def onnx_float_unit(g, unit: Unit, x: str, name: str) -> str:
    """Conv (any groups) or Gemm of a folded unit, then its ReLU."""
    op = unit.op
    w = g.const(f"{name}_weight", op.weight.detach().numpy().astype(np.float32))
    b = g.const(f"{name}_bias", op.bias.detach().numpy().astype(np.float32))
    if isinstance(op, nn.Conv2d):
        pt, pl = op.padding
        y = g.node("Conv", [x, w, b], name, kernel_shape=list(op.kernel_size), strides=list(op.stride),
                   pads=[pt, pl, pt, pl], group=int(op.groups))
    else:
        y = g.node("Gemm", [g.flatten_nhwc(x, name), w, b], name, transB=1)
    return g.node("Relu", [y], name) if isinstance(unit.act, nn.ReLU) else y


def onnx_int8_unit(g, q: QLayer, x: str, out: str | None) -> tuple[str, str]:
    """QDQ Conv or Gemm of a quantised unit on the dequantized input `x`."""
    if q.kind == DENSE:
        w = q.weights                                                   # [C_OUT, K]
    elif q.kind == CONV:
        w = np.ascontiguousarray(q.weights.transpose(0, 3, 1, 2))      # OHWI -> OIHW
    else:
        w = np.ascontiguousarray(q.weights.transpose(3, 0, 1, 2))      # 1HWC -> C1HW
    wd, bd = g.dq_weights(q.name, w, q.weight_scales, q.bias, q.in_scale, per_channel=q.kind != DENSE)
    if q.kind == DENSE:
        y = g.node("Gemm", [g.flatten_nhwc(x, q.name), wd, bd], q.name, transB=1)
    else:
        pt, pl = q.padding
        y = g.node("Conv", [x, wd, bd], q.name, kernel_shape=list(q.kernel), strides=list(q.stride),
                   pads=[pt, pl, pt, pl], group=q.in_shape[2] if q.kind == DEPTHWISE else 1)
    if q.relu:
        y = g.node("Relu", [y], q.name)
    return g.qdq(y, q.out_scale, q.out_zero_point, q.name, out=out)
