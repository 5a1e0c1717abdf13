"""Streaming log-mel front-end in C (CMSIS-DSP f32) for the device, and its Python reference.

`write_frontend(fe, iq, out_dir)` emits ``nas_frontend.h`` + ``nas_frontend.c``: the exact chain of
`nas.data.frontend` (the one the models are trained on) followed by the int8 input quantisation of
`nas.export.inputq`, specialised to one `FrontEnd` (all sizes are compile-time constants):

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
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from nas.data import frontend as F
from nas.export.inputq import InputQuant, quantize_features
from nas.spec import FrontEnd

__all__ = [
    "CMSIS_DSP_SOURCES",
    "CMSIS_DSP_DEFINES",
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

# CMSIS-DSP arm_common_tables.h: ARMBITREVINDEXTABLE_<L>_TABLE_LENGTH, by complex FFT length L.
_BITREV_LEN = {16: 20, 32: 48, 64: 56, 128: 208, 256: 440, 512: 448, 1024: 1800, 2048: 3808, 4096: 4032}


def cmsis_dsp_sources(root: str | os.PathLike) -> tuple[list[Path], list[Path]]:
    """(sources, include_dirs) of the CMSIS-DSP subset the front-end needs, from a CMSIS-DSP checkout
    (or the extracted cmsisdsp sdist: same layout). Raises FileNotFoundError naming what is missing."""
    root = Path(root)
    inc = root / "Include"
    if not (inc / "arm_math.h").is_file():
        raise FileNotFoundError(f"{root} is not a CMSIS-DSP tree (no Include/arm_math.h)")
    sources = [root / "Source" / s for s in CMSIS_DSP_SOURCES]
    missing = [str(s) for s in sources if not s.is_file()]
    if missing:
        raise FileNotFoundError(f"CMSIS-DSP sources missing under {root}: {', '.join(missing)}")
    dirs = [inc] + ([root / "PrivateInclude"] if (root / "PrivateInclude").is_dir() else [])
    return sources, dirs


def rfft_table_symbols(n_fft: int) -> dict[str, int]:
    """CMSIS-DSP table symbols `arm_rfft_fast_init_<n_fft>_f32` pulls in, with their sizes in bytes."""
    half = n_fft // 2
    if n_fft & (n_fft - 1) or half not in _BITREV_LEN:
        raise ValueError(f"no CMSIS-DSP rfft_fast for n_fft={n_fft}")
    return {f"twiddleCoef_{half}": 4 * 2 * half, f"armBitRevIndexTable{half}": 2 * _BITREV_LEN[half],
            f"twiddleCoef_rfft_{n_fft}": 4 * n_fft}


def warmup_pushes(fe: FrontEnd) -> int:
    """Pushes before the first frame: frame t is computed on push t + ceil(n_fft / hop) (1-based)."""
    return -(-fe.n_fft // fe.hop_length)


def frames_from_pushes(n_pushes: int, fe: FrontEnd) -> int:
    """Frames the C front-end has computed after `n_pushes` pushes."""
    return max(0, n_pushes - warmup_pushes(fe) + 1)


# --------------------------------------------------------------------------- reference

def reference_db(audio_int16: np.ndarray, fe: FrontEnd) -> np.ndarray:
    """Training front-end on int16 audio: `nas.data.frontend.logmel(audio / 32768)` -> [n_frames, n_mels]
    float32 dB."""
    import torch

    a = np.asarray(audio_int16)
    if a.ndim != 1 or a.dtype != np.int16:
        raise ValueError(f"audio_int16 must be a 1-D int16 array, got {a.dtype} {a.shape}")
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
    return _split_windows(quantize_features(reference_db(audio_int16, fe), iq), fe)


# --------------------------------------------------------------------------- C emission

def _f32(v: float) -> str:
    """float32 C literal that round-trips exactly (9 significant digits, parsed directly to float)."""
    x = float(np.float32(v))
    if not math.isfinite(x):
        raise ValueError(f"non-finite constant {v}")
    s = f"{x:.9g}"
    if "." not in s and "e" not in s:
        s += "."
    return s + "f"


def _array(values, fmt, per_line: int) -> str:
    items = [fmt(v) for v in values]
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return "    " + ",\n    ".join(lines)


def _check(fe: FrontEnd, iq: InputQuant) -> None:
    if fe.n_fft // 2 not in _BITREV_LEN:
        raise ValueError(f"n_fft {fe.n_fft} has no CMSIS-DSP rfft_fast")
    if fe.n_fft > 0xFFFF or warmup_pushes(fe) > 0xFFFF or fe.frames > 0xFFFF:
        raise ValueError("front-end too large for the 16-bit counters")
    for name, v in (("gain", iq.gain), ("offset", iq.offset)):
        if not np.isfinite(v):
            raise ValueError(f"InputQuant {name} is not finite: {v}")


def render_header(fe: FrontEnd, iq: InputQuant) -> str:
    from nas.cost import frontend_ram_bytes, frontend_table_bytes, mel_nonzeros

    _check(fe, iq)
    ram = frontend_ram_bytes(fe)
    flash = frontend_table_bytes(fe, mel_nonzeros(fe))
    return f"""/* nas_frontend.h -- generated by nas.export.frontend_c; do not edit.
 *
 * Streaming log-mel front-end (CMSIS-DSP f32) + int8 input quantisation, identical to the training
 * front-end nas.data.frontend and nas.export.inputq.quantize_features.
 *   sample rate {fe.sample_rate} Hz, n_fft {fe.n_fft}, hop {fe.hop_length}, {fe.n_mels} mels
 *   ({fe.fmin:g}..{fe.f_max:g} Hz), window {fe.frames} frames, a new window every {fe.window_hop_frames} frames
 *   input quantisation: mean {iq.mean!r} dB, std {iq.std!r} dB, scale {iq.scale!r}, zero point {iq.zero_point}
 *
 * Use: nas_frontend_init(); then for every NAS_FRONTEND_HOP_LENGTH new samples
 *   if (nas_frontend_push(samples)) run_network(nas_frontend_window());
 */
