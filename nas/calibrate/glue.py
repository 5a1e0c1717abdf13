"""The generated code's own cost: instructions and FLASH of model.c beyond the CMSIS-NN calls.

On `GLUE_SPECS` (random default-space networks with every layer kind among them, small enough to
build fast) exported with random weights, per configuration:

* instructions: one inference of model.c linked against `STUB_KERNELS_C` (every CMSIS-NN function
  and own kernel it calls returns at once) = per_invoke + sum of per_layer[op] over its kernel calls, non-negative
  least squares (exact counts, so the fit is exact up to a few instructions of immediate-encoding
  differences);
* FLASH: the ELF minus the harness, the network constants (+ their alignment padding) and the
  measured kernel code = per_invoke + sum of per_layer[op], least squares; ``margin`` = the largest positive residual, so
  that the estimate bounds every measured model.
"""
from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
from scipy.optimize import nnls

from nas.calibrate import DEFAULT_SPACE, models
from nas.cost import cpu, kernel_choice
from nas.cost.codesize import CodeSizeModel, weight_padding
from nas.libraries import DEFAULT, addon_sources, library
from nas.libraries.cmsis_nn import PORTABLE_DIR

GLUE_SEEDS = range(20_000, 20_400)

# The entry points model.c calls, doing nothing: what is left of an inference is the generated code.
_CONV = ("const cmsis_nn_context *", "const cmsis_nn_{p}_params *", "const cmsis_nn_{q}_quant_params *",
         "const cmsis_nn_dims *", "const int8_t *", "const cmsis_nn_dims *", "const int8_t *",
         "const cmsis_nn_dims *", "const int32_t *", "const cmsis_nn_dims *", "int8_t *")
_SIZE = ("const cmsis_nn_{p}_params *", "const cmsis_nn_dims *", "const cmsis_nn_dims *", "const cmsis_nn_dims *")
_POOL = ("const cmsis_nn_context *", "const cmsis_nn_pool_params *", "const cmsis_nn_dims *", "const int8_t *",
         "const cmsis_nn_dims *", "const cmsis_nn_dims *", "int8_t *")
_STATUS, _SIZE_T = "arm_cmsis_nn_status", "int32_t"
_STUBS = (   # (return type, function, parameter types)
    *((ret, f"{fn}{suffix}", tuple(t.format(p=p, q="per_channel") for t in types))
      for fn, p in (("nas_convolve_c1_s8", "conv"), ("nas_depthwise_conv_s8", "dw_conv"),
                    ("nas_convolve_1x1_s8", "conv"), ("arm_convolve_wrapper_s8", "conv"),
                    ("arm_depthwise_conv_wrapper_s8", "dw_conv"))
      for ret, suffix, types in ((_STATUS, "", _CONV), (_SIZE_T, "_get_buffer_size", _SIZE))),
    (_STATUS, "arm_fully_connected_s8", tuple(t.format(p="fc", q="per_tensor") for t in _CONV)),
    (_SIZE_T, "arm_fully_connected_s8_get_buffer_size", ("const cmsis_nn_dims *",)),
    (_STATUS, "arm_max_pool_s8", _POOL),
    (_STATUS, "arm_avgpool_s8", _POOL),
    (_SIZE_T, "arm_avgpool_s8_get_buffer_size", ("const int ",) * 2),
    ("void", "arm_softmax_s8", ("const int8_t *", *("const int32_t ",) * 5, "int8_t *")),
    (_STATUS, "arm_elementwise_add_s8", ("const int8_t *",) * 2 + ("const int32_t ",) * 7 + ("int8_t *",)
     + ("const int32_t ",) * 6),
)
_RETURNS = {_STATUS: " return ARM_CMSIS_NN_SUCCESS;", _SIZE_T: " return 0;", "void": ""}


def _stub(ret: str, name: str, types: tuple[str, ...]) -> str:
    args = "abcdefghijklmnop"[:len(types)]
    params = ", ".join(f"{t}{a}" for t, a in zip(types, args))
    unused = " ".join(f"NAS_UNUSED({a});" for a in args)
    return f"{ret} {name}({params})\n{{ {unused}{_RETURNS[ret]} }}\n"


STUB_KERNELS_C = ('#include "arm_nnfunctions.h"\n#include "nas_kernels.h"\n#define NAS_UNUSED(x) (void)(x)\n'
                  + "".join(_stub(*s) for s in _STUBS))

GLUE_NETWORKS = 14
MAX_NETWORK_FLASH = 60_000


def glue_specs():
    """Small random networks of the default space until every op appears at least twice (sized by their
    constants alone: the glue being measured is part of the full cost)."""
    from nas.arch.space import InvalidArchitecture, SearchSpace
    from nas.kinds import kind_of

    space = SearchSpace.load(DEFAULT_SPACE)
    specs, seen = [], Counter()
    for seed in GLUE_SEEDS:
        try:
            spec = space.build(space.sample(random.Random(seed)), name=f"glue{seed}")
        except InvalidArchitecture:
            continue
        if sum(kind_of(layer).constants(layer, i, o).flash_bytes
               for layer, (i, o) in zip(spec.layers, spec.layer_shapes())) > MAX_NETWORK_FLASH:
            continue
        ops = Counter(c.op for c in cpu.kernel_calls(spec))
        if len(specs) >= GLUE_NETWORKS and all(seen[op] >= 2 for op in library(DEFAULT).ops):
            break
        if len(specs) < GLUE_NETWORKS or any(seen[op] < 2 for op in ops):
            specs.append(spec)
            seen.update(ops.keys())
    return specs


