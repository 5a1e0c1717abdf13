"""nas.int8.intref: exact-arithmetic properties and agreement with float math within 1 LSB."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.int8 import intref

I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1


# --------------------------------------------------------------------------- exact references

def _exact_quantize_multiplier(m: float) -> tuple[int, int]:
    """QuantizeMultiplier with Fractions: M = q 2^e, q in [0.5, 1), m = round_half_away(q 2^31)."""
    if m == 0:
        return 0, 0
    frac = Fraction(m)
    sign = -1 if frac < 0 else 1
    frac = abs(frac)
    e = 0
    while frac >= 1:
        frac /= 2
        e += 1
    while frac < Fraction(1, 2):
        frac *= 2
        e -= 1
    scaled = frac * (1 << 31)
    q = math.floor(scaled + Fraction(1, 2))
    if q == (1 << 31):
        q //= 2
        e += 1
    if e < -31:
        return 0, 0
    return sign * q, e


def _round_half_away(num: int, den: int) -> int:
    q = Fraction(num, den)
    return math.floor(q + Fraction(1, 2)) if q >= 0 else -math.floor(-q + Fraction(1, 2))


def _exact_requantize(acc: int, mult: int, shift: int) -> int:
    left, right = max(shift, 0), max(-shift, 0)
    v = acc << left
    v = (v + (1 << 31)) % (1 << 32) - (1 << 31)  # the C code shifts in 32-bit
    high = (v * mult + (1 << 30)) // (1 << 31)  # floor
    return _round_half_away(high, 1 << right)


# --------------------------------------------------------------------------- multipliers

@settings(max_examples=400, deadline=None)
@given(st.floats(min_value=1e-12, max_value=1e6, allow_nan=False, allow_infinity=False))
def test_quantize_multiplier_matches_exact(m):
    assert intref.quantize_multiplier(m) == _exact_quantize_multiplier(m)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1 << 52, max_value=(1 << 53) - 1), st.integers(min_value=-80, max_value=10))
def test_quantize_multiplier_ties_and_rollover(mant, exp):
    # mantissas with many low bits set hit the round-half and the 2^31 roll-over paths
    m = math.ldexp(mant, exp - 53)
    got = intref.quantize_multiplier(m)
    assert got == _exact_quantize_multiplier(m)
    if got[0]:
        assert (1 << 30) <= got[0] < (1 << 31)
        assert abs(got[0] * 2.0 ** (got[1] - 31) - m) <= 2.0 ** (got[1] - 32)


def test_quantize_multiplier_edges():
    assert intref.quantize_multiplier(0.0) == (0, 0)
    assert intref.quantize_multiplier(0.5) == (1 << 30, 0)
    assert intref.quantize_multiplier(1.0) == (1 << 30, 1)
    assert intref.quantize_multiplier(math.nextafter(1.0, 0.0)) == (1 << 30, 1)  # rounds up to 2^31 -> roll-over
    assert intref.quantize_multiplier(2.0 ** -40) == (0, 0)  # e < -31 flushes
    assert intref.quantize_multiplier(2.0 ** -32) == (1 << 30, -31)
    # half-away (std::round), not banker's rounding: q*2^31 = 2^30 + 0.5 exactly
    m = (2 ** 30 + 0.5) / 2 ** 31
    assert intref.quantize_multiplier(m) == (2 ** 30 + 1, 0)
    mult, shift = intref.quantize_multipliers([0.25, 0.75, 3.0])
    assert mult.dtype == np.int32 and list(shift) == [-1, 0, 2]


@settings(max_examples=500, deadline=None)
@given(st.integers(min_value=I32_MIN, max_value=I32_MAX), st.integers(min_value=0, max_value=I32_MAX),
       st.integers(min_value=-31, max_value=30))
def test_requantize_matches_exact(acc, mult, shift):
    assert int(intref.requantize(acc, mult, shift)) == _exact_requantize(acc, mult, shift)


def test_requantize_vectorised_ties():
    rng = np.random.default_rng(1)
    # exact ties of the final rounding: acc * mult / 2^31 = k + 1/2 with mult = 2^30 (M = 0.5 * 2^shift)
    acc = rng.integers(-10_000, 10_000, size=2000)
    for shift in (-1, -2, -5, 0, 3):
        got = intref.requantize(acc, 1 << 30, shift)
        exp = [_exact_requantize(int(a), 1 << 30, shift) for a in acc]
        assert got.tolist() == exp
    acc = rng.integers(I32_MIN, I32_MAX, size=3000, dtype=np.int64)
    mult = rng.integers(0, I32_MAX, size=3000, dtype=np.int64)
    shift = rng.integers(-31, 31, size=3000)
    got = intref.requantize(acc, mult, shift)
    assert got.dtype == np.int32
    assert got.tolist() == [_exact_requantize(int(a), int(m), int(s)) for a, m, s in zip(acc, mult, shift)]


# --------------------------------------------------------------------------- helpers

def test_geometry_helpers():
    assert intref.same_padding(49, 10, 2) == (25, 4, 5)
    assert intref.same_padding(16, 3, 1) == (16, 1, 1)
    assert intref.same_padding(16, 3, 2) == (8, 0, 1)
    assert intref.conv_output_size(16, 3, 2, 0, 1) == 8
    assert intref.conv_output_size(10, 3, 1, 1) == 10


def test_activation_range():
    assert intref.activation_range(0.1, -5, "none") == (-128, 127)
    assert intref.activation_range(0.1, -5, "relu") == (-5, 127)
    assert intref.activation_range(0.1, -128, "relu6") == (-128, -68)
    assert intref.activation_range(0.01, 10, "relu6") == (10, 127)
    with pytest.raises(ValueError):
        intref.activation_range(0.1, 0, "gelu")


def test_softmax_params_known_values():
    # s_in = 1/16: real = 2^26 / 16 = 2^22 -> mult 2^30, shift 23, radius floor(31 * 2^26 / 2^23) = 248
    assert intref.softmax_params(1 / 16) == (1 << 30, 23, -248)
    mult, shift, diff_min = intref.softmax_params(0.1)
    assert (1 << 30) <= mult < (1 << 31) and 0 <= shift <= 31 and diff_min < 0


# --------------------------------------------------------------------------- float agreement

def _quantize(x, scale, zp):
    return np.clip(np.floor(x / scale + 0.5) + zp, -128, 127).astype(np.int8)


def _check_within_one(q_out, y_real, s_out, zp_out, act=(-128, 127)):
    y = y_real / s_out + zp_out
    inside = (y > act[0] + 1) & (y < act[1] - 1)
    assert inside.mean() > 0.5, "test layer saturates too much to be informative"
    diff = np.abs(q_out.astype(np.float64) - y)[inside]
    assert diff.max() <= 1.0, f"max deviation {diff.max():.3f} LSB"


def _random_qlayer(rng, c_out, fan_in):
    s_in = float(np.float32(rng.uniform(0.01, 0.05)))
    zp_in = int(rng.integers(-20, 20))
    s_w = rng.uniform(0.002, 0.01, size=c_out).astype(np.float32)
    # uniform int8 values have std ~74: aim for outputs with std ~40 LSB
    s_out = float(np.float32(s_in * float(s_w.mean()) * np.sqrt(fan_in) * 74 * 74 / 40))
    zp_out = int(rng.integers(-10, 10))
    return s_in, zp_in, s_w, s_out, zp_out


@pytest.mark.parametrize("stride,pad,k", [((1, 1), (1, 1), (3, 3)), ((2, 2), (2, 2), (5, 5)), ((1, 2), (0, 0), (1, 1)),
                                          ((2, 1), (4, 1), (10, 4))])
def test_conv2d_vs_float(stride, pad, k):
    rng = np.random.default_rng(hash((stride, pad, k)) % 2**32)
    n, h, w, cin, cout = 2, 17, 13, 5, 7
    s_in, zp_in, s_w, s_out, zp_out = _random_qlayer(rng, cout, k[0] * k[1] * cin)
    x = rng.integers(-128, 128, size=(n, h, w, cin)).astype(np.int8)
    wq = rng.integers(-127, 128, size=(cout, *k, cin)).astype(np.int8)
    bias = rng.integers(-2000, 2000, size=cout).astype(np.int32)
    mult, shift = intref.quantize_multipliers(intref.effective_scales(s_in, s_w, s_out))
    oh = intref.conv_output_size(h, k[0], stride[0], pad[0])
    ow = intref.conv_output_size(w, k[1], stride[1], pad[1])
    q = intref.conv2d(x, wq, bias, mult, shift, stride=stride, padding=pad, out_hw=(oh, ow),
                      input_offset=-zp_in, output_offset=zp_out)
    # float: dequantise, zero-pad (real zero), correlate with einsum
    xr = (x.astype(np.float64) - zp_in) * s_in
    wr = wq.astype(np.float64) * s_w[:, None, None, None]
    xp = np.zeros((n, h + 2 * pad[0] + k[0], w + 2 * pad[1] + k[1], cin))
    xp[:, pad[0]:pad[0] + h, pad[1]:pad[1] + w] = xr
    y = np.zeros((n, oh, ow, cout))
    for ky in range(k[0]):
        for kx in range(k[1]):
            patch = xp[:, ky:ky + oh * stride[0]:stride[0], kx:kx + ow * stride[1]:stride[1]][:, :oh, :ow]
            y += np.einsum("nyxc,oc->nyxo", patch, wr[:, ky, kx, :])
    y += bias * s_in * s_w
    assert q.shape == (n, oh, ow, cout) and q.dtype == np.int8
    _check_within_one(q, y, s_out, zp_out)


@pytest.mark.parametrize("ch_mult,k,stride", [(1, 3, 1), (1, 5, 2), (2, 3, 1), (3, 1, 1)])
def test_depthwise_vs_float(ch_mult, k, stride):
    rng = np.random.default_rng(k * 10 + ch_mult)
    n, h, w, c = 1, 12, 9, 6
    cout = c * ch_mult
    s_in, zp_in, s_w, s_out, zp_out = _random_qlayer(rng, cout, k * k)
    x = rng.integers(-128, 128, size=(n, h, w, c)).astype(np.int8)
    wq = rng.integers(-127, 128, size=(1, k, k, cout)).astype(np.int8)
    bias = rng.integers(-500, 500, size=cout).astype(np.int32)
    mult, shift = intref.quantize_multipliers(intref.effective_scales(s_in, s_w, s_out))
    out, p0, _ = intref.same_padding(h, k, stride)
    outw, p1, _ = intref.same_padding(w, k, stride)
    q = intref.depthwise_conv2d(x, wq, bias, mult, shift, ch_mult=ch_mult, stride=stride, padding=(p0, p1),
                                out_hw=(out, outw), input_offset=-zp_in, output_offset=zp_out)
    xr = (x.astype(np.float64) - zp_in) * s_in
    xp = np.zeros((n, h + 2 * k, w + 2 * k, c))
    xp[:, p0:p0 + h, p1:p1 + w] = xr
    y = np.zeros((n, out, outw, cout))
    for oc in range(cout):
        ic = oc // ch_mult
        for ky in range(k):
            for kx in range(k):
                patch = xp[:, ky:ky + out * stride:stride, kx:kx + outw * stride:stride, ic][:, :out, :outw]
                y[..., oc] += patch * (wq[0, ky, kx, oc] * float(s_w[oc]))
    y += bias * s_in * s_w
    _check_within_one(q, y, s_out, zp_out)


def test_fully_connected_vs_float():
    rng = np.random.default_rng(7)
    x = rng.integers(-128, 128, size=(5, 300)).astype(np.int8)
    s_in, zp_in, s_w, s_out, zp_out = _random_qlayer(rng, 1, 300)
    wq = rng.integers(-127, 128, size=(20, 300)).astype(np.int8)
    bias = rng.integers(-3000, 3000, size=20).astype(np.int32)
    mult, shift = intref.quantize_multiplier(float(intref.effective_scales(s_in, s_w, s_out)[0]))
    q = intref.fully_connected(x, wq, bias, mult, shift, input_offset=-zp_in, output_offset=zp_out)
    y = ((x.astype(np.float64) - zp_in) * s_in) @ (wq.astype(np.float64) * float(s_w[0])).T + bias * s_in * float(s_w[0])
    _check_within_one(q, y, s_out, zp_out)


def test_pools_vs_numpy():
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, size=(2, 9, 7, 4)).astype(np.int8)
    mx = intref.max_pool(x, (2, 2))
    assert np.array_equal(mx, x[:, :8, :6].reshape(2, 4, 2, 3, 2, 4).max(axis=(2, 4)))
    av = intref.avg_pool(x, (3, 3), stride=(2, 2), padding=(1, 1), out_hw=(5, 4))
    # float mean over in-bounds taps, rounded half away from zero
    xf = x.astype(np.float64)
    for oy in range(5):
        for ox in range(4):
            y0, x0 = oy * 2 - 1, ox * 2 - 1
            win = xf[:, max(y0, 0):y0 + 3, max(x0, 0):x0 + 3]
            mean = win.mean(axis=(1, 2))
            exp = np.sign(mean) * np.floor(np.abs(mean) + 0.5)
            assert np.array_equal(av[:, oy, ox], exp.astype(np.int8))
    clamped = intref.max_pool(x, (3, 3), stride=(1, 1), padding=(1, 1), out_hw=(9, 7), act_min=-10, act_max=20)
    assert clamped.min() >= -10 and clamped.max() <= 20
    with pytest.raises(ValueError):
        intref.max_pool(x, (2, 2), padding=(2, 2), out_hw=(6, 5))  # first window only covers padding


def test_softmax_vs_float():
    rng = np.random.default_rng(11)
    for scale in (0.02, 0.0625, 0.1, 0.3):
        x = rng.integers(-128, 128, size=(200, 12)).astype(np.int8)
        mult, shift, diff_min = intref.softmax_params(scale)
        q = intref.softmax(x, mult, shift, diff_min)
        z = x.astype(np.float64) * scale
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        ref = p * 256 - 128
        assert np.abs(q - ref).max() <= 1.0 + 1e-9
        assert (q.astype(np.int64) + 128).sum(axis=1).max() <= 256 + 12


def test_softmax_edge_rows():
    mult, shift, diff_min = intref.softmax_params(0.05)
    # all equal -> uniform; a dominant element -> 127 and the rest -128
    assert intref.softmax(np.zeros((1, 4), np.int8), mult, shift, diff_min).tolist() == [[-64] * 4]
    row = np.array([[127, -128, -128]], dtype=np.int8)
    assert intref.softmax(row, mult, shift, diff_min).tolist() == [[127, -128, -128]]
    with pytest.raises(ValueError):
        intref.softmax(np.zeros((1, 600), np.int8), mult, shift, diff_min)
