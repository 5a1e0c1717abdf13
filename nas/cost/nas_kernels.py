"""Instructions of the project's own kernels (`nas.libraries.nas_kernels`) from their loop trip counts.

Like `cpu.features` for the library kernels: each own kernel's instruction count is a sum over its
loops of trip count x instructions per trip, fitted by ``python -m nas.calibrate`` (library 'nas')
on exact QEMU counts, per instruction set and optimisation level (``data/instructions.json``,
``nas/<isa>/<opt>``). The 1-channel and depthwise convs' loops are those of the plane engine
(``nas_plane.c``): per call the weights widened per channel, the ring cleared, each input row widened
into it once; per output row and channel a row of blocks of four pixels (stride 1 or 2 and np = 2
or 3 int16 pairs per kernel row, each an unrolled copy with its own costs; a last partial block is a
copy of its own) or, for other geometries, of single pixels; per block its kernel rows, and one more
loop set-up when they wrap around the ring. Where a loop may not run at all its set-up is a feature
of its own (``*on``).
The pointwise conv's are per pair of output pixels (both widened) and per block of two output
channels (its groups of four input channels and the rest). The counts assume every channel on the
fast requantisation and the whole int8 activation range, as in the measurements and in calibrated
models.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from nas.cost.cpu import INSTRUCTIONS_FILE, config_key, instruction_data
from nas.kinds.base import KernelCall
from nas.libraries import nas_kernels as lib
from nas.libraries.nas_kernels import plane, ring_rows, weight_elems

LIBRARY = lib.NasKernels.name
BLOCK_NP = (2, 3)        # pairs per kernel row with unrolled block loops
BLOCK_SX = (1, 2)        # horizontal strides with block loops


def description() -> str:
    """What measured data names as the library: the folder and a digest of its files."""
    return f"nas kernels (nas/libraries/csrc/nas_kernels, sha256 {lib.digest()})"


def _plane_rows(call: KernelCall, channels: int, tag: str) -> dict[str, float]:
    p = plane(call)
    rows = ring_rows(call)
    total_rows = sum(r for r, _, _ in rows)
    calls = channels * call.oh
    if call.sw in BLOCK_SX and p.np in BLOCK_NP:
        v = f"s{call.sw}n{p.np}"
        whole, tail = call.ow // 4, int(call.ow % 4 > 0)      # the whole blocks' and the tail's own copy
        wraps = sum(w for _, _, w in rows)
        return {f"row_{v}": calls, f"blk_on_{v}": calls * (whole > 0), f"blk_{v}": calls * whole,
                f"blk_row_{v}": channels * whole * total_rows, f"blk_wrap_{v}": channels * whole * wraps,
                f"tail_{v}": calls * tail, f"tail_row_{v}": channels * tail * total_rows,
                f"tail_wrap_{v}": channels * tail * wraps, f"tail_px_{v}": calls * (call.ow % 4), tag: 1}
    return {"px_rowcall": calls, "px": calls * call.ow, "px_row": channels * call.ow * total_rows,
            "px_pair": channels * call.ow * total_rows * p.np, tag: 1}


def _widen(call: KernelCall) -> dict[str, float]:
    """`nas_widen_weights` per channel: each set's kernel rows, their elements and real taps."""
    sets = plane(call).odd + 1
    return {"chan": call.cout, "widen_row": call.cout * sets * call.kh, "widen": call.cout * weight_elems(call),
            "widen_tap": call.cout * sets * call.kh * call.kw}


