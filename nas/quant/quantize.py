"""Post-training int8 quantisation of a trained candidate, TFLite int8 rules, CMSIS-NN layouts.

The folded (deploy-form) network is calibrated on training-fold windows cut exactly as training
cuts them (class-balanced clips, a random start within the frames that hold sound, no
augmentation). Each tensor gets an asymmetric int8 (scale, zero point) from its observed range:
the full min/max, or the [0.01, 99.99] percentiles of its values (`METHODS`). The percentile is the
default: measured on four models trained on the synthetic demo set (400 clips; Stride-DS-24,
Stride-5x5, Baseline-DS and a small GAP model; 1000 calibration windows, two calibration seeds,
validation windows), it kept int8 closer to float than min/max on every model -- float/int8 argmax
agreement 96.4 / 97.5 / 94.1 / 91.1 % vs 95.1 / 97.4 / 93.2 / 90.3 %, mean |p_float - p_int8|
0.0034 / 0.0023 / 0.0030 / 0.0062 vs 0.0040 / 0.0025 / 0.0034 / 0.0072 -- with the same accuracy
to within 0.5 points (min/max spends int8 steps on a handful of outliers).

Rules (shared deploy.md section 2):
* weights: symmetric int8 in [-127, 127], zero point 0; per output channel for conv (OHWI) and
  depthwise (1HWC), per tensor for dense ([C_OUT, K], arm_fully_connected_s8);
* bias: int32, scale s_in * s_w[c]; multiplier/shift from (double)s_in*(double)s_w/(double)s_out of
  float32 scales through `intref.quantize_multiplier`;
* activations: int8, range widened to contain 0, zero point rounded half away from zero;
  fused ReLU = activation range [max(-128, zp), 127];
* max/avg pooling (global too) keep their input's (scale, zero point);
* softmax: input scale -> (mult, shift, diff_min) (`intref.softmax_params`), output 1/256, -128.

`run_int8` evaluates a `QuantizedModel` with the integer reference kernels of `nas.quant.intref`
(bit-exact with CMSIS-NN); the generated C must reproduce it byte for byte.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from nas.arch.net import Net, build, fold_batchnorm
from nas.arch.spec import (ArchSpec, AvgPool2D, Conv2D, Dense, DepthwiseConv2D, FrontEnd, GlobalAvgPool2D, MaxPool2D,
                           Shape, Softmax, conv_padding)
from nas.quant import intref
from nas.quant.defaults import DEFAULT_CALIBRATION_WINDOWS, DEFAULT_METHOD, DEFAULT_PERCENTILE, METHODS
from nas.quant.inputq import InputQuant
from nas.train.clips import ClipSet, eval_windows

SOFTMAX_SCALE = 1.0 / 256.0
SOFTMAX_ZERO_POINT = -128
_MAX_PERCENTILE_SAMPLES = 2_000_000


@dataclass
class QLayer:
    """One quantised layer, arrays in the layouts the CMSIS-NN kernels read.

    weights: int8 OHWI [C_OUT, KH, KW, C_IN] (conv2d), [1, KH, KW, C] (depthwise_conv2d),
    [C_OUT, K] with K in NHWC flatten order (dense); None for pooling/softmax.
    mult/shift: int32 per output channel (conv, depthwise), one element (dense, softmax).
    """

    name: str
    kind: str                      # the spec layer TYPE (conv2d, depthwise_conv2d, ..., softmax)
    in_shape: Shape                # NHWC without the batch: (H, W, C)
    out_shape: Shape
    in_scale: float                # float32 values
    in_zero_point: int
    out_scale: float
    out_zero_point: int
    act_min: int = intref.INT8_MIN
    act_max: int = intref.INT8_MAX
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)   # top, left (bottom/right implied by out_shape)
    relu: bool = False
    weights: np.ndarray | None = None
    weight_scales: np.ndarray | None = None   # float32 [C_OUT] (conv, depthwise) or [1] (dense)
    bias: np.ndarray | None = None            # int32 [C_OUT]
    mult: np.ndarray | None = None            # int32
    shift: np.ndarray | None = None           # int32
    diff_min: int = 0                         # softmax only

    @property
    def input_offset(self) -> int:
        return -int(self.in_zero_point)

    @property
    def output_offset(self) -> int:
        return int(self.out_zero_point)

    def summary(self) -> dict:
        d = {"name": self.name, "kind": self.kind, "in_shape": list(self.in_shape), "out_shape": list(self.out_shape),
             "in_scale": self.in_scale, "in_zero_point": self.in_zero_point, "out_scale": self.out_scale,
             "out_zero_point": self.out_zero_point, "act_min": self.act_min, "act_max": self.act_max}
        if self.weight_scales is not None:
            ws = np.asarray(self.weight_scales, dtype=np.float64)
            d["weight_scale_min"], d["weight_scale_max"] = float(ws.min()), float(ws.max())
        if self.kind == Softmax.TYPE:
            d.update(mult=int(self.mult[0]), shift=int(self.shift[0]), diff_min=int(self.diff_min))
        return d


@dataclass
class QuantizedModel:
    """The int8 network: spec, per-layer parameters and the front-end's feature quantisation."""

    spec: ArchSpec
    layers: list[QLayer]
    input_quant: InputQuant
    class_names: tuple[str, ...] = ()
    calibration: dict = field(default_factory=dict)   # method, windows, percentile

    @property
    def input_scale(self) -> float:
        return self.layers[0].in_scale

    @property
    def input_zero_point(self) -> int:
        return self.layers[0].in_zero_point

    @property
    def num_classes(self) -> int:
        return self.spec.num_classes

    @property
    def input_shape(self) -> tuple[int, int]:
        fe = self.spec.frontend
        return fe.frames, fe.n_mels


