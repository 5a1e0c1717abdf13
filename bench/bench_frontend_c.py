"""Front-end cost on a Cortex-M: retired instructions per frame of the generated front-end, float
(CMSIS-DSP f32) against fixed point (q15 FFT, integer mel and log), and the cost model's prediction.

``run()`` generates ``nas_frontend.c`` (nas.export.frontend_c) for the thesis front-end (22.05 kHz,
n_fft 1024, hop 512, 60 mels), the same at n_fft 256, 512 and 2048 (hop n_fft/2, 60 mels), and a
cheap one (8 kHz, n_fft 256, hop 128, 30 mels), in both arithmetics; builds each with CMSIS-DSP for
the M4 (``-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 -O2``) and the thesis front-end
also for the Cortex-M3 (no FPU, no DSP: soft float against the C intrinsics), feeds 2 s of
deterministic noise + tone through ``nas_frontend_push`` under QEMU (mps2-an386, -icount) and reports
instructions per frame (mean over the frame-computing pushes, incl. quantisation and window slide),
per second of audio, the cost model's per-frame prediction (``nas.cost.frontend``) and the linked
code. The CPU share at 80 MHz ASSUMES 1.3 cycles per instruction (QEMU counts instructions, not
cycles). Needs arm-none-eabi-gcc, qemu-system-arm and the CMSIS-DSP sources ($CMSIS_DSP_PATH or the
cmsisdsp sdist, see tests/_cmsisdsp.py); returns [] when any is missing.

With ``NAS_BENCH_DATA`` naming an UrbanSound8K-layout folder, the thesis front-end in fixed point also
runs on its first 52 clips (260 windows at 22.05 kHz) on the M4 and the host: windows equal to the
training features (`nas.export.frontend_c.frontend_reference`), and instructions per frame on real audio.
"""
from __future__ import annotations

import dataclasses
import os
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


def _configs():
    from nas.arch.spec import FrontEnd

    out = {"default": (FrontEnd(), "cortex-m4"), "default_m3": (FrontEnd(), "cortex-m3"),
           "cheap_8k_256_30mel": (FrontEnd(sample_rate=8000, n_fft=256, hop_length=128, n_mels=30), "cortex-m4")}
    for n in (256, 512, 2048):
        out[f"22k_{n}_60mel"] = (FrontEnd(n_fft=n, hop_length=n // 2), "cortex-m4")
    return out


def _measure(cd, fe, isa: str, work: Path) -> tuple[float, float, int]:
    """(instructions per frame, the cost model's prediction, code bytes) of one front-end."""
    from nas.cost.analytic import mel_nonzeros
    from nas.cost.frontend import frontend_isa, frontend_model
    from nas.quant.inputq import InputQuant

    iq = InputQuant(mean=-20.0, std=20.0, scale=1.0 / 24.0, zero_point=-8)
    res = cd.run_m4_frontend(cd.build_m4_frontend(fe, iq, work, isa=isa), _audio(fe.sample_rate), fe, timeout=600)
    model = frontend_model(frontend_isa(isa, isa == "cortex-m4", fe.arithmetic), "O2", arithmetic=fe.arithmetic)
    fp = cd.frontend_footprint(work / "m4" / "fe.map")
    return (res.insn["frame_total"] / res.insn["frames"], model.per_frame(fe, mel_nonzeros(fe)),
            fp["dsp_text"] + fp["fe_text"] + fp["libm_text"])


def _real_clips(cd, root: str, work: Path, clips: int = 52) -> list[tuple[str, float, str]]:
    """The fixed thesis front-end on real clips: bit-exact windows (M4, host) and instructions per frame."""
    import numpy as np

    from nas.arch.fixedfe import to_int16
    from nas.arch.spec import FrontEnd
    from nas.data import urbansound as us
    from nas.export import frontend_c as fc
    from nas.quant.inputq import InputQuant

    fe, iq = FrontEnd(arithmetic="fixed"), InputQuant(mean=-22.0, std=17.0, scale=0.0323, zero_point=-5)
    elf = cd.build_m4_frontend(fe, iq, work / "m4")
    exe = cd.build_host_frontend(fe, iq, work / "host", db_hook=False)
    n = m4_equal = host_equal = insn = frames = 0
    for clip in us.read_metadata(us.find_root(root)).clips[:clips]:
        audio = to_int16(us.load_clip(clip.path, fe.sample_rate))
        ref = fc.frontend_reference(audio[:audio.size // fe.hop_length * fe.hop_length], fe, iq)
        m4, host = cd.run_m4_frontend(elf, audio, fe), cd.run_host_frontend(exe, audio, fe, with_db=False)
        n += len(ref)
        m4_equal += sum(np.array_equal(w, r) for w, r in zip(m4.windows, ref))
        host_equal += sum(np.array_equal(w, r) for w, r in zip(host.windows, ref))
        insn, frames = insn + m4.insn["frame_total"], frames + m4.insn["frames"]
    return [("frontend.real_clips.fixed.windows", float(n), f"windows ({clips} clips)"),
            ("frontend.real_clips.fixed.m4_bit_exact", float(m4_equal), "windows equal to the training features"),
            ("frontend.real_clips.fixed.host_bit_exact", float(host_equal), "windows equal to the training features"),
            ("frontend.real_clips.fixed.insn_per_frame", insn / frames, "insn/frame (cortex-m4 -O2)")]


def run() -> list[tuple[str, float, str]]:
    cd = _testlib.load("_cmsisdsp")
    try:
        cd.m4_toolchain()
        cd.dsp_root()
    except cd.Unavailable:
        return []
    rows: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench_fe_") as tmp:
        for name, (base, isa) in _configs().items():
            per_second = {}
            for arith in ("float", "fixed"):
                fe = dataclasses.replace(base, arithmetic=arith)
                per_frame, predicted, code = _measure(cd, fe, isa, Path(tmp) / f"{name}_{arith}")
                per_second[arith] = per_frame * fe.sample_rate / fe.hop_length
                key = f"frontend.{name}.{arith}"
                rows += [
                    (f"{key}.insn_per_frame", per_frame, f"insn/frame ({isa} -O2)"),
                    (f"{key}.predicted_vs_measured", 100.0 * (predicted / per_frame - 1), "% (cost model)"),
                    (f"{key}.insn_per_audio_second", per_second[arith], "insn/s"),
                    (f"{key}.cpu_share_80MHz", 100.0 * per_second[arith] * CYCLES_PER_INSN / CLOCK_HZ,
                     "% of 80 MHz (ASSUMES 1.3 cycles/insn)"),
                    (f"{key}.code_bytes", float(code), "B (CMSIS-DSP + nas_frontend + libm)"),
                ]
            rows.append((f"frontend.{name}.fixed_vs_float", per_second["fixed"] / per_second["float"],
                         "x instructions per second"))
        if os.environ.get("NAS_BENCH_DATA"):
            rows += _real_clips(cd, os.environ["NAS_BENCH_DATA"], Path(tmp) / "real")
    return rows
