"""Kernel libraries: the code that runs a spec's kernel calls on a core (`base.KernelLibrary`).

`library(name)` is the one way every stage reaches one; a budget's `target.library` names it. CMSIS-NN
v7 and the portable kernels with CMSIS-NN's API are the two shipped.
"""
from __future__ import annotations

from nas.libraries.base import ARM_CPU_FLAGS, Kernel, KernelLibrary, LibraryMissing
from nas.libraries.cmsis_nn import CmsisNN, Portable

LIBRARIES: dict[str, KernelLibrary] = {lib.name: lib for lib in (CmsisNN(), Portable())}
DEFAULT = "cmsis-nn"


def library(name: str) -> KernelLibrary:
    try:
        return LIBRARIES[name]
    except KeyError:
        raise ValueError(f"unknown kernel library {name!r} (expected one of {', '.join(LIBRARIES)})") from None


__all__ = ["ARM_CPU_FLAGS", "DEFAULT", "LIBRARIES", "Kernel", "KernelLibrary", "LibraryMissing", "library"]
