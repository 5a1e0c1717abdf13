"""Quantisation of the device's log-mel features into the network's int8 input.

Training normalises dB features with a scalar mean/std; the int8 network input has one scale and zero
point. Both fold into one float32 affine map that the device applies to each dB value before rounding,
so the front-end hands the model int8 directly. `quantize_features` is the bit-exact host twin of the
float front-end's C code (float32 multiply-add, round half away from zero as C's roundf, saturate);
`quantize_db16` that of the fixed front-end's (`nas.arch.fixedfe`), whose features are integers D in
1/16 dB and whose map is integer: q = sat8((D * gain_q + offset_q) >> 16), `fixed_map(iq)`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DB16 = 16               # the fixed front-end's feature units per dB (nas.arch.fixedfe.DB_STEPS)
MAP_SHIFT = 16


@dataclass(frozen=True)
class InputQuant:
    mean: float        # dB, training-set mean
    std: float         # dB, training-set standard deviation
    scale: float       # int8 input scale of the network (normalised units per step)
    zero_point: int    # int8 input zero point

    @property
    def gain(self) -> np.float32:
        """q = round(dB * gain + offset): steps per dB."""
        return np.float32(1.0 / (self.std * self.scale))

    @property
    def offset(self) -> np.float32:
        return np.float32(self.zero_point - self.mean / (self.std * self.scale))


def quantize_features(db: np.ndarray, iq: InputQuant) -> np.ndarray:
    """dB features (float32) → int8 network input, exactly as the generated C computes it."""
    v = (np.asarray(db, dtype=np.float32) * iq.gain) + iq.offset  # two float32 ops, never fused
    t = np.trunc(v)
    r = t + np.sign(v) * (np.abs(v - t) >= np.float32(0.5))  # roundf: half away from zero
    return np.clip(r, -128, 127).astype(np.int8)


def fixed_map(iq: InputQuant) -> tuple[int, int]:
    """(gain_q, offset_q) of the fixed front-end's int8 map: q = floor((D * gain_q + offset_q) / 2^16)
    = round half up of D / 16 * gain + offset. ValueError when D in [-2^11, 2^11) could overflow int32."""
    gain_q = int(round(float(iq.gain) / DB16 * (1 << MAP_SHIFT)))
    offset_q = int(round(float(iq.offset) * (1 << MAP_SHIFT))) + (1 << (MAP_SHIFT - 1))
    if abs(gain_q) * 2048 + abs(offset_q) >= 1 << 31:
        raise ValueError(f"input quantisation gain {float(iq.gain):g} steps/dB, offset {float(iq.offset):g}: "
                         "outside the fixed front-end's 32-bit map")
    return gain_q, offset_q


def quantize_db16(d16: np.ndarray, iq: InputQuant) -> np.ndarray:
    """Fixed front-end features D (1/16 dB, integers; or D / 16 as floats) -> int8, as its C computes."""
    d = np.asarray(d16)
    if d.dtype.kind == "f":
        d = np.rint(d.astype(np.float64) * DB16)
    gain_q, offset_q = fixed_map(iq)
    q = (d.astype(np.int64) * gain_q + offset_q) >> MAP_SHIFT
    return np.clip(q, -128, 127).astype(np.int8)