def _c1_features(call: KernelCall) -> dict[str, float]:
    p = plane(call)
    fills = sum(n for _, n, _ in ring_rows(call))
    f = {"call": 1, **_widen(call), "ring_bytes": call.kh * p.rw * 2, "row": call.oh, "fill_row": fills,
         "fill_4": fills * (p.cols // 4), "fill_1": fills * (p.cols % 4),
         "fill_4on": fills * (p.cols >= 4), "fill_1on": fills * (p.cols % 4 > 0)}
    f.update(_plane_rows(call, call.cout, "c1"))
    return f


def _dw_features(call: KernelCall) -> dict[str, float]:
    p = plane(call)
    fills = sum(n for _, n, _ in ring_rows(call))
    groups4, rest = call.cout // 4, call.cout % 4
    groups, partial = groups4 + int(rest > 0), int(rest > 0)
    lead_odd = int(p.lead % 2 == 1 and p.cols > 0)
    pairs, trail = (p.cols - lead_odd) // 2, (p.cols - lead_odd) % 2
    f = {"call": 1, **_widen(call), "ring_bytes": 4 * call.kh * p.rw * 2, "group": groups,
         "row": groups * call.oh, "fill_row": groups * fills,
         "fill4_row": groups4 * fills, "fill4_col": groups4 * fills * p.cols, "fill4_pair": groups4 * fills * pairs,
         "fill4_pairon": groups4 * fills * (pairs > 0), "fill4_lead": groups4 * fills * lead_odd,
         "fill4_trail": groups4 * fills * trail,
         "fillp_row": partial * fills, "fillp_col": partial * fills * p.cols, "fillp_elem": rest * fills * p.cols}
    f.update(_plane_rows(call, call.cout, "dw"))
    return f


def _pw_features(call: KernelCall) -> dict[str, float]:
    """nas_convolve_1x1_s8: per pair of pixels both widened, then blocks of two output channels; the
    last k % 4 input channels are a loop of at most 3 trips (compilers unroll it: one term per count)."""
    pixels = call.oh * call.ow
    pairs, k4, kr = -(-pixels // 2), call.cin // 4, call.cin % 4
    blocks = pairs * -(-call.cout // 2)
    f = {"call": 1, "chan": call.cout + 1, "pair": pairs, "widen": 2 * pairs, "widen_4": 2 * pairs * k4,
         "blk": blocks, "blk_4": blocks * k4, "blk_4on": blocks * (k4 > 0),
         # the stores each block makes or skips: a second channel, a second pixel, both
         "two": pairs * (call.cout // 2), "one": pairs * (call.cout % 2),
         "out1": (pixels // 2) * -(-call.cout // 2), "out1_none": (pixels % 2) * -(-call.cout // 2),
         "out1_two": (pixels // 2) * (call.cout // 2), "pw": 1}
    if kr:
        f.update({f"widen_r{kr}": 2 * pairs, f"blk_r{kr}": blocks})
    return f


FEATURES = {"nas_conv_c1": _c1_features, "nas_dw": _dw_features, "nas_conv_1x1": _pw_features}


@lru_cache(maxsize=1 << 16)
def features(kernel: str, call: KernelCall) -> dict[str, float]:
    """Loop trip counts of own kernel `kernel` for `call` (memoised: callers must not modify them)."""
    return FEATURES[kernel](call)


def measured(isa: str, opt: str, path: str | Path = INSTRUCTIONS_FILE) -> dict[str, dict[str, float]]:
    """{kernel: fitted coefficients} of the own kernels measured on (isa, opt); {} when none are."""
    cfg = instruction_data(path)["configs"].get(config_key(LIBRARY, isa, opt), {})
    return {k: v["coefficients"] for k, v in cfg.get("kernels", {}).items() if k in FEATURES}


@lru_cache(maxsize=1 << 16)
def _predict(kernel: str, isa: str, opt: str, path: str, call: KernelCall) -> float:
    coef = measured(isa, opt, path)[kernel]
    f = features(kernel, call)
    return sum(c * f.get(k, 0.0) for k, c in coef.items())


def instructions(kernel: str, isa: str, opt: str, call: KernelCall, path: str | Path = INSTRUCTIONS_FILE) -> float:
    """Predicted instructions of `kernel` (its size function + the kernel) for `call` on (isa, opt)."""
    return _predict(kernel, isa, opt, str(path), call)
