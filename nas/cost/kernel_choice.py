"""Per kernel call, the implementation with the fewest predicted instructions: the budget's library's
(CMSIS-NN's wrapper dispatch, or the portable kernels') or an add-on library's (`nas.libraries.ADDONS`:
the project's own kernels) that takes the call and whose instructions and code are measured for the
instruction set and optimisation level.

The decision compares with the budget's library (`deploy`: what the firmware links), also when a
cost is priced for another library (the portable kernels a check links on a PC), so a spec calls the
same kernels in every build of it; a call left to the library is priced with the library priced.

`nas.cost.chip` prices each layer with its choices (instructions, linked code) and `nas.cost.analytic`
sizes the arena with their scratch; the code generator calls the chosen `Kernel.function`s.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from nas.cost import nas_kernels
from nas.cost.codesize import CODESIZE_FILE, CodeSizeModel, codesize_data, codesize_model
from nas.cost.cpu import InstructionModel, config_key
from nas.kinds.base import KernelCall
from nas.libraries import ADDONS, Kernel, KernelLibrary


@dataclass(frozen=True)
class Choice:
    """The kernel one call runs: its library, the kernel (what model.c calls), its scratch buffer and
    its predicted instructions (without the generated code around it)."""

    library: str
    kernel: Kernel
    scratch_bytes: int
    instructions: float


def own_available(isa: str, opt: str) -> bool:
    """Whether the own kernels' instructions and code are both measured on (isa, opt)."""
    key = config_key(nas_kernels.LIBRARY, isa, opt)
    return bool(nas_kernels.measured(isa, opt)) and key in codesize_data(CODESIZE_FILE)["configs"]


def choose(call: KernelCall, lib: KernelLibrary, insn: InstructionModel, dsp: bool, isa: str, opt: str,
           own: bool = True, deploy: InstructionModel | None = None) -> Choice:
    """The kernel `call` runs: an add-on's (`own`) where its measured instructions are fewer than the
    deploy library's (`deploy`, default `insn`), else `lib`'s (priced by `insn`)."""
    best = Choice(lib.name, lib.kernel(call, dsp), lib.scratch_bytes(call, dsp), insn.kernel(call))
    addon = ADDONS[nas_kernels.LIBRARY]
    if own and addon.takes(call) and own_available(isa, opt):
        kernel = addon.kernel(call, dsp)
        n = nas_kernels.instructions(kernel.name, isa, opt, call)
        if n < (deploy or insn).kernel(call):
            best = Choice(addon.name, kernel, addon.scratch_bytes(call, dsp), n)
    return best


def code_bytes(calls: Sequence[KernelCall], choices: Sequence[Choice], sizes: CodeSizeModel, isa: str, opt: str,
               beside_harness: bool = False) -> int:
    """Code the model links: `sizes`' groups (its library's, per op) of the ops whose calls stay with the
    library and each add-on's of the kernels it runs, shared functions once (`beside_harness`: without
    those the QEMU harness links anyway)."""
    keys = set(sizes.kernel_symbols(c.op for c, k in zip(calls, choices) if k.library not in ADDONS))
    symbols = dict(sizes.symbols)
    for name in {k.library for k in choices if k.library in ADDONS}:
        mine = codesize_model(name, isa, opt)     # an add-on's groups are per kernel
        keys |= mine.kernel_symbols(k.kernel.name for k in choices if k.library == name)
        symbols.update(mine.symbols)
    if beside_harness:
        keys -= sizes.harness_symbols
    return sum(symbols[s] for s in keys)
