"""Regenerate ``instructions.json``: kernel counts -> per-kernel fits (+ the generated code's glue)."""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from nas.calibrate import DEFAULT_SPACE, fit, kernels, provenance
from nas.cost import cpu
from nas.cost.cpu import KernelCall, dispatch

SPACE_SEEDS = range(150)
RANDOM_SEED, RANDOM_CALLS = 1, 1200
MAX_SPACE_MACS = 2_000_000     # larger layers add QEMU time, not information: the features are trip counts


def training_calls() -> list[tuple[KernelCall, str]]:
    """(call, origin) with origin 'space' (a layer of a random default-space network) or 'random'."""
    from nas.arch.space import SearchSpace

    space = SearchSpace.load(DEFAULT_SPACE)
    tagged: dict[KernelCall, str] = {}
    for c in kernels.space_calls(space, SPACE_SEEDS):
        if c.macs <= MAX_SPACE_MACS:
            tagged.setdefault(c, "space")
    for c in kernels.random_calls(RANDOM_SEED, RANDOM_CALLS):
        tagged.setdefault(c, "random")
    return list(tagged.items())


def _records_path(work: Path, lib: str, isa: str, opt: str) -> Path:
    return work / "records" / f"kernels_{lib}_{isa}_{opt}.json"


def measured(cfg, roots, work: Path, calls: list[KernelCall]) -> list[float]:
    """Counts of `calls` on one configuration, from the cache or QEMU."""
    lib, isa, opt = cfg
    path = _records_path(work, lib, isa, opt)
    cache = {}
    if path.is_file():
        cache = {KernelCall(**c): n for c, n in json.loads(path.read_text())}
    todo = [c for c in calls if c not in cache]
    if todo:
        print(f"counting {len(todo)} kernel calls on {cpu.config_key(*cfg)} ...", flush=True)
        elf = kernels.build_driver(lib, roots[lib], isa, opt, work / "build")
        cache.update(zip(todo, kernels.count(elf, todo)))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps([[c.to_dict(), n] for c, n in cache.items()]))
    return [cache[c] for c in calls]


def _stats(err: np.ndarray) -> dict:
    a = np.abs(err)
    return {"n": int(a.size), "median": float(np.median(a)) if a.size else None,
            "p95": float(np.percentile(a, 95)) if a.size else None, "max": float(a.max()) if a.size else None}


def fit_config(tagged: list[tuple[KernelCall, str]], counts: list[float], kernels: tuple[str, ...] = cpu.KERNELS) -> dict:
    by: dict[str, list[int]] = defaultdict(list)
    for i, (c, _) in enumerate(tagged):
        by[dispatch(c)].append(i)
    out = {}
    for kernel in kernels:
        idx = by.get(kernel, [])
        if len(idx) < 10:
            raise RuntimeError(f"{kernel}: only {len(idx)} measured calls, cannot fit")
        calls = [tagged[i][0] for i in idx]
        y = [counts[i] for i in idx]
        err = fit.holdout_errors(calls, y)
        space = np.array([tagged[i][1] == "space" for i in idx])
        out[kernel] = {"coefficients": {k: round(v, 6) for k, v in fit.fit(calls, y).items()},
                       "samples": len(idx),
                       "holdout_relative_error": {"all": _stats(err), "space": _stats(err[space])}}
    return out


def regenerate(cfgs, roots, work: Path, stamp: str, previous: Path, only: tuple[str, ...] = ()) -> dict:
    """Counts and fits of every kernel, or of the kernels `only` names (the others keep their previous
    fits: after changing one kernel, or adding one, only its calls are counted again)."""
    tagged = [(c, o) for c, o in training_calls() if not only or dispatch(c) in only]
    calls = [c for c, _ in tagged]
    old = json.loads(previous.read_text()) if previous.is_file() else {"configs": {}}
    data = {"format": 1, "generated": stamp, "tool": "python -m nas.calibrate", **provenance.toolchain(),
            "measured": "arm-none-eabi-gcc + QEMU; every call = the *_get_buffer_size call + the wrapper, as "
                        "model.c makes them; random int8 data, per-channel multipliers 0.7*2^31 >> 8",
            "geometries": {"space_networks": len(SPACE_SEEDS), "random_calls": RANDOM_CALLS,
                           "distinct_calls": len(calls) if not only else old.get("geometries", {}).get("distinct_calls")},
            "configs": dict(old.get("configs", {}))}
    for cfg in cfgs:
        lib, isa, opt = cfg
        key = cpu.config_key(*cfg)
        counts = measured(cfg, roots, work, calls)
        kept = data["configs"].get(key, {}).get("kernels", {}) if only else {}
        entry = {"library": provenance.library_version(lib, roots[lib]), "cflags": provenance.cflags(isa, opt),
                 "kernels": {**kept, **fit_config(tagged, counts, only or cpu.KERNELS)},
                 "glue": data["configs"].get(key, {}).get("glue", {"per_layer": {op: 0.0 for op in cpu.OPS}, "per_invoke": 0.0})}
        data["configs"][key] = entry
        worst = max(v["holdout_relative_error"]["space"]["max"] or 0 for v in entry["kernels"].values())
        print(f"{key}: fitted {len(entry['kernels'])} kernels, worst in-space holdout error {worst:.1%}", flush=True)
    return data
