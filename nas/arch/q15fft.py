"""CMSIS-DSP's q15 real FFT (`arm_rfft_q15`, forward) in numpy, bit for bit, batched over frames.

The fixed-point front-end trains on exactly what the device computes, so its FFT is not a float FFT
but this integer computation. CMSIS-DSP has two versions of the q15 complex FFT with different
rounding: a portable C one and one written with the Cortex-M SIMD intrinsics (`ARM_MATH_DSP`: packed
halfword adds, `SMUAD`/`SMUSDX` complex multiplies), about 2.3x fewer instructions on a Cortex-M4.
The front-end always builds the intrinsic version (on cores without the DSP extension through the C
definitions of `nas/export/csrc/nas_dsp_intrinsics.h`), and this module reproduces that version:

- complex FFT of L = n_fft/2 points on the frame packed as (x[2i], x[2i+1]), decimation in
  frequency: L = 4^k is `arm_radix4_butterfly_q15`, L = 2 * 4^k first does the radix-2 step of
  `arm_cfft_radix4by2_q15`, runs the radix-4 FFT on each half and doubles the result;
  every stage halves or quarters its inputs (halving adds, q15 twiddle products >> 16), so the
  output is DFT / L with truncation at every stage;
- `arm_bitreversal_16`: a permutation, here the digit-reversal indexing of the result;
- `arm_split_rfft_q15`: bins k = 1 .. L-1 from Z[k] and conj(Z[L-k]) with the realCoefA/B tables.

Tables: `twiddleCoef_<L>_q15` is floor(32768 cos/sin) (clipped to 32767), `realCoefA/BQ15`
round(32768 * ...) as their generators in arm_common_tables.c state; tests compare them with the C
tables and the whole transform with the C library under QEMU and on the host.

Lanes: a complex value is (re, im) = (low, high) halfword of a 32-bit word (little endian), which is
how the intrinsics see `read_q15x2`.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

REAL_TABLE_LENGTH = 8192   # realCoefAQ15/BQ15 serve every rfft length up to 8192 (modifier 8192/n)
FFT_LENGTHS = (32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)   # arm_rfft_q15 lengths


@lru_cache(maxsize=16)
def twiddle_q15(length: int) -> np.ndarray:
    """`twiddleCoef_<length>_q15` as int32 [3*length/4, 2] (cos, sin) pairs."""
    ang = np.arange(3 * length // 4) * (2.0 * np.pi / length)
    tab = np.stack([np.cos(ang), np.sin(ang)], axis=1) * 32768.0
    out = np.clip(np.floor(tab), -32768, 32767).astype(np.int32)
    out.flags.writeable = False
    return out


@lru_cache(maxsize=2)
def real_coefs_q15() -> tuple[np.ndarray, np.ndarray]:
    """(`realCoefAQ15`, `realCoefBQ15`) as int32 [4096, 2] pairs."""
    i = np.arange(REAL_TABLE_LENGTH // 2)
    ang = 2.0 * np.pi / REAL_TABLE_LENGTH * i
    a = np.stack([0.5 * (1.0 - np.sin(ang)), -0.5 * np.cos(ang)], axis=1)
    b = np.stack([0.5 * (1.0 + np.sin(ang)), 0.5 * np.cos(ang)], axis=1)
    out = tuple(np.clip(np.round(t * 32768.0), -32768, 32767).astype(np.int32) for t in (a, b))
    for t in out:
        t.flags.writeable = False
    return out


# --------------------------------------------------------------------------- SIMD lane arithmetic
# Complex arrays are pairs (re, im) of int32 arrays holding int16 values.

def _sat(v):
    return np.clip(v, -32768, 32767)


def _qadd(a, b):
    return _sat(a[0] + b[0]), _sat(a[1] + b[1])


def _qsub(a, b):
    return _sat(a[0] - b[0]), _sat(a[1] - b[1])


def _shadd(a, b):
    return (a[0] + b[0]) >> 1, (a[1] + b[1]) >> 1


def _shsub(a, b):
    return (a[0] - b[0]) >> 1, (a[1] - b[1]) >> 1


def _qasx(x, y):        # S + jT, saturating
    return _sat(x[0] - y[1]), _sat(x[1] + y[0])


def _qsax(x, y):        # S - jT, saturating
    return _sat(x[0] + y[1]), _sat(x[1] - y[0])


def _shasx(x, y):
    return (x[0] - y[1]) >> 1, (x[1] + y[0]) >> 1


def _shsax(x, y):
    return (x[0] + y[1]) >> 1, (x[1] - y[0]) >> 1


def _top16(v):
    """Top halfword of a 32-bit register holding the (wrapped) int64 value v, as int16."""
    v = (v + (1 << 31)) % (1 << 32) - (1 << 31)
    return (v >> 16).astype(np.int32)


def _cmul(c, r):
    """PKHBT(SMUAD(C, R) >> 16, SMUSDX(C, R), 0): R * conj(C) in q15 with >> 16."""
    cr, ci = (x.astype(np.int64) for x in c)
    rr, ri = (x.astype(np.int64) for x in r)
    return _top16(cr * rr + ci * ri), _top16(cr * ri - ci * rr)


def _shift(a, s):
    return a[0] >> s, a[1] >> s


# --------------------------------------------------------------------------- complex FFT

def _twiddles(table: np.ndarray, ic: np.ndarray, k: int):
    pair = table[k * ic]
    return pair[:, 0], pair[:, 1]


def _radix4(re: np.ndarray, im: np.ndarray, table: np.ndarray, modifier: int) -> None:
    """`arm_radix4_butterfly_q15` (ARM_MATH_DSP) in place on [..., L] arrays, outputs digit-reversed."""
    length = re.shape[-1]
    n2, first = length // 4, True
    while n2 >= 1:
        shape = (*re.shape[:-1], length // (4 * n2), 4, n2)
        xr, xi = re.reshape(shape), im.reshape(shape)
        x = [(xr[..., q, :], xi[..., q, :]) for q in range(4)]
        if n2 == 1:                                      # last stage: groups of 4, no twiddles
            r, t = _qadd(x[0], x[2]), _qadd(x[1], x[3])
            s, u = _qsub(x[0], x[2]), _qsub(x[1], x[3])
            outs = [_shadd(r, t), _shsub(r, t), _shsax(s, u), _shasx(s, u)]
        else:
            if first:                                    # inputs quartered, saturating sums
                x = [_shift(v, 2) for v in x]
            r, s, t = _qadd(x[0], x[2]), _qsub(x[0], x[2]), _qadd(x[1], x[3])
            u = _qsub(x[1], x[3])
            if first:
                out0, diff, plus, minus = _shadd(r, t), _qsub(r, t), _qasx(s, u), _qsax(s, u)
            else:                                        # halving sums
                out0, diff, plus, minus = _shift(_shadd(r, t), 1), _shsub(r, t), _shasx(s, u), _shsax(s, u)
            ic = np.arange(n2) * modifier
            c1, c2, c3 = (_twiddles(table, ic, k) for k in (1, 2, 3))
            outs = [out0, _cmul(c2, diff), _cmul(c1, minus), _cmul(c3, plus)]
        for q in range(4):
            xr[..., q, :], xi[..., q, :] = outs[q]
        modifier *= 4
        n2 //= 4
        first = False


@lru_cache(maxsize=16)
def _order(length: int) -> np.ndarray:
    """Indices that put the in-place result of the complex FFT of `length` points in DFT order: a
    radix-4 stage leaves its outputs in the slot order 0, 2, 1, 3 (and the radix-2 split even, odd), so
    position p holds the bin whose index is p with its bits reversed (what `arm_bitreversal_16` undoes)."""
    bits = length.bit_length() - 1
    pos = np.arange(length)
    index = np.zeros(length, dtype=np.int64)
    for b in range(bits):
        index |= ((pos >> b) & 1) << (bits - 1 - b)
    order = np.empty(length, dtype=np.int64)
    order[index] = pos
    order.flags.writeable = False
    return order


def cfft_q15(re: np.ndarray, im: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`arm_cfft_q15` (forward, bit-reversed into DFT order) of [..., L] int16 values: (re, im) int32."""
    length = re.shape[-1]
    if length < 16 or length & (length - 1):
        raise ValueError(f"cfft length {length} is not a power of two >= 16")
    re, im = re.astype(np.int32, copy=True), im.astype(np.int32, copy=True)
    table = twiddle_q15(length)
    if (length.bit_length() - 1) % 2 == 0:
        _radix4(re, im, table, 1)
    else:                                               # arm_cfft_radix4by2_q15
        h = length // 2
        t, s = (re[..., :h] >> 1, im[..., :h] >> 1), (re[..., h:] >> 1, im[..., h:] >> 1)
        r = _qsub(t, s)
        re[..., :h], im[..., :h] = _shadd(t, s)
        c = table[:h]
        re[..., h:], im[..., h:] = _cmul((c[:, 0], c[:, 1]), r)
        for part in (slice(0, h), slice(h, length)):
            pr, pi = re[..., part].copy(), im[..., part].copy()
            _radix4(pr, pi, table, 2)
            re[..., part], im[..., part] = pr, pi
        re, im = _wrap16(re << 1), _wrap16(im << 1)
    order = _order(length)
    return re[..., order], im[..., order]


