"""Quantisation of the device's log-mel features into the network's int8 input.

Training normalises dB features with a scalar mean/std; the int8 network input has one scale and zero
point. Both fold into one float32 affine map that the device applies to each dB value before rounding,
so the front-end hands the model int8 directly. `quantize_features` is the bit-exact host twin of the
C code (float32 multiply-add, round half away from zero as C's roundf, saturate).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
