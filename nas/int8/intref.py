"""Integer reference of the int8 kernels the exporter calls (CMSIS-NN v7, TFLite int8 rules).

Why this module exists: the exported C code must be *bit-exact* with a model we can run in
Python.  Float math (or ONNX Runtime) only agrees within +-1 LSB because it rounds with float
scales; CMSIS-NN/TFLite requantize with a 32-bit fixed-point multiplier and two roundings.  This
module reproduces that integer arithmetic exactly, vectorised with numpy (int64 intermediates),
so the same layer can be evaluated on >= 100 random inputs in a test in milliseconds.

Conventions (identical to CMSIS-NN / TFLM, shared deploy.md sections 1-2):

* activations NHWC int8; conv weights OHWI ``[C_OUT, KH, KW, C_IN]``; depthwise weights
  ``[1, KH, KW, C_IN*ch_mult]`` (output channel ``ic*ch_mult + m``); fully connected weights
  ``[C_OUT, K]``; bias int32 (``None`` = zeros).
* ``input_offset = -zp_in``, ``output_offset = +zp_out``, ``filter_offset = -zp_w`` (0).
* padding is given as ``(pad_top, pad_left)``; bottom/right padding is implied by the output
  size (``out_hw``), exactly as the C kernels bound-check.  Padded taps contribute the input zero
  point, i.e. 0 after adding ``input_offset``.
* result = clamp(requantize(acc, mult[c], shift[c]) + output_offset, act_min, act_max).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = [
    "INT8_MIN",
    "INT8_MAX",
    "quantize_multiplier",
    "quantize_multipliers",
    "effective_scales",
    "requantize",
    "activation_range",
    "conv_output_size",
    "same_padding",
    "conv2d",
    "depthwise_conv2d",
    "fully_connected",
    "max_pool",
    "avg_pool",
    "softmax_params",
    "softmax",
    "ADD_LEFT_SHIFT",
    "add_params",
    "elementwise_add",
]

INT8_MIN = -128
INT8_MAX = 127
_I32_MIN = -(1 << 31)
_I32_MAX = (1 << 31) - 1

IntPair = tuple[int, int]


# --------------------------------------------------------------------------- multipliers

def quantize_multiplier(real_multiplier: float) -> IntPair:
    """TFLite ``QuantizeMultiplier``: real M -> (multiplier, shift) with M ~= m * 2^(shift-31).

    frexp gives M = q * 2^e with q in [0.5, 1); m = round(q * 2^31) with round half *away from
    zero* (``std::round``, not Python's banker's rounding); m == 2^31 rolls over to (2^30, e+1);
    e < -31 flushes to (0, 0).  ``shift`` is a left shift when positive (``shift <= 0`` for M < 1).
    M is taken as a Python float (IEEE double), which is what TFLite uses.
    """
    m = float(real_multiplier)
    if m == 0.0:
        return 0, 0
    if not math.isfinite(m):
        raise ValueError(f"multiplier must be finite, got {real_multiplier!r}")
    q, e = math.frexp(m)
    scaled = abs(q) * float(1 << 31)  # exact: multiplying by a power of two
    q_fixed = int(math.floor(scaled + 0.5))  # scaled + 0.5 is exact too (ulp of scaled <= 2^-22)
    if q < 0:
        q_fixed = -q_fixed
    if abs(q_fixed) == (1 << 31):
        q_fixed //= 2
        e += 1
    if e < -31:
        return 0, 0
    if q_fixed > _I32_MAX:  # cannot happen after the roll-over, kept as TFLite's check
        raise ValueError("multiplier overflow")
    return int(q_fixed), int(e)


def quantize_multipliers(real_multipliers: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Element-wise :func:`quantize_multiplier`; returns two int32 arrays (multiplier, shift)."""
    flat = np.asarray(real_multipliers, dtype=np.float64).ravel()
    pairs = [quantize_multiplier(float(v)) for v in flat]
    mult = np.array([p[0] for p in pairs], dtype=np.int32).reshape(np.shape(real_multipliers))
    shift = np.array([p[1] for p in pairs], dtype=np.int32).reshape(np.shape(real_multipliers))
    return mult, shift


