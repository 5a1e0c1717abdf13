"""Log-mel front-end: the exact computation the device runs with CMSIS-DSP, in batched torch.

Per frame of `n_fft` samples, taken every `hop_length` samples with no centring padding (a streaming
device has no future samples to pad with), the device computes, all in float32:

    x  = frame * window                          arm_mult_f32          (window: table from `window`)
    X  = rfft(x)                                 arm_rfft_fast_f32     (X[1] = 0: Nyquist packed with DC)
    P  = |X|^2                                   arm_cmplx_mag_squared_f32, n_fft/2 bins
    M  = per mel band m: sum_k P[pos[m]+k] * coef[off[m]+k]
                                                 arm_dot_prod_f32      (tables from `mel_filter_tables`)
    dB = ln(M + LOG_EPS) * DB_PER_NEPER          arm_offset_f32, arm_vlog_f32, arm_scale_f32

Design choices, each mirrored on the device:
- Window: periodic Hann, w[n] = 0.5 - 0.5 cos(2 pi n / n_fft). Periodic (not symmetric) is the
  spectral-analysis form: its DFT has exactly three non-zero bins (clean, known leakage), it sums to
  a constant at hop n_fft/2 and n_fft/4 (no frame-rate ripple), and it is what torch.hann_window and
  librosa use, so features compare directly with the literature. Symmetric windows are for FIR design.
- Power (magnitude squared), not magnitude: no square root per bin on the device, and dB of power is
  the usual log-mel. Not normalised by n_fft or window energy (a constant offset in dB, absorbed by
  the int8 input scale).
- No per-frame max normalisation (arm_mfcc_f32 does that; we do not: loudness is information).
- Mel filterbank: `cmsisdsp.mfcc.melFilterMatrix` (HTK mel, triangles linear in mel, peak 1, DC
  weight 0). Its weights at the DC and Nyquist bins are always 0, so the device needs only the
  n_fft/2 power bins that arm_cmplx_mag_squared_f32 gives from the packed rfft output.
- LOG_EPS = 1e-6 (the constant arm_mfcc_f32 adds): floor of -60 dB, reached by digital silence
  (clips padded to 4 s) and kept well above float32 FFT round-off of loud frames.

`device_logmel` runs this chain through the `cmsisdsp` Python wrapper (the CMSIS-DSP C code compiled
for the host) as an independent reference for `logmel`. A fixed-point front-end (`arithmetic: fixed`)
computes other numbers, in integers: `nas.arch.fixedfe`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from nas.arch.spec import FrontEnd

LOG_EPS = 1e-6
"""Added to the mel power before the log (on device: arm_offset_f32)."""

DB_PER_NEPER = float(np.float32(10.0 / math.log(10.0)))
"""dB = ln(x) * DB_PER_NEPER (on device: arm_vlog_f32 then arm_scale_f32 with this float32 constant)."""

LOG_FLOOR_DB = 10.0 * math.log10(LOG_EPS)
"""The dB value of silence (-60 dB)."""


@dataclass(frozen=True)
class MelTables:
    """Sparse mel filterbank, in the layout `arm_mfcc_init_f32` / the C exporter use.

    Band m covers power bins pos[m] .. pos[m]+lengths[m]-1 with weights
    coefs[offsets[m] : offsets[m]+lengths[m]]; an empty band has length 0.
    """

    pos: np.ndarray       # uint32 [n_mels]
    lengths: np.ndarray   # uint32 [n_mels]
    coefs: np.ndarray     # float32 [sum(lengths)]
    n_bins: int           # n_fft // 2 + 1

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.lengths, dtype=np.int64)[:-1]]).astype(np.uint32)

    @property
    def max_bin(self) -> int:
        """One past the highest power bin any band reads (the device computes only these)."""
        ends = self.pos.astype(np.int64) + self.lengths
        return int(ends[self.lengths > 0].max()) if (self.lengths > 0).any() else 0


def n_frames(n_samples: int, fe: FrontEnd) -> int:
    """Frames the device produces from `n_samples` samples (no padding): 1 + (n - n_fft) // hop."""
    if n_samples < fe.n_fft:
        return 0
    return 1 + (n_samples - fe.n_fft) // fe.hop_length


