"""What a layer kind is: the facets every stage asks of it, in one small base class.

A kind is one module of `nas.kinds` holding its spec (a frozen dataclass with a `TYPE`), a `LayerKind`
subclass that implements every facet below, and a C template beside it (``<TYPE>.c.j2``). The
stages never branch on the kind: the cost model asks it for its constants, kernel calls and arena
bytes, the torch builder for its module, quantisation for its int8 parameters, the integer reference
for its output, the exporters for its ONNX nodes and its C, QAT for its fake-quantised forward.
An abstract method left out makes the registry fail at import (`nas.kinds`), before any search.

`KernelCall` is what the generated C passes to one kernel (an op of the CMSIS-NN API: conv, dw, fc,
max_pool, avg_pool, softmax, add); a kind is one or more of them. `QLayer` is a layer's int8
parameters in the layouts the kernels read.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from nas.int8 import intref

Shape = tuple[int, int, int]  # (H, W, C)
QParams = tuple[float, int]   # (scale, zero point) of an int8 tensor
Activation = Literal["relu", "none"]
Padding = Literal["same", "valid"]


def align4(n: int) -> int:
    return (n + 3) & ~3


def conv_padding(kernel: tuple[int, int], padding: str) -> tuple[int, int]:
    """Top/left padding; 'same' pads (k-1)//2 on both sides (PyTorch-style, CMSIS-NN implies the far side)."""
    if padding == "valid":
        return (0, 0)
    return ((kernel[0] - 1) // 2, (kernel[1] - 1) // 2)


def spatial_out(size: int, k: int, s: int, p: int) -> int:
    return (size + 2 * p - k) // s + 1


def window_output_shape(layer: Any, shape: Shape, channels: int) -> Shape:
    """Output of a layer's kernel/stride/padding window over `shape`, with `channels` channels."""
    h, w, _ = shape
    ph, pw = conv_padding(layer.kernel, layer.padding)
    if layer.kernel[0] > h + 2 * ph or layer.kernel[1] > w + 2 * pw:
        raise ValueError(f"kernel {layer.kernel[0]}x{layer.kernel[1]} is larger than its input {h}x{w}")
    return (spatial_out(h, layer.kernel[0], layer.stride[0], ph), spatial_out(w, layer.kernel[1], layer.stride[1], pw),
            channels)


def describe_window(kind: str, layer: Any) -> str:
    """`conv2d 5x5/2x2 valid`: the cost table's notation of a windowed layer."""
    k = f"{layer.kernel[0]}x{layer.kernel[1]}"
    s = f"/{layer.stride[0]}x{layer.stride[1]}" if layer.stride != (1, 1) else ""
    p = " valid" if layer.padding == "valid" else ""
    return f"{kind} {k}{s}{p}"


def stride_text(stride: tuple[int, int]) -> str:
    """`/2` for 2x2, `/2x1` for 2x1, nothing for 1x1 (the network summary's notation)."""
    return "" if tuple(stride) == (1, 1) else f"/{stride[0]}" if stride[0] == stride[1] else f"/{stride[0]}x{stride[1]}"


@dataclass(frozen=True)
class KernelCall:
    """One kernel call of the generated model.c: op, input HxWxC, output channels, kernel, stride,
    top/left padding and output HxW (batch 1; fully connected: h = w = 1, cin = depth; add:
    element-wise over h x w x cin)."""

    op: str
    h: int
    w: int
    cin: int
    cout: int
    kh: int = 1
    kw: int = 1
    sh: int = 1
    sw: int = 1
    ph: int = 0
    pw: int = 0
    oh: int = 1
    ow: int = 1

    @property
    def macs(self) -> int:
        if self.op == "conv":
            return self.oh * self.ow * self.cout * self.kh * self.kw * self.cin
        if self.op == "dw":
            return self.oh * self.ow * self.cout * self.kh * self.kw
        if self.op == "fc":
            return self.cin * self.cout
        return 0

    @property
    def in_bytes(self) -> int:
        return self.h * self.w * self.cin

    @property
    def out_bytes(self) -> int:
        return self.oh * self.ow * self.cout

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Constants:
    """A layer's constants in FLASH: int8 weights, int32 bias per output, int32 multiplier + shift
    (8 bytes per output channel, or per tensor)."""

    weights: int = 0
    biases: int = 0
    quant_bytes: int = 0

    @property
    def params(self) -> int:
        return self.weights + self.biases

    @property
    def flash_bytes(self) -> int:
        return self.weights + 4 * self.biases + self.quant_bytes

    def __add__(self, other: "Constants") -> "Constants":
        return Constants(self.weights + other.weights, self.biases + other.biases, self.quant_bytes + other.quant_bytes)


@dataclass
class QLayer:
    """One quantised layer (or part of one), arrays in the layouts the CMSIS-NN kernels read.

    weights: int8 OHWI [C_OUT, KH, KW, C_IN] (conv2d), [1, KH, KW, C] (depthwise), [C_OUT, K] with K
    in NHWC flatten order (dense); None for pooling/softmax. mult/shift: int32 per output channel
    (conv, depthwise), one element (dense, softmax). `parts`: the quantised parts of a kind made of
    several kernel calls; `extra`: a kind's own integer parameters (e.g. an add's input scalings).
    """

    name: str
    kind: str                      # the spec layer TYPE (conv2d, depthwise_conv2d, ..., softmax)
    in_shape: Shape                # NHWC without the batch: (H, W, C)
    out_shape: Shape
    in_scale: float                # float32 values
    in_zero_point: int
    out_scale: float
    out_zero_point: int
    act_min: int = intref.INT8_MIN
    act_max: int = intref.INT8_MAX
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)   # top, left (bottom/right implied by out_shape)
    relu: bool = False
    weights: np.ndarray | None = None
    weight_scales: np.ndarray | None = None   # float32 [C_OUT] (conv, depthwise) or [1] (dense)
    bias: np.ndarray | None = None            # int32 [C_OUT]
    mult: np.ndarray | None = None            # int32
    shift: np.ndarray | None = None           # int32
    diff_min: int = 0                         # softmax only
    parts: tuple["QLayer", ...] = ()
    extra: dict[str, int] = field(default_factory=dict)

    @property
    def input_offset(self) -> int:
        return -int(self.in_zero_point)

    @property
    def output_offset(self) -> int:
        return int(self.out_zero_point)

    @property
    def in_qparams(self) -> QParams:
        return self.in_scale, self.in_zero_point

    @property
    def out_qparams(self) -> QParams:
        return self.out_scale, self.out_zero_point

    def summary(self) -> dict:
        d = {"name": self.name, "kind": self.kind, "in_shape": list(self.in_shape), "out_shape": list(self.out_shape),
             "in_scale": self.in_scale, "in_zero_point": self.in_zero_point, "out_scale": self.out_scale,
             "out_zero_point": self.out_zero_point, "act_min": self.act_min, "act_max": self.act_max}
        if self.weight_scales is not None:
            ws = np.asarray(self.weight_scales, dtype=np.float64)
            d["weight_scale_min"], d["weight_scale_max"] = float(ws.min()), float(ws.max())
        if self.parts:
            d["parts"] = [p.summary() for p in self.parts]
        d.update(self.extra)
        return d