def effective_scales(input_scale: float, weight_scales: Sequence[float] | np.ndarray | float,
                     output_scale: float) -> np.ndarray:
    """Per-channel real multipliers as TFLite computes them: double products of float32 scales.

    ``M_c = (double)s_in * (double)s_w[c] / (double)s_out`` (kernel_util.cc
    PopulateConvolutionQuantizationParams); the float32 rounding of each scale matters for
    bit-exactness, hence the explicit casts.
    """
    s_in = float(np.float32(input_scale))
    s_out = float(np.float32(output_scale))
    s_w = np.asarray(weight_scales, dtype=np.float32).astype(np.float64)
    return s_in * s_w / s_out


# --------------------------------------------------------------------------- requantization

def _wrap32(v: np.ndarray) -> np.ndarray:
    """Two's-complement wrap of int64 values to the int32 range (what C's int32 math does)."""
    return ((v + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _rounding_divide_by_pot(x: np.ndarray, exponent: np.ndarray | int) -> np.ndarray:
    """gemmlowp RoundingDivideByPOT: x / 2^exponent rounded half away from zero (int64 arrays)."""
    exponent = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def requantize(acc, mult, shift) -> np.ndarray:
    """CMSIS-NN ``arm_nn_requantize`` (default double rounding), vectorised over int64.

    ``val * 2^max(shift,0)`` (wrapping to int32 like the C code), then
    ``h = floor((val * mult + 2^30) / 2^31)`` (= gemmlowp SaturatingRoundingDoublingHighMul for
    non-negative multipliers), then a rounding right shift by ``max(-shift, 0)`` with ties away
    from zero.  ``mult``/``shift`` broadcast against ``acc`` (per-channel = last axis).
    Returns int32 without adding the output offset or clamping.
    """
    acc = np.asarray(acc, dtype=np.int64)
    mult = np.asarray(mult, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    val = _wrap32(acc << left)
    high = _wrap32((val * mult + (1 << 30)) >> 31)
    return _rounding_divide_by_pot(high, right).astype(np.int32)


def _finish(acc: np.ndarray, mult, shift, output_offset: int, act_min: int, act_max: int) -> np.ndarray:
    out = requantize(acc, mult, shift).astype(np.int64) + int(output_offset)
    return np.clip(out, act_min, act_max).astype(np.int8)


def activation_range(output_scale: float, output_zero_point: int, kind: str = "none") -> IntPair:
    """TFLite ``CalculateActivationRangeQuantized`` for int8: (act_min, act_max).

    relu: [max(-128, zp), 127]; relu6: upper bound min(127, zp + round(6 / scale)) computed in
    float32 with round half away from zero; none: [-128, 127].
    """
    zp = int(output_zero_point)
    if kind == "none":
        return INT8_MIN, INT8_MAX
    if kind == "relu":
        return max(INT8_MIN, zp), INT8_MAX
    if kind == "relu6":
        q6 = float(np.float32(6.0) / np.float32(output_scale))
        r6 = int(math.floor(abs(q6) + 0.5)) * (1 if q6 >= 0 else -1)
        return max(INT8_MIN, zp), min(INT8_MAX, zp + r6)
    raise ValueError(f"unknown activation {kind!r} (expected 'none', 'relu' or 'relu6')")


# --------------------------------------------------------------------------- geometry

def conv_output_size(in_size: int, kernel: int, stride: int = 1, pad_before: int = 0,
                     pad_after: int | None = None, dilation: int = 1) -> int:
    """Output length of a convolution/pool window; ``pad_after`` defaults to ``pad_before``."""
    if pad_after is None:
        pad_after = pad_before
    eff_k = dilation * (kernel - 1) + 1
    return (in_size + pad_before + pad_after - eff_k) // stride + 1


def same_padding(in_size: int, kernel: int, stride: int = 1, dilation: int = 1) -> tuple[int, int, int]:
    """TF/Keras 'SAME' padding: (out_size, pad_before, pad_after), extra pad at the end."""
    out = -(-in_size // stride)
    eff_k = dilation * (kernel - 1) + 1
    total = max((out - 1) * stride + eff_k - in_size, 0)
    return out, total // 2, total - total // 2


def _as_nhwc(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4:
        raise ValueError(f"expected an NHWC (or HWC) tensor, got shape {x.shape}")
    return x


def _pair(v) -> IntPair:
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    a, b = v
    return int(a), int(b)


def _windows(x: np.ndarray, kernel: IntPair, stride: IntPair, padding: IntPair, out_hw: IntPair,
             dilation: IntPair, fill: int) -> np.ndarray:
    """Sliding windows (N, OH, OW, KH, KW, C) of x padded top/left by `padding` with `fill`.

    Bottom/right are padded (or cropped) to exactly what `out_hw` needs, which is how the C
    kernels' bounds checks behave.
    """
    n, h, w, c = x.shape
    kh, kw = kernel
    sh, sw = stride
    pt, pl = padding
    oh, ow = out_hw
    dh, dw = dilation
    if oh <= 0 or ow <= 0:
        raise ValueError(f"output size must be positive, got {out_hw}")
    need_h = (oh - 1) * sh + (kh - 1) * dh + 1
    need_w = (ow - 1) * sw + (kw - 1) * dw + 1
    buf = np.full((n, max(need_h, pt + h), max(need_w, pl + w), c), fill, dtype=x.dtype)
    buf[:, pt:pt + h, pl:pl + w, :] = x
    s = buf.strides
    view = np.lib.stride_tricks.as_strided(
        buf, shape=(n, oh, ow, kh, kw, c),
        strides=(s[0], s[1] * sh, s[2] * sw, s[1] * dh, s[2] * dw, s[3]), writeable=False)
    return view


def _default_out(h: int, w: int, kernel: IntPair, stride: IntPair, padding: IntPair,
                 dilation: IntPair = (1, 1)) -> IntPair:
    return (conv_output_size(h, kernel[0], stride[0], padding[0], dilation=dilation[0]),
            conv_output_size(w, kernel[1], stride[1], padding[1], dilation=dilation[1]))


# --------------------------------------------------------------------------- layers

def conv2d(x, w, bias, mult, shift, *, stride=(1, 1), padding=(0, 0), out_hw=None, dilation=(1, 1),
           input_offset: int = 0, output_offset: int = 0, act_min: int = INT8_MIN,
           act_max: int = INT8_MAX) -> np.ndarray:
    """``arm_convolve_wrapper_s8``: NHWC int8 input, OHWI weights, per-channel mult/shift.

    Grouped convolution is supported like ``arm_convolve_s8`` (C_IN = groups * w.shape[3]).
    ``out_hw`` defaults to symmetric padding; pass it explicitly for TF 'SAME' (see
    :func:`same_padding`).  Returns int8 NHWC.
    """
    x = _as_nhwc(x)
    w = np.asarray(w)
    n, h, wd, c_in = x.shape
    c_out, kh, kw, c_k = w.shape
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    if c_in % c_k or c_out % (c_in // c_k):
        raise ValueError(f"channels do not form groups: input C={c_in}, filter {w.shape}")
    groups = c_in // c_k
    out_hw = _pair(out_hw) if out_hw is not None else _default_out(h, wd, (kh, kw), stride, padding, dilation)
    xo = x.astype(np.int64) + int(input_offset)
    win = _windows(xo, (kh, kw), stride, padding, out_hw, dilation, 0)
    oc_g = c_out // groups
    parts = []
    for g in range(groups):
        patches = win[..., g * c_k:(g + 1) * c_k].reshape(n * out_hw[0] * out_hw[1], kh * kw * c_k)
        wg = w[g * oc_g:(g + 1) * oc_g].reshape(oc_g, kh * kw * c_k).astype(np.int64)
        parts.append(patches @ wg.T)
    acc = np.concatenate(parts, axis=1).reshape(n, out_hw[0], out_hw[1], c_out)
    if bias is not None:
        acc = acc + np.asarray(bias, dtype=np.int64)
    return _finish(_wrap32(acc), mult, shift, output_offset, act_min, act_max)


def depthwise_conv2d(x, w, bias, mult, shift, *, ch_mult: int = 1, stride=(1, 1), padding=(0, 0),
                     out_hw=None, dilation=(1, 1), input_offset: int = 0, output_offset: int = 0,
                     act_min: int = INT8_MIN, act_max: int = INT8_MAX) -> np.ndarray:
    """``arm_depthwise_conv_wrapper_s8``: weights ``[1, KH, KW, C_IN*ch_mult]`` (or 3-D HWC).

    Output channel ``ic*ch_mult + m`` sees input channel ``ic``.  Returns int8 NHWC.
    """
    x = _as_nhwc(x)
    w = np.asarray(w)
    if w.ndim == 4:
        if w.shape[0] != 1:
            raise ValueError(f"depthwise filter must be [1, KH, KW, C_OUT], got {w.shape}")
        w = w[0]
    kh, kw, c_out = w.shape
    n, h, wd, c_in = x.shape
    if c_out != c_in * ch_mult:
        raise ValueError(f"C_OUT={c_out} != C_IN={c_in} * ch_mult={ch_mult}")
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    out_hw = _pair(out_hw) if out_hw is not None else _default_out(h, wd, (kh, kw), stride, padding, dilation)
    xo = x.astype(np.int64) + int(input_offset)
    win = _windows(xo, (kh, kw), stride, padding, out_hw, dilation, 0)  # N,OH,OW,KH,KW,C_IN
    if ch_mult != 1:
        win = np.repeat(win, ch_mult, axis=-1)  # channel ic -> ic*m .. ic*m+m-1
    acc = np.einsum("nyxhwc,hwc->nyxc", win, w.astype(np.int64))
    if bias is not None:
        acc = acc + np.asarray(bias, dtype=np.int64)
    return _finish(_wrap32(acc), mult, shift, output_offset, act_min, act_max)


def fully_connected(x, w, bias, mult: int, shift: int, *, input_offset: int = 0, filter_offset: int = 0,
                    output_offset: int = 0, act_min: int = INT8_MIN, act_max: int = INT8_MAX) -> np.ndarray:
    """``arm_fully_connected_s8`` (per-tensor): x ``[N, K]`` (or ``[K]``; higher ranks are
    flattened per batch in memory order, i.e. NHWC flatten), w ``[C_OUT, K]``.  Returns int8
    ``[N, C_OUT]``."""
    x = np.asarray(x)
    w = np.asarray(w)
    x2 = x.reshape(1, -1) if x.ndim == 1 else x.reshape(x.shape[0], -1)
    if x2.shape[1] != w.shape[1]:
        raise ValueError(f"input depth {x2.shape[1]} != filter depth {w.shape[1]}")
    acc = (x2.astype(np.int64) + int(input_offset)) @ (w.astype(np.int64) + int(filter_offset)).T
    if bias is not None:
        acc = acc + np.asarray(bias, dtype=np.int64)
    return _finish(_wrap32(acc), mult, shift, output_offset, act_min, act_max)


def _pool_geometry(x, kernel, stride, padding, out_hw):
    x = _as_nhwc(x)
    kernel, stride, padding = _pair(kernel), _pair(stride), _pair(padding)
    out_hw = _pair(out_hw) if out_hw is not None else _default_out(x.shape[1], x.shape[2], kernel, stride, padding)
    return x, kernel, stride, padding, out_hw


def max_pool(x, kernel, *, stride=None, padding=(0, 0), out_hw=None, act_min: int = INT8_MIN,
             act_max: int = INT8_MAX) -> np.ndarray:
    """``arm_max_pool_s8``: max over the in-bounds taps of each window, then clamp.

    ``stride`` defaults to the kernel size.  A window without any in-bounds tap is an error
    (the C kernel leaves such outputs undefined).
    """
    stride = kernel if stride is None else stride
    x, kernel, stride, padding, out_hw = _pool_geometry(x, kernel, stride, padding, out_hw)
    sentinel = -(1 << 15)
    win = _windows(x.astype(np.int32), kernel, stride, padding, out_hw, (1, 1), sentinel)
    out = win.max(axis=(3, 4))
    if (out == sentinel).any():
        raise ValueError("a pooling window lies entirely in the padding")
    return np.clip(out, act_min, act_max).astype(np.int8)


def avg_pool(x, kernel, *, stride=None, padding=(0, 0), out_hw=None, act_min: int = INT8_MIN,
             act_max: int = INT8_MAX) -> np.ndarray:
    """``arm_avgpool_s8``: mean over in-bounds taps only (padding not counted, like ONNX
    ``count_include_pad=0``), rounded as ``(sum +/- count/2) / count`` with C truncating division
    (half away from zero), then clamp.  ``stride`` defaults to the kernel size."""
    stride = kernel if stride is None else stride
    x, kernel, stride, padding, out_hw = _pool_geometry(x, kernel, stride, padding, out_hw)
    sums = _windows(x.astype(np.int64), kernel, stride, padding, out_hw, (1, 1), 0).sum(axis=(3, 4))
    ones = np.ones((1, x.shape[1], x.shape[2], 1), dtype=np.int64)
    counts = _windows(ones, kernel, stride, padding, out_hw, (1, 1), 0).sum(axis=(3, 4))
    if (counts == 0).any():
        raise ValueError("a pooling window lies entirely in the padding")
    half = counts // 2
    num = np.where(sums > 0, sums + half, sums - half)
    avg = np.where(num >= 0, num // counts, -((-num) // counts))  # C division truncates
    return np.clip(avg, act_min, act_max).astype(np.int8)


# --------------------------------------------------------------------------- softmax

_SOFTMAX_INPUT_INTEGER_BITS = 5  # kScaledDiffIntegerBits in TFLM
_SOFTMAX_ACCUM_BITS = 12  # kAccumulationIntegerBits


def softmax_params(input_scale: float, beta: float = 1.0) -> tuple[int, int, int]:
    """TFLM ``CalculateSoftmaxParams`` (int8, double rounding): (mult, shift, diff_min).

    ``PreprocessSoftmaxScaling``: real = min(beta * s_in * 2^(31-5), 2^31 - 1) in double from the
    float32 beta/scale, then ``QuantizeMultiplierGreaterThanOne`` (shift >= 0);
    ``diff_min = -floor((2^5 - 1) * 2^26 / 2^shift)`` (``CalculateInputRadius``).
    The output tensor must have scale 1/256 and zero point -128.
    """
    b = float(np.float32(beta))
    s = float(np.float32(input_scale))
    real = min(b * s * float(1 << (31 - _SOFTMAX_INPUT_INTEGER_BITS)), float((1 << 31) - 1))
    if not real > 1.0:
        raise ValueError(f"softmax input scale {input_scale} too small (beta*scale*2^26 must exceed 1)")
    mult, shift = quantize_multiplier(real)
    if shift < 0:
        raise ValueError("softmax multiplier shift must be >= 0")
    radius = math.floor(1.0 * ((1 << _SOFTMAX_INPUT_INTEGER_BITS) - 1)
                        * float(1 << (31 - _SOFTMAX_INPUT_INTEGER_BITS)) / float(1 << shift))
    return mult, shift, -int(radius)


def _srdhm(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul on int64 arrays holding int32 values."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    p = a * b
    s = p + np.where(p >= 0, 1 << 30, 1 - (1 << 30))
    q = np.where(s >= 0, s >> 31, -((-s) >> 31))  # C division truncates toward zero
    return np.where((a == _I32_MIN) & (b == _I32_MIN), _I32_MAX, q)


def _mul_pow2_sat(x: np.ndarray, exponent: int) -> np.ndarray:
    """gemmlowp SaturatingRoundingMultiplyByPOT for a positive exponent."""
    threshold = (1 << (31 - exponent)) - 1
    return np.where(x > threshold, _I32_MAX, np.where(x < -threshold, _I32_MIN, _wrap32(x << exponent)))


def _exp_on_negative_values(a: np.ndarray) -> np.ndarray:
    """gemmlowp exp_on_negative_values: a <= 0 in Q5.26 -> exp(a) in Q0.31."""
    quarter = 1 << 24
    a_mod = (a & (quarter - 1)) - quarter  # in [-1/4, 0)
    remainder = a_mod - a  # non-negative multiple of 1/4
    # exp on [-1/4, 0): 4th-order Taylor around -1/8
    x = _wrap32((a_mod << 5) + (1 << 28))
    x2 = _srdhm(x, x)
    x3 = _srdhm(x2, x)
    x4 = _srdhm(x2, x2)
    x4_over_4 = _rounding_divide_by_pot(x4, 2)
    poly = _rounding_divide_by_pot(_wrap32(_srdhm(_wrap32(x4_over_4 + x3), 715827883) + x2), 1)
    c = 1895147668  # exp(-1/8) in Q0.31
    result = _wrap32(c + _srdhm(c, _wrap32(x + poly)))
    # multiply by exp(-2^k) for each set bit of the remainder, k = -2..4
    for k, factor in enumerate((1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242)):
        bit = (remainder & (1 << (24 + k))) != 0
        result = np.where(bit, _srdhm(result, factor), result)
    return np.where(a == 0, _I32_MAX, result)


def _one_over_one_plus_x(a: np.ndarray) -> np.ndarray:
    """gemmlowp one_over_one_plus_x_for_x_in_0_1: Q0.31 -> Q0.31, Newton-Raphson in Q2.29."""
    total = a + _I32_MAX
    half_den = np.where(total >= 0, (total + 1) // 2, -((-(total - 1)) // 2))  # (sum +- 1) / 2, trunc
    x = _wrap32(1515870810 + _srdhm(half_den, -1010580540))  # 48/17 - 32/17 * d
    for _ in range(3):
        err = _wrap32((1 << 29) - _srdhm(half_den, x))
        x = _wrap32(x + _mul_pow2_sat(_srdhm(x, err), 2))
    return _mul_pow2_sat(x, 1)


def softmax(x, mult: int, shift: int, diff_min: int) -> np.ndarray:
    """``arm_softmax_s8`` over the last axis (rows = all leading elements), int8 -> int8.

    Bit-exact TFLM/gemmlowp fixed point: exp of (x - max) scaled to Q5.26, sum in Q12.19,
    reciprocal via Newton-Raphson, output scale 1/256 and zero point -128.  Elements with
    ``x - max < diff_min`` give -128.  Rows must be shorter than 512 (beyond that the C reference
    needs shifts >= 32 bits).
    """
    x = np.asarray(x)
    shape = x.shape
    rows = x.reshape(-1, shape[-1]).astype(np.int64)
    if rows.shape[1] >= 512:
        raise ValueError("softmax rows must have fewer than 512 elements")
    diff = rows - rows.max(axis=1, keepdims=True)
    valid = diff >= diff_min
    scaled = _srdhm(_wrap32(np.where(valid, diff, 0) << int(shift)), int(mult))
    e = _exp_on_negative_values(scaled)
    terms = np.where(valid, _rounding_divide_by_pot(e, _SOFTMAX_ACCUM_BITS), 0)
    total = terms.sum(axis=1, keepdims=True)
    headroom = np.array([[32 - int(t).bit_length()] for t in total.ravel()], dtype=np.int64)
    norm = _wrap32((total << headroom) - (1 << 31))
    recip = _one_over_one_plus_x(norm)
    bits = _SOFTMAX_ACCUM_BITS - headroom + 23
    y = _rounding_divide_by_pot(_srdhm(recip, e), bits) + INT8_MIN
    y = np.where(valid, np.clip(y, INT8_MIN, INT8_MAX), INT8_MIN)
    return y.astype(np.int8).reshape(shape)


# --------------------------------------------------------------------------- element-wise add

ADD_LEFT_SHIFT = 20  # TFLite's int8 Add: inputs are scaled up by 2^20 before their rescale


def add_params(in1_scale: float, in2_scale: float, out_scale: float) -> dict[str, int]:
    """TFLite int8 ``Add`` (PrepareGeneralSubOp): each input is rescaled to twice the larger input
    scale, the sum to the output scale; multipliers from the float32 scales in double precision.
    Returns the multiplier/shift arguments of ``arm_elementwise_add_s8``."""
    s1, s2, so = (float(np.float32(v)) for v in (in1_scale, in2_scale, out_scale))
    twice_max = 2.0 * max(s1, s2)
    m1, sh1 = quantize_multiplier(s1 / twice_max)
    m2, sh2 = quantize_multiplier(s2 / twice_max)
    mo, sho = quantize_multiplier(twice_max / (float(1 << ADD_LEFT_SHIFT) * so))
    return {"in1_mult": m1, "in1_shift": sh1, "in2_mult": m2, "in2_shift": sh2, "left_shift": ADD_LEFT_SHIFT,
            "out_mult": mo, "out_shift": sho}


def elementwise_add(x1, x2, *, in1_offset: int, in1_mult: int, in1_shift: int, in2_offset: int, in2_mult: int,
                    in2_shift: int, left_shift: int, out_offset: int, out_mult: int, out_shift: int,
                    act_min: int = INT8_MIN, act_max: int = INT8_MAX) -> np.ndarray:
    """``arm_elementwise_add_s8``: ((x + offset) << left_shift) rescaled per input with
    ``arm_nn_requantize``, summed, rescaled to the output, offset and clamped. Same shapes; int8."""
    a = requantize(_wrap32((np.asarray(x1, np.int64) + int(in1_offset)) << int(left_shift)), in1_mult, in1_shift)
    b = requantize(_wrap32((np.asarray(x2, np.int64) + int(in2_offset)) << int(left_shift)), in2_mult, in2_shift)
    total = _wrap32(a.astype(np.int64) + b.astype(np.int64))
    return _finish(total, out_mult, out_shift, out_offset, act_min, act_max)