#ifndef NAS_FRONTEND_H
#define NAS_FRONTEND_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {{
#endif

#define NAS_FRONTEND_SAMPLE_RATE {fe.sample_rate}
#define NAS_FRONTEND_N_FFT {fe.n_fft}
#define NAS_FRONTEND_HOP_LENGTH {fe.hop_length}
#define NAS_FRONTEND_N_MELS {fe.n_mels}
#define NAS_FRONTEND_FRAMES {fe.frames}
#define NAS_FRONTEND_WINDOW_HOP_FRAMES {fe.window_hop_frames}
#define NAS_FRONTEND_WINDOW_BYTES {fe.frames * fe.n_mels}
#define NAS_FRONTEND_INPUT_ZERO_POINT {iq.zero_point}
/* Static buffers (nas.cost.frontend_ram_bytes) and constant tables incl. CMSIS-DSP rfft tables
 * (nas.cost.frontend_table_bytes), in bytes. */
#define NAS_FRONTEND_RAM_BYTES {ram}
#define NAS_FRONTEND_TABLE_BYTES {flash}

/** Reset the audio history, the feature window and the counters. */
void nas_frontend_init(void);

/** Feed NAS_FRONTEND_HOP_LENGTH new int16 samples (full scale = 32768). Returns 1 when a new
 *  window of NAS_FRONTEND_FRAMES frames is ready (every NAS_FRONTEND_WINDOW_HOP_FRAMES frames once
 *  the first window is full), else 0. */
int nas_frontend_push(const int16_t *hop_samples);

/** The feature window: NAS_FRONTEND_FRAMES x NAS_FRONTEND_N_MELS int8, time-major (the network
 *  input, NHWC with H = frames, W = mels, C = 1). Valid until the next nas_frontend_push. */
const int8_t *nas_frontend_window(void);

#ifdef __cplusplus
}}
#endif