@dataclass(frozen=True)
class Slot:
    """Where a layer's (or a part's) tensors live in the arena: byte offsets (in_offset None = the
    caller's feature buffer, out_offset None = the caller's scores); `gap` = bytes free at
    `scratch_offset` for its kernel's scratch buffer, `scratch_bytes` = what the cost model counts."""

    name: str
    in_offset: int | None
    in_bytes: int
    out_offset: int | None
    out_bytes: int
    scratch_offset: int
    gap: int
    scratch_bytes: int


@dataclass(frozen=True)
class LayerC:
    """What a kind's C template receives for one layer (or one part of a kind of several calls): its
    index (errors return -(index + 1)), quantised parameters, arena slot, the kernel (a library
    function) of each of its calls with its scratch bytes, the whole arena's size and its kind."""

    index: int
    q: QLayer
    slot: Slot
    kernels: tuple[Any, ...]
    scratches: tuple[int, ...]
    arena_bytes: int
    kind: "LayerKind"


class LayerKind(ABC):
    """The facets of one layer kind (see the module docstring). Class attributes:

    * `spec`: the frozen dataclass a spec file names by its `TYPE`;
    * `prefix`: layer names are prefix + index (`conv0`, `dw1`) in the cost table, torch and C;
    * `spatial`: it needs an H x W x C input (so it cannot follow a dense or global-pooling layer);
    * `flat_output`: its output is a vector (what follows it is not spatial);
    * `flattens`: its torch module flattens an NCHW input in NHWC order first (dense).
    """

    spec: ClassVar[type]
    prefix: ClassVar[str]
    spatial: ClassVar[bool] = True
    flat_output: ClassVar[bool] = False
    flattens: ClassVar[bool] = False

    @property
    def type(self) -> str:
        return self.spec.TYPE

    @property
    def template(self) -> str:
        """The C template of this kind (``nas/kinds/<TYPE>.c.j2``)."""
        return f"{self.type}.c.j2"

    # -- shape and cost ----------------------------------------------------------------------------
    @abstractmethod
    def output_shape(self, layer: Any, shape: Shape) -> Shape:
        """Output (H, W, C) for input `shape`; ValueError for impossible shapes."""

    @abstractmethod
    def constants(self, layer: Any, in_shape: Shape, out_shape: Shape) -> Constants:
        """Its constants in FLASH (exact: what model.c declares)."""

    @abstractmethod
    def calls(self, layer: Any, in_shape: Shape, out_shape: Shape) -> tuple[KernelCall, ...]:
        """The kernel calls model.c makes for it, in order."""

    def arena_bytes(self, calls: tuple[KernelCall, ...], scratch: tuple[int, ...], first: bool) -> int:
        """Arena bytes it needs: its input (unless it reads the caller's buffer), its output and the
        scratch of its kernel, each 4-byte aligned. Kinds of several calls override it with their
        own layout (the C template lays their buffers out the same way)."""
        (call,), (s,) = calls, scratch
        return (0 if first else align4(call.in_bytes)) + align4(call.out_bytes) + align4(s)

    def parts(self, l: LayerC) -> tuple[LayerC, ...]:
        """For a kind of several calls: each call as a layer of its own, placed in the arena the way
        `arena_bytes` counted (its template calls this); none for a kind of one call."""
        return ()

    @abstractmethod
    def describe(self, layer: Any) -> str:
        """The cost table's type column: `conv2d 5x5/2x2 valid`."""

    @abstractmethod
    def summary(self, layer: Any) -> tuple[str, bool]:
        """Its token of the one-line network summary (`c24 5x5/2`, `dw5x5/2`, `d64`) and whether it
        starts a new block there; ('', False) for layers the summary leaves out."""

    # -- training -----------------------------------------------------------------------------------
    @abstractmethod
    def module(self, layer: Any, in_shape: Shape) -> nn.Module:
        """The training-form torch module (NCHW), BatchNorm unfolded."""

    def observed(self, name: str, module: nn.Module) -> dict[str, nn.Module]:
        """The modules whose outputs quantisation calibrates, by tensor name: the layer's output."""
        return {name: module}

    @abstractmethod
    def fake_quant(self, module: nn.Module, x: torch.Tensor, name: str,
                   qparams: dict[str, QParams]) -> torch.Tensor:
        """The folded module's forward with int8 rounding of weights and outputs (QAT)."""

    # -- int8 ---------------------------------------------------------------------------------------
    @abstractmethod
    def quantize(self, layer: Any, module: nn.Module, name: str, in_shape: Shape, out_shape: Shape,
                 in_q: QParams, ranges: dict[str, tuple[float, float]]) -> QLayer:
        """int8 parameters of the folded module, its input quantised with `in_q`; `ranges` holds the
        calibrated range of every tensor `observed` names."""

    @abstractmethod
    def run_int8(self, q: QLayer, x: np.ndarray) -> np.ndarray:
        """The integer reference on NHWC int8 `x` [B, H, W, C] (bit-exact with the C)."""

    # -- ONNX ---------------------------------------------------------------------------------------
    @abstractmethod
    def onnx_float(self, g: Any, layer: Any, module: nn.Module, x: str, name: str) -> str:
        """Nodes of the folded float layer on NCHW tensor `x` (2-D after a flatten); returns its output."""

    @abstractmethod
    def onnx_int8(self, g: Any, q: QLayer, xq: str, x: str, out: str | None) -> tuple[str, str]:
        """QDQ nodes on `xq` (int8) / `x` (its dequantized value); returns (int8 output, dequantized);
        `out` names the int8 output when it is the graph's."""