def _wrap16(v: np.ndarray) -> np.ndarray:
    return ((v + 32768) & 0xFFFF) - 32768


def rfft_q15(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`arm_rfft_q15` of int16 frames [..., n]: (re, im) int32 [..., n/2] of bins 0 .. n/2-1 (DFT / n,
    in q15; bin 0 holds the DC term, the Nyquist bin is not returned)."""
    frames = np.asarray(frames)
    n = frames.shape[-1]
    if n not in FFT_LENGTHS:
        raise ValueError(f"arm_rfft_q15 has no length {n} (have {FFT_LENGTHS})")
    if frames.dtype != np.int16:
        raise ValueError(f"frames must be int16, got {frames.dtype}")
    half = n // 2
    zr, zi = cfft_q15(frames[..., 0::2], frames[..., 1::2])
    a, b = real_coefs_q15()
    k = np.arange(1, half)
    ia, ib = a[k * (REAL_TABLE_LENGTH // n)], b[k * (REAL_TABLE_LENGTH // n)]
    s1r, s1i = zr[..., 1:].astype(np.int64), zi[..., 1:].astype(np.int64)
    s2r, s2i = zr[..., :0:-1].astype(np.int64), zi[..., :0:-1].astype(np.int64)    # Z[L - k]
    out_r = s1r * ia[:, 0] - s1i * ia[:, 1] + s2r * ib[:, 0] + s2i * ib[:, 1]
    out_i = s2r * ib[:, 1] - s2i * ib[:, 0] + s1i * ia[:, 0] + s1r * ia[:, 1]
    re = np.empty(frames.shape[:-1] + (half,), dtype=np.int32)
    im = np.zeros_like(re)
    re[..., 0] = _wrap16((zr[..., 0] + zi[..., 0]) >> 1)
    re[..., 1:], im[..., 1:] = _wrap16(_top16(out_r)), _top16(out_i)
    return re, im
