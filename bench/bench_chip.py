"""Chip cost model against QEMU: instructions per inference and ELF FLASH over the estimate.

``run()`` exports (random weights) 60 random networks of the default search space (seeds unused by
the fits in nas/cost/data) and the thesis's models (specs/thesis/), builds each for the Cortex-M4F
with the portable kernels and, with ``CMSIS_NN_PATH``, the real CMSIS-NN, at -O2, -Os and -O3, runs
one inference under QEMU (``-icount shift=0``) and reports, per library and optimisation level:

* ``insn_err_median`` / ``insn_err_max``: |predicted - counted| / counted instructions per
  inference (the cost model's CPU figure);
* ``flash_ratio_min`` / ``_median`` / ``_max``: ELF FLASH / estimate (harness + network constants +
  glue + linked kernel code), and ``flash_over_estimate``: how many ELFs exceed it (must be 0).

Every run's scores are checked bit-exact against the integer reference first. The measurements are
cached per (network, library, level) under ``$TMPDIR/nas_bench_chip`` (QEMU counts are
deterministic); the predictions are computed on every run.
Returns ``[]`` without arm-none-eabi-gcc / QEMU.
"""
from __future__ import annotations

import json
import os
import random
import sys
import tempfile
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
NETWORK_SEEDS = range(100_000, 100_400)
NETWORKS = 60
MAX_NETWORK_FLASH = 3_000_000        # what the QEMU board's 4 MB of "flash" holds with the harness
CACHE = Path(tempfile.gettempdir()) / "nas_bench_chip"


def networks():
    from nas.arch.space import InvalidArchitecture, SearchSpace
    from nas.arch.spec import ArchSpec

    from nas.calibrate.models import budget_for
    from nas.cost import analytic as costmodel

    space = SearchSpace.load(_ROOT / "search_spaces" / "default.yaml")
    budget = budget_for("cortex-m4")
    out = []
    for seed in NETWORK_SEEDS:
        if len(out) == NETWORKS:
            break
        try:
            spec = space.build(space.sample(random.Random(seed)), name=f"random{seed}")
        except InvalidArchitecture:
            continue
        if costmodel.estimate(spec, budget).network_flash_bytes <= MAX_NETWORK_FLASH:
            out.append(spec)
    return out + [ArchSpec.load(p) for p in sorted((_ROOT / "specs" / "thesis").glob("*.yaml"))]


def predicted(spec, lib: str, opt: str, isa: str = "cortex-m4") -> tuple[float, int]:
    """(instructions per inference, FLASH estimate of the verification ELF) from the cost model."""
    import dataclasses

    from nas.calibrate.models import budget_for
    from nas.cost import analytic as costmodel
    from nas.export import verify

    budget = budget_for(isa)
    budget = dataclasses.replace(budget, target=dataclasses.replace(budget.target, opt_level=opt))
    cost = costmodel.estimate(spec, budget, lib)
    return cost.instructions_per_window, verify.model_flash_estimate(cost, spec)


def own_digest() -> str:
    from nas.libraries import nas_kernels

    return nas_kernels.digest()


def measure_all(libs: dict[str, str | None], opts=("O2", "Os", "O3")) -> list[dict]:
    import numpy as np

    from nas.calibrate import models

    rows = []
    for k, spec in enumerate(networks()):
        fe = spec.frontend
        x = np.random.default_rng(k).integers(-128, 128, size=(1, fe.frames, fe.n_mels)).astype(np.int8)
        qm, folders = None, {}
        for lib, root in libs.items():
            for opt in opts:
                cache = CACHE / f"{spec.fingerprint()}_{lib}_{opt}_{own_digest()}.json"     # own kernels: their C
                if cache.is_file():
                    rows.append(json.loads(cache.read_text()))
                    continue
                qm = qm or models.random_model(spec, k)
                if opt not in folders:       # the kernels each level chooses
                    folders[opt] = Path(tempfile.mkdtemp(prefix="bench_chip_"))
                    models.write_c(qm, "cortex-m4", folders[opt], x, opt)
                run = models.run_exported(qm, lib, root, "cortex-m4", opt, folders[opt], x)
                if not run.scores_match:
                    raise AssertionError(f"{spec.name} {lib} -{opt}: Cortex-M4 scores differ from the reference")
                row = {"network": spec.name, "library": lib, "opt": opt, "instructions": run.instructions,
                       "flash": run.flash_bytes}
                CACHE.mkdir(parents=True, exist_ok=True)
                cache.write_text(json.dumps(row))
                rows.append(row)
    return rows


def with_predictions(rows: list[dict]) -> list[dict]:
    """The cost model's figures next to each measurement (computed afresh: a refit needs no QEMU)."""
    specs = {s.name: s for s in networks()}
    out = []
    for r in rows:
        insn, flash = predicted(specs[r["network"]], r["library"], r["opt"])
        out.append({**r, "predicted_instructions": insn, "flash_estimate": flash})
    return out


def run() -> list[tuple[str, float, str]]:
    import numpy as np

    from nas.export import qemu

    if qemu.find_toolchain() is None:
        return []
    libs = {"portable": None}
    if os.environ.get("CMSIS_NN_PATH"):
        libs["cmsis-nn"] = os.environ["CMSIS_NN_PATH"]
    rows = with_predictions(measure_all(libs))
    out: list[tuple[str, float, str]] = []
    for lib in libs:
        for opt in ("O2", "Os", "O3"):
            sel = [r for r in rows if r["library"] == lib and r["opt"] == opt]
            err = np.array([abs(r["predicted_instructions"] - r["instructions"]) / r["instructions"] for r in sel])
            ratio = np.array([r["flash"] / r["flash_estimate"] for r in sel])
            tag = f"{lib}.{opt}"
            out += [(f"{tag}.networks", len(sel), "models"),
                    (f"{tag}.insn_err_median", round(100 * float(np.median(err)), 3), "%"),
                    (f"{tag}.insn_err_max", round(100 * float(err.max()), 3), "%"),
                    (f"{tag}.flash_ratio_min", round(float(ratio.min()), 4), "ELF/estimate"),
                    (f"{tag}.flash_ratio_median", round(float(np.median(ratio)), 4), "ELF/estimate"),
                    (f"{tag}.flash_ratio_max", round(float(ratio.max()), 4), "ELF/estimate"),
                    (f"{tag}.flash_over_estimate", int((ratio > 1).sum()), "models")]
    return out


if __name__ == "__main__":
    sys.path.insert(0, str(_ROOT))
    for row in run():
        print(*row)
