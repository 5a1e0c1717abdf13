"""One spec on one core: instructions per layer, per window and of the front-end per second, and the
FLASH of the code it links, from the measured data (`cpu`, `codesize`, `frontend`); `nas.cost.analytic`
adds it to the exact int8 cost."""
from __future__ import annotations

from dataclasses import dataclass

from nas.arch.spec import ArchSpec
from nas.cost import codesize, cpu, frontend, kernel_choice
from nas.cost.kernel_choice import Choice


@dataclass(frozen=True)
class ChipCost:
    """What `chip_cost` measured for one spec: per-layer instructions, the front-end's, the code."""

    library: str
    isa: str                             # the measured instruction set standing for the core
    opt: str
    note: str                            # how the core relates to the measurement ("" when measured as is)
    kernels: tuple[str, ...]             # the kernel each layer runs (`kernel_choice`)
    layer_instructions: tuple[float, ...]   # per layer: kernel + generated glue
    invoke_instructions: float           # nas_model_invoke's own, once per window
    frontend_instructions_per_frame: float
    frontend_instructions_per_second: float
    kernel_code_bytes: int
    glue_bytes: int
    frontend_code_bytes: int
    choices: tuple[Choice, ...] = ()     # per layer: the library's kernel or an own one, and its scratch
    kernel_code_beside_harness: int = 0  # the kernel code the QEMU check's ELF adds to its harness

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
              own: bool | tuple[str | None, ...] = True) -> ChipCost:
    """Instructions and code of `spec` with `library`'s kernels built at `opt` for `core`, each layer on
    the fastest kernel (`own`=True), the library's only (False), or the own kernel named per layer;
    `mel_nonzeros` is the front-end's non-zero mel weights (`nas.cost.analytic.mel_nonzeros`)."""
    isa = cpu.isa_for(core, dsp)
    calls = cpu.kernel_calls(spec)
    insn = cpu.instruction_model(library, isa, opt)
    sizes = codesize.codesize_model(library, isa, opt)
    if isinstance(own, tuple):
        choices = [kernel_choice.force(c, k) for c, k in zip(calls, own)]
    else:
        choices = [kernel_choice.choose(c, isa, opt, own) for c in calls]
    per_layer = insn.glue["per_layer"]
    fe_model = frontend.frontend_model(frontend.frontend_isa(isa, fpu), opt)
    fe, nnz = spec.frontend, mel_nonzeros
    return ChipCost(library=library, isa=isa, opt=opt, note=proxy_note(core, isa),
                    kernels=tuple(k.kernel for k in choices),
                    layer_instructions=tuple(kernel_choice.instructions(c, k, insn, isa, opt) + per_layer
                                             for c, k in zip(calls, choices)),
                    invoke_instructions=insn.glue["per_invoke"],
                    frontend_instructions_per_frame=fe_model.per_frame(fe, nnz),
                    frontend_instructions_per_second=fe_model.per_second(fe, nnz),
                    kernel_code_bytes=kernel_choice.code_bytes(calls, choices, sizes, isa, opt),
                    glue_bytes=sizes.glue_bytes(calls), frontend_code_bytes=fe_model.code(fe),
                    choices=tuple(choices),
                    kernel_code_beside_harness=kernel_choice.code_bytes(calls, choices, sizes, isa, opt, True))
