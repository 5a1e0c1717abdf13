"""The project's own int8 kernels (``nas/export/csrc/nas_kernels``), described in one place.

Each `OwnKernel` says which layer calls it takes (`applies`), the scratch buffer it asks for
(`scratch_bytes`, equal to its C ``*_get_buffer_size``), the loop trip counts its instructions are
fitted on (`features`), how model.c calls it (`function`, `size_function`: the same arguments as the
CMSIS-NN wrapper it replaces) and the code it links (`entry_points`). `sources` lists the C files.

Both kernels run the plane engine of ``nas_plane.c``: an input channel widened to int16 in a ring
of kernel-height rows, output rows in blocks of four pixels (stride 1 or 2, kernels of 3 or 5
columns: ``np`` = 2 or 3 int16 pairs per kernel row) or one pixel at a time (other geometries).
The features below count the iterations of each of those loops.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

from nas.cost.cpu import INSTRUCTIONS_FILE, KernelCall, config_key, instruction_data

LIBRARY = "nas"          # the library name of the own kernels' measured data (``nas/<isa>/<opt>``)
SOURCE_DIR = Path(__file__).resolve().parents[1] / "export" / "csrc" / "nas_kernels"
CHAN_BYTES = 20          # sizeof(nas_chan): five int32
BLOCK_NP = (2, 3)        # pairs per kernel row with unrolled block loops
BLOCK_SX = (1, 2)        # horizontal strides with block loops


def sources() -> list[Path]:
    """The C files of the kernels (headers in `SOURCE_DIR`)."""
    return sorted(SOURCE_DIR.glob("*.c"))


def files() -> list[Path]:
    """Every file of the kernels, sources and headers."""
    return sorted(p for p in SOURCE_DIR.iterdir() if p.suffix in (".c", ".h"))


def description() -> str:
    """What measured data names as the library: the folder and a digest of its files."""
    import hashlib

    h = hashlib.sha256()
    for p in files():
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return f"nas kernels (nas/export/csrc/nas_kernels, sha256 {h.hexdigest()[:12]})"


@dataclass(frozen=True)
class Plane:
    """`nas_geom` of a call (nas_kernels_internal.h): weight sets, pairs per row, ring row length."""

    odd: int
    np: int
    rw: int
    lead: int
    cols: int


def plane(call: KernelCall) -> Plane:
    odd = int(call.sw % 2 == 1 and call.ow > 1)
    np_ = call.kw // 2 + 1 if odd else (call.kw + 1) // 2
    last = (-(-call.ow // 4) * 4 if call.sw <= 2 else call.ow) - 1
    b0max = last * call.sw
    rw = (b0max - (b0max & 1) + 2 * np_ + 1) & ~1
    lead = min(call.pw, rw)
    return Plane(odd, np_, rw, lead, min(call.w, rw - lead))


def _weight_elems(call: KernelCall, p: Plane) -> int:
    return (p.odd + 1) * call.kh * p.np * 2


def _c1_scratch(call: KernelCall) -> int:
    p = plane(call)
    return call.cout * CHAN_BYTES + (call.cout * _weight_elems(call, p) + call.kh * p.rw) * 2


def _dw_scratch(call: KernelCall) -> int:
    p = plane(call)
    return 4 * CHAN_BYTES + 4 * (_weight_elems(call, p) + call.kh * p.rw) * 2


@lru_cache(maxsize=1 << 14)
def _rows(call: KernelCall) -> tuple[tuple[int, int], ...]:
    """Per output row: (kernel rows inside the input, input rows newly widened into the ring)."""
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


def _plane_rows(call: KernelCall, channels: int, tag: str) -> dict[str, float]:
    """The plane engine's loops for `channels` channels over every output row (all channels on the
    fast requantisation with the whole int8 range, as in a calibrated model)."""
    p = plane(call)
    rows = _rows(call)
    total_rows = sum(r for r, _, _ in rows)
    calls = channels * call.oh
    if call.sw in BLOCK_SX and p.np in BLOCK_NP:
        v = f"s{call.sw}n{p.np}"
        whole, tail = call.ow // 4, int(call.ow % 4 > 0)      # the whole blocks' and the tail's own copy
        wraps = sum(w for _, _, w in rows)
        return {f"row_{v}": calls, f"blk_on_{v}": calls * (whole > 0), f"blk_{v}": calls * whole,
                f"blk_row_{v}": channels * whole * total_rows,
                f"blk_wrap_{v}": channels * whole * wraps, f"tail_{v}": calls * tail,
                f"tail_row_{v}": channels * tail * total_rows, f"tail_wrap_{v}": channels * tail * wraps,
                f"tail_px_{v}": calls * (call.ow % 4), tag: 1}
    return {"px_rowcall": calls, "px": calls * call.ow, "px_row": channels * call.ow * total_rows,
            "px_pair": channels * call.ow * total_rows * p.np, tag: 1}


def _widen(call: KernelCall, p: Plane) -> dict[str, float]:
    """`nas_widen_weights` per channel: each set's kernel rows, their elements and real taps."""
    sets = p.odd + 1
    return {"chan": call.cout, "widen_row": call.cout * sets * call.kh, "widen": call.cout * _weight_elems(call, p),
            "widen_tap": call.cout * sets * call.kh * call.kw}


