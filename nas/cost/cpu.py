"""Instructions a Cortex-M executes per layer: the CMSIS-NN kernel the wrapper dispatches to, priced
from the layer's geometry with coefficients fitted on exact QEMU counts (``data/instructions.json``).

Each layer is one or more `KernelCall`s (what model.c passes to a kernel; its kind's `calls`).
`dispatch` names the kernel CMSIS-NN v7's wrappers pick on a core without MVE (the portable kernels
dispatch the same way; `nas.libraries.cmsis_nn`);
`features` turns the geometry into the trip counts of that kernel family's loops (output pixels,
kernel taps inside and outside the padding, channel and depth blocks of 2 / 3 / 4 / 16, ...). The
instruction count of a loop nest is the sum over its loop levels of trip count x instructions per
trip, so a linear model with non-negative coefficients on these features has the structure of the
code; the coefficients (instructions per pixel, per MAC of a 2x2 block, per call, ...) are fitted
per kernel library, instruction set and optimisation level by ``python -m nas.calibrate``.

A model's instructions per inference = sum over layers of the kernel's prediction + the glue of
the generated code (per layer: context set-up, the scratch-size check, the status check; per call
of ``nas_model_invoke``), also fitted on whole exported models.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from nas.arch.spec import ArchSpec
from nas.kinds import KernelCall, kind_of
from nas.libraries import LIBRARIES as LIBRARY_REGISTRY
from nas.libraries.cmsis_nn import dispatch

DATA_DIR = Path(__file__).resolve().parent / "data"
INSTRUCTIONS_FILE = DATA_DIR / "instructions.json"

LIBRARIES = tuple(LIBRARY_REGISTRY)
ISAS = ("cortex-m4", "cortex-m3", "cortex-m0plus")
OPT_LEVELS = ("O2", "Os", "O3")
OPS = ("conv", "dw", "fc", "max_pool", "avg_pool", "softmax", "add")
KERNELS = ("conv", "conv_1x1_fast", "conv_1x1", "dw_3x3", "dw_opt", "fc", "max_pool", "avg_pool", "softmax", "add")
FAMILY = {"conv": "conv", "conv_1x1_fast": "conv", "conv_1x1": "conv", "dw_3x3": "dw", "dw_opt": "dw",
          "fc": "fc", "max_pool": "pool", "avg_pool": "pool", "softmax": "softmax", "add": "add"}

_ARMV6M = ("cortex-m0", "cortex-m0plus", "cortex-m1", "cortex-m23")


def layer_calls(spec: ArchSpec) -> list[tuple[KernelCall, ...]]:
    """Per layer, the kernel calls model.c makes for it (its kind's `calls`)."""
    return [kind_of(layer).calls(layer, i, o) for layer, (i, o) in zip(spec.layers, spec.layer_shapes())]


def kernel_calls(spec: ArchSpec) -> list[KernelCall]:
    """Every kernel call of one inference, in order."""
    return [call for calls in layer_calls(spec) for call in calls]


@lru_cache(maxsize=1 << 16)
def _valid(n_out: int, size: int, k: int, stride: int, pad: int) -> tuple[int, int, int]:
    """(kernel taps inside the input summed over the outputs, outputs whose whole window is inside,
    outputs with exactly 3 taps inside: kernels unroll that common row length)."""
    total = full = three = 0
    for o in range(n_out):
        start = o * stride - pad
        v = min(size, start + k) - max(0, start)
        total += max(0, v)
        full += v == k
        three += v == 3
    return total, full, three


@lru_cache(maxsize=1 << 16)
def features(call: KernelCall) -> dict[str, float]:
    """Loop trip counts of the kernel family `call` dispatches to (see the module docstring); memoised
    (a search prices the same layers again and again), so callers must not modify the result."""
    family = FAMILY[dispatch(call)]
    if family == "softmax":
        return {"call": 1, "elem": call.cout}
    if family == "add":     # one loop over the elements, 4 at a time on DSP cores, then the rest
        n = call.h * call.w * call.cin
        return {"call": 1, "elem": n, "elem4": n // 4, "elem1": n % 4}
    if family == "fc":
        return _fc_features(call.cin, call.cout)
    g = _Geometry(call)
    return {"pool": _pool_features, "dw": _dw_features, "conv": _conv_features}[family](call, g)


@dataclass(frozen=True)
class _Geometry:
    """Counts every spatial kernel family uses: output pixels P, taps T, taps inside the input V
    (= vy * vx, summed per axis), outputs whose window is wholly inside F (= fy * fx), outputs with
    exactly three columns inside (x3)."""

    P: int
    T: int
    vy: int
    vx: int
    fy: int
    fx: int
    x3: int

    def __init__(self, call: KernelCall):
        vy, fy, _ = _valid(call.oh, call.h, call.kh, call.sh, call.ph)
        vx, fx, x3 = _valid(call.ow, call.w, call.kw, call.sw, call.pw)
        for k, v in dict(P=call.oh * call.ow, T=call.kh * call.kw, vy=vy, vx=vx, fy=fy, fx=fx, x3=x3).items():
            object.__setattr__(self, k, v)

    @property
    def V(self) -> int:
        return self.vy * self.vx

    @property
    def F(self) -> int:
        return self.fy * self.fx


def _fc_features(K: int, N: int) -> dict[str, float]:
    f = {"call": 1, "row": N, "mac": N * K}
    f.update(_depth_loops("depth", 1, K, (4, 16)))
    f.update(_depth_loops("row2", N // 2, K, (4, 16)))
    f.update(_depth_loops("row1", N % 2, K, (4, 16)))
    f.update({"row3": N // 3, "row3_k": (N // 3) * K, "row3r": N % 3, "row3r_k": (N % 3) * K})
    return f


def _pool_features(call: KernelCall, g: _Geometry) -> dict[str, float]:
    P, T, C = g.P, g.T, call.cout
    c4, c4r = C // 4, C % 4
    f = {"call": 1, "row": call.oh, "pixel": P, "tap": P * T, "krow": P * call.kh, "out": P * C,
         "c4": P * c4, "cr": P * c4r, "tap_c": P * T * C, "tap_c4": P * T * c4, "tap_cr": P * T * c4r,
         "cmp4": P * (T - 1) * c4, "cmp1": P * (T - 1) * c4r, "clamp4": P * C // 4, "clamp1": P * C % 4,
         "krow_c": P * call.kh * C, "channel": C}
    f.update(_copy_loops("copy", P, C))
    return f


def _dw_features(call: KernelCall, g: _Geometry) -> dict[str, float]:
    P, T, V, F, vy, x3, C, ow = g.P, g.T, g.V, g.F, g.vy, g.x3, call.cout, call.ow
    c4, c4r = C // 4, C % 4
    ypad = sum(1 for oy in range(call.oh) if oy * call.sh - call.ph < 0) + \
        sum(1 for oy in range(call.oh) if oy * call.sh - call.ph + call.kh > call.h)
    xpad = vy * ow * call.kw - V        # padded columns inside the rows that are not padding
    f = {"call": 1, "row": call.oh, "pixel": P, "border_pixel": P - F, "tap": P * T, "tap_valid": V,
         "row_valid": vy * ow, "row_valid_c": vy * ow * C, "ypad_pixel": ypad * ow,
         "ypad_elem": (call.kh * call.oh - vy) * ow * call.kw * C, "xpad_tap": xpad, "xpad_elem": xpad * C,
         "elem": P * T * C, "elem_valid": V * C, "c4tap": P * T * c4, "crtap": P * T * c4r,
         "c4tap_valid": V * c4, "crtap_valid": V * c4r, "c4row_valid": vy * ow * c4,
         "crrow_valid": vy * ow * c4r, "c4row_x3": vy * x3 * c4, "c4row_nx3": vy * (ow - x3) * c4,
         "c4tap_nx3": (V - 3 * vy * x3) * c4, "c4t2": P * c4 * (T // 2), "c4t1": P * c4 * (T % 2),
         "c4": P * c4, "cr": P * c4r, "out": P * C, "border_out": (P - F) * C, "channel": C,
         "krow_c": P * call.kh * C, "kcol_c": vy * ow * call.kw * C}
    f.update(_copy_loops("copy", V, C))
    return f


def _conv_features(call: KernelCall, g: _Geometry) -> dict[str, float]:
    P, T, V, F, vy, C, cin = g.P, g.T, g.V, g.F, g.vy, call.cout, call.cin
    K = T * cin
    if dispatch(call) == "conv_1x1":      # one GEMM per output row (lhs = that row's pixels)
        m2, mr = call.oh * (call.ow // 2), call.oh * (call.ow % 2)
        rowsum = call.oh * (C // 2) * K
    else:                                  # one GEMM over all pixels, 2 at a time
        m2, mr = P // 2, P % 2
        rowsum = (C // 2) * K
    n2, nr = C // 2, C % 2
    f = {"call": 1, "row": call.oh, "pixel": P, "border_pixel": P - F, "tap": P * T, "tap_valid": V,
         "byte_valid": V * cin, "byte_pad": (P * T - V) * cin, "pair": m2, "rowsum": rowsum,
         "channel": C, "out": P * C, "dmac": C * V * cin, "dtap": C * V, "dkrow": P * C * call.kh,
         "dkcol": C * vy * call.ow * call.kw, "mn1_rows": nr * call.oh}
    # im2col per tap, and by kernel rows: a padding row is one fill, a row wholly inside one copy
    part_valid = vy * (g.vx - call.kw * g.fx)
    for prefix, calls, n in (("copy", V, cin), ("fill", P * T - V, cin),
                             ("rowfill", (call.kh * call.oh - vy) * call.ow, call.kw * cin),
                             ("rowcopy", vy * g.fx, call.kw * cin), ("partcopy", part_valid, cin),
                             ("partfill", vy * (call.ow - g.fx) * call.kw - part_valid, cin)):
        f.update(_copy_loops(prefix, calls, n))
    for prefix, outer, blocks in (("widen", P, (4,)), ("m2n2", m2 * n2, (4, 16)), ("m2n1", m2 * nr, (4,)),
                                  ("m1n2", mr * n2, (4, 16)), ("m1n", mr * C, (4,)), ("mn1", nr * P, (4,))):
        f.update(_depth_loops(prefix, outer, K, blocks))
    return f


def _depth_loops(prefix: str, outer: int, depth: int, blocks: tuple[int, ...]) -> dict[str, float]:
    """Trip counts of the loops over the accumulation depth run `outer` times: the outer count
    itself, then for blocks of 4 (and 16 then 4): the blocked loop, the element remainder loop, and
    whether each runs at all (a loop that runs costs its set-up; one that does not, a test)."""
    k4, kr = depth // 4, depth % 4
    f = {prefix: outer, f"{prefix}_k4": outer * k4, f"{prefix}_k1": outer * kr,
         f"{prefix}_k4on": outer * (k4 > 0), f"{prefix}_k1on": outer * (kr > 0)}
    if 16 in blocks:
        k16, k4r = depth // 16, (depth % 16) // 4
        f.update({f"{prefix}_k16": outer * k16, f"{prefix}_k4r": outer * k4r,
                  f"{prefix}_k16on": outer * (k16 > 0), f"{prefix}_k4ron": outer * (k4r > 0)})
    return f


def _copy_loops(prefix: str, calls: int, n: int) -> dict[str, float]:
    """`calls` copies (memcpy / memset / int8->int16 widening) of `n` elements each: newlib's and
    CMSIS-NN's copy loops move blocks of 16 and 4 and then single elements."""
    return {f"{prefix}_16": calls * (n // 16), f"{prefix}_4": calls * ((n % 16) // 4), f"{prefix}_1": calls * (n % 4),
            f"{prefix}_small": calls * (n < 8)}


def isa_for(core: str, dsp: bool) -> str:
    """The measured instruction set standing for a budget's core: DSP cores run CMSIS-NN's DSP paths
    (measured on cortex-m4), ARMv6-M cores Thumb-1 code (cortex-m0plus), the rest pure-C Thumb-2
    (cortex-m3; also the proxy for non-Arm cores such as xtensa, which no data here describes)."""
    if dsp:
        return "cortex-m4"
    return "cortex-m0plus" if core in _ARMV6M else "cortex-m3"


def config_key(library: str, isa: str, opt: str) -> str:
    return f"{library}/{isa}/{opt}"


@dataclass(frozen=True)
class InstructionModel:
    """Fitted coefficients of one (library, instruction set, optimisation level)."""

    key: str
    kernels: dict[str, dict[str, float]]
    glue: dict[str, float]
    path: str = str(INSTRUCTIONS_FILE)

    def kernel(self, call: KernelCall) -> float:
        return _predict(self.path, self.key, call)

    def layer(self, call: KernelCall) -> float:
        """Instructions of one layer of model.c: the kernel call and its glue."""
        return self.kernel(call) + self.glue["per_layer"][call.op]

    def network(self, calls: list[KernelCall]) -> float:
        return self.glue["per_invoke"] + sum(self.layer(c) for c in calls)


@lru_cache(maxsize=4)
def _load(path: str) -> dict:
    return json.loads(Path(path).read_text())


def instruction_data(path: str | Path = INSTRUCTIONS_FILE) -> dict:
    return _load(str(path))


@lru_cache(maxsize=1 << 16)
def _predict(path: str, key: str, call: KernelCall) -> float:
    coef = instruction_data(path)["configs"][key]["kernels"][dispatch(call)]["coefficients"]
    f = features(call)
    return sum(c * f.get(k, 0.0) for k, c in coef.items())


@lru_cache(maxsize=64)
def instruction_model(library: str, isa: str, opt: str, path: str | Path = INSTRUCTIONS_FILE) -> InstructionModel:
    key = config_key(library, isa, opt)
    cfg = instruction_data(path)["configs"].get(key)
    if cfg is None:
        raise KeyError(f"no instruction model for {key} in {path}")
    return InstructionModel(key, {k: v["coefficients"] for k, v in cfg["kernels"].items()}, cfg["glue"], str(path))