# --------------------------------------------------------------------------- numbers

def f32(v: float) -> float:
    """The float32 value of `v`, as a Python float (what C's float constant holds)."""
    return float(np.float32(v))


def round_half_away(x: np.ndarray | float) -> np.ndarray:
    """std::round / roundf: ties away from zero (numpy's round is half-to-even)."""
    x = np.asarray(x, dtype=np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def activation_qparams(lo: float, hi: float) -> tuple[float, int]:
    """TFLite asymmetric int8 (scale, zero point) for the real range [lo, hi] (widened to hold 0)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"activation range [{lo}, {hi}] is not finite (diverged weights?)")
    span = hi - lo
    scale = f32(span / 255.0) if span > 0 else f32(1e-6)
    zp = int(round_half_away(intref.INT8_MIN - lo / scale))
    return scale, int(np.clip(zp, intref.INT8_MIN, intref.INT8_MAX))


def quantize_weights_per_channel(w: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 [-127, 127] with one float32 scale per index of `axis`."""
    w = np.asarray(w, dtype=np.float32)
    moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
    amax = np.abs(moved).max(axis=1).astype(np.float64)
    scales = np.where(amax > 0, amax / 127.0, 1.0 / 127.0).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = round_half_away(w.astype(np.float64) / scales.astype(np.float64).reshape(shape))
    return np.clip(q, -127, 127).astype(np.int8), scales


def quantize_weights_per_tensor(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    w = np.asarray(w, dtype=np.float32)
    amax = float(np.abs(w).max()) if w.size else 0.0
    scale = np.float32(amax / 127.0 if amax > 0 else 1.0 / 127.0)
    q = round_half_away(w.astype(np.float64) / float(scale))
    return np.clip(q, -127, 127).astype(np.int8), np.array([scale], dtype=np.float32)


def quantize_bias(b: np.ndarray, in_scale: float, w_scales: np.ndarray) -> np.ndarray:
    """int32 bias with scale s_in * s_w[c] (double product of float32 scales), saturated."""
    scale = float(np.float32(in_scale)) * np.asarray(w_scales, dtype=np.float32).astype(np.float64)
    q = round_half_away(np.asarray(b, dtype=np.float64) / scale)
    return np.clip(q, -(2 ** 31 - 1), 2 ** 31 - 1).astype(np.int32)


# --------------------------------------------------------------------------- calibration

def calibration_windows(data: ClipSet, fe: FrontEnd, n: int = DEFAULT_CALIBRATION_WINDOWS,
                        seed: int = 0) -> torch.Tensor:
    """`n` normalised windows [n, 1, frames, mels] drawn as training draws them (class-balanced
    clips, random start within the frames holding sound), without augmentation."""
    if len(data) == 0:
        raise ValueError("no training clips to calibrate on")
    gen = torch.Generator().manual_seed(seed)
    counts = torch.bincount(data.y).float().clamp(min=1)
    clips = torch.multinomial((1.0 / counts)[data.y], n, replacement=True, generator=gen)
    room = (data.valid_frames[clips] - fe.frames).clamp(min=0) + 1
    total = data.x.shape[1]
    starts = (torch.rand(n, generator=gen) * room).long().clamp(max=max(total - fe.frames, 0))
    offsets = starts[:, None] + torch.arange(fe.frames)
    return data.x[clips[:, None], offsets].unsqueeze(1).contiguous()


def _range(values: torch.Tensor, method: str, percentile: float, gen: np.random.Generator) -> tuple[float, float]:
    flat = values.detach().reshape(-1).to(torch.float32).numpy()
    if method == "minmax" or flat.size == 0:
        return float(flat.min()), float(flat.max())
    if flat.size > _MAX_PERCENTILE_SAMPLES:
        flat = flat[gen.integers(0, flat.size, _MAX_PERCENTILE_SAMPLES)]
    lo, hi = np.percentile(flat, [100.0 - percentile, percentile])
    return float(lo), float(hi)


@torch.no_grad()
def observe_ranges(folded: Net, calib: torch.Tensor, method: str = DEFAULT_METHOD,
                   percentile: float = DEFAULT_PERCENTILE, batch: int = 256) -> tuple[tuple[float, float], dict]:
    """(input range, {layer name: output range}) of the folded net on the calibration windows."""
    if method not in METHODS:
        raise ValueError(f"calibration method must be one of {METHODS}, got {method!r}")
    folded.eval()
    outs: dict[str, list[torch.Tensor]] = {name: [] for name in folded.layers}
    hooks = [module.register_forward_hook(lambda _m, _i, o, name=name: outs[name].append(o.detach()))
             for name, module in folded.layers.items()]
    try:
        for i in range(0, len(calib), batch):
            folded(calib[i:i + batch])
    finally:
        for h in hooks:
            h.remove()
    gen = np.random.default_rng(0)
    in_range = _range(calib, method, percentile, gen)
    return in_range, {name: _range(torch.cat(outs[name]), method, percentile, gen) for name in folded.layers}


# --------------------------------------------------------------------------- quantisation

def quantize(net: Net, input_norm: tuple[float, float], calib: torch.Tensor, method: str = DEFAULT_METHOD,
             percentile: float = DEFAULT_PERCENTILE, class_names: tuple[str, ...] = ()) -> QuantizedModel:
    """Quantise `net` (training or deploy form; BatchNorm is folded here) calibrated on `calib`
    (normalised windows [N, 1, frames, mels]); `input_norm` = (mean, std) of the dB features."""
    spec = net.spec
    folded = fold_batchnorm(net)
    in_range, ranges = observe_ranges(folded, calib, method, percentile)
    torch_layers = dict(folded.layers.items())
    s_prev, zp_prev = activation_qparams(*in_range)
    mean, std = float(input_norm[0]), float(input_norm[1])
    iq = InputQuant(mean=mean, std=std, scale=s_prev, zero_point=zp_prev)
    layers: list[QLayer] = []
    for name, layer, (in_shape, out_shape) in zip(spec.layer_names(), spec.layers, spec.layer_shapes()):
        common = dict(name=name, kind=layer.TYPE, in_shape=tuple(in_shape), out_shape=tuple(out_shape),
                      in_scale=s_prev, in_zero_point=zp_prev)
        if isinstance(layer, Softmax):
            mult, shift, diff_min = intref.softmax_params(s_prev)
            q = QLayer(**common, out_scale=f32(SOFTMAX_SCALE), out_zero_point=SOFTMAX_ZERO_POINT,
                       mult=np.array([mult], np.int32), shift=np.array([shift], np.int32), diff_min=int(diff_min))
        elif isinstance(layer, (MaxPool2D, AvgPool2D, GlobalAvgPool2D)):
            if isinstance(layer, GlobalAvgPool2D):
                kernel, stride = (in_shape[0], in_shape[1]), (1, 1)
            else:
                kernel, stride = tuple(layer.pool), tuple(layer.strides)
            q = QLayer(**common, out_scale=s_prev, out_zero_point=zp_prev, kernel=kernel, stride=stride)
        else:
            module = torch_layers[name]
            w = module.op.weight.detach().cpu().numpy().astype(np.float32)
            b = module.op.bias.detach().cpu().numpy().astype(np.float32) if module.op.bias is not None \
                else np.zeros(w.shape[0], np.float32)
            s_out, zp_out = activation_qparams(*ranges[name])
            relu = getattr(layer, "activation", "none") == "relu"
            act_min, act_max = intref.activation_range(s_out, zp_out, "relu" if relu else "none")
            if isinstance(layer, Conv2D):
                wq, ws = quantize_weights_per_channel(w.transpose(0, 2, 3, 1), axis=0)    # OIHW -> OHWI
                geo = dict(kernel=tuple(layer.kernel), stride=tuple(layer.stride),
                           padding=conv_padding(layer.kernel, layer.padding))
            elif isinstance(layer, DepthwiseConv2D):
                wq, ws = quantize_weights_per_channel(w.transpose(1, 2, 3, 0), axis=3)    # C1HW -> 1HWC
                geo = dict(kernel=tuple(layer.kernel), stride=tuple(layer.stride),
                           padding=conv_padding(layer.kernel, layer.padding))
            elif isinstance(layer, Dense):
                wq, ws = quantize_weights_per_tensor(w)          # [units, K], K in NHWC order already
                geo = {}
            else:
                raise TypeError(f"cannot quantise {layer!r}")
            mult, shift = intref.quantize_multipliers(intref.effective_scales(s_prev, ws, s_out))
            q = QLayer(**common, out_scale=s_out, out_zero_point=zp_out, act_min=act_min, act_max=act_max,
                       relu=relu, weights=wq, weight_scales=ws, bias=quantize_bias(b, s_prev, ws),
                       mult=mult.astype(np.int32), shift=shift.astype(np.int32), **geo)
        layers.append(q)
        s_prev, zp_prev = q.out_scale, q.out_zero_point
    return QuantizedModel(spec=spec, layers=layers, input_quant=iq, class_names=tuple(class_names),
                          calibration={"method": method, "windows": int(len(calib)),
                                       "percentile": percentile if method == "percentile" else None})


def net_from_checkpoint(ckpt: dict) -> tuple[Net, tuple[float, float]]:
    """(trained Net in eval mode, input_norm) from a checkpoint dict: the training form as the
    search saves it, or the deploy form (BatchNorm folded, `"deploy": true`) that quantisation-aware
    fine-tuning produces."""
    spec = ArchSpec.from_json(ckpt["spec"]) if isinstance(ckpt["spec"], str) else ArchSpec.from_dict(ckpt["spec"])
    net = fold_batchnorm(build(spec)) if ckpt.get("deploy") else build(spec)
    net.load_state_dict(ckpt["state_dict"])
    net.eval()
    mean, std = ckpt["input_norm"]
    return net, (float(mean), float(std))


# --------------------------------------------------------------------------- integer inference

def quantize_input(qm: QuantizedModel, x: np.ndarray | torch.Tensor) -> np.ndarray:
    """Normalised float features -> int8 network input (round half away from zero, saturate)."""
    x = np.asarray(x.numpy() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    q = round_half_away(x / float(qm.input_scale)) + qm.input_zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def run_layer(q: QLayer, x: np.ndarray) -> np.ndarray:
    """One layer of the integer reference on NHWC int8 `x` [B, H, W, C]."""
    oh, ow = q.out_shape[0], q.out_shape[1]
    if q.kind == Conv2D.TYPE:
        return intref.conv2d(x, q.weights, q.bias, q.mult, q.shift, stride=q.stride, padding=q.padding,
                             out_hw=(oh, ow), input_offset=q.input_offset, output_offset=q.output_offset,
                             act_min=q.act_min, act_max=q.act_max)
    if q.kind == DepthwiseConv2D.TYPE:
        return intref.depthwise_conv2d(x, q.weights, q.bias, q.mult, q.shift, stride=q.stride, padding=q.padding,
                                       out_hw=(oh, ow), input_offset=q.input_offset,
                                       output_offset=q.output_offset, act_min=q.act_min, act_max=q.act_max)
    if q.kind == MaxPool2D.TYPE:
        return intref.max_pool(x, q.kernel, stride=q.stride, out_hw=(oh, ow), act_min=q.act_min, act_max=q.act_max)
    if q.kind in (AvgPool2D.TYPE, GlobalAvgPool2D.TYPE):
        return intref.avg_pool(x, q.kernel, stride=q.stride, out_hw=(oh, ow), act_min=q.act_min, act_max=q.act_max)
    if q.kind == Dense.TYPE:
        y = intref.fully_connected(x.reshape(x.shape[0], -1), q.weights, q.bias, int(q.mult[0]), int(q.shift[0]),
                                   input_offset=q.input_offset, output_offset=q.output_offset,
                                   act_min=q.act_min, act_max=q.act_max)
        return y.reshape(x.shape[0], 1, 1, -1)
    if q.kind == Softmax.TYPE:
        return intref.softmax(x, int(q.mult[0]), int(q.shift[0]), q.diff_min)
    raise TypeError(f"unknown layer kind {q.kind!r}")


def run_int8(qm: QuantizedModel, x_int8: np.ndarray, batch: int = 256, upto: int | None = None) -> np.ndarray:
    """int8 scores [B, classes] (softmax, scale 1/256, zero point -128) of int8 inputs
    [B, frames, mels] (or [frames, mels]), with the CMSIS-NN-exact integer reference.
    `upto` stops after that many layers and returns the NHWC activation instead."""
    x = np.asarray(x_int8)
    single = x.ndim == 2
    if single:
        x = x[None]
    frames, mels = qm.input_shape
    if x.shape[1:] != (frames, mels) or x.dtype != np.int8:
        raise ValueError(f"expected int8 inputs [B, {frames}, {mels}], got {x.dtype} {x.shape}")
    layers = qm.layers if upto is None else qm.layers[:upto]
    outs = []
    for i in range(0, x.shape[0], batch):
        a = x[i:i + batch].reshape(-1, frames, mels, 1)
        for q in layers:
            a = run_layer(q, a)
        outs.append(a)
    y = np.concatenate(outs) if outs else np.zeros((0, qm.num_classes), np.int8)
    if upto is None:
        y = y.reshape(y.shape[0], qm.num_classes)
    return y[0] if single else y


def dequantize_scores(scores: np.ndarray) -> np.ndarray:
    """int8 softmax scores -> probabilities ((q + 128) / 256)."""
    return (np.asarray(scores, dtype=np.float32) - SOFTMAX_ZERO_POINT) * np.float32(SOFTMAX_SCALE)


# --------------------------------------------------------------------------- accuracy

def _gather(data: ClipSet, clips: torch.Tensor, starts: torch.Tensor, frames: int) -> torch.Tensor:
    offsets = starts[:, None] + torch.arange(frames)
    return data.x[clips[:, None], offsets]   # [B, frames, mels]


def int8_clip_probabilities(qm: QuantizedModel, data: ClipSet, hop: int | None = None,
                            batch: int = 512) -> np.ndarray:
    """Mean int8 window probabilities per clip [N, classes], windows as `nas.train` evaluates them."""
    fe = qm.spec.frontend
    clips, starts = eval_windows(data, fe.frames, hop or fe.window_hop_frames)
    out = np.zeros((len(data), qm.num_classes), np.float64)
    for i in range(0, len(clips), batch):
        c, s = clips[i:i + batch], starts[i:i + batch]
        p = dequantize_scores(run_int8(qm, quantize_input(qm, _gather(data, c, s, fe.frames))))
        np.add.at(out, c.numpy(), p)
    counts = np.bincount(clips.numpy(), minlength=len(data)).clip(min=1)
    return out / counts[:, None]


def int8_clip_accuracy(qm: QuantizedModel, data: ClipSet, hop: int | None = None) -> float:
    probs = int8_clip_probabilities(qm, data, hop)
    return float((probs.argmax(1) == data.y.numpy()).mean()) if len(data) else 0.0


def window_agreement(qm: QuantizedModel, folded: Net, windows: torch.Tensor, labels: np.ndarray | None = None,
                     batch: int = 512) -> dict:
    """Float vs int8 on the same windows [N, 1, frames, mels]: argmax agreement, mean |p - p_int8|
    and, with labels, both window accuracies."""
    folded.eval()
    pf, pq = [], []
    with torch.no_grad():
        for i in range(0, len(windows), batch):
            xb = windows[i:i + batch]
            pf.append(torch.softmax(folded(xb), dim=-1).numpy())
            pq.append(dequantize_scores(run_int8(qm, quantize_input(qm, xb[:, 0]))))
    pf_a, pq_a = np.concatenate(pf), np.concatenate(pq)
    out = {"windows": int(len(windows)), "argmax_agreement": float((pf_a.argmax(1) == pq_a.argmax(1)).mean()),
           "mean_abs_prob_diff": float(np.abs(pf_a - pq_a).mean())}
    if labels is not None:
        labels = np.asarray(labels)
        out["float_accuracy"] = float((pf_a.argmax(1) == labels).mean())
        out["int8_accuracy"] = float((pq_a.argmax(1) == labels).mean())
    return out
