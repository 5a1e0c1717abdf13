"""Exported models with random weights, built and run for a configuration: what the glue fit and the
whole-network benchmarks measure.

`random_model` quantises a network with randomised weights and BatchNorm statistics (calibrated on
random windows): instruction counts and code size do not depend on what the weights learnt.
`run_exported` writes its C (`nas.export.codegen`), links it for the configuration with the QEMU
harness (`nas.export.verify.build_m4`), runs one inference and returns the counts and the ELF's
FLASH split into the network's constants and the rest.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nas.arch.spec import ArchSpec
from nas.budget import Budget
from nas.calibrate import REPO

# the budgets whose `target.dsp` matches each instruction set (the arena and scratch depend on it)
_BUDGET = {"cortex-m4": "stm32l476.yaml", "cortex-m3": "rp2040.yaml", "cortex-m0plus": "rp2040.yaml"}


def budget_for(isa: str) -> Budget:
    return Budget.load(REPO / "budgets" / _BUDGET[isa])


def random_net(spec: ArchSpec, seed: int):
    """The float network of `spec` with seeded random weights and BatchNorm statistics far from the
    identity, so folding and quantisation meet realistic ranges (eval mode)."""
    import torch

    from nas.arch.net import build

    torch.manual_seed(seed)
    net = build(spec)
    for mod in net.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.3, 0.3)
            mod.running_var.uniform_(0.3, 3.0)
            mod.weight.data.uniform_(0.5, 2.0)
            mod.bias.data.uniform_(-0.5, 0.5)
    return net.eval()


def random_model(spec: ArchSpec, seed: int, calibration: int = 64):
    import torch

    from nas.quant import quantize as Q

    net = random_net(spec, seed)
    fe = spec.frontend
    return Q.quantize(net, (0.0, 1.0), torch.randn(calibration, 1, fe.frames, fe.n_mels))


@dataclass
class ExportRun:
    instructions: int        # one inference, nas_model_invoke
    flash_bytes: int         # whole ELF
    const_bytes: int         # nas_w_* symbols (the network's constants)
    scores_match: bool       # Cortex-M scores == the integer reference
    elf: Path


def write_c(qm, isa: str, folder: Path, x_int8: np.ndarray, opt: str | None = None) -> None:
    """model.c and the build files of `qm`, its kernels chosen for `isa` at `opt` (default the budget's
    level: the choice between a library's kernel and an own one may differ between levels)."""
    import dataclasses

    from nas.cost import analytic as costmodel
    from nas.export import codegen
    from nas.quant.quantize import run_int8

    budget = budget_for(isa)
    if opt:
        budget = dataclasses.replace(budget, target=dataclasses.replace(budget.target, opt_level=opt))
    cost = costmodel.estimate(qm.spec, budget)
    codegen.write_model_c(qm, cost, folder, selftest=(x_int8[0], run_int8(qm, x_int8[:1])[0]))
    codegen.write_build_files(folder)


def run_exported(qm, lib: str, root: str | None, isa: str, opt: str, folder: Path, x_int8: np.ndarray) -> ExportRun:
    """Build model.c in `folder` (written by `write_c`) for (lib, isa, opt), run one window."""
    from nas.export import qemu, verify
    from nas.export.codegen import WEIGHT_SYMBOL_PREFIX
    from nas.quant.quantize import run_int8

    elf = verify.build_m4(folder, folder / f"m_{lib}_{isa}_{opt}", root if lib == "cmsis-nn" else None,
                          max_inputs=1, name="firmware", options=qemu.BuildOptions.for_core(isa, opt))
    run = verify.run_m4(elf, x_int8[:1], qm.num_classes)
    syms = verify.elf_symbols(elf)
    consts = sum(v for k, v in syms.items() if k.startswith(WEIGHT_SYMBOL_PREFIX))
    return ExportRun(int(run.insn[0]), qemu.elf_sizes(elf)["flash"], consts,
                     bool((run.scores == run_int8(qm, x_int8[:1])).all()), elf)
