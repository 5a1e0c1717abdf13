"""Streaming log-mel front-end in C (CMSIS-DSP f32) for the device, and its Python reference.

`write_frontend(fe, iq, out_dir)` emits ``nas_frontend.h`` + ``nas_frontend.c``: the exact chain of
`nas.arch.frontend` (the one the models are trained on) followed by the int8 input quantisation of
`nas.quant.inputq`, specialised to one `FrontEnd` (all sizes are compile-time constants):

    C API                                             what it does
    void nas_frontend_init(void);                     zero history, window and counters
    int  nas_frontend_push(const int16_t *hop);       take hop_length new samples (x/32768 -> float);
                                                      return 1 when a new window is ready
    const int8_t *nas_frontend_window(void);          frames x n_mels int8, time-major (the network
                                                      input), valid until the next push

Per push, once ceil(n_fft/hop) pushes have filled the first frame, one frame is computed:

    arm_q15_to_float (history, new samples) -> arm_mult_f32 (periodic Hann) -> arm_rfft_fast_f32
    -> X[1] = 0 -> arm_cmplx_mag_squared_f32 (n_fft/2 bins) -> arm_dot_prod_f32 per mel band
    -> arm_offset_f32 (LOG_EPS) -> arm_vlog_f32 -> arm_scale_f32 (DB_PER_NEPER)        = dB
    -> arm_scale_f32 (gain) -> arm_offset_f32 (offset) -> round half away from zero, saturate = int8

The two quantisation steps are separate CMSIS-DSP calls (separate translation units), so no compiler
can contract them into an FMA; the rounding is roundf's, done without libm. Frame t covers samples
[t*hop, t*hop+n_fft) with no padding; window w is frames [w*W, w*W+frames), W = window_hop_frames.

Memory, exactly the contract of `nas.cost` (checked at compile time):
- RAM: one static struct of `frontend_ram_bytes(fe)` bytes: float32 FFT input[n_fft] (windowed frame,
  then the power spectrum), float32 FFT output[n_fft], float32 mel[n_mels], int16 audio history
  [n_fft] (the last n_fft samples), int8 window[align4(frames*n_mels)], and two uint16 counters
  (warm-up pushes, frames in the window). The 24-byte rfft instance lives on
  the stack: it is rebuilt per frame by the size-specific `arm_rfft_fast_init_<n_fft>_f32` (~30
  instructions), which is also what makes the linker keep only that length's tables.
- FLASH tables: float32 window[n_fft], float32 mel coefs[nnz], uint32 mel pos/len[n_mels] (static
  const here) + CMSIS-DSP's twiddleCoef_<n/2>, armBitRevIndexTable<n/2>, twiddleCoef_rfft_<n>
  (`rfft_table_symbols`); CMSIS-DSP also keeps the 16-byte `arm_cfft_sR_f32_len<n/2>` descriptor.

Build: the CMSIS-DSP files of `cmsis_dsp_sources(root)` (root = a CMSIS-DSP checkout or the cmsisdsp
sdist) with `CMSIS_DSP_DEFINES`, plus ``nas_frontend.c``, all with `FRONTEND_CFLAGS`
(``-std=c99`` already means ``-ffp-contract=off`` for gcc; it is spelled out for other dialects).

The C is `templates/nas_frontend.h.j2` and `templates/nas_frontend.c.j2`; `frontend_values` computes
the tables and sizes they are filled with.

Fixed point (`fe.arithmetic == "fixed"`, `templates/nas_frontend_fixed.c.j2`, `fixed_values`): the
integer chain of `nas.arch.fixedfe` (q15 window, `arm_rfft_q15`, SMUAD power, SMLAWB mel, CLZ + table
log, integer int8 map of `nas.quant.inputq.quantize_db16`), equal to it bit for bit. CMSIS-DSP's q15
FFT (`FIXED_UNIT_SOURCES`) is compiled as one translation unit, ``nas_frontend_dsp.c``, that includes
those sources after setting what they need (no CMSIS-Core, ARM_MATH_DSP, the intrinsics of
``nas_dsp_intrinsics.h``), so every core runs its SIMD-intrinsic version (`nas.arch.q15fft`) and no
build flag reaches the model's or CMSIS-NN's files; its tables and bit reversal (`FIXED_DSP_SOURCES`)
are compiled like the float front-end's, and the include paths add CMSIS-DSP/Source
(`cmsis_dsp_sources`). RAM: the q15 frame (then int32 power), the q15 spectrum, the window, the
int16 history of n_fft + lag samples and a uint16 magnitude per push of a frame; FLASH: q15 window and
mel weights, uint16 mel positions/lengths, the log table, realCoefA/BQ15 at this length's stride and
the arm_rfft_q15 instance (`FIXED_TABLE_SYMBOLS`) + CMSIS-DSP's twiddleCoef_<n/2>_q15 and
armBitRevIndexTable_fixed_<n/2> (`rfft_table_symbols`).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from nas.arch import fixedfe
from nas.arch import frontend as F
from nas.arch import q15fft
from nas.arch.spec import FrontEnd
from nas.cost.analytic import (BITREV_TABLE_LENGTHS, FIXED_BITREV_TABLE_LENGTHS, frontend_ram_bytes,
                               frontend_table_bytes, mel_nonzeros)
from nas.export.api import Api
from nas.quant.inputq import InputQuant, fixed_map, quantize_db16, quantize_features
from nas.export.render import render

__all__ = [
    "CMSIS_DSP_SOURCES",
    "CMSIS_DSP_DEFINES",
    "FIXED_DSP_SOURCES",
    "FIXED_UNIT_SOURCES",
    "FIXED_TABLE_SYMBOLS",
    "DSP_UNIT_NAME",
    "INTRINSICS_HEADER",
    "INTRINSICS_PATH",
    "frontend_sources",
    "table_symbols",
    "fixed_values",
    "FRONTEND_CFLAGS",
    "HEADER_NAME",
    "SOURCE_NAME",
    "RAM_SYMBOL",
    "TABLE_SYMBOLS",
    "cmsis_dsp_sources",
    "rfft_table_symbols",
    "warmup_pushes",
    "write_frontend",
    "render_header",
    "render_source",
    "reference_db",
    "frontend_reference",
    "frames_from_pushes",
    "frontend_values",
]

HEADER_NAME = "nas_frontend.h"
SOURCE_NAME = "nas_frontend.c"

# CMSIS-DSP files (relative to Source/) the generated front-end links against: nothing else is needed.
CMSIS_DSP_SOURCES: tuple[str, ...] = (
    "BasicMathFunctions/arm_dot_prod_f32.c",
    "BasicMathFunctions/arm_mult_f32.c",
    "BasicMathFunctions/arm_offset_f32.c",
    "BasicMathFunctions/arm_scale_f32.c",
    "CommonTables/arm_common_tables.c",
    "CommonTables/arm_const_structs.c",
    "ComplexMathFunctions/arm_cmplx_mag_squared_f32.c",
    "FastMathFunctions/arm_vlog_f32.c",
    "SupportFunctions/arm_q15_to_float.c",
    "TransformFunctions/arm_bitreversal2.c",
    "TransformFunctions/arm_cfft_f32.c",
    "TransformFunctions/arm_cfft_init_f32.c",
    "TransformFunctions/arm_cfft_radix8_f32.c",
    "TransformFunctions/arm_rfft_fast_f32.c",
    "TransformFunctions/arm_rfft_fast_init_f32.c",
)

# __GNUC_PYTHON__: build without CMSIS-Core (cmsis_compiler.h). The f32 functions above have no
# ARM_MATH_DSP (SIMD-intrinsic) paths, so it changes no code; drop it when CMSIS-Core is on the
# include path. ARM_MATH_LOOPUNROLL: CMSIS-DSP's default build option (same summation order).
CMSIS_DSP_DEFINES: tuple[str, ...] = ("__GNUC_PYTHON__", "ARM_MATH_LOOPUNROLL")

FRONTEND_CFLAGS: tuple[str, ...] = ("-std=c99", "-ffp-contract=off")

RAM_SYMBOL = "nas_fe_ram"
TABLE_SYMBOLS = ("nas_fe_window", "nas_fe_mel_coefs", "nas_fe_mel_pos", "nas_fe_mel_len")

# The fixed front-end's CMSIS-DSP files. Compiled like the float front-end's (shared with it when both
# are in one firmware): the FFT tables, descriptors and the bit reversal.
FIXED_DSP_SOURCES: tuple[str, ...] = (
    "CommonTables/arm_common_tables.c",
    "CommonTables/arm_const_structs.c",
    "TransformFunctions/arm_bitreversal2.c",
)
# ... and those of DSP_UNIT_NAME, compiled with ARM_MATH_DSP: arm_rfft_q15 and its q15 complex FFT
# (arm_shift_q15 is referenced by its inverse branch, arm_bitreversal_q15 by the old radix-4 API).
FIXED_UNIT_SOURCES: tuple[str, ...] = (
    "BasicMathFunctions/arm_shift_q15.c",
    "TransformFunctions/arm_bitreversal.c",
    "TransformFunctions/arm_cfft_q15.c",
    "TransformFunctions/arm_cfft_radix4_q15.c",
    "TransformFunctions/arm_rfft_q15.c",
)
DSP_UNIT_NAME = "nas_frontend_dsp.c"     # includes FIXED_UNIT_SOURCES (templates/nas_frontend_dsp.c.j2)
INTRINSICS_HEADER = "nas_dsp_intrinsics.h"
INTRINSICS_PATH = Path(__file__).resolve().parent / "csrc" / INTRINSICS_HEADER
FIXED_TABLE_SYMBOLS = ("nas_fe_window", "nas_fe_mel_coefs", "nas_fe_mel_pos", "nas_fe_mel_len", "nas_fe_log2",
                       "nas_fe_rfft_a", "nas_fe_rfft_b", "nas_fe_rfft")


def frontend_sources(fe: FrontEnd) -> tuple[str, ...]:
    """The generated C files of `fe`'s front-end to compile (in its folder)."""
    return (SOURCE_NAME, DSP_UNIT_NAME) if fe.arithmetic == "fixed" else (SOURCE_NAME,)


