"""Kernel cost benchmark: retired instructions per MAC on a Cortex-M4 (QEMU mps2-an386, -icount, -O2).

Layers: five representative audio-CNN layers through the layer driver with the portable CMSIS-NN
kernels, the real library when ``CMSIS_NN_PATH`` points at a checkout (``<layer>.cmsis``), and the
project's own kernel where one takes the layer (``<layer>.nas``); every output checked bit-exact
against ``nas.int8.intref`` before a number is reported.

Models: the thesis's models (``specs/thesis/``) and a few networks of the default search space, each
built twice from one random-weight quantised network: CMSIS-NN's kernels only, and the kernels the
cost model chooses per layer (`nas.cost.kernel_choice`). Reported per model: instructions per MAC of
each build measured under QEMU on exported C (bit-exact with the integer reference on the windows
run: 256 for Stride-DS-24, 4 for the others) and its ratio, the cost model's prediction error, ELF
FLASH / estimate; per layer the chosen kernel's instructions per MAC and, for the own kernels, their
prediction error against their count in the kernel driver. With ``CMSIS_NN_PATH`` the library linked
is the real CMSIS-NN, else the portable kernels. ``python bench/bench_kernels.py --tables`` prints
the markdown tables of docs/results.md. Returns ``[]`` without arm-none-eabi-gcc and QEMU.
"""
from __future__ import annotations

import os
import random
import sys
import tempfile
from pathlib import Path

import _testlib

ROOT = Path(__file__).resolve().parents[1]
THESIS = ("stride-ds-24", "stride-ds-20", "stride-ds-16", "stride-ds-12", "stride-ds-3x3", "stride-5x5",
          "baseline-ds", "baseline")
SEARCH_SEEDS = (11, 23, 42)              # networks of the default space, as a search samples them
WINDOWS = {"Stride-DS-24": 256}          # bit-exact windows per model (default 4)


def _layers(cb, rng):
    same3 = (1, 1)
    same5 = (2, 2)
    return [
        cb.conv_case(rng, h=40, w=32, cin=1, cout=16, kh=5, kw=5, padding=same5, name="conv5x5_cin1_40x32x16"),
        cb.conv_case(rng, h=16, w=16, cin=16, cout=32, kh=3, kw=3, padding=same3, name="conv3x3_16x16_16to32"),
        cb.dw_case(rng, h=16, w=16, c=32, kh=5, kw=5, padding=same5, name="dw5x5_16x16_c32"),
        cb.conv_case(rng, h=16, w=16, cin=32, cout=48, kh=1, kw=1, name="pw1x1_16x16_32to48"),
        cb.fc_case(rng, depth=512, cout=64, name="fc_512to64"),
    ]


def _own_entry(cb, case):
    """The same layer through the own kernel that takes it, or None."""
    p = case.params
    if case.op == cb.OP_CONV and p[22] == 1:
        return cb.CONV_NAS_C1
    if case.op == cb.OP_DW and p[4] == 1:
        return cb.DW_NAS
    return None


def layer_rows() -> list[tuple[str, float, str]]:
    import copy

    import numpy as np

    cb = _testlib.load("_cbuild")
    cases = _layers(cb, np.random.default_rng(2024))
    own = []
    for c in cases:
        entry = _own_entry(cb, c)
        if entry is not None:
            mine = copy.deepcopy(c)
            mine.params[20], mine.name = entry, f"{c.name}.nas"
            own.append(mine)
    libs = ["portable"] + (["cmsis"] if os.environ.get("CMSIS_NN_PATH") else [])
    out: list[tuple[str, float, str]] = []
    for lib in libs:
        run = cases + own if lib == "portable" else cases
        results = cb.run_qemu(cb.build_qemu_driver(lib, opt="-O2"), run)
        cb.check_results(run, results, f"bench {lib}")
        for c, r in zip(run, results):
            name = c.name if c.name.endswith(".nas") else f"{c.name}.{lib}"
            out.append((name, round(r.insn / c.macs, 3), "insn/MAC"))
    return out


def models() -> list:
    from nas.arch.space import InvalidArchitecture, SearchSpace
    from nas.arch.spec import ArchSpec

    specs = [ArchSpec.load(ROOT / "specs" / "thesis" / f"{n}.yaml") for n in THESIS]
    space = SearchSpace.load(ROOT / "search_spaces" / "default.yaml")
    for seed in SEARCH_SEEDS:
        rng = random.Random(seed)
        while True:
            try:
                specs.append(space.build(space.sample(rng), name=f"space-{seed}"))
                break
            except InvalidArchitecture:
                continue
    return specs


def measure_build(spec, qm, budget, own: bool, root, work: Path) -> dict:
    """One exported build of `qm` (CMSIS-NN only, or the chosen kernels) run under QEMU."""
    import numpy as np

    from nas.cost import analytic as costmodel
    from nas.export import codegen, verify
    from nas.quant.quantize import run_int8

    fe = spec.frontend
    n = WINDOWS.get(spec.name, 4)
    x = np.random.default_rng(1).integers(-128, 128, size=(n, fe.frames, fe.n_mels)).astype(np.int8)
    ref = run_int8(qm, x)
    cost = costmodel.estimate(spec, budget, "cmsis-nn" if root else "portable", own=own)
    folder = work / f"{spec.name}_{'chosen' if own else 'cmsis'}"
    folder.mkdir(parents=True, exist_ok=True)
    codegen.write_model_c(qm, cost, folder, selftest=(x[0], ref[0]))
    codegen.write_build_files(folder)
    m = verify.measure_m4(folder, folder / "m4", cost, budget, spec, x, ref, root)
    return {"cost": cost, "insn": m["instructions_per_inference"], "per_mac": m["instructions_per_mac"],
            "vs_predicted": m["instructions_vs_predicted"], "flash_vs_estimate": m["flash_vs_estimate"],
            "bit_exact": m["bit_exact_windows"]}


