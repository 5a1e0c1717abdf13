"""The project's own kernels (library 'nas'): instructions and code size measured like the library
kernels, for `instructions.json` and `codesize.json` under ``nas/<isa>/<opt>``.

Instructions: every training call (`instructions.training_calls`) an own kernel takes is counted
under QEMU through it (``kernel_driver.c`` ops 7 and 8: the size function + the kernel), and its
coefficients fitted by non-negative least squares on `nas_kernels` trip counts, with 5-fold
held-out errors. Code: a stub keeping each kernel's entry points, linked with ``--gc-sections``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from nas.calibrate import fit, kernels, provenance
from nas.calibrate.instructions import _stats, training_calls
from nas.cost import cpu, nas_kernels
from nas.cost.cpu import KernelCall


def calls_for(kernel: str, tagged: list[tuple[KernelCall, str]]) -> list[tuple[KernelCall, str]]:
    k = nas_kernels.KERNELS[kernel]
    return [(c, o) for c, o in tagged if k.applies(c) and k.scratch_bytes(c) <= kernels.SCRATCH_CAP]


def measured(isa: str, opt: str, kernel: str, work: Path, calls: list[KernelCall]) -> list[float]:
    """Counts of `calls` through `kernel` on (isa, opt), from the cache or QEMU."""
    digest = nas_kernels.description().split()[-1].rstrip(")")       # a new count for every change of the C
    path = work / "records" / f"kernels_{nas_kernels.LIBRARY}_{isa}_{opt}_{kernel}_{digest}.json"
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
    feats = nas_kernels.KERNELS[kernel].features
    calls = [c for c, _ in tagged]
    err = fit.holdout_errors(calls, counts, feats=feats)
    space = np.array([o == "space" for _, o in tagged])
    return {"coefficients": {k: round(v, 6) for k, v in fit.fit(calls, counts, feats).items()},
            "samples": len(calls), "holdout_relative_error": {"all": _stats(err), "space": _stats(err[space])}}


def regenerate_instructions(isas_opts, work: Path, data: dict) -> None:
    """Fit every own kernel on each (isa, opt) into `data` (the instructions.json being written)."""
    tagged = training_calls()
    for isa, opt in isas_opts:
        entry = {"library": nas_kernels.description(), "cflags": provenance.cflags(isa, opt), "kernels": {}}
        for name in nas_kernels.KERNELS:
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
    srcs, incs = kernels.library_sources(nas_kernels.LIBRARY, None)
    base = set(qemu.map_footprints(sizes.stub_elf(d, "base", (), srcs, incs, isa, opt).with_suffix(".map")))
    symbols: dict[str, int] = {}
    groups: dict[str, list[str]] = {}
    for name, k in nas_kernels.KERNELS.items():
        fp = qemu.map_footprints(sizes.stub_elf(d, name, k.entry_points, srcs, incs, isa, opt).with_suffix(".map"))
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