#endif /* NAS_FRONTEND_H */
"""


def render_source(fe: FrontEnd, iq: InputQuant) -> str:
    from nas.cost import frontend_ram_bytes

    _check(fe, iq)
    t = F.mel_filter_tables(fe)
    if t.max_bin > fe.n_fft // 2:
        raise AssertionError("mel tables reach the Nyquist bin")
    nnz = int(t.lengths.sum())
    win = F.window(fe)
    n, hop, m = fe.n_fft, fe.hop_length, fe.n_mels
    k0 = warmup_pushes(fe)
    lag = k0 * hop - n                       # frame t ends `lag` samples before the end of its push
    old = n - hop + lag                      # samples of a frame taken from the history
    new = hop - lag                          # ... and from the pushed samples
    wbytes = fe.frames * m
    slide = fe.window_hop_frames * m
    ram = frontend_ram_bytes(fe)

    frame_in = []
    if old:
        frame_in.append(f"    arm_q15_to_float(nas_fe_ram.audio + {n - old}, nas_fe_ram.fft_in, {old}u);")
    frame_in.append(f"    arm_q15_to_float(hop_samples, nas_fe_ram.fft_in + {old}, {new}u);")
    frame_in = "\n".join(frame_in)

    if hop < n:
        history = (f"    memmove(nas_fe_ram.audio, nas_fe_ram.audio + {hop}, {2 * (n - hop)}u);\n"
                   f"    memcpy(nas_fe_ram.audio + {n - hop}, hop_samples, {2 * hop}u);")
    else:
        history = f"    memcpy(nas_fe_ram.audio, hop_samples, {2 * n}u);"

    if k0 > 1:
        warm = (f"    if (nas_fe_ram.warmup < {k0 - 1}u) {{      /* first frame needs {k0} pushes */\n"
                f"        nas_fe_ram.warmup++;\n"
                f"    }} else {{\n"
                f"        ready = nas_fe_frame(hop_samples);\n"
                f"    }}")
    else:
        warm = "    ready = nas_fe_frame(hop_samples);"

    if slide < wbytes:
        slide_code = (f"        memmove(nas_fe_ram.window, nas_fe_ram.window + {slide}, {wbytes - slide}u);\n"
                      f"        nas_fe_ram.frames = {fe.frames - fe.window_hop_frames}u;")
    else:
        slide_code = "        nas_fe_ram.frames = 0u;"

    mel_body = (
        f"    const float32_t *c = nas_fe_mel_coefs;\n"
        f"    for (uint32_t b = 0; b < {m}u; b++) {{                 /* sparse mel filterbank */\n"
        f"        uint32_t len = nas_fe_mel_len[b];\n"
        f"        nas_fe_ram.mel[b] = 0.0f;\n"
        f"        if (len) {{\n"
        f"            arm_dot_prod_f32(nas_fe_ram.fft_in + nas_fe_mel_pos[b], c, len, &nas_fe_ram.mel[b]);\n"
        f"            c += len;\n"
        f"        }}\n"
        f"    }}")

    return f"""/* nas_frontend.c -- generated by nas.export.frontend_c; do not edit.
 *
 * {fe.sample_rate} Hz, n_fft {fe.n_fft}, hop {fe.hop_length}, {fe.n_mels} mels, {fe.frames} frames per window,
 * new window every {fe.window_hop_frames} frames. Computes, per frame (all float32, CMSIS-DSP):
 *   x = frame/32768 * hann; X = rfft(x); X[1] = 0; P = |X|^2 (n_fft/2 bins); M = mel . P;
 *   dB = ln(M + 1e-6) * 10/ln(10); q = sat8(roundf(dB * gain + offset)) (two separate float ops).
 * Build with -std=c99 (no FP contraction) against CMSIS-DSP (nas.export.frontend_c.CMSIS_DSP_SOURCES).
 */
#include <string.h>
#include "arm_math.h"
#include "nas_frontend.h"

#define NAS_FE_ALIGN4(x) (((x) + 3u) & ~3u)

/* ---- constant tables (FLASH) ---- */
static const float32_t nas_fe_window[{n}] = {{   /* periodic Hann */
{_array(win, _f32, 8)}
}};

static const float32_t nas_fe_mel_coefs[{nnz}] = {{   /* non-zero mel weights, band by band */
{_array(t.coefs, _f32, 8)}
}};

static const uint32_t nas_fe_mel_pos[{m}] = {{   /* first power bin of each band */
{_array(t.pos, lambda v: f"{int(v)}u", 12)}
}};

static const uint32_t nas_fe_mel_len[{m}] = {{   /* bins per band (0: empty band) */
{_array(t.lengths, lambda v: f"{int(v)}u", 12)}
}};

static const float32_t nas_fe_log_eps = {_f32(F.LOG_EPS)};
static const float32_t nas_fe_db_per_neper = {_f32(F.DB_PER_NEPER)};
static const float32_t nas_fe_gain = {_f32(iq.gain)};       /* int8 steps per dB */
static const float32_t nas_fe_offset = {_f32(iq.offset)};

