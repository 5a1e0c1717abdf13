"""Exact instruction counts of CMSIS-NN layer calls under QEMU, for many geometries.

`build_driver` links ``csrc/kernel_driver.c`` with a kernel library (a CMSIS-NN checkout's
`nas.libraries`: a CMSIS-NN checkout or the portable kernels, and the add-on libraries beside it: the
own kernels, library 'nas', are measured beside the portable ones) for one instruction set and
optimisation level; `count` runs a list of `KernelCall`s through it, through the library's wrappers or
one of the own kernels (``-icount shift=0``: one SysTick tick per 40
instructions, deterministic, so one run per geometry suffices). `space_calls` and `random_calls` are
the geometries measured: the layers of random networks of a search space, and random layers around
them so that every kernel's fit sees channel counts of every alignment, strides, paddings and sizes.
"""
from __future__ import annotations

import os
import random
import struct
from pathlib import Path
from typing import Iterable, Sequence

from nas.cost.cpu import KernelCall, dispatch, kernel_calls
from nas.export import qemu
from nas.libraries import ADDONS, addon_sources, library

DRIVER_C = Path(__file__).resolve().parent / "csrc" / "kernel_driver.c"
OP_CODES = {"conv": 1, "dw": 2, "fc": 3, "max_pool": 4, "avg_pool": 5, "softmax": 6, "add": 7}
OWN_OP_CODES = {"nas_conv_c1": 8, "nas_dw": 9, "nas_conv_1x1": 10}      # kernel_driver.c's codes of the own kernels
MAGIC = 0x544E434B  # "KCNT"
# kernel_driver.c buffer capacities (bytes / channels)
ACT_CAP, W_CAP, SCRATCH_CAP, CH_CAP = 384 * 1024, 2 * 1024 * 1024, 128 * 1024, 4096
SOFTMAX_PARAMS = (1717986944, 23, -248)   # intref.softmax_params(0.1): a valid (mult, shift, diff_min)


def build_driver(name: str, root: str | os.PathLike | None, isa: str, opt: str, work: str | os.PathLike) -> Path:
    """The kernel driver linked with library `name` (`root`: its checkout, where it needs one) and the
    add-ons; an add-on's name builds it beside the portable kernels."""
    lib = library("portable" if name in ADDONS else name)
    srcs, incs = lib.sources(root)
    own_srcs, own_incs = addon_sources()
    options = qemu.BuildOptions(opt=f"-{opt}", cpu_flags=lib.cpu_flags(isa), cached=srcs + own_srcs)
    return qemu.build_elf([DRIVER_C], incs + own_incs, Path(work), name=f"kernels_{name}_{isa}_{opt}",
                          options=options)


def fits_driver(call: KernelCall) -> bool:
    """Whether kernel_driver.c's static buffers hold the call's tensors."""
    weights = {"conv": call.cout * call.kh * call.kw * call.cin, "dw": call.kh * call.kw * call.cout,
               "fc": call.cin * call.cout}.get(call.op, 0)
    scratch = 4 * call.kh * call.kw * call.cin + 4 * call.cin
    return (call.h * call.w * call.cin <= ACT_CAP and call.oh * call.ow * call.cout <= ACT_CAP
            and weights <= W_CAP and scratch <= SCRATCH_CAP and call.cout <= CH_CAP)


def _params(call: KernelCall) -> list[int]:
    if call.op in ("conv", "dw"):
        return [call.h, call.w, call.cin, call.cout, call.kh, call.kw, call.sh, call.sw, call.ph, call.pw,
                call.oh, call.ow, 128, -128, -128, 127]
    if call.op == "fc":
        return [call.cin, call.cout, 128, -128, -128, 127]
    if call.op in ("max_pool", "avg_pool"):
        return [call.h, call.w, call.cin, call.kh, call.kw, call.sh, call.sw, call.oh, call.ow, -128, 127]
    if call.op == "add":
        return [call.h * call.w * call.cin, 3, -5, 2, -128, 127]
    return [call.cout, *SOFTMAX_PARAMS]


