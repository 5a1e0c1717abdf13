"""Fixed-point log-mel front-end (`FrontEnd.arithmetic == "fixed"`): the device's integer computation
in numpy, bit for bit, batched. The training features are these numbers, so device == training.

Audio is int16 (float clips become `to_int16(x)`). Push p brings samples [p*hop, (p+1)*hop); frame t
covers samples [t*hop, t*hop + n_fft) and is computed when push t + k0 - 1 arrives (k0 =
ceil(n_fft / hop)). Per frame, in integers only:

    s   = 14 - msb(OR of (x ^ (x >> 15)))      headroom in bits (15 for silence): the ones' complement
                                               magnitude of every sample of the pushes t .. t+k0-1
    y   = (x * w) >> (15 - s)                  q15 periodic Hann; |y| < 2^15, the frame's peak near it
    X   = arm_rfft_q15(y)                      nas.arch.q15fft: DFT / n_fft, q15
    P_k = re_k^2 + im_k^2                      int32 (SMUAD), bins 0 .. max_bin - 1
    A_m = sum_k (P_k * c_k) >> 16              c: mel weights in q15 (SMLAWB/SMLAWT, per product);
                                               a band of odd length starts one bin early with weight 0
    D_m = (e*K + LOG2[(A << (31-e)) >> 24 & 127] - OFFSET - 2*s*K + 128) >> 8, e = msb(A),
          clamped to [FLOOR_DB16, CEIL_DB16];   FLOOR_DB16 when A == 0

D is the band's power in 1/16 dB on the float front-end's scale: A = M * 2^(29 + 2s) / n_fft^2 for the
float chain's mel power M, so D = 160 log10(2) * (log2 A - 29 + 2 log2 n_fft - 2 s) up to the 128-entry
log table (0.017 dB) and the q15 rounding; K = 160 log10(2) in Q8. The floor is the float front-end's
-60 dB. The features are D / 16 dB (exact in float16); the int8 network input is the integer affine
map of D in `nas.quant.inputq` (no float on the device).

Why these steps: the q15 FFT loses 1 bit per stage, so the frame is first scaled to use the 15 bits
(the shift s, undone exactly in the log); the shift is found from the raw samples of whole pushes
so that the device computes it once per push (an OR over the new samples), not per frame. Power in 32
bits and 16-bit weights let a mel band be one multiply-accumulate per weight (two weights per word:
bands are padded to even lengths); a 32-bit accumulator suffices: the FFT's output is the DFT / n_fft
of a frame below 2^15, so by Parseval the power of all bins sums to at most 2^30 and a band's A to
2^29. The log is one CLZ, a shift and a table read. Everything is integer, so the C and this mirror
agree exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from nas.arch import frontend as F
from nas.arch.q15fft import rfft_q15
from nas.arch.spec import FrontEnd

DB_STEPS = 16                                    # feature units per dB
FLOOR_DB16 = int(round(F.LOG_FLOOR_DB * DB_STEPS))   # -60 dB, the float front-end's floor
CEIL_DB16 = 2047                                 # 127.94 dB: D / 16 stays exact in float16
LOG_SHIFT = 8                                    # Q8 log arithmetic
LOG_BITS = 7                                     # mantissa bits indexing the log table
LOG_K = int(round((1 << LOG_SHIFT) * 10.0 * DB_STEPS * math.log10(2.0)))   # 1/16 dB per octave, Q8
POWER_BITS = 29                                  # A = M * 2^(29 + 2s) / n_fft^2


def log_table() -> np.ndarray:
    """int32 [128]: 1/16 dB of 1 + (i + 0.5)/128 in Q8 (the midpoint of each mantissa interval)."""
    i = np.arange(1 << LOG_BITS, dtype=np.float64)
    return np.round((1 << LOG_SHIFT) * 10.0 * DB_STEPS * np.log10(1.0 + (i + 0.5) / (1 << LOG_BITS))).astype(np.int32)


@dataclass(frozen=True)
class FixedTables:
    """Everything the fixed front-end of one `FrontEnd` is made of (the C tables hold these values)."""

    window: np.ndarray       # int16 [n_fft]: q15 periodic Hann
    pos: np.ndarray          # int [n_mels]: first power bin of each band (the float tables' pos, one bin
                             # earlier for an odd length)
    lengths: np.ndarray      # int [n_mels]: even
    coefs: np.ndarray        # int16 [sum(lengths)]: q15 mel weights, band by band (0 where padded)
    log2: np.ndarray         # int32 [128]
    offset: int              # (POWER_BITS - 2 log2 n_fft) * LOG_K
    pushes_per_frame: int    # k0 = ceil(n_fft / hop)


@lru_cache(maxsize=32)
def _tables(sample_rate: int, n_fft: int, hop: int, n_mels: int, fmin: float, fmax: float) -> FixedTables:
    fe = FrontEnd(sample_rate=sample_rate, n_fft=n_fft, hop_length=hop, n_mels=n_mels, fmin=fmin, fmax=fmax)
    n = np.arange(n_fft, dtype=np.float64)
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / n_fft)
    mel = F.mel_filter_tables(fe)
    q15 = np.minimum(np.round(mel.coefs.astype(np.float64) * 32768.0), 32767).astype(np.int16)
    odd = (mel.lengths % 2).astype(np.int64)
    coefs = [np.concatenate([np.zeros(o, np.int16), q15[a:a + n]])
             for o, a, n in zip(odd, mel.offsets.astype(np.int64), mel.lengths.astype(np.int64))]
    out = FixedTables(
        window=np.minimum(np.round(hann * 32768.0), 32767).astype(np.int16),
        pos=mel.pos.astype(np.int64) - odd, lengths=mel.lengths.astype(np.int64) + odd,
        coefs=np.concatenate(coefs) if coefs else np.zeros(0, np.int16),
        log2=log_table(), offset=(POWER_BITS - 2 * int(math.log2(n_fft))) * LOG_K,
        pushes_per_frame=-(-n_fft // hop))
    for a in (out.window, out.pos, out.lengths, out.coefs, out.log2):
        a.flags.writeable = False
    return out


def tables(fe: FrontEnd) -> FixedTables:
    return _tables(fe.sample_rate, fe.n_fft, fe.hop_length, fe.n_mels, float(fe.fmin), float(fe.f_max))


def to_int16(audio: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] -> the int16 samples the device gets (x * 32768 rounded, saturated)."""
    return np.clip(np.rint(np.asarray(audio, dtype=np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def _msb(v: np.ndarray) -> np.ndarray:
    """Index of the highest set bit of positive integers (< 2^53)."""
    return np.frexp(v.astype(np.float64))[1].astype(np.int64) - 1


def headroom(audio: np.ndarray, fe: FrontEnd, n_frames: int) -> np.ndarray:
    """The shift s of each frame: [..., n_frames] int64 from int16 audio [..., samples]."""
    hop, k0 = fe.hop_length, tables(fe).pushes_per_frame
    x = audio.astype(np.int32)
    mag = x ^ (x >> 15)                                       # ones' complement magnitude, < 2^15
    pushes = n_frames + k0 - 1
    padded = np.zeros(audio.shape[:-1] + (pushes * hop,), dtype=np.int32)
    take = min(pushes * hop, audio.shape[-1])
    padded[..., :take] = mag[..., :take]                      # a clip's last push may be cut short
    per_push = np.bitwise_or.reduce(padded.reshape(audio.shape[:-1] + (pushes, hop)), axis=-1)
    frame_or = per_push[..., :n_frames].copy()
    for j in range(1, k0):
        frame_or |= per_push[..., j:j + n_frames]
    return np.where(frame_or == 0, 15, 14 - _msb(np.maximum(frame_or, 1)))


def band_power(frames: np.ndarray, shift: np.ndarray, fe: FrontEnd) -> np.ndarray:
    """A: int64 [..., n_mels] from int16 frames [..., n_fft] and their shifts [...]."""
    t = tables(fe)
    y = (frames.astype(np.int32) * t.window.astype(np.int32)) >> (15 - shift[..., None]).astype(np.int32)
    re, im = rfft_q15(y.astype(np.int16))
    power = re.astype(np.int64) ** 2 + im.astype(np.int64) ** 2
    power = (power + (1 << 31)) % (1 << 32) - (1 << 31)       # SMUAD: a 32-bit register
    index = np.concatenate([np.arange(p, p + n) for p, n in zip(t.pos, t.lengths)]).astype(np.int64)
    terms = (power[..., index] * t.coefs.astype(np.int64)) >> 16
    out = np.zeros(frames.shape[:-1] + (fe.n_mels,), dtype=np.int64)
    start = 0
    for m, n in enumerate(t.lengths):
        if n:
            out[..., m] = terms[..., start:start + n].sum(axis=-1)
        start += n
    return (out + (1 << 31)) % (1 << 32) - (1 << 31)         # the int32 accumulator


def log_db16(power: np.ndarray, shift: np.ndarray, fe: FrontEnd) -> np.ndarray:
    """D: int16 [..., n_mels] (1/16 dB) from band powers A and the frames' shifts."""
    t = tables(fe)
    a = np.maximum(power, 1)
    e = _msb(a)
    mant = (a << (31 - e)) & 0xFFFFFFFF
    idx = (mant >> (31 - LOG_BITS)) & ((1 << LOG_BITS) - 1)
    v = e * LOG_K + t.log2[idx] - t.offset - 2 * LOG_K * shift[..., None]
    d = (v + (1 << (LOG_SHIFT - 1))) >> LOG_SHIFT
    d = np.where(power > 0, d, FLOOR_DB16)
    return np.clip(d, FLOOR_DB16, CEIL_DB16).astype(np.int16)


def features_db16(audio: np.ndarray, fe: FrontEnd, chunk: int = 2048) -> np.ndarray:
    """The device's features of int16 audio [..., samples]: D int16 [..., n_frames, n_mels]."""
    audio = np.asarray(audio)
    if audio.dtype != np.int16:
        raise ValueError(f"audio must be int16, got {audio.dtype}")
    frames_n = F.n_frames(audio.shape[-1], fe)
    lead = audio.shape[:-1]
    if frames_n == 0:
        return np.zeros(lead + (0, fe.n_mels), dtype=np.int16)
    shift = headroom(audio, fe, frames_n)
    view = np.lib.stride_tricks.sliding_window_view(audio, fe.n_fft, axis=-1)[..., ::fe.hop_length, :][..., :frames_n, :]
    flat = view.reshape(-1, fe.n_fft)
    s = shift.reshape(-1)
    out = np.empty((flat.shape[0], fe.n_mels), dtype=np.int16)
    for i in range(0, flat.shape[0], chunk):
        sl = slice(i, i + chunk)
        out[sl] = log_db16(band_power(np.ascontiguousarray(flat[sl]), s[sl], fe), s[sl], fe)
    return out.reshape(lead + (frames_n, fe.n_mels))


def features_db(audio: np.ndarray, fe: FrontEnd) -> np.ndarray:
    """Float audio [..., samples] in [-1, 1] -> the fixed front-end's dB features (D / 16), float32."""
    return features_db16(to_int16(audio), fe).astype(np.float32) / np.float32(DB_STEPS)