GLUE_REPEATS = 64      # inferences averaged: each is timed to the 40-instruction SysTick step


def _glue_instructions(folder: Path, work: Path, isa: str, opt: str, x: np.ndarray, classes: int) -> float:
    """Mean instructions of an inference of model.c with every kernel a stub: the generated code's own."""
    from nas.export import qemu, verify

    stub = work / "glue" / "stub_kernels.c"
    stub.write_text(STUB_KERNELS_C)
    elf = qemu.build_elf([folder / "model.c", verify.DRIVER_C, stub], [folder, PORTABLE_DIR, *addon_sources()[1]],
                         folder / f"stub_{isa}_{opt}", {"NAS_DRIVER_QEMU": None, "NAS_DRIVER_MAX_INPUTS": GLUE_REPEATS},
                         name="stub", options=qemu.BuildOptions.for_core(isa, opt))
    return float(verify.run_m4(elf, np.repeat(x, GLUE_REPEATS, axis=0), classes).insn.mean())


def _exports(cfg, roots, work: Path) -> list[tuple[list[cpu.KernelCall], "models.ExportRun", float]]:
    """(calls, export run, glue instructions) per glue network, from the cache or QEMU."""
    lib, isa, opt = cfg
    cache = work / "records" / f"glue_{lib}_{isa}_{opt}.json"
    specs = glue_specs()
    if cache.is_file():
        rows = json.loads(cache.read_text())
        if [r["network"] for r in rows] == [s.name for s in specs]:
            return [(cpu.kernel_calls(s), models.ExportRun(r["instructions"], r["flash"], r["const"], True, Path()),
                     r["glue"]) for s, r in zip(specs, rows)]
    out = _export_all(cfg, roots, work, specs)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps([{"network": s.name, "instructions": run.instructions, "flash": run.flash_bytes,
                                  "const": run.const_bytes, "glue": glue} for s, (_, run, glue) in zip(specs, out)]))
    return out


def _export_all(cfg, roots, work: Path, specs) -> list[tuple[list[cpu.KernelCall], "models.ExportRun", float]]:
    lib, isa, opt = cfg
    out = []
    for k, spec in enumerate(specs):
        folder = work / "glue" / ("dsp" if isa == "cortex-m4" else "nodsp") / spec.name
        fe = spec.frontend
        x = np.random.default_rng(k).integers(-128, 128, size=(1, fe.frames, fe.n_mels)).astype(np.int8)
        qm = models.random_model(spec, k)
        if not (folder / "model.c").is_file():
            folder.mkdir(parents=True, exist_ok=True)
            models.write_c(qm, isa, folder, x)
        run = models.run_exported(qm, lib, roots[lib], isa, opt, folder, x)
        if not run.scores_match:
            raise RuntimeError(f"{spec.name} on {cpu.config_key(*cfg)}: scores differ from the integer reference")
        out.append((cpu.kernel_calls(spec), run, _glue_instructions(folder, work, isa, opt, x, qm.num_classes)))
    return out


def _written_choices(calls, isa: str) -> list:
    """The kernels model.c calls: those `models.write_c` priced (its budget's library, level and core)."""
    t = models.budget_for(isa).target
    insn = cpu.instruction_model(t.library, isa, t.opt_level)
    return [kernel_choice.choose(c, library(t.library), insn, t.dsp, isa, t.opt_level) for c in calls]


def measure(cfg, roots, work: Path, sizes: CodeSizeModel) -> tuple[dict, dict]:
    """(instruction glue, FLASH glue) of one configuration."""
    rows = _exports(cfg, roots, work)
    insn = np.array([glue for _, _, glue in rows], dtype=float)
    ops = list(library(DEFAULT).ops)
    counts = np.array([[sum(c.op == op for c in calls) for op in ops] for calls, _, _ in rows], dtype=float)
    a = np.concatenate([np.ones((len(rows), 1)), counts], axis=1)
    insn_coef, _ = nnls(a, insn)      # instructions the code executes: never negative
    _, isa, opt = cfg
    rest = np.array([run.flash_bytes - sizes.harness_bytes - run.const_bytes - weight_padding(calls)
                     - kernel_choice.code_bytes(calls, _written_choices(calls, isa), sizes, isa, opt, True)
                     for calls, run, _ in rows], dtype=float)
    x = np.concatenate([np.ones((len(rows), 1)), counts], axis=1)
    coef, *_ = np.linalg.lstsq(x, rest, rcond=None)
    resid = rest - x @ coef
    insn_glue = {"per_invoke": round(float(insn_coef[0]), 1),
                 "per_layer": {op: round(float(v), 1) for op, v in zip(ops, insn_coef[1:])},
                 "networks": len(rows), "max_abs_residual": round(float(np.abs(insn - a @ insn_coef).max()), 1)}
    flash_glue = {"per_invoke": round(float(coef[0]), 1),
                  "per_layer": {op: round(float(v), 1) for op, v in zip(ops, coef[1:])},
                  "margin": round(float(max(0.0, resid.max())), 1), "networks": len(rows)}
    return insn_glue, flash_glue