def window(fe: FrontEnd) -> np.ndarray:
    """Periodic Hann window of n_fft points, float32 (the device's window table)."""
    return _window(fe.n_fft).copy()


@lru_cache(maxsize=64)
def _window(n_fft: int) -> np.ndarray:
    n = np.arange(n_fft, dtype=np.float64)
    w = (0.5 - 0.5 * np.cos(2.0 * np.pi * n / n_fft)).astype(np.float32)
    w.flags.writeable = False
    return w


def _feature_key(fe: FrontEnd) -> tuple:
    return (fe.sample_rate, fe.n_fft, fe.n_mels, float(fe.fmin), float(fe.f_max))


@lru_cache(maxsize=64)
def _dense_mel(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    import cmsisdsp.datatype as dt
    import cmsisdsp.mfcc as mfcc

    n_bins = n_fft // 2 + 1
    dense = np.zeros((n_mels, n_bins), dtype=np.float32)
    try:
        lengths, pos, packed = mfcc.melFilterMatrix(dt.F32, fmin, fmax, n_mels, sample_rate, n_fft)
    except (NameError, UnboundLocalError):
        # melFilterMatrix fails when its first band holds no FFT bin (too many mels for n_fft at low
        # frequencies); the replica computes the same float64 expressions.
        dense[:] = _replica_mel(sample_rate, n_fft, n_mels, fmin, fmax)
    else:
        packed = np.asarray(packed, dtype=np.float32)
        off = 0
        for m in range(n_mels):
            ln, p = int(lengths[m]), int(pos[m])
            dense[m, p:p + ln] = packed[off:off + ln]   # an empty band is packed as zeros
            off += ln
    dense.flags.writeable = False
    return dense


def _replica_mel(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """The dense matrix `cmsisdsp.mfcc.melFilterMatrix` builds, same expressions, float32."""
    from cmsisdsp.mfcc import frequencyToMelSpace

    zeros = np.zeros(n_fft // 2)
    mels = np.linspace(frequencyToMelSpace(fmin), frequencyToMelSpace(fmax), num=n_mels + 2)
    spec_mels = frequencyToMelSpace(np.linspace(0, sample_rate / 2.0, n_fft // 2 + 1))[1:]
    out = np.zeros((n_mels, n_fft // 2 + 1))
    for n in range(n_mels):
        upper = (spec_mels - mels[n]) / (mels[n + 1] - mels[n])
        lower = (mels[n + 2] - spec_mels) / (mels[n + 2] - mels[n + 1])
        out[n, :] = np.hstack([0, np.maximum(zeros, np.minimum(upper, lower))])
    return out.astype(np.float32)


def mel_matrix(fe: FrontEnd) -> np.ndarray:
    """Dense mel filterbank [n_mels, n_fft//2+1] float32, from cmsisdsp.mfcc.melFilterMatrix."""
    return _dense_mel(*_feature_key(fe)).copy()


def mel_filter_tables(fe: FrontEnd) -> MelTables:
    """The sparse (pos, lengths, coefs) tables the C exporter emits; identical to melFilterMatrix's
    packing except that an empty band gets length 0 (melFilterMatrix repeats the previous one's)."""
    dense = _dense_mel(*_feature_key(fe))
    pos, lengths, coefs = [], [], []
    for row in dense:
        nz = np.flatnonzero(row)
        if nz.size == 0:
            pos.append(0)
            lengths.append(0)
            continue
        a, b = int(nz[0]), int(nz[-1]) + 1
        pos.append(a)
        lengths.append(b - a)
        coefs.append(row[a:b])
    return MelTables(pos=np.asarray(pos, dtype=np.uint32), lengths=np.asarray(lengths, dtype=np.uint32),
                     coefs=(np.concatenate(coefs) if coefs else np.zeros(0)).astype(np.float32),
                     n_bins=dense.shape[1])


def empty_mel_bands(fe: FrontEnd) -> list[int]:
    """Mel bands that contain no FFT bin (constant LOG_FLOOR_DB feature): a search space should avoid
    such front-ends (too many mels for n_fft at low frequencies)."""
    dense = _dense_mel(*_feature_key(fe))
    return [int(m) for m in np.flatnonzero(~dense.any(axis=1))]


_TENSOR_CACHE: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def _tensors(fe: FrontEnd, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    key = (_feature_key(fe), str(device))
    hit = _TENSOR_CACHE.get(key)
    if hit is None:
        win = torch.from_numpy(_window(fe.n_fft).copy()).to(device)
        mel = torch.from_numpy(_dense_mel(*_feature_key(fe)).copy()).to(device)
        if len(_TENSOR_CACHE) > 32:
            _TENSOR_CACHE.clear()
        hit = _TENSOR_CACHE[key] = (win, mel)
    return hit


def logmel(audio: torch.Tensor, fe: FrontEnd) -> torch.Tensor:
    """Log-mel spectrogram, batched: audio [B, samples] (or [samples]) float32 in [-1, 1], on CPU or
    CUDA -> [B, n_frames, n_mels] float32 dB (time-major: the network input is H=frames, W=mels)."""
    if fe.arithmetic != "float":
        raise ValueError(f"logmel computes the float front-end; a {fe.arithmetic} one is nas.arch.fixedfe")
    squeeze = audio.dim() == 1
    if squeeze:
        audio = audio.unsqueeze(0)
    if audio.dim() != 2:
        raise ValueError(f"audio must be [B, samples], got shape {tuple(audio.shape)}")
    audio = audio.to(torch.float32)
    win, mel = _tensors(fe, audio.device)
    frames = n_frames(audio.shape[-1], fe)
    if frames == 0:
        out = audio.new_zeros((audio.shape[0], 0, fe.n_mels))
    else:
        spec = torch.stft(audio, n_fft=fe.n_fft, hop_length=fe.hop_length, win_length=fe.n_fft,
                          window=win, center=False, return_complex=True)      # [B, bins, frames]
        power = spec.real.square() + spec.imag.square()
        bands = torch.matmul(mel, power)                                     # [B, n_mels, frames]
        out = (torch.log(bands + LOG_EPS) * DB_PER_NEPER).transpose(1, 2).contiguous()
    return out[0] if squeeze else out


def device_logmel(audio_1d: np.ndarray, fe: FrontEnd) -> np.ndarray:
    """The device's computation, frame by frame, through the cmsisdsp wrapper (float32):
    returns [n_frames, n_mels] float32 dB. The reference `logmel` is tested against."""
    import cmsisdsp as dsp

    x = np.asarray(audio_1d, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"audio_1d must be 1-D, got shape {x.shape}")
    rfft = dsp.arm_rfft_fast_instance_f32()
    status = dsp.arm_rfft_fast_init_f32(rfft, fe.n_fft)
    if status != 0:   # the wrapper segfaults on an uninitialised instance: never call it then
        raise ValueError(f"arm_rfft_fast_init_f32 rejected n_fft={fe.n_fft} (status {status})")
    win = _window(fe.n_fft).copy()
    tables = mel_filter_tables(fe)
    if tables.max_bin > fe.n_fft // 2:
        raise AssertionError("mel tables reach the Nyquist bin")
    offsets = tables.offsets
    n = n_frames(x.size, fe)
    out = np.empty((n, fe.n_mels), dtype=np.float32)
    bands = np.zeros(fe.n_mels, dtype=np.float32)
    for t in range(n):
        frame = np.ascontiguousarray(x[t * fe.hop_length: t * fe.hop_length + fe.n_fft])
        spec = dsp.arm_rfft_fast_f32(rfft, dsp.arm_mult_f32(frame, win), 0)
        spec = np.asarray(spec, dtype=np.float32).copy()
        spec[1] = 0.0                                              # Nyquist real part, weight 0
        power = np.asarray(dsp.arm_cmplx_mag_squared_f32(spec), dtype=np.float32)  # n_fft/2 bins
        for m in range(fe.n_mels):
            ln = int(tables.lengths[m])
            if ln == 0:
                bands[m] = 0.0
                continue
            p, o = int(tables.pos[m]), int(offsets[m])
            bands[m] = dsp.arm_dot_prod_f32(power[p:p + ln], tables.coefs[o:o + ln])
        logs = dsp.arm_vlog_f32(dsp.arm_offset_f32(bands, np.float32(LOG_EPS)))
        out[t] = dsp.arm_scale_f32(np.asarray(logs, dtype=np.float32), np.float32(DB_PER_NEPER))
    return out
