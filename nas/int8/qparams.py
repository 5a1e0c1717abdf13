"""Float tensors → int8 parameters by the TFLite int8 rules CMSIS-NN implements (deploy.md section 2).

* weights: symmetric int8 in [-127, 127], zero point 0, one float32 scale per output channel (conv,
  depthwise) or per tensor (dense);
* bias: int32 with scale s_in * s_w[c] (double product of float32 scales);
* activations: asymmetric int8, the range widened to contain 0, zero point rounded half away from zero;
* softmax output: scale 1/256, zero point -128.
"""
from __future__ import annotations

import math

import numpy as np

from nas.int8 import intref

SOFTMAX_SCALE = 1.0 / 256.0
SOFTMAX_ZERO_POINT = -128


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