def _c1_features(call: KernelCall) -> dict[str, float]:
    p = plane(call)
    fills = sum(n for _, n, _ in _rows(call))
    f = {"call": 1, **_widen(call, p),
         "ring_bytes": call.kh * p.rw * 2, "row": call.oh, "fill_row": fills,
         "fill_4": fills * (p.cols // 4), "fill_1": fills * (p.cols % 4),
         "fill_4on": fills * (p.cols >= 4), "fill_1on": fills * (p.cols % 4 > 0)}
    f.update(_plane_rows(call, call.cout, "c1"))
    return f


def _dw_features(call: KernelCall) -> dict[str, float]:
    p = plane(call)
    fills = sum(n for _, n, _ in _rows(call))
    groups4, rest = call.cout // 4, call.cout % 4
    groups = groups4 + int(rest > 0)
    lead_odd = int(p.lead % 2 == 1 and p.cols > 0)
    pairs, trail = (p.cols - lead_odd) // 2, (p.cols - lead_odd) % 2
    partial = int(rest > 0)
    f = {"call": 1, **_widen(call, p), "ring_bytes": 4 * call.kh * p.rw * 2, "group": groups,
         "row": groups * call.oh, "fill_row": groups * fills,
         "fill4_row": groups4 * fills, "fill4_col": groups4 * fills * p.cols, "fill4_pair": groups4 * fills * pairs,
         "fill4_pairon": groups4 * fills * (pairs > 0),
         "fill4_lead": groups4 * fills * lead_odd, "fill4_trail": groups4 * fills * trail,
         "fillp_row": partial * fills, "fillp_col": partial * fills * p.cols, "fillp_elem": rest * fills * p.cols}
    f.update(_plane_rows(call, call.cout, "dw"))
    return f


@dataclass(frozen=True)
class OwnKernel:
    """One kernel of ``nas/export/csrc/nas_kernels``: what it takes and what it costs."""

    name: str                                   # the kernel's name in the cost model and reports
    op: str                                     # the KernelCall op it replaces
    function: str                               # the C entry point (the CMSIS-NN wrapper's arguments)
    size_function: str                          # its scratch-size function (the wrapper's arguments)
    applies: Callable[[KernelCall], bool]
    scratch_bytes: Callable[[KernelCall], int]
    features: Callable[[KernelCall], dict[str, float]]

    @property
    def entry_points(self) -> tuple[str, ...]:
        return (self.function, self.size_function)


KERNELS: dict[str, OwnKernel] = {k.name: k for k in (
    OwnKernel("nas_conv_c1", "conv", "nas_convolve_c1_s8", "nas_convolve_c1_s8_get_buffer_size",
              lambda c: c.op == "conv" and c.cin == 1, _c1_scratch, _c1_features),
    OwnKernel("nas_dw", "dw", "nas_depthwise_conv_s8", "nas_depthwise_conv_s8_get_buffer_size",
              lambda c: c.op == "dw" and c.cout == c.cin, _dw_scratch, _dw_features),
)}


def candidates(call: KernelCall) -> list[OwnKernel]:
    """The own kernels that take `call`."""
    return [k for k in KERNELS.values() if k.applies(call)]


def measured(isa: str, opt: str, path: str | Path = INSTRUCTIONS_FILE) -> dict[str, dict[str, float]]:
    """{kernel: fitted coefficients} of the own kernels measured on (isa, opt); {} when none are."""
    cfg = instruction_data(path)["configs"].get(config_key(LIBRARY, isa, opt), {})
    return {k: v["coefficients"] for k, v in cfg.get("kernels", {}).items() if k in KERNELS}


@lru_cache(maxsize=1 << 16)
def _predict(kernel: str, isa: str, opt: str, path: str, call: KernelCall) -> float:
    coef = measured(isa, opt, path)[kernel]
    f = KERNELS[kernel].features(call)
    return sum(c * f.get(k, 0.0) for k, c in coef.items())


def instructions(kernel: str, isa: str, opt: str, call: KernelCall, path: str | Path = INSTRUCTIONS_FILE) -> float:
    """Predicted instructions of `kernel` (its size function + the kernel) for `call` on (isa, opt)."""
    return _predict(kernel, isa, opt, str(path), call)