def table_symbols(fe: FrontEnd) -> tuple[str, ...]:
    """The front-end's own constant tables (symbols of nas_frontend.c)."""
    return FIXED_TABLE_SYMBOLS if fe.arithmetic == "fixed" else TABLE_SYMBOLS


def cmsis_dsp_sources(root: str | os.PathLike, fe: FrontEnd | None = None) -> tuple[list[Path], list[Path]]:
    """(sources to compile, include_dirs) of the CMSIS-DSP subset the front-end `fe` (default: a float
    one) needs, from a CMSIS-DSP checkout (or the extracted cmsisdsp sdist: same layout); a fixed
    front-end's `DSP_UNIT_NAME` includes the others from Source/, on the include path. Raises
    FileNotFoundError naming what is missing."""
    root = Path(root)
    inc = root / "Include"
    if not (inc / "arm_math.h").is_file():
        raise FileNotFoundError(f"{root} is not a CMSIS-DSP tree (no Include/arm_math.h)")
    fixed = fe is not None and fe.arithmetic == "fixed"
    sources = [root / "Source" / s for s in (FIXED_DSP_SOURCES if fixed else CMSIS_DSP_SOURCES)]
    unit = [root / "Source" / s for s in (FIXED_UNIT_SOURCES if fixed else ())]
    missing = [str(s) for s in sources + unit if not s.is_file()]
    if missing:
        raise FileNotFoundError(f"CMSIS-DSP sources missing under {root}: {', '.join(missing)}")
    dirs = [inc] + ([root / "PrivateInclude"] if (root / "PrivateInclude").is_dir() else [])
    return sources, [*dirs, root / "Source"] if fixed else dirs


