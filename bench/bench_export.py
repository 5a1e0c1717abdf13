"""Export benchmark: exported models on a Cortex-M4 (QEMU mps2-an386, -icount) against the cost model.

``run()`` exports three models with random weights (BatchNorm statistics randomised, int8 calibrated
on 256 random windows): the thesis's Stride-DS-24 and Stride-DS-12 (specs/thesis/) and a small
model with every layer kind. For each: the time to quantise + write both ONNX files + the C, the C
checked bit-exact on the host (32 random windows), then on the Cortex-M4 (portable CMSIS-NN kernels,
-O2, the same 32 windows bit-exact): instructions per inference, per MAC and over the cost model's
prediction, the ELF's FLASH and RAM (stack included) over the cost model's estimate for what the ELF
holds (harness + network + glue + linked kernel code; arena + feature window + runtime reserve) and
over the cost model's totals. With ``CMSIS_DSP_PATH`` (or the
tests' cached cmsisdsp sdist) the generated front-end joins the model and the whole pipeline's
FLASH/RAM are compared with the totals; with ``CMSIS_NN_PATH`` the real CMSIS-NN is measured too.
Without arm-none-eabi-gcc/QEMU only the export times are returned.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]


def _specs():
    from nas.arch.spec import (ArchSpec, AvgPool2D, Conv2D, Dense, DepthwiseConv2D, FrontEnd, GlobalAvgPool2D,
                               MaxPool2D, Softmax)

    small = ArchSpec(name="small-gap", frontend=FrontEnd(sample_rate=16000, n_fft=512, hop_length=256, n_mels=40,
                                                         frames=32, overlap=0.5),
                     layers=(Conv2D(filters=8, kernel=(3, 3), stride=(2, 2)), MaxPool2D(pool=(2, 2)),
                             DepthwiseConv2D(kernel=(5, 5)), Conv2D(filters=16, kernel=(1, 1)),
                             AvgPool2D(pool=(2, 2)), Conv2D(filters=24, kernel=(3, 3)), GlobalAvgPool2D(),
                             Dense(units=10, activation="none"), Softmax()))
    return [ArchSpec.load(_ROOT / "specs" / "thesis" / "stride-ds-24.yaml"),
            ArchSpec.load(_ROOT / "specs" / "thesis" / "stride-ds-12.yaml"), small]


def _dsp_root():
    env = os.environ.get("CMSIS_DSP_PATH")
    if env:
        return env
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nas-tests"
    found = sorted(cache.glob("cmsisdsp-*-src"))     # extracted by tests/_cmsisdsp.py; never downloaded here
    return str(found[-1]) if found and (found[-1] / "Include" / "arm_math.h").is_file() else None


def _m4_rows(name: str, folder: Path, cost, budget, spec, x, ref,
             nn_path: str | None) -> list[tuple[str, float, str]]:
    """Cortex-M4 (QEMU) figures of one exported model: portable kernels, and CMSIS-NN when given
    (`verify.measure_m4` raises unless every window is bit-exact)."""
    from nas.cost import analytic as costmodel
    from nas.export import verify

    rows: list[tuple[str, float, str]] = []
    for lib in [None] + ([nn_path] if nn_path else []):
        suffix = ".cmsis" if lib else ""
        priced = costmodel.estimate(spec, budget, "cmsis-nn" if lib else "portable")
        m = verify.measure_m4(folder, folder / f"m4{suffix}", priced, budget, spec, x, ref, lib)
        rows += [(f"{name}{suffix}.insn_per_inference", m["instructions_per_inference"], "insn"),
                 (f"{name}{suffix}.insn_per_mac", round(m["instructions_per_mac"], 3), "insn/MAC"),
                 (f"{name}{suffix}.insn_over_predicted", round(m["instructions_vs_predicted"], 4), "ratio"),
                 (f"{name}{suffix}.elf_flash_over_estimate", round(m["flash_vs_estimate"], 4), "ratio")]
        if lib:
            continue
        rows += [(f"{name}.macs", cost.macs, "MAC"),
                 (f"{name}.arena_elf_over_cost", m["arena_symbol_bytes"] / cost.arena_bytes, "ratio"),
                 (f"{name}.weights_elf_over_cost", m["network_const_bytes"] / cost.network_flash_bytes, "ratio"),
                 (f"{name}.elf_flash", m["flash_bytes"], "B"),
                 (f"{name}.elf_ram_with_stack", m["ram_bytes_with_stack"], "B"),
                 (f"{name}.elf_ram_over_estimate", round(m["ram_vs_estimate"], 4), "ratio"),
                 (f"{name}.stack", m["stack_bytes"], "B"),
                 (f"{name}.elf_flash_over_cost_total", round(m["flash_vs_cost_model_total"], 4), "ratio"),
                 (f"{name}.elf_ram_over_cost_total", round(m["ram_vs_cost_model_total"], 4), "ratio")]
    return rows


def run() -> list[tuple[str, float, str]]:
    import numpy as np
    import torch

    from nas.budget import Budget
    from nas.calibrate.models import random_net
    from nas.cost import analytic as costmodel
    from nas.export import codegen, onnx_export, qemu, verify
    from nas.quant import quantize as Q

    budget = Budget.load(_ROOT / "budgets" / "stm32l476.yaml")
    have_m4 = qemu.find_toolchain() is not None
    have_cc = verify.host_compiler() is not None
    dsp = _dsp_root()
    nn_path = os.environ.get("CMSIS_NN_PATH") or None
    out: list[tuple[str, float, str]] = []
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="bench_export_") as tmp:
        for k, spec in enumerate(_specs()):
            fe = spec.frontend
            name = spec.name
            net = random_net(spec, k)
            calib = torch.randn(256, 1, fe.frames, fe.n_mels)
            folder = Path(tmp) / name
            t0 = time.perf_counter()
            qm = Q.quantize(net, (0.0, 1.0), calib)
            cost = costmodel.estimate(spec, budget)
            onnx_export.save(onnx_export.float_model(net), folder / "model.onnx")
            onnx_export.save(onnx_export.int8_model(qm), folder / "model_int8.onnx")
            x = rng.integers(-128, 128, size=(32, fe.frames, fe.n_mels)).astype(np.int8)
            ref = Q.run_int8(qm, x)
            codegen.write_model_c(qm, cost, folder, selftest=(x[0], ref[0]))
            fe_files = codegen.write_frontend(qm, folder)
            codegen.write_build_files(folder)
            out.append((f"{name}.export_time", round(time.perf_counter() - t0, 3), "s"))
            if have_cc:
                got = verify.run_host(verify.build_host(folder, folder / "host", max_inputs=len(x)), x, qm.num_classes)
                if not np.array_equal(got, ref):
                    raise AssertionError(f"{name}: host C differs from the integer reference")
            if not have_m4:
                continue
            out += _m4_rows(name, folder, cost, budget, spec, x, ref, nn_path)
            if dsp and fe_files:
                p = verify.measure_pipeline(folder, folder / "pipe", costmodel.estimate(spec, budget, "portable"), qm, dsp)
                if not p["model_bit_exact_on_c_frontend_windows"]:
                    raise AssertionError(f"{name}: pipeline scores differ from the integer reference")
                out += [(f"{name}.pipeline_flash_over_cost_total", round(p["flash_vs_cost_model_total"], 4), "ratio"),
                        (f"{name}.pipeline_ram_over_cost_total", round(p["ram_vs_cost_model_total"], 4), "ratio"),
                        (f"{name}.frontend_insn_per_frame", round(p["frontend_instructions_per_frame_mean"]), "insn"),
                        (f"{name}.frontend_insn_over_predicted", round(p["frontend_instructions_per_frame_mean"]
                                                                       / p["frontend_instructions_per_frame_predicted"], 4),
                         "ratio")]
    return out


if __name__ == "__main__":
    sys.path.insert(0, str(_ROOT))
    for row in run():
        print(*row)
