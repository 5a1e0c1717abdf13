"""The project's own int8 kernels (``csrc/nas_kernels``): an add-on library linked beside CMSIS-NN or
the portable kernels, for the calls CMSIS-NN handles poorly.

* ``nas_conv_c1``: a convolution of a one-channel input (the spectrogram layer), any kernel, stride and
  padding (`nas_convolve_c1_s8`);
* ``nas_dw``: a depthwise convolution with channel multiplier 1 (`nas_depthwise_conv_s8`);
* ``nas_conv_1x1``: a pointwise convolution (1x1 kernel, no padding, any stride; `nas_convolve_1x1_s8`).

Each takes the arguments of the CMSIS-NN wrapper it replaces (same structs, requantisation, offsets
and clamp, bit-exact) and asks for its scratch with a ``*_get_buffer_size`` of the same arguments.
The first two run one plane engine (``nas_plane.c``): an input channel widened to int16 in a ring of
kernel-height rows, two taps per SMLAD, output rows in blocks of four pixels; `plane` and `ring_rows`
are its geometry, which the scratch size here and the trip counts of `nas.cost.nas_kernels` follow.
The pointwise one widens each pair of pixels' input channels once and runs blocks of 2 pixels x 2
output channels. The kernels take disjoint calls, so a call has at most one (`kernel`).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

from nas.kinds.base import KernelCall
from nas.libraries.base import Kernel, KernelLibrary

SOURCE_DIR = Path(__file__).resolve().parent / "csrc" / "nas_kernels"
HEADER = "nas_kernels.h"
CHAN_BYTES = 20          # sizeof(nas_chan): five int32


@dataclass(frozen=True)
class Plane:
    """`nas_geom` of a call (nas_kernels_internal.h): a second weight set for odd pixel starts, int16
    pairs per kernel row, ring row length, the ring column of input column 0, input columns kept."""

    odd: int
    np: int
    rw: int
    lead: int
    cols: int


@lru_cache(maxsize=1 << 14)
def plane(call: KernelCall) -> Plane:
    odd = int(call.sw % 2 == 1 and call.ow > 1)
    np_ = call.kw // 2 + 1 if odd else (call.kw + 1) // 2
    last = (-(-call.ow // 4) * 4 if call.sw <= 2 else call.ow) - 1       # whole blocks of four pixels
    b0max = last * call.sw
    rw = (b0max - (b0max & 1) + 2 * np_ + 1) & ~1
    lead = min(call.pw, rw)
    return Plane(odd, np_, rw, lead, min(call.w, rw - lead))


def weight_elems(call: KernelCall) -> int:
    """int16 elements of one channel's widened weights (both sets)."""
    p = plane(call)
    return (p.odd + 1) * call.kh * p.np * 2


@lru_cache(maxsize=1 << 14)
def ring_rows(call: KernelCall) -> tuple[tuple[int, int, int], ...]:
    """Per output row (`nas_ring_rows`): kernel rows inside the input, input rows newly widened into
    the ring, and whether its kernel rows wrap around the ring's end."""
    out, filled = [], 0
    for oy in range(call.oh):
        iy0 = oy * call.sh - call.ph
        ky0, ky1 = max(0, -iy0), min(call.kh, call.h - iy0)
        rows = max(0, ky1 - ky0)
        fill0 = max(filled, iy0 + ky0)
        fill1 = max(fill0, iy0 + ky1)
        if rows:
            filled = fill1
        wrap = rows > 0 and (iy0 + ky0) % call.kh + rows > call.kh
        out.append((rows, fill1 - fill0, int(wrap)))
    return tuple(out)


def _c1_scratch(call: KernelCall) -> int:
    return call.cout * CHAN_BYTES + (call.cout * weight_elems(call) + call.kh * plane(call).rw) * 2


def _dw_scratch(call: KernelCall) -> int:
    return 4 * CHAN_BYTES + 4 * (weight_elems(call) + call.kh * plane(call).rw) * 2


def _pw_scratch(call: KernelCall) -> int:
    return (call.cout + 1) * CHAN_BYTES + 16 * (call.cin // 4) + 16


def pointwise(call: KernelCall) -> bool:
    return call.op == "conv" and (call.kh, call.kw, call.ph, call.pw) == (1, 1, 0, 0)


@dataclass(frozen=True)
class OwnKernel:
    kernel: Kernel
    applies: Callable[[KernelCall], bool]
    scratch_bytes: Callable[[KernelCall], int]


KERNELS: dict[str, OwnKernel] = {k.kernel.name: k for k in (
    OwnKernel(Kernel("nas_conv_c1", "conv", "nas_convolve_c1_s8", "nas_convolve_c1_s8_get_buffer_size"),
              lambda c: c.op == "conv" and c.cin == 1 and not pointwise(c), _c1_scratch),
    OwnKernel(Kernel("nas_dw", "dw", "nas_depthwise_conv_s8", "nas_depthwise_conv_s8_get_buffer_size"),
              lambda c: c.op == "dw" and c.cout == c.cin, _dw_scratch),
    OwnKernel(Kernel("nas_conv_1x1", "conv", "nas_convolve_1x1_s8", "nas_convolve_1x1_s8_get_buffer_size"),
              pointwise, _pw_scratch),
)}


def own_kernel(call: KernelCall) -> OwnKernel | None:
    return next((k for k in KERNELS.values() if k.applies(call)), None)


class NasKernels(KernelLibrary):
    name = "nas"
    description = "the project's own kernels (nas/libraries/csrc/nas_kernels)"
    ops = tuple(sorted({k.kernel.op for k in KERNELS.values()}))
    header = HEADER       # what model.c includes when a layer calls one of them
    folder = "nas_kernels"   # an exported folder's copy of the sources

    def takes(self, call):
        return own_kernel(call) is not None

    def kernel(self, call, dsp):
        k = own_kernel(call)
        if k is None:
            raise ValueError(f"no own kernel takes {call}")
        return k.kernel

    def scratch_bytes(self, call, dsp):
        return own_kernel(call).scratch_bytes(call)

    def entry_points(self, op):
        return tuple(f for k in KERNELS.values() if k.kernel.op == op
                     for f in (k.kernel.function, k.kernel.buffer_size_function))

    def kernel_entry_points(self, name: str) -> tuple[str, ...]:
        """The functions one kernel's calls reference (its code-size group)."""
        k = KERNELS[name].kernel
        return (k.function, k.buffer_size_function)

    def sources(self, root=None):
        return sorted(SOURCE_DIR.glob("*.c")), [SOURCE_DIR]


def files() -> list[Path]:
    """Every file of the kernels, sources and headers."""
    return sorted(p for p in SOURCE_DIR.iterdir() if p.suffix in (".c", ".h"))


def digest() -> str:
    """Of the kernels' files: measured data names the C it measured (`nas.cost.nas_kernels`)."""
    h = hashlib.sha256()
    for p in files():
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:12]
