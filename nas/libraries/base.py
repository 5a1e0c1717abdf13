"""What a kernel library is: the small interface every stage asks of the code that runs the layers.

A library implements the ops of the kernel calls a spec makes (`nas.kinds.base.KernelCall`: conv, dw,
fc, max_pool, avg_pool, softmax, ...). It owns, for a core:

* `kernel`: the implementation it runs for a call (CMSIS-NN's wrappers dispatch on the geometry), with
  the C function model.c calls and the name its measured instruction and code-size data go by;
* `scratch_bytes`: the scratch buffer that kernel needs (the arena is sized from it);
* `entry_points`: the functions model.c references per op (what the linker keeps);
* `sources`: its C sources and include folders (a user's checkout, or files shipped here);
* `cpu_flags` and `emulator`: how code for an instruction set is built and run to measure it.

An add-on library (`ADDONS`) has C names of its own, so it links beside the budget's library, and
kernels for only some calls (`takes`); the cost model gives a call to it where its measured kernel is
faster (`nas.cost.kernel_choice`).

The budget names a library (`target.library`); the cost model, the exporter and the calibration reach
it only through `library(name)`, so adding one is a module here and one line in `LIBRARIES`.
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from nas.kinds.base import KernelCall

# Instruction sets measured under QEMU's mps2-an386 (a Cortex-M4F also runs ARMv7-M code without DSP and
# ARMv6-M code), with the compiler flags that select them.
ARM_CPU_FLAGS: dict[str, tuple[str, ...]] = {
    "cortex-m4": ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"),
    "cortex-m3": ("-mcpu=cortex-m3", "-mthumb", "-mfloat-abi=soft"),
    "cortex-m0plus": ("-mcpu=cortex-m0plus", "-mthumb", "-mfloat-abi=soft"),
}
ARM_EMULATOR = ("qemu-system-arm", "mps2-an386")


@dataclass(frozen=True)
class Kernel:
    """One implementation of an op: `name` keys its measured data (`conv_1x1_fast`), `function` is
    what model.c calls and `buffer_size_function` its scratch query (None: needs none)."""

    name: str
    op: str
    function: str
    buffer_size_function: str | None = None


class LibraryMissing(ValueError):
    """A library needs sources that are not there (e.g. no checkout given)."""


class KernelLibrary(ABC):
    """See the module docstring. `name` is how budgets, data files and reports call it."""

    name: ClassVar[str]
    description: ClassVar[str]
    ops: ClassVar[tuple[str, ...]]

    def takes(self, call: KernelCall) -> bool:
        """Whether this library has a kernel for `call` (a complete library: every call of its ops)."""
        return call.op in self.ops

    @abstractmethod
    def kernel(self, call: KernelCall, dsp: bool) -> Kernel:
        """The implementation this library runs for `call` on a core with or without the DSP extension."""

    @abstractmethod
    def scratch_bytes(self, call: KernelCall, dsp: bool) -> int:
        """Bytes of scratch buffer `kernel(call, dsp)` needs."""

    @abstractmethod
    def entry_points(self, op: str) -> tuple[str, ...]:
        """The functions model.c references for `op` (the linker keeps them and what they reach)."""

    @abstractmethod
    def sources(self, root: str | os.PathLike | None = None) -> tuple[list[Path], list[Path]]:
        """(C sources, include folders); `root` is a user's checkout where the library needs one."""

    def cpu_flags(self, isa: str) -> tuple[str, ...]:
        return ARM_CPU_FLAGS[isa]

    def emulator(self, isa: str) -> tuple[str, str]:
        """(program, machine) that runs and counts code built for `isa`."""
        return ARM_EMULATOR

    @property
    def isas(self) -> tuple[str, ...]:
        return tuple(ARM_CPU_FLAGS)
