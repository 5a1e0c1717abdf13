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

Rules (shared deploy.md section 2; `nas.int8.qparams`, each layer kind's `quantize`):
* weights: symmetric int8 in [-127, 127], zero point 0; per output channel for conv (OHWI) and
  depthwise (1HWC), per tensor for dense ([C_OUT, K], arm_fully_connected_s8);
* bias: int32, scale s_in * s_w[c]; multiplier/shift from (double)s_in*(double)s_w/(double)s_out of
  float32 scales through `intref.quantize_multiplier`;
* activations: int8, range widened to contain 0, zero point rounded half away from zero;
  fused ReLU = activation range [max(-128, zp), 127];
* max/avg pooling (global too) keep their input's (scale, zero point);
* softmax: input scale -> (mult, shift, diff_min) (`intref.softmax_params`), output 1/256, -128.

`run_int8` evaluates a `QuantizedModel` with each kind's integer reference (`nas.int8.intref`,
bit-exact with CMSIS-NN); the generated C must reproduce it byte for byte.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from nas.arch.net import Net, build, fold_batchnorm
from nas.arch.spec import ArchSpec, FrontEnd
from nas.int8.qparams import (SOFTMAX_SCALE, SOFTMAX_ZERO_POINT, activation_qparams, f32, quantize_bias,
                              quantize_weights_per_channel, quantize_weights_per_tensor, round_half_away)
from nas.kinds import QLayer, kind_of
from nas.quant.inputq import InputQuant
from nas.train.clips import ClipSet, eval_windows

METHODS = ("minmax", "percentile")
DEFAULT_METHOD = "percentile"
DEFAULT_PERCENTILE = 99.99
DEFAULT_CALIBRATION_WINDOWS = 1000
_MAX_PERCENTILE_SAMPLES = 2_000_000


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
    """(input range, {tensor name: range}) of the folded net on the calibration windows: every tensor
    the layers' kinds observe (`LayerKind.observed`: a layer's output, or the parts of a kind made of
    several calls)."""
    if method not in METHODS:
        raise ValueError(f"calibration method must be one of {METHODS}, got {method!r}")
    folded.eval()
    watched = {}
    for (name, module), layer in zip(folded.layers.items(), folded.spec.layers):
        watched.update(kind_of(layer).observed(name, module))
    outs: dict[str, list[torch.Tensor]] = {name: [] for name in watched}
    hooks = [module.register_forward_hook(lambda _m, _i, o, name=name: outs[name].append(o.detach()))
             for name, module in watched.items()]
    try:
        for i in range(0, len(calib), batch):
            folded(calib[i:i + batch])
    finally:
        for h in hooks:
            h.remove()
    gen = np.random.default_rng(0)
    in_range = _range(calib, method, percentile, gen)
    return in_range, {name: _range(torch.cat(outs[name]), method, percentile, gen) for name in watched}


# --------------------------------------------------------------------------- quantisation

def quantize(net: Net, input_norm: tuple[float, float], calib: torch.Tensor, method: str = DEFAULT_METHOD,
             percentile: float = DEFAULT_PERCENTILE, class_names: tuple[str, ...] = ()) -> QuantizedModel:
    """Quantise `net` (training or deploy form; BatchNorm is folded here) calibrated on `calib`
    (normalised windows [N, 1, frames, mels]); `input_norm` = (mean, std) of the dB features."""
    spec = net.spec
    folded = fold_batchnorm(net)
    in_range, ranges = observe_ranges(folded, calib, method, percentile)
    in_q = activation_qparams(*in_range)
    iq = InputQuant(mean=float(input_norm[0]), std=float(input_norm[1]), scale=in_q[0], zero_point=in_q[1])
    layers: list[QLayer] = []
    for (name, module), layer, (in_shape, out_shape) in zip(folded.layers.items(), spec.layers, spec.layer_shapes()):
        q = kind_of(layer).quantize(layer, module, name, tuple(in_shape), tuple(out_shape), in_q, ranges)
        layers.append(q)
        in_q = q.out_qparams
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
    """One layer of the integer reference on NHWC int8 `x` [B, H, W, C] (its kind's `run_int8`)."""
    return kind_of(q).run_int8(q, x)


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


__all__ = ["DEFAULT_CALIBRATION_WINDOWS", "DEFAULT_METHOD", "DEFAULT_PERCENTILE", "METHODS", "QLayer", "QuantizedModel",
           "SOFTMAX_SCALE", "SOFTMAX_ZERO_POINT", "activation_qparams", "calibration_windows", "dequantize_scores",
           "f32", "int8_clip_accuracy", "int8_clip_probabilities", "net_from_checkpoint", "observe_ranges", "quantize",
           "quantize_bias", "quantize_input", "quantize_weights_per_channel", "quantize_weights_per_tensor",
           "round_half_away", "run_int8", "run_layer", "window_agreement"]
