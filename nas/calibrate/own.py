"""The project's own kernels (add-on library 'nas'): instructions and code size measured like the
library kernels, for `instructions.json` and `codesize.json` under ``nas/<isa>/<opt>``.

Instructions: every training call (`instructions.training_calls`) an own kernel takes is counted
under QEMU through it (``kernel_driver.c`` ops 8 and 9: the size function + the kernel), and its
coefficients fitted by non-negative least squares on `nas.cost.nas_kernels` trip counts, with 5-fold
held-out errors. Counts are cached per digest of the kernels' C, so a change of the C is measured
again. Code: per kernel, a stub keeping its entry points, linked with ``--gc-sections``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from nas.calibrate import fit, kernels, provenance
from nas.calibrate.instructions import _stats, training_calls
from nas.cost import cpu, nas_kernels
from nas.kinds.base import KernelCall
from nas.libraries import ADDONS, library
from nas.libraries import nas_kernels as own_lib

LIB = ADDONS[nas_kernels.LIBRARY]


def calls_for(kernel: str, tagged: list[tuple[KernelCall, str]]) -> list[tuple[KernelCall, str]]:
    """The training calls own kernel `kernel` takes (and the driver's scratch buffer holds)."""
    k = own_lib.KERNELS[kernel]
    return [(c, o) for c, o in tagged if k.applies(c) and k.scratch_bytes(c) <= kernels.SCRATCH_CAP]


def measured(isa: str, opt: str, kernel: str, work: Path, calls: list[KernelCall]) -> list[float]:
    """Counts of `calls` through `kernel` on (isa, opt), from the cache or QEMU."""
    path = work / "records" / f"kernels_{nas_kernels.LIBRARY}_{isa}_{opt}_{kernel}_{own_lib.digest()}.json"
    cache = {KernelCall(**c): n for c, n in json.loads(path.read_text())} if path.is_file() else {}
    todo = [c for c in calls if c not in cache]
    if todo:
        print(f"counting {len(todo)} calls of {kernel} on {isa} -{opt} ...", flush=True)
        elf = kernels.build_driver(nas_kernels.LIBRARY, None, isa, opt, work / "build")
        cache.update(zip(todo, kernels.count(elf, todo, own=kernel)))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps([[c.to_dict(), n] for c, n in cache.items()]))
    return [cache[c] for c in calls]


def fit_kernel(kernel: str, tagged: list[tuple[KernelCall, str]], counts: list[float]) -> dict:
    def feats(call: KernelCall) -> dict:
        return nas_kernels.features(kernel, call)

    calls = [c for c, _ in tagged]
    err = fit.holdout_errors(calls, counts, feats=feats)
    space = np.array([o == "space" for _, o in tagged])
    return {"coefficients": {k: round(v, 6) for k, v in fit.fit(calls, counts, feats).items()},
            "samples": len(calls), "holdout_relative_error": {"all": _stats(err), "space": _stats(err[space])}}


def regenerate_instructions(isas_opts, work: Path, data: dict) -> None:
    """Fit every own kernel on each (isa, opt) into `data` (the instructions.json being written)."""
    if not isas_opts:
        return
    tagged = training_calls()
    for isa, opt in isas_opts:
        entry = {"library": nas_kernels.description(), "cflags": provenance.cflags(isa, opt), "kernels": {}}
        for name in nas_kernels.FEATURES:
            mine = calls_for(name, tagged)
            entry["kernels"][name] = fit_kernel(name, mine, measured(isa, opt, name, work, [c for c, _ in mine]))
            worst = entry["kernels"][name]["holdout_relative_error"]["space"]["max"]
            print(f"{nas_kernels.LIBRARY}/{isa}/{opt} {name}: {len(mine)} calls, worst in-space holdout error "
                  f"{worst:.2%}", flush=True)
        data["configs"][cpu.config_key(nas_kernels.LIBRARY, isa, opt)] = entry


def measure_sizes(isa: str, opt: str, work: Path) -> dict:
    """codesize.json's entry of the own kernels: per kernel, the input sections its entry points link."""
    from nas.calibrate import sizes
    from nas.export import qemu

    d = work / "codesize" / f"{nas_kernels.LIBRARY}_{isa}_{opt}"
    d.mkdir(parents=True, exist_ok=True)
    srcs, incs = LIB.sources()
    incs = incs + library("portable").sources()[1]     # the CMSIS-NN structs its header uses
    base = set(qemu.map_footprints(sizes.stub_elf(d, "base", (), srcs, incs, isa, opt, LIB.header).with_suffix(".map")))
    symbols: dict[str, int] = {}
    groups: dict[str, list[str]] = {}
    for name in own_lib.KERNELS:
        elf = sizes.stub_elf(d, name, LIB.kernel_entry_points(name), srcs, incs, isa, opt, LIB.header)
        fp = qemu.map_footprints(elf.with_suffix(".map"))
        groups[name] = sorted(key for key in fp if key not in base)
        symbols.update({key: fp[key] for key in groups[name]})
    return {"library": nas_kernels.description(), "cflags": provenance.cflags(isa, opt), "symbols": symbols,
            "groups": groups}


def regenerate_sizes(isas_opts, work: Path, data: dict) -> None:
    for isa, opt in isas_opts:
        entry = measure_sizes(isa, opt, work)
        data["configs"][cpu.config_key(nas_kernels.LIBRARY, isa, opt)] = entry
        print(f"{nas_kernels.LIBRARY}/{isa}/{opt}: " + ", ".join(
            f"{k} {sum(entry['symbols'][s] for s in v):,} B" for k, v in entry["groups"].items()), flush=True)