/* ---- static buffers (RAM): exactly nas.cost.frontend_ram_bytes ---- */
static struct {{
    float32_t fft_in[{n}];       /* windowed frame; after the rfft: power spectrum (n_fft/2 bins) */
    float32_t fft_out[{n}];      /* packed rfft output */
    float32_t mel[{m}];          /* mel energies -> dB -> scaled */
    int16_t audio[{n}];          /* the last n_fft input samples */
    int8_t window[NAS_FE_ALIGN4({wbytes}u)];   /* frames x n_mels int8, time-major */
    uint16_t warmup;             /* pushes seen before the first frame */
    uint16_t frames;             /* frames in the window */
}} nas_fe_ram;

typedef char nas_fe_ram_size_check[(sizeof(nas_fe_ram) == NAS_FRONTEND_RAM_BYTES
                                    && NAS_FRONTEND_RAM_BYTES == {ram}) ? 1 : -1];

#ifdef NAS_FRONTEND_DB_HOOK
/* Test hook: defined as a function name, it receives each frame's dB values before quantisation. */
void NAS_FRONTEND_DB_HOOK(const float32_t *db, uint32_t n);
#endif

void nas_frontend_init(void)
{{
    memset(&nas_fe_ram, 0, sizeof(nas_fe_ram));
}}

const int8_t *nas_frontend_window(void)
{{
    return nas_fe_ram.window;
}}

/* One frame from the history and the new samples; appends it to the window; 1 if a window is ready. */
static int nas_fe_frame(const int16_t *hop_samples)
{{
    arm_rfft_fast_instance_f32 rfft;
    (void)arm_rfft_fast_init_{n}_f32(&rfft);   /* size-specific: only the {n}-point tables are linked */

    /* frame = last {old} samples of the history + first {new} new samples, as float (x / 32768) */
{frame_in}
    arm_mult_f32(nas_fe_ram.fft_in, nas_fe_window, nas_fe_ram.fft_in, {n}u);
    arm_rfft_fast_f32(&rfft, nas_fe_ram.fft_in, nas_fe_ram.fft_out, 0);
    nas_fe_ram.fft_out[1] = 0.0f;   /* Nyquist (packed with DC): mel weight 0 */
    arm_cmplx_mag_squared_f32(nas_fe_ram.fft_out, nas_fe_ram.fft_in, {n // 2}u);
{mel_body}
    arm_offset_f32(nas_fe_ram.mel, nas_fe_log_eps, nas_fe_ram.mel, {m}u);
    arm_vlog_f32(nas_fe_ram.mel, nas_fe_ram.mel, {m}u);
    arm_scale_f32(nas_fe_ram.mel, nas_fe_db_per_neper, nas_fe_ram.mel, {m}u);
#ifdef NAS_FRONTEND_DB_HOOK
    NAS_FRONTEND_DB_HOOK(nas_fe_ram.mel, {m}u);
#endif

    /* int8: (dB * gain) + offset as two separate operations, round half away from zero, saturate */
    arm_scale_f32(nas_fe_ram.mel, nas_fe_gain, nas_fe_ram.mel, {m}u);
    arm_offset_f32(nas_fe_ram.mel, nas_fe_offset, nas_fe_ram.mel, {m}u);
    if (nas_fe_ram.frames == {fe.frames}u) {{      /* the last push handed out a window: slide */
{slide_code}
    }}
    int8_t *dst = nas_fe_ram.window + (uint32_t)nas_fe_ram.frames * {m}u;
    for (uint32_t b = 0; b < {m}u; b++) {{
        float32_t v = nas_fe_ram.mel[b];
        int32_t q;
        if (v >= 127.0f) {{
            q = 127;
        }} else if (v > -128.0f) {{
            q = (int32_t)v;                     /* toward zero */
            float32_t d = v - (float32_t)q;     /* exact */
            if (d >= 0.5f) {{
                q++;
            }} else if (d <= -0.5f) {{
                q--;
            }}
        }} else {{
            q = -128;
        }}
        dst[b] = (int8_t)q;
    }}
    nas_fe_ram.frames++;
    return nas_fe_ram.frames == {fe.frames}u;
}}

int nas_frontend_push(const int16_t *hop_samples)
{{
    int ready = 0;
{warm}
    /* history: keep the last n_fft samples */
{history}
    return ready;
}}
"""


def write_frontend(fe: FrontEnd, iq: InputQuant, out_dir: str | os.PathLike) -> list[Path]:
    """Write nas_frontend.h and nas_frontend.c for `fe` with input quantisation `iq` into `out_dir`;
    returns their paths (header first)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    header, source = out / HEADER_NAME, out / SOURCE_NAME
    header.write_text(render_header(fe, iq))
    source.write_text(render_source(fe, iq))
    return [header, source]
