"""Per layer, the implementation with the fewest predicted instructions: the kernel library's (the
kernel its wrapper dispatches to) or one of the project's own kernels (`nas_kernels`) that takes
the call, when both its instructions and its code are measured for the instruction set and
optimisation level.

The decision compares with CMSIS-NN's prediction (the library the firmware deploys with), so a
spec gets the same kernels whichever library a build links (the portable kernels on a PC, for the
checks); the instructions of a layer left to the library are that library's. Used by
`nas.cost.chip` (instructions, code, and the scratch the arena holds) and, through the cost, by the
code generator (which function model.c calls). To be moved behind the kernel-library seam.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from nas.cost import nas_kernels
from nas.cost.codesize import CODESIZE_FILE, CodeSizeModel, codesize_data, codesize_model
from nas.cost.cpu import InstructionModel, KernelCall, config_key, dispatch, instruction_model

DEPLOY_LIBRARY = "cmsis-nn"


@dataclass(frozen=True)
class Choice:
    """The implementation of one layer: an own kernel (its C function) or the library's wrapper."""

    kernel: str                      # own kernel name, or the library kernel (`cpu.dispatch`)
    function: str | None = None      # own kernel: the C entry point and its size function
    size_function: str | None = None
    scratch_bytes: int | None = None  # own kernel: its scratch (None: the library's)

    @property
    def own(self) -> bool:
        return self.function is not None


def own_available(isa: str, opt: str) -> list[str]:
    """The own kernels whose instructions and code are both measured on (isa, opt)."""
    sizes = codesize_data(CODESIZE_FILE)["configs"].get(config_key(nas_kernels.LIBRARY, isa, opt), {})
    return [k for k in nas_kernels.measured(isa, opt) if k in sizes.get("groups", {})]


def choose(call: KernelCall, isa: str, opt: str, own: bool = True) -> Choice:
    """The kernel with the fewest predicted instructions for `call` (compared with CMSIS-NN)."""
    best, best_n = Choice(dispatch(call)), None
    if not own:
        return best
    available = own_available(isa, opt)
    for k in nas_kernels.candidates(call):
        if k.name not in available:
            continue
        n = nas_kernels.instructions(k.name, isa, opt, call)
        if best_n is None:
            best_n = instruction_model(DEPLOY_LIBRARY, isa, opt).kernel(call)
        if n < best_n:
            best, best_n = Choice(k.name, k.function, k.size_function, k.scratch_bytes(call)), n
    return best


def force(call: KernelCall, kernel: str | None) -> Choice:
    """The choice naming own kernel `kernel` (None: the library's)."""
    if not kernel:
        return Choice(dispatch(call))
    k = nas_kernels.KERNELS[kernel]
    if not k.applies(call):
        raise ValueError(f"{kernel} does not take {call}")
    return Choice(k.name, k.function, k.size_function, k.scratch_bytes(call))


def instructions(call: KernelCall, choice: Choice, library: InstructionModel, isa: str, opt: str) -> float:
    """Predicted instructions of the layer's kernel call (without the generated code around it)."""
    if choice.own:
        return nas_kernels.instructions(choice.kernel, isa, opt, call)
    return library.kernel(call)


def code_bytes(calls: Sequence[KernelCall], choices: Sequence[Choice], library: CodeSizeModel, isa: str, opt: str,
               beside_harness: bool = False) -> int:
    """Code the model links: the library's entry-point groups of the ops it still calls, the own
    kernels' groups, shared functions once (`beside_harness`: without those the QEMU harness links)."""
    keys = set(library.kernel_symbols(c.op for c, k in zip(calls, choices) if not k.own))
    symbols = dict(library.symbols)
    own_kernels = {k.kernel for k in choices if k.own}
    if own_kernels:
        mine = codesize_model(nas_kernels.LIBRARY, isa, opt)
        keys |= set().union(*(set(mine.groups[k]) for k in own_kernels))
        symbols.update(mine.symbols)
    if beside_harness:
        keys -= library.harness_symbols
    return sum(symbols[s] for s in keys)
