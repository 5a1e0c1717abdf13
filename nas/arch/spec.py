"""`ArchSpec`: the one description of a candidate network that everything else reads.

The search space produces it; the cost model, the torch builder and the exporters consume it. It is
plain frozen data (front-end settings + an ordered list of layers), round-trips through YAML/JSON, and
every tensor shape is derived here (`layer_shapes`) so no consumer recomputes them its own way.

Layer types are the layer kinds' specs (`nas.kinds`, one module per kind); the ones of the thesis's
networks are re-exported here as the spec's vocabulary.

Axes: the network input is one classification window of log-mel features, laid out NHWC as
(H = frames in time, W = mel bands, C = 1). Time as the outer axis makes a window a contiguous block
of frames on the device, so a streaming front-end can append frames and slide without reshuffling.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from nas.core import config
from nas.core.config import bounded
from nas.kinds import (AvgPool2D, Conv2D, Dense, DepthwiseConv2D, GlobalAvgPool2D, Layer, MaxPool2D, Shape, Softmax,
                       kind_of)
from nas.kinds.base import conv_padding

Arithmetic = Literal["float", "fixed"]


@dataclass(frozen=True)
class FrontEnd:
    """Audio → log-mel front-end, identical in training and on the device."""

    sample_rate: int = bounded(22050, ge=4000, le=192000, doc="sample rate in Hz")
    n_fft: int = bounded(1024, ge=32, le=4096, doc="FFT length in samples (power of two, 32..4096)")
    hop_length: int = bounded(512, ge=1, le=4096, doc="samples between frames")
    n_mels: int = bounded(60, ge=1, le=512, doc="mel bands")
    frames: int = bounded(31, ge=1, le=4096, doc="frames per classification window")
    overlap: float = bounded(0.0, ge=0.0, lt=1.0, doc="share of a window repeated in the next one at inference")
    fmin: float = bounded(0.0, ge=0.0, doc="lowest mel filter edge in Hz")
    fmax: float | None = bounded(None, gt=0.0, doc="highest mel filter edge in Hz (default sample_rate/2)")
    arithmetic: Arithmetic = bounded("float", omit_default=True,
                                     doc="float (CMSIS-DSP f32) or fixed (q15 FFT, integer mel and log)")

    def __post_init__(self) -> None:
        if self.n_fft & (self.n_fft - 1):
            raise ValueError(f"n_fft must be a power of two (CMSIS-DSP rfft), got {self.n_fft}")
        if self.hop_length > self.n_fft:
            raise ValueError(f"hop_length {self.hop_length} is longer than n_fft {self.n_fft}")
        if self.f_max > self.sample_rate / 2:
            raise ValueError(f"fmax {self.f_max:g} Hz is above the Nyquist frequency {self.sample_rate / 2:g} Hz")
        if self.fmin >= self.f_max:
            raise ValueError(f"fmin {self.fmin:g} Hz must be below fmax {self.f_max:g} Hz")
        if self.n_mels > self.n_fft // 2:
            raise ValueError(f"n_mels {self.n_mels} exceeds the {self.n_fft // 2} FFT bins above DC")

    @property
    def f_max(self) -> float:
        return float(self.fmax) if self.fmax is not None else self.sample_rate / 2

    @property
    def window_hop_frames(self) -> int:
        """Frames between the starts of consecutive inference windows."""
        return max(1, round(self.frames * (1.0 - self.overlap)))

    @property
    def windows_per_second(self) -> float:
        """Inferences per second of audio: overlap multiplies the compute of a streaming deployment."""
        return self.sample_rate / (self.hop_length * self.window_hop_frames)

    @property
    def window_seconds(self) -> float:
        return ((self.frames - 1) * self.hop_length + self.n_fft) / self.sample_rate

    @property
    def input_shape(self) -> Shape:
        return (self.frames, self.n_mels, 1)


def layer_output_shape(layer: Layer, shape: Shape) -> Shape:
    """Output (H, W, C) of `layer` for input `shape`; raises ValueError for impossible shapes."""
    return kind_of(layer).output_shape(layer, shape)


@dataclass(frozen=True)
class ArchSpec:
    """A complete candidate: front-end + sequential int8-deployable network."""

    name: str
    frontend: FrontEnd
    layers: tuple[Layer, ...]
    num_classes: int = bounded(10, ge=2, le=1000)

    def __post_init__(self) -> None:
        if not self.layers:
            raise ValueError("layers: the network has no layers")
        if not isinstance(self.layers[-1], Softmax):
            raise ValueError("layers: the last layer must be softmax")
        if len(self.layers) < 2 or not isinstance(self.layers[-2], Dense):
            raise ValueError("layers: softmax must follow a dense layer")
        if self.layers[-2].units != self.num_classes:
            raise ValueError(f"layers: the last dense layer has {self.layers[-2].units} units, "
                             f"expected num_classes = {self.num_classes}")
        if self.layers[-2].activation != "none":
            raise ValueError("layers: the last dense layer must have activation 'none' (it feeds softmax)")
        seen_flat = False
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Softmax) and i != len(self.layers) - 1:
                raise ValueError(f"layers[{i}]: softmax may only be the last layer")
            kind = kind_of(layer)
            if kind.spatial and seen_flat:
                raise ValueError(f"layers[{i}]: {layer.TYPE} after a dense or global pooling layer")
            seen_flat = seen_flat or kind.flat_output
        shape = self.frontend.input_shape
        for i, layer in enumerate(self.layers):
            try:
                shape = layer_output_shape(layer, shape)
            except ValueError as exc:
                raise ValueError(f"layers[{i}] ({layer.TYPE}): {exc}") from None
            if min(shape) < 1:
                raise ValueError(f"layers[{i}] ({layer.TYPE}): output shape {shape} is empty")

    # -- shapes -------------------------------------------------------------------------------
    def layer_shapes(self) -> list[tuple[Shape, Shape]]:
        """(input, output) NHWC shape of every layer, in order."""
        shapes, shape = [], self.frontend.input_shape
        for layer in self.layers:
            out = layer_output_shape(layer, shape)
            shapes.append((shape, out))
            shape = out
        return shapes

    def layer_names(self) -> list[str]:
        """Stable names (conv0, dw1, pool2, ...) used by the cost table, torch modules and C symbols."""
        return [f"{kind_of(layer).prefix}{i}" for i, layer in enumerate(self.layers)]

    # -- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return config.to_dict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def fingerprint(self) -> str:
        """Content hash ignoring the name: two specs with the same network share it."""
        body = self.to_dict()
        body.pop("name")
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, data: dict, source: str = "<spec>") -> "ArchSpec":
        return config.load(cls, data, source)

    @classmethod
    def from_json(cls, text: str, source: str = "<spec>") -> "ArchSpec":
        return cls.from_dict(json.loads(text), source)

    @classmethod
    def load(cls, path: str | Path) -> "ArchSpec":
        return cls.from_dict(config.read_yaml(path), str(path))

    def save(self, path: str | Path) -> None:
        config.write_yaml(path, self.to_dict())

    def replace(self, **changes) -> "ArchSpec":
        return dataclasses.replace(self, **changes)


__all__ = ["ArchSpec", "AvgPool2D", "Conv2D", "Dense", "DepthwiseConv2D", "FrontEnd", "GlobalAvgPool2D", "Layer",
           "MaxPool2D", "Shape", "Softmax", "conv_padding", "layer_output_shape"]