def encode(calls: Sequence[KernelCall], reps: Sequence[int], own: str | None = None) -> bytes:
    """The driver's input: every call through the library's wrappers, or through the own kernel `own`."""
    words = [MAGIC, len(calls)]
    for c, r in zip(calls, reps):
        p = _params(c)
        words += [OWN_OP_CODES[own] if own else OP_CODES[c.op], r, len(p), *p]
    return struct.pack(f"<{len(words)}i", *words)


def _run(elf, calls: Sequence[KernelCall], reps: Sequence[int], chunk: int, timeout: float,
         own: str | None = None) -> list[int]:
    out: list[int] = []
    for i in range(0, len(calls), chunk):
        part, part_reps = list(calls[i:i + chunk]), list(reps[i:i + chunk])
        text, code = qemu.run_elf(elf, encode(part, part_reps, own), timeout=timeout)
        tags = qemu.parse_tagged(text)
        if code != 0 or tags.get("done", {}).get("cases") != len(part):
            raise RuntimeError(f"kernel driver exited {code}; output tail:\n{text[-1500:]}")
        for j, c in enumerate(part):
            if tags["status"][str(j)] != 0:
                raise RuntimeError(f"{c}: CMSIS-NN status {tags['status'][str(j)]}")
            out.append(int(tags["insn"][str(j)]))
    return out


