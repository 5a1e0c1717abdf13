"""Kernel libraries: the code that runs a spec's kernel calls on a core (`base.KernelLibrary`).

`library(name)` is the one way every stage reaches one; a budget's `target.library` names it. CMSIS-NN
v7 and the portable kernels with CMSIS-NN's API are the two shipped. `ADDONS` are libraries linked
beside it whose kernels take some calls (the project's own, `nas_kernels`).
"""
from __future__ import annotations

from pathlib import Path

from nas.libraries.base import ARM_CPU_FLAGS, Kernel, KernelLibrary, LibraryMissing
from nas.libraries.cmsis_nn import CmsisNN, Portable
from nas.libraries.nas_kernels import NasKernels

LIBRARIES: dict[str, KernelLibrary] = {lib.name: lib for lib in (CmsisNN(), Portable())}
ADDONS: dict[str, KernelLibrary] = {lib.name: lib for lib in (NasKernels(),)}
DEFAULT = "cmsis-nn"


def library(name: str) -> KernelLibrary:
    try:
        return LIBRARIES[name]
    except KeyError:
        raise ValueError(f"unknown kernel library {name!r} (expected one of {', '.join(LIBRARIES)})") from None


def addon_sources() -> tuple[list[Path], list[Path]]:
    """(C sources, include folders) of every add-on library: what a build links beside its library."""
    srcs, incs = [], []
    for lib in ADDONS.values():
        s, i = lib.sources()
        srcs += s
        incs += i
    return srcs, incs


__all__ = ["ADDONS", "ARM_CPU_FLAGS", "DEFAULT", "LIBRARIES", "Kernel", "KernelLibrary", "LibraryMissing",
           "addon_sources", "library"]