def own_layer_errors(cost, root, work: Path) -> list[tuple[str, str, float, float]]:
    """(layer, own kernel, predicted, counted in the kernel driver) of the layers on own kernels."""
    from nas.calibrate import kernels
    from nas.cost import nas_kernels

    rows = []
    elf = kernels.build_driver(nas_kernels.LIBRARY, None, "cortex-m4", "O2", work / "driver")
    for lc, choices in zip(cost.layers, cost.chip.choices):
        for call, k in zip(lc.calls, choices):
            if k.library == nas_kernels.LIBRARY:
                (n,) = kernels.count(elf, [call], own=k.kernel.name)
                rows.append((lc.name, k.kernel.name, k.instructions, n))
    return rows


def model_rows(spec, root, work: Path) -> tuple[list[tuple[str, float, str]], dict]:
    from nas.calibrate.models import budget_for, random_model

    budget = budget_for("cortex-m4")
    qm = random_model(spec, 0)
    cmsis = measure_build(spec, qm, budget, False, root, work)
    mine = measure_build(spec, qm, budget, True, root, work)
    errors = own_layer_errors(mine["cost"], root, work)
    name = spec.name
    rows = [(f"{name}.cmsis", round(cmsis["per_mac"], 3), "insn/MAC"),
            (f"{name}.chosen", round(mine["per_mac"], 3), "insn/MAC"),
            (f"{name}.speedup", round(cmsis["insn"] / mine["insn"], 3), "x"),
            (f"{name}.chosen_vs_predicted", round(mine["vs_predicted"], 4), "measured/predicted"),
            (f"{name}.chosen_flash_vs_estimate", round(mine["flash_vs_estimate"], 4), "ELF/estimate"),
            (f"{name}.bit_exact_windows", mine["bit_exact"], "windows")]
    for layer, kernel, pred, meas in errors:
        rows.append((f"{name}.{layer}.{kernel}.prediction_error", round(100 * (pred / meas - 1), 3), "%"))
    return rows, {"spec": spec, "cmsis": cmsis, "chosen": mine, "errors": errors}


def run() -> list[tuple[str, float, str]]:
    from nas.export import qemu

    if qemu.find_toolchain() is None:
        return []
    root = os.environ.get("CMSIS_NN_PATH") or None
    out = layer_rows()
    with tempfile.TemporaryDirectory(prefix="bench_kernels_") as tmp:
        for spec in models():
            out += model_rows(spec, root, Path(tmp))[0]
    return out


def _layer_table(detail: dict) -> list[str]:
    cm, ch = detail["cmsis"]["cost"], detail["chosen"]["cost"]
    lines = [f"\n{detail['spec'].name}: per layer (cost model, instructions per MAC)\n",
             "| layer | MACs | CMSIS-NN kernel | insn/MAC | chosen kernel | insn/MAC |", "|---|---|---|---|---|---|"]
    for a, b in zip(cm.layers, ch.layers):
        per = (lambda lc: f"{lc.instructions / lc.macs:.2f}" if lc.macs else f"{lc.instructions:,.0f} insn")
        lines.append(f"| {a.name} | {a.macs:,} | `{a.kernel}` | {per(a)} | `{b.kernel}` | {per(b)} |")
    return lines


def tables() -> str:
    """The markdown tables of docs/results.md (one QEMU run of every model)."""
    root = os.environ.get("CMSIS_NN_PATH") or None
    head = ["| model | MACs | CMSIS-NN only: insn/MAC | chosen kernels: insn/MAC | speedup | measured / predicted "
            "| ELF FLASH / estimate | bit-exact windows | own-kernel layers: prediction error |",
            "|---|---|---|---|---|---|---|---|---|"]
    details = []
    with tempfile.TemporaryDirectory(prefix="bench_kernels_") as tmp:
        for spec in models():
            _, d = model_rows(spec, root, Path(tmp))
            details.append(d)
            errs = ", ".join(f"{layer} {100 * (p / m - 1):+.2f} %" for layer, _, p, m in d["errors"]) or "-"
            c, k = d["cmsis"], d["chosen"]
            head.append(f"| {spec.name} | {k['cost'].macs:,} | {c['per_mac']:.2f} | {k['per_mac']:.2f} | "
                        f"{c['insn'] / k['insn']:.2f}x | {k['vs_predicted']:.4f} | {k['flash_vs_estimate']:.4f} | "
                        f"{k['bit_exact']} | {errs} |")
    return "\n".join(head + [line for d in details for line in _layer_table(d)])


if __name__ == "__main__":
    sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]
    if "--tables" in sys.argv:
        print(tables())
    else:
        for row in run():
            print(*row)