def count(elf: str | os.PathLike, calls: Sequence[KernelCall], chunk: int = 48, timeout: float = 600.0,
          min_total: int = 40_000, own: str | None = None) -> list[float]:
    """Instructions of each call (get-buffer-size + wrapper, as model.c runs them; or the own kernel
    `own` and its size function). Calls shorter than `min_total` are run again, repeated until they
    reach it, so the 40-instruction SysTick step is at most 0.1 % of what is reported. Raises on a
    non-zero status or a QEMU failure."""
    first = _run(elf, calls, [1] * len(calls), chunk, timeout, own)
    short = [i for i, n in enumerate(first) if n < min_total]
    reps = [-(-min_total // max(first[i], 40)) for i in short]
    again = _run(elf, [calls[i] for i in short], reps, chunk, timeout, own)
    out = [float(n) for n in first]
    for i, r, n in zip(short, reps, again):
        out[i] = n / r
    return out


def _unique(calls: Iterable[KernelCall]) -> list[KernelCall]:
    seen: dict[KernelCall, None] = {}
    for c in calls:
        if fits_driver(c):
            seen.setdefault(c, None)
    return list(seen)


def space_calls(space, seeds: Iterable[int]) -> list[KernelCall]:
    """The distinct layer calls of the networks `space.sample(random.Random(seed))` builds."""
    from nas.arch.space import InvalidArchitecture

    calls = []
    for seed in seeds:
        try:
            spec = space.build(space.sample(random.Random(seed)))
        except InvalidArchitecture:
            continue
        calls += kernel_calls(spec)
    return _unique(calls)


def _out(size: int, k: int, s: int, p: int) -> int:
    return (size + 2 * p - k) // s + 1


def _conv_like(rng: random.Random, op: str, strided_1x1: bool = False) -> KernelCall | None:
    if strided_1x1:
        h, w, cin, cout = rng.randint(2, 40), rng.randint(2, 60), rng.randint(1, 96), rng.randint(1, 96)
        sh, sw = rng.choice([(2, 2), (1, 2), (2, 1), (3, 3)])
        return KernelCall("conv", h, w, cin, cout, 1, 1, sh, sw, 0, 0, _out(h, 1, sh, 0), _out(w, 1, sw, 0))
    if op == "conv":
        kernel = rng.choice([(1, 1), (1, 1), (3, 3), (3, 3), (5, 5), (5, 5), (3, 1), (1, 3), (5, 3), (7, 7)])
        cin = rng.choice([1, 1, 2, 3, rng.randint(1, 16), rng.randint(4, 96)])
        cout = rng.randint(1, 96)
    else:
        kernel = rng.choice([(3, 3), (3, 3), (5, 5), (5, 5), (3, 5), (5, 3), (7, 7), (1, 1)])
        cin = cout = rng.randint(1, 128)
    stride = rng.choice([(1, 1), (1, 1), (2, 2), (2, 2), (1, 2), (2, 1)])
    if kernel == (1, 1) and op == "conv" and rng.random() < 0.6:
        stride = (1, 1)
    same = rng.random() < 0.6
    ph, pw = ((kernel[0] - 1) // 2, (kernel[1] - 1) // 2) if same else (0, 0)
    if not same and rng.random() < 0.15:
        ph, pw = min(1, kernel[0] - 1), min(1, kernel[1] - 1)     # asymmetric/partial padding
    h, w = rng.randint(max(1, kernel[0] - 2 * ph), 48), rng.randint(max(1, kernel[1] - 2 * pw), 64)
    if rng.random() < 0.4:      # downsampled to a few rows or columns, as deep layers are
        if rng.random() < 0.6:
            w = rng.randint(max(1, kernel[1] - 2 * pw), max(1, kernel[1] - 2 * pw) + 1)
        else:
            h = rng.randint(max(1, kernel[0] - 2 * ph), max(1, kernel[0] - 2 * ph) + 1)
    oh, ow = _out(h, kernel[0], stride[0], ph), _out(w, kernel[1], stride[1], pw)
    if oh < 1 or ow < 1:
        return None
    call = KernelCall(op, h, w, cin, cout, *kernel, *stride, ph, pw, oh, ow)
    return call if call.macs <= 3_000_000 else None


def random_calls(seed: int, n: int) -> list[KernelCall]:
    """`n` random layer calls (before de-duplication) covering every kernel the wrappers dispatch to."""
    rng = random.Random(seed)
    calls: list[KernelCall] = []
    while len(calls) < n:
        r = rng.random()
        if r < 0.04:
            c = _conv_like(rng, "conv", strided_1x1=True)
        elif r < 0.35:
            c = _conv_like(rng, "conv")
        elif r < 0.65:
            c = _conv_like(rng, "dw")
        elif r < 0.78:
            k = rng.randint(1, 12000) if rng.random() < 0.5 else rng.randint(1, 300)
            c = KernelCall("fc", 1, 1, k, rng.randint(1, 200))
        elif r < 0.95:
            op = rng.choice(["max_pool", "avg_pool"])
            h, w, ch = rng.randint(2, 40), rng.randint(2, 60), rng.randint(1, 96)
            if op == "avg_pool" and rng.random() < 0.5:
                c = KernelCall(op, h, w, ch, ch, h, w, 1, 1, 0, 0, 1, 1)
            else:
                kh, kw = rng.choice([(2, 2), (2, 3), (3, 2), (3, 3), (2, 1)])
                if kh > h or kw > w:
                    continue
                c = KernelCall(op, h, w, ch, ch, kh, kw, kh, kw, 0, 0, _out(h, kh, kh, 0), _out(w, kw, kw, 0))
        else:
            n_cls = rng.randint(2, 64)
            c = KernelCall("softmax", 1, 1, n_cls, n_cls)
        if c is not None and fits_driver(c):
            dispatch(c)
            calls.append(c)
    return calls + add_calls(random.Random(f"{seed}-add"), n // 10)


def add_calls(rng: random.Random, n: int) -> list[KernelCall]:
    """`n` element-wise adds of residual-like tensors (drawn apart, so the other ops' calls stay as they were)."""
    calls = []
    for _ in range(n):
        h, w, ch = rng.randint(1, 40), rng.randint(1, 60), rng.choice([rng.randint(1, 8), rng.randint(8, 96)])
        calls.append(KernelCall("add", h, w, ch, ch, oh=h, ow=w))
    return calls
