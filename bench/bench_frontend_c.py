"""Front-end cost on a Cortex-M4: retired instructions per frame of the generated CMSIS-DSP front-end.

``run()`` generates ``nas_frontend.c`` (nas.export.frontend_c) for the default FrontEnd (22.05 kHz,
n_fft 1024, hop 512, 60 mels) and a cheap one (8 kHz, n_fft 256, hop 128, 30 mels), builds each with
CMSIS-DSP for the M4 (``-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 -O2``), feeds 2 s of
deterministic noise + tone through ``nas_frontend_push`` under QEMU (mps2-an386, -icount) and reports
instructions per frame (mean over the frame-computing pushes, incl. quantisation and window slide),
instructions per second of audio, and the CPU share at 80 MHz. The share ASSUMES 1.3 cycles per
instruction (QEMU counts instructions, not cycles; flash wait states and FPU/load latencies are not
modelled). Needs arm-none-eabi-gcc, qemu-system-arm and the CMSIS-DSP sources ($CMSIS_DSP_PATH or the
cmsisdsp sdist, see tests/_cmsisdsp.py); returns [] when any is missing.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import _testlib

CLOCK_HZ = 80e6
CYCLES_PER_INSN = 1.3   # assumption, not measured


def _audio(sample_rate: int, seconds: float = 2.0):
    import numpy as np

    rng = np.random.default_rng(7)
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    x = 0.3 * np.sin(2 * np.pi * 440.0 * t) + 0.05 * rng.standard_normal(t.size)
    return np.clip(np.round(x * 32768), -32768, 32767).astype(np.int16)


def run() -> list[tuple[str, float, str]]:
    cd = _testlib.load("_cmsisdsp")
    from nas.arch.spec import FrontEnd
    from nas.quant.inputq import InputQuant

    try:
        cd.m4_toolchain()
        cd.dsp_library("m4")
    except cd.Unavailable:
        return []
    iq = InputQuant(mean=-20.0, std=20.0, scale=1.0 / 24.0, zero_point=-8)
    configs = {"default": FrontEnd(),
               "cheap_8k_256_30mel": FrontEnd(sample_rate=8000, n_fft=256, hop_length=128, n_mels=30)}
    rows: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench_fe_") as tmp:
        for name, fe in configs.items():
            work = Path(tmp) / name
            elf = cd.build_m4_frontend(fe, iq, work)
            res = cd.run_m4_frontend(elf, _audio(fe.sample_rate), fe)
            per_frame = res.insn["frame_total"] / res.insn["frames"]
            per_second = per_frame * fe.sample_rate / fe.hop_length
            fp = cd.frontend_footprint(work / "m4" / "fe.map")
            rows += [
                (f"frontend.{name}.insn_per_frame", per_frame, "insn/frame"),
                (f"frontend.{name}.insn_per_frame_max", float(res.insn["frame_max"]), "insn/frame"),
                (f"frontend.{name}.insn_per_audio_second", per_second, "insn/s"),
                (f"frontend.{name}.cpu_share_80MHz", 100.0 * per_second * CYCLES_PER_INSN / CLOCK_HZ,
                 "% of 80 MHz (ASSUMES 1.3 cycles/insn)"),
                (f"frontend.{name}.code_bytes", float(fp["dsp_text"] + fp["fe_text"] + fp["libm_text"]),
                 "B (CMSIS-DSP + nas_frontend + logf)"),
            ]
    return rows
