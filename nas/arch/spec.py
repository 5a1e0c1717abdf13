"""`ArchSpec`: the one description of a candidate network that everything else reads.

The search space produces it; the cost model, the torch builder and the exporters consume it. It is
plain frozen data (front-end settings + an ordered list of layers), round-trips through YAML/JSON, and
every tensor shape is derived here (`layer_shapes`) so no consumer recomputes them its own way.

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
from typing import ClassVar, Literal, Union

from nas.core import config
from nas.core.config import bounded

Activation = Literal["relu", "none"]
Arithmetic = Literal["float", "fixed"]
Padding = Literal["same", "valid"]
Shape = tuple[int, int, int]  # (H, W, C)


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


@dataclass(frozen=True)
class Conv2D:
    TYPE: ClassVar[str] = "conv2d"
    filters: int = bounded(ge=1, le=4096)
    kernel: tuple[int, int] = bounded((3, 3), ge=1, le=64)
    stride: tuple[int, int] = bounded((1, 1), ge=1, le=64)
    padding: Padding = "same"
    activation: Activation = "relu"
    batchnorm: bool = True
    dropout: float = bounded(0.0, ge=0.0, lt=1.0, doc="dropout on this layer's input while training")


@dataclass(frozen=True)
class DepthwiseConv2D:
    TYPE: ClassVar[str] = "depthwise_conv2d"
    kernel: tuple[int, int] = bounded((3, 3), ge=1, le=64)
    stride: tuple[int, int] = bounded((1, 1), ge=1, le=64)
    padding: Padding = "same"
    activation: Activation = "relu"
    batchnorm: bool = True
    dropout: float = bounded(0.0, ge=0.0, lt=1.0)


@dataclass(frozen=True)
class MaxPool2D:
    TYPE: ClassVar[str] = "max_pool2d"
    pool: tuple[int, int] = bounded((2, 2), ge=1, le=64)
    stride: tuple[int, int] | None = bounded(None, ge=1, le=64, doc="default: the pool size")

    @property
    def strides(self) -> tuple[int, int]:
        return self.stride or self.pool


@dataclass(frozen=True)
class AvgPool2D:
    TYPE: ClassVar[str] = "avg_pool2d"
    pool: tuple[int, int] = bounded((2, 2), ge=1, le=64)
    stride: tuple[int, int] | None = bounded(None, ge=1, le=64)

    @property
    def strides(self) -> tuple[int, int]:
        return self.stride or self.pool


@dataclass(frozen=True)
class GlobalAvgPool2D:
    TYPE: ClassVar[str] = "global_avg_pool2d"


@dataclass(frozen=True)
class Dense:
    """Fully connected; a 3-D input is flattened in NHWC (H, W, C) order, as CMSIS-NN reads it."""

    TYPE: ClassVar[str] = "dense"
    units: int = bounded(ge=1, le=65536)
    activation: Activation = "relu"
    dropout: float = bounded(0.0, ge=0.0, lt=1.0)


@dataclass(frozen=True)
class Softmax:
    TYPE: ClassVar[str] = "softmax"


Layer = Union[Conv2D, DepthwiseConv2D, MaxPool2D, AvgPool2D, GlobalAvgPool2D, Dense, Softmax]
SPATIAL = (Conv2D, DepthwiseConv2D, MaxPool2D, AvgPool2D)


def conv_padding(kernel: tuple[int, int], padding: str) -> tuple[int, int]:
    """Top/left padding; 'same' pads (k-1)//2 on both sides (PyTorch-style, CMSIS-NN implies the far side)."""
    if padding == "valid":
        return (0, 0)
    return ((kernel[0] - 1) // 2, (kernel[1] - 1) // 2)


def _spatial_out(size: int, k: int, s: int, p: int) -> int:
    return (size + 2 * p - k) // s + 1


def layer_output_shape(layer: Layer, shape: Shape) -> Shape:
    """Output (H, W, C) of `layer` for input `shape`; raises ValueError for impossible shapes."""
    h, w, c = shape
    if isinstance(layer, (Conv2D, DepthwiseConv2D)):
        ph, pw = conv_padding(layer.kernel, layer.padding)
        if layer.kernel[0] > h + 2 * ph or layer.kernel[1] > w + 2 * pw:
            raise ValueError(f"kernel {layer.kernel[0]}x{layer.kernel[1]} is larger than its input {h}x{w}")
        oh = _spatial_out(h, layer.kernel[0], layer.stride[0], ph)
        ow = _spatial_out(w, layer.kernel[1], layer.stride[1], pw)
        return (oh, ow, layer.filters if isinstance(layer, Conv2D) else c)
    if isinstance(layer, (MaxPool2D, AvgPool2D)):
        if layer.pool[0] > h or layer.pool[1] > w:
            raise ValueError(f"pool {layer.pool[0]}x{layer.pool[1]} is larger than its input {h}x{w}")
        sh, sw = layer.strides
        return (_spatial_out(h, layer.pool[0], sh, 0), _spatial_out(w, layer.pool[1], sw, 0), c)
    if isinstance(layer, GlobalAvgPool2D):
        return (1, 1, c)
    if isinstance(layer, Dense):
        return (1, 1, layer.units)
    if isinstance(layer, Softmax):
        return shape
    raise TypeError(f"unknown layer {layer!r}")


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
            if isinstance(layer, SPATIAL) and seen_flat:
                raise ValueError(f"layers[{i}]: {layer.TYPE} after a dense or global pooling layer")
            if isinstance(layer, (Dense, GlobalAvgPool2D)):
                seen_flat = True
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
        prefix = {Conv2D: "conv", DepthwiseConv2D: "dw", MaxPool2D: "maxpool", AvgPool2D: "avgpool",
                  GlobalAvgPool2D: "gap", Dense: "fc", Softmax: "softmax"}
        return [f"{prefix[type(layer)]}{i}" for i, layer in enumerate(self.layers)]

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