def rfft_table_symbols(n_fft: int, arithmetic: str = "float") -> dict[str, int]:
    """CMSIS-DSP table symbols `arm_rfft_fast_init_<n_fft>_f32` pulls in (fixed point: those of
    `arm_cfft_sR_q15_len<n_fft/2>`), with their sizes in bytes."""
    half = n_fft // 2
    if arithmetic == "fixed":
        if n_fft & (n_fft - 1) or half not in FIXED_BITREV_TABLE_LENGTHS:
            raise ValueError(f"no CMSIS-DSP q15 rfft for n_fft={n_fft}")
        return {f"twiddleCoef_{half}_q15": 3 * half, f"armBitRevIndexTable_fixed_{half}": 2 * FIXED_BITREV_TABLE_LENGTHS[half]}
    if n_fft & (n_fft - 1) or half not in BITREV_TABLE_LENGTHS:
        raise ValueError(f"no CMSIS-DSP rfft_fast for n_fft={n_fft}")
    return {f"twiddleCoef_{half}": 4 * 2 * half, f"armBitRevIndexTable{half}": 2 * BITREV_TABLE_LENGTHS[half],
            f"twiddleCoef_rfft_{n_fft}": 4 * n_fft}


def warmup_pushes(fe: FrontEnd) -> int:
    """Pushes before the first frame: frame t is computed on push t + ceil(n_fft / hop) (1-based)."""
    return -(-fe.n_fft // fe.hop_length)


def frames_from_pushes(n_pushes: int, fe: FrontEnd) -> int:
    """Frames the C front-end has computed after `n_pushes` pushes."""
    return max(0, n_pushes - warmup_pushes(fe) + 1)


# --------------------------------------------------------------------------- reference

def reference_db(audio_int16: np.ndarray, fe: FrontEnd) -> np.ndarray:
    """Training front-end on int16 audio: `nas.arch.frontend.logmel(audio / 32768)` -> [n_frames, n_mels]
    float32 dB; for a fixed front-end its features D / 16 (exact)."""
    import torch

    a = np.asarray(audio_int16)
    if a.ndim != 1 or a.dtype != np.int16:
        raise ValueError(f"audio_int16 must be a 1-D int16 array, got {a.dtype} {a.shape}")
    if fe.arithmetic == "fixed":
        return fixedfe.features_db16(a, fe).astype(np.float32) / np.float32(fixedfe.DB_STEPS)
    x = torch.from_numpy(a.astype(np.float32) / np.float32(32768.0))
    return F.logmel(x, fe).numpy()


def _split_windows(frames: np.ndarray, fe: FrontEnd) -> np.ndarray:
    n = frames.shape[0]
    hop = fe.window_hop_frames
    count = 0 if n < fe.frames else 1 + (n - fe.frames) // hop
    out = np.empty((count, fe.frames, fe.n_mels), dtype=frames.dtype)
    for w in range(count):
        out[w] = frames[w * hop: w * hop + fe.frames]
    return out


def frontend_reference(audio_int16: np.ndarray, fe: FrontEnd, iq: InputQuant) -> np.ndarray:
    """What training + quantisation assume the device computes: int16 audio -> [n_windows, frames,
    n_mels] int8, window w = frames [w*W, w*W + frames), W = fe.window_hop_frames."""
    if fe.arithmetic == "fixed":
        return _split_windows(quantize_db16(reference_db(audio_int16, fe), iq), fe)
    return _split_windows(quantize_features(reference_db(audio_int16, fe), iq), fe)


# --------------------------------------------------------------------------- C emission

def _check(fe: FrontEnd, iq: InputQuant) -> None:
    if fe.n_fft // 2 not in BITREV_TABLE_LENGTHS:
        raise ValueError(f"n_fft {fe.n_fft} has no CMSIS-DSP rfft_fast")
    if fe.arithmetic == "fixed":
        fixed_map(iq)
    if fe.n_fft > 0xFFFF or warmup_pushes(fe) > 0xFFFF or fe.frames > 0xFFFF:
        raise ValueError("front-end too large for the 16-bit counters")
    for name, v in (("gain", iq.gain), ("offset", iq.offset)):
        if not np.isfinite(v):
            raise ValueError(f"InputQuant {name} is not finite: {v}")


def render_header(fe: FrontEnd, iq: InputQuant, api: Api = Api()) -> str:
    _check(fe, iq)
    return render(HEADER_NAME + ".j2", fe=fe, iq=iq, api=api, ram_bytes=frontend_ram_bytes(fe),
                  table_bytes=frontend_table_bytes(fe, mel_nonzeros(fe)))


def frontend_values(fe: FrontEnd, iq: InputQuant) -> dict:
    """The numbers and tables `nas_frontend.c.j2` is filled with."""
    _check(fe, iq)
    t = F.mel_filter_tables(fe)
    if t.max_bin > fe.n_fft // 2:
        raise AssertionError("mel tables reach the Nyquist bin")
    n, hop = fe.n_fft, fe.hop_length
    k0 = warmup_pushes(fe)
    lag = k0 * hop - n                       # frame t ends `lag` samples before the end of its push
    return dict(fe=fe, iq=iq, n=n, hop=hop, m=fe.n_mels, k0=k0,
                old=n - hop + lag,           # samples of a frame taken from the history
                new=hop - lag,               # ... and from the pushed samples
                window_bytes=fe.frames * fe.n_mels, slide=fe.window_hop_frames * fe.n_mels,
                ram_bytes=frontend_ram_bytes(fe), window=F.window(fe).tolist(), mel_coefs=t.coefs.tolist(),
                mel_pos=t.pos.tolist(), mel_len=t.lengths.tolist(), log_eps=F.LOG_EPS,
                db_per_neper=F.DB_PER_NEPER)


def _words(q15: np.ndarray) -> list[int]:
    """int16 pairs as uint32 words, the first in the low halfword (how a Cortex-M loads them)."""
    u = np.asarray(q15, dtype=np.int16).view(np.uint16).astype(np.uint32)
    return (u[0::2] | (u[1::2] << 16)).tolist()


def fixed_values(fe: FrontEnd, iq: InputQuant) -> dict:
    """The numbers and tables `nas_frontend_fixed.c.j2` is filled with."""
    _check(fe, iq)
    t = fixedfe.tables(fe)
    mel = F.mel_filter_tables(fe)
    if mel.max_bin > fe.n_fft // 2:
        raise AssertionError("mel tables reach the Nyquist bin")
    n, hop, k0 = fe.n_fft, fe.hop_length, t.pushes_per_frame
    a, b = q15fft.real_coefs_q15()
    stride = q15fft.REAL_TABLE_LENGTH // n
    gain_q, offset_q = fixed_map(iq)
    return dict(fe=fe, iq=iq, n=n, hop=hop, m=fe.n_mels, k0=k0, history=k0 * hop,
                window_bytes=fe.frames * fe.n_mels, slide=fe.window_hop_frames * fe.n_mels,
                ram_bytes=frontend_ram_bytes(fe), window=_words(t.window), mel_coefs=_words(t.coefs),
                mel_pos=t.pos.tolist(), mel_len=(t.lengths // 2).tolist(), log2=t.log2.tolist(),
                rfft_modifier=stride, rfft_a=a[:n // 2 * stride:stride].reshape(-1).tolist(),
                rfft_b=b[:n // 2 * stride:stride].reshape(-1).tolist(),
                log_k=fixedfe.LOG_K, log_shift=fixedfe.LOG_SHIFT, log_bits=fixedfe.LOG_BITS, log_offset=t.offset,
                floor=fixedfe.FLOOR_DB16, ceil=fixedfe.CEIL_DB16, gain_q=gain_q, offset_q=offset_q)


def render_source(fe: FrontEnd, iq: InputQuant, api: Api = Api()) -> str:
    if fe.arithmetic == "fixed":
        return render("nas_frontend_fixed.c.j2", api=api, **fixed_values(fe, iq))
    return render(SOURCE_NAME + ".j2", api=api, **frontend_values(fe, iq))


def render_dsp_unit() -> str:
    """nas_frontend_dsp.c: CMSIS-DSP's q15 FFT sources in one translation unit (fixed front-ends)."""
    return render(DSP_UNIT_NAME + ".j2", sources=FIXED_UNIT_SOURCES, intrinsics=INTRINSICS_HEADER)


def write_frontend(fe: FrontEnd, iq: InputQuant, out_dir: str | os.PathLike, api: Api = Api()) -> list[Path]:
    """Write nas_frontend.h and nas_frontend.c for `fe` with input quantisation `iq` into `out_dir`,
    with `api`'s names (`nas_frontend_*` by default), and for a fixed front-end nas_frontend_dsp.c and
    the intrinsics header; returns their paths (header first)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    header, source = out / HEADER_NAME, out / SOURCE_NAME
    header.write_text(render_header(fe, iq, api))
    source.write_text(render_source(fe, iq, api))
    if fe.arithmetic != "fixed":
        return [header, source]
    unit, intrinsics = out / DSP_UNIT_NAME, out / INTRINSICS_HEADER
    unit.write_text(render_dsp_unit())
    intrinsics.write_text(INTRINSICS_PATH.read_text())
    return [header, source, unit, intrinsics]
