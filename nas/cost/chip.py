"""One spec on one core: instructions per layer, per window and of the front-end per second, and the
FLASH of the code it links, from the measured data (`cpu`, `codesize`, `frontend`); `nas.cost.analytic`
adds it to the exact int8 cost."""
from __future__ import annotations

from dataclasses import dataclass

from nas.arch.spec import ArchSpec
from nas.cost import codesize, cpu, frontend, kernel_choice
from nas.cost.kernel_choice import Choice
from nas.libraries import Kernel, library as kernel_library


@dataclass(frozen=True)
class ChipCost:
    """What `chip_cost` measured for one spec: per-layer instructions, the front-end's, the code."""

    library: str
    isa: str                             # the measured instruction set standing for the core
    opt: str
    note: str                            # how the core relates to the measurement ("" when measured as is)
    kernels: tuple[tuple[Kernel, ...], ...]   # per layer, the kernel of each of its calls (`kernel_choice`)
    layer_instructions: tuple[float, ...]   # per layer: its kernels + generated glue
    invoke_instructions: float           # nas_model_invoke's own, once per window
    frontend_instructions_per_frame: float
    frontend_instructions_per_second: float
    kernel_code_bytes: int
    glue_bytes: int
    frontend_code_bytes: int
    choices: tuple[tuple[Choice, ...], ...] = ()   # per layer and call: library, kernel, scratch, instructions
    kernel_code_beside_harness: int = 0  # the kernel code the QEMU check's ELF adds to its harness

    @property
    def unmeasured_core(self) -> bool:
        """No library here is measured on the budget's core (not an Arm Cortex-M): its instructions and
        code size are another instruction set's, a proxy the cost output must say it uses."""
        return "not an Arm core" in self.note

    @property
    def instructions_per_window(self) -> float:
        return self.invoke_instructions + sum(self.layer_instructions)


def proxy_note(core: str, isa: str) -> str:
    """'' when `core` is the measured instruction set itself, else how it is priced."""
    if core == isa:
        return ""
    if core.startswith("cortex-m"):
        return f"{core} priced with the {isa} measurement (same kernels and instruction set family)"
    return f"{core} is not an Arm core: priced with the {isa} pure-C measurement as a proxy"


def chip_cost(spec: ArchSpec, core: str, dsp: bool, fpu: bool, opt: str, library: str, mel_nonzeros: int,
              own: bool = True, deploy: str | None = None) -> ChipCost:
    """Instructions and code of `spec` with `library`'s kernels built at `opt` for `core`, an add-on's
    where it is faster than `deploy`'s (default `library`; `own` False: `library`'s only);
    `mel_nonzeros` is the front-end's non-zero mel weights (`nas.cost.analytic.mel_nonzeros`)."""
    isa = cpu.isa_for(core, dsp)
    lib = kernel_library(library)
    per_layer = cpu.layer_calls(spec)
    calls = [c for layer in per_layer for c in layer]
    insn = cpu.instruction_model(library, isa, opt)
    sizes = codesize.codesize_model(library, isa, opt)
    ref = cpu.instruction_model(deploy, isa, opt) if deploy else insn
    choices = tuple(tuple(kernel_choice.choose(c, lib, insn, dsp, isa, opt, own, ref) for c in layer)
                    for layer in per_layer)
    flat = [k for layer in choices for k in layer]
    fe, nnz = spec.frontend, mel_nonzeros
    fe_model = frontend.frontend_model(frontend.frontend_isa(isa, fpu, fe.arithmetic), opt, arithmetic=fe.arithmetic)
    return ChipCost(library=library, isa=isa, opt=opt, note=proxy_note(core, isa),
                    kernels=tuple(tuple(k.kernel for k in layer) for layer in choices),
                    layer_instructions=tuple(sum(k.instructions + insn.glue["per_layer"][c.op] for c, k in zip(cs, ks))
                                             for cs, ks in zip(per_layer, choices)),
                    invoke_instructions=insn.glue["per_invoke"],
                    frontend_instructions_per_frame=fe_model.per_frame(fe, nnz),
                    frontend_instructions_per_second=fe_model.per_second(fe, nnz),
                    kernel_code_bytes=kernel_choice.code_bytes(calls, flat, sizes, isa, opt),
                    glue_bytes=sizes.glue_bytes(calls), frontend_code_bytes=fe_model.code(fe), choices=choices,
                    kernel_code_beside_harness=kernel_choice.code_bytes(calls, flat, sizes, isa, opt, True))
