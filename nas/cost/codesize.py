"""FLASH of the code a model links: measured per function from ELFs (``data/codesize.json``).

The generated model.c calls the kernel library's entry points of each op its layers use
(`KernelLibrary.entry_points`); the linker keeps each entry point and everything it can reach (every kernel its wrapper may dispatch to,
helpers, libc's memcpy/memset, compiler runtime on cores without a divider), whatever the layer's
geometry. The measurement links each group alone with ``--gc-sections`` and records the symbols it
pulls in with their sizes (rounded up to their section alignment), so a model's kernel code is the
size of the union of its groups' symbol sets: shared helpers count once, as in the linker's output.

The generated code itself (``nas_model_invoke`` and the kernel parameter structs) costs
``glue.per_invoke`` + ``glue.per_layer[op]`` bytes, fitted on exported models, plus the padding that
aligns the int32 arrays after each int8 weight array (the network's constants themselves are
`nas.cost`'s exact figure); ``glue.margin`` is the largest amount by which a measured model exceeded
the fit, `SECTION_SLACK` the alignment of the output sections and `LAYER_SLACK` per layer the
immediates whose encoding grows with the arena offsets, added so the estimate bounds the ELF.
``harness_bytes`` is the QEMU verification program around the model (startup, semihosting, driver),
which the exporter adds when it compares its ELF with the estimate; the library functions it links
itself (``harness_symbols``, e.g. libgcc's 64-bit arithmetic on ARMv6-M) are then not counted again.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable

from nas.cost.cpu import DATA_DIR, KernelCall, _load, config_key

CODESIZE_FILE = DATA_DIR / "codesize.json"
SECTION_SLACK = 8      # .text/.rodata/.data each end 4-byte aligned: at most 3 + 3 + 2 bytes of fill
LAYER_SLACK = 4        # a layer's arena offsets and sizes are Thumb immediates: 2 or 4 bytes each

@dataclass(frozen=True)
class CodeSizeModel:
    """Measured code sizes of one (library, instruction set, optimisation level)."""

    key: str
    symbols: dict[str, int]
    groups: dict[str, tuple[str, ...]]
    glue_per_invoke: float
    glue_per_layer: dict[str, float]
    glue_margin: float
    harness_bytes: int
    harness_symbols: frozenset[str] = frozenset()

    def kernel_symbols(self, ops: Iterable[str]) -> set[str]:
        return set().union(*(set(self.groups[op]) for op in set(ops)))

    def kernel_bytes(self, ops: Iterable[str], beside_harness: bool = False) -> int:
        """Code + constants of every function the entry points of `ops` link, shared ones once
        (`beside_harness`: without those the verification harness links anyway)."""
        keys = self.kernel_symbols(ops) - (self.harness_symbols if beside_harness else frozenset())
        return sum(self.symbols[s] for s in keys)

    def glue_bytes(self, calls: Iterable[KernelCall]) -> int:
        """nas_model_invoke + the parameter structs of model.c + weight padding (upper bound)."""
        calls = list(calls)
        total = (self.glue_per_invoke + self.glue_margin + SECTION_SLACK + weight_padding(calls)
                 + sum(self.glue_per_layer[c.op] + LAYER_SLACK for c in calls))
        return int(-(-total // 1))

    def code_bytes(self, calls: list[KernelCall]) -> int:
        return self.kernel_bytes(c.op for c in calls) + self.glue_bytes(calls)


def weight_padding(calls: Iterable[KernelCall]) -> int:
    """Bytes between each int8 weight array and the int32 bias array model.c puts after it."""
    sizes = {"conv": lambda c: c.cout * c.kh * c.kw * c.cin, "dw": lambda c: c.kh * c.kw * c.cout,
             "fc": lambda c: c.cin * c.cout}
    return sum(-sizes[c.op](c) % 4 for c in calls if c.op in sizes)


def codesize_data(path=CODESIZE_FILE) -> dict:
    return _load(str(path))


@lru_cache(maxsize=64)
def codesize_model(library: str, isa: str, opt: str, path=CODESIZE_FILE) -> CodeSizeModel:
    key = config_key(library, isa, opt)
    cfg = codesize_data(path)["configs"].get(key)
    if cfg is None:
        raise KeyError(f"no code-size data for {key} in {path}")
    glue = cfg.get("glue", {})
    return CodeSizeModel(key, cfg["symbols"], {k: tuple(v) for k, v in cfg["groups"].items()},
                         float(glue.get("per_invoke", 0.0)), {k: float(v) for k, v in glue.get("per_layer", {}).items()}
                         or {op: 0.0 for op in cfg["groups"]}, float(glue.get("margin", 0.0)),
                         int(cfg.get("harness_bytes", 0)), frozenset(cfg.get("harness_symbols", ())))
