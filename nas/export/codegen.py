"""C code of an exported model: one translation unit calling the CMSIS-NN v7 s8 API.

`write_model_c(qm, cost, out_dir)` writes

* ``model.h``: the API (`nas_model_invoke`), the quantisation the firmware needs (input scale, zero
  point and the dB -> int8 gain/offset, output scale/zero point), shapes, class names and the cost
  model's memory figures;
* ``model.c``: weights, biases, multipliers and shifts as ``static const`` arrays (symbols
  ``nas_w_<layer>_*``, exactly ``cost.network_flash_bytes`` bytes), the kernel parameter structs,
  ONE static arena ``nas_model_arena`` of exactly ``cost.arena_bytes`` bytes and the layer calls;
* ``model_selftest.c``: one validation window and the scores the integer reference gives for it,
  with ``int nas_model_selftest(void)`` (0 = bit-exact) for a first run on the target.

Arena layout (the cost model's contract, `nas.cost`): layer 0 reads the caller's feature buffer and
writes its output at the bottom of the arena; from then on each layer reads its input at one end,
writes its output at the other end and gets the gap between them as CMSIS-NN scratch buffer, every
buffer 4-byte aligned; the ends flip each layer. The final softmax writes straight into the caller's
``scores``. The arena size is checked at compile time against the per-layer sizes recomputed by the
preprocessor from the tensor dimensions, and at run time each layer checks that the scratch size
the linked CMSIS-NN asks for (``*_get_buffer_size``) fits its gap.

`write_build_files` adds a Makefile and a CMakeLists.txt (CMSIS_NN_PATH, CMSIS_DSP_PATH) and a copy
of the portable CMSIS-NN kernels, so the folder builds and self-tests on a PC without any checkout.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nas import cost as costmodel
from nas.atomic import atomic_write_text
from nas.export.inputq import InputQuant
from nas.export.qemu import PORTABLE_DIR
from nas.export.quantize import QLayer, QuantizedModel
from nas.spec import AvgPool2D, Conv2D, Dense, DepthwiseConv2D, GlobalAvgPool2D, MaxPool2D, Softmax

MODEL_C = "model.c"
MODEL_H = "model.h"
SELFTEST_C = "model_selftest.c"
PORTABLE_SUBDIR = "cmsisnn_portable"
ARENA_SYMBOL = "nas_model_arena"
WEIGHT_SYMBOL_PREFIX = "nas_w_"
ERR_NULL = -100


# --------------------------------------------------------------------------- arena layout

@dataclass(frozen=True)
class Slot:
    """Where one layer's tensors live: offsets into the arena (in_offset None = caller's buffer,
    out_offset None = caller's scores); gap = bytes available to its scratch buffer."""

    name: str
    in_offset: int | None
    in_bytes: int
    out_offset: int | None
    out_bytes: int
    scratch_offset: int
    gap: int
    scratch_bytes: int      # what the cost model counts for this layer's kernel on the budget's core


def arena_layout(qm: QuantizedModel, cost: costmodel.Cost) -> list[Slot]:
    """Two-ended arena layout of `nas.cost` (see the module docstring)."""
    a4 = costmodel.align4
    arena = cost.arena_bytes
    slots: list[Slot] = []
    prev_at_bottom: bool | None = None          # where the previous output lies
    n = len(qm.layers)
    for i, (q, lc) in enumerate(zip(qm.layers, cost.layers)):
        last = i == n - 1
        if i == 0:
            in_off, in_bytes_arena = None, 0
            out_bottom = True
        else:
            in_off = 0 if prev_at_bottom else arena - a4(lc.in_bytes)
            in_bytes_arena = a4(lc.in_bytes)
            out_bottom = not prev_at_bottom
        out_off = None if last else (0 if out_bottom else arena - a4(lc.out_bytes))
        # scratch right after whichever buffer sits at the bottom
        bottom = a4(lc.out_bytes) if out_bottom else in_bytes_arena
        gap = arena - in_bytes_arena - a4(lc.out_bytes)
        if gap < a4(lc.scratch_bytes):
            raise AssertionError(f"{q.name}: arena {arena} B leaves {gap} B of scratch, cost model needs "
                                 f"{lc.scratch_bytes} B (cost model and layout disagree)")
        slots.append(Slot(q.name, in_off, lc.in_bytes, out_off, lc.out_bytes, bottom, gap, lc.scratch_bytes))
        prev_at_bottom = out_bottom
    return slots


# --------------------------------------------------------------------------- C formatting

def _c_float(v: float) -> str:
    text = f"{float(np.float32(v)):.9g}"
    if "e" not in text and "." not in text and "inf" not in text and "nan" not in text:
        text += ".0"
    return text + "f"


def _c_int(v: int) -> str:
    v = int(v)
    return "(-2147483647 - 1)" if v == -(1 << 31) else str(v)


def _c_array(ctype: str, name: str, values: np.ndarray, per_line: int = 16) -> str:
    flat = np.asarray(values).reshape(-1)
    items = [_c_int(v) for v in flat.tolist()]
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    body = ",\n    ".join(lines)
    return f"static const {ctype} {name}[{len(items)}] = {{\n    {body}\n}};\n"


def _c_string(s: str) -> str:
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif 32 <= ord(ch) < 127:
            out.append(ch)
        else:
            out.append("?")
    return '"' + "".join(out) + '"'


def _dims(name: str, n: int, h: int, w: int, c: int) -> str:
    return f"static const cmsis_nn_dims {name} = {{.n = {n}, .h = {h}, .w = {w}, .c = {c}}};\n"


def _tile(h: int, w: int) -> str:
    return f"{{.w = {w}, .h = {h}}}"


def _describe(q: QLayer) -> str:
    def shape(s):
        return "x".join(map(str, s))
    geo = ""
    if q.kind in (Conv2D.TYPE, DepthwiseConv2D.TYPE, MaxPool2D.TYPE, AvgPool2D.TYPE):
        geo = f" {q.kernel[0]}x{q.kernel[1]}/{q.stride[0]}x{q.stride[1]} pad {q.padding[0]},{q.padding[1]}"
    act = " relu" if q.relu else ""
    return f"{q.kind}{geo}{act}: {shape(q.in_shape)} -> {shape(q.out_shape)}"


# --------------------------------------------------------------------------- model.h

def model_header(qm: QuantizedModel, cost: costmodel.Cost, origin: str = "") -> str:
    spec, fe, iq = qm.spec, qm.spec.frontend, qm.input_quant
    return f"""/*
 * {MODEL_H} -- int8 CMSIS-NN model "{spec.name}"{(" (" + origin + ")") if origin else ""}.
 * Generated by nas.export; do not edit.
 *
 * int nas_model_invoke(const int8_t *features, int8_t *scores)
 *   features: NAS_MODEL_INPUT_FRAMES x NAS_MODEL_INPUT_MELS int8 log-mel window, time-major
 *             (frame 0 first, NAS_MODEL_INPUT_MELS values per frame), quantised as
 *             q = clamp(roundf(dB * NAS_MODEL_INPUT_GAIN + NAS_MODEL_INPUT_OFFSET), -128, 127)
 *             (the generated front-end, when present, produces exactly this).
 *   scores:   NAS_MODEL_NUM_CLASSES int8 softmax outputs, probability = (q + 128) / 256.
 *   returns   NAS_MODEL_OK (0), NAS_MODEL_ERR_NULL for a NULL pointer, or -(1 + i) when layer i
 *             failed (a CMSIS-NN kernel returned an error or asked for more scratch than it has).
 * Not re-entrant: all activations live in one static arena of NAS_MODEL_ARENA_BYTES bytes
 * (define NAS_MODEL_ARENA_ATTR, e.g. as __attribute__((section(".sram2"))), to place it).
 */
#ifndef NAS_MODEL_H
#define NAS_MODEL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {{
#endif

#define NAS_MODEL_NAME {_c_string(spec.name)}
#define NAS_MODEL_NUM_LAYERS {len(qm.layers)}

/* input window */
#define NAS_MODEL_INPUT_FRAMES {fe.frames}
#define NAS_MODEL_INPUT_MELS {fe.n_mels}
#define NAS_MODEL_INPUT_BYTES ({fe.frames} * {fe.n_mels})
#define NAS_MODEL_INPUT_SCALE {_c_float(qm.input_scale)}          /* normalised units per step */
#define NAS_MODEL_INPUT_ZERO_POINT ({qm.input_zero_point})
#define NAS_MODEL_INPUT_MEAN_DB {_c_float(iq.mean)}               /* training-set normalisation */
#define NAS_MODEL_INPUT_STD_DB {_c_float(iq.std)}
#define NAS_MODEL_INPUT_GAIN {_c_float(iq.gain)}                  /* int8 steps per dB */
#define NAS_MODEL_INPUT_OFFSET {_c_float(iq.offset)}

/* front-end the model was trained with */
#define NAS_MODEL_SAMPLE_RATE {fe.sample_rate}
#define NAS_MODEL_FFT_LENGTH {fe.n_fft}
#define NAS_MODEL_HOP_LENGTH {fe.hop_length}
#define NAS_MODEL_WINDOW_HOP_FRAMES {fe.window_hop_frames}      /* frames between inferences */

/* output */
#define NAS_MODEL_NUM_CLASSES {spec.num_classes}
#define NAS_MODEL_OUTPUT_SCALE {_c_float(1.0 / 256.0)}
#define NAS_MODEL_OUTPUT_ZERO_POINT (-128)

/* cost model figures (nas.cost, CMSIS-NN scratch sizes of the budget's core) */
#define NAS_MODEL_ARENA_BYTES {cost.arena_bytes}
#define NAS_MODEL_NETWORK_FLASH_BYTES {cost.network_flash_bytes}
#define NAS_MODEL_MACS {cost.macs}

#define NAS_MODEL_OK 0
#define NAS_MODEL_ERR_NULL ({ERR_NULL})

extern const char *const nas_model_class_names[NAS_MODEL_NUM_CLASSES];

int nas_model_invoke(const int8_t *features, int8_t *scores);

/* Runs one stored validation window; 0 when the scores match the Python reference bit for bit. */
int nas_model_selftest(void);

#ifdef __cplusplus
}}
#endif

#endif /* NAS_MODEL_H */
"""


# --------------------------------------------------------------------------- model.c

def _layer_consts(q: QLayer) -> str:
    """Weights, bias, multipliers, shifts: the network's FLASH, symbols nas_w_<layer>_*."""
    p = WEIGHT_SYMBOL_PREFIX + q.name
    if q.kind in (Conv2D.TYPE, DepthwiseConv2D.TYPE):
        return (_c_array("int8_t", f"{p}_weights", q.weights) + _c_array("int32_t", f"{p}_bias", q.bias, 8)
                + _c_array("int32_t", f"{p}_mult", q.mult, 8) + _c_array("int32_t", f"{p}_shift", q.shift, 16))
    if q.kind == Dense.TYPE:
        return (_c_array("int8_t", f"{p}_weights", q.weights) + _c_array("int32_t", f"{p}_bias", q.bias, 8)
                + f"static const cmsis_nn_per_tensor_quant_params {p}_quant = "
                  f"{{.multiplier = {_c_int(q.mult[0])}, .shift = {_c_int(q.shift[0])}}};\n")
    return ""


def _layer_params(i: int, q: QLayer) -> str:
    """Kernel parameter structs (dims, conv/pool params): glue, not counted as network FLASH."""
    h, w, c = q.in_shape
    oh, ow, oc = q.out_shape
    p = f"nas_p_{q.name}"
    act = f"{{.min = {q.act_min}, .max = {q.act_max}}}"
    s = f"/* layer {i} {q.name}: {_describe(q)} */\n"
    per_channel_quant = (f"static const cmsis_nn_per_channel_quant_params {p}_quant = {{"
                         f".multiplier = (int32_t *){WEIGHT_SYMBOL_PREFIX}{q.name}_mult, "
                         f".shift = (int32_t *){WEIGHT_SYMBOL_PREFIX}{q.name}_shift}};\n")
    if q.kind == Conv2D.TYPE:
        s += _dims(f"{p}_in", 1, h, w, c) + _dims(f"{p}_filter", oc, q.kernel[0], q.kernel[1], c)
        s += _dims(f"{p}_bias", 1, 1, 1, oc) + _dims(f"{p}_out", 1, oh, ow, oc)
        s += (f"static const cmsis_nn_conv_params {p}_conv = {{.input_offset = {q.input_offset}, "
              f".output_offset = {q.output_offset}, .stride = {_tile(*q.stride)}, .padding = {_tile(*q.padding)}, "
              f".dilation = {_tile(1, 1)}, .activation = {act}}};\n")
        s += per_channel_quant
    elif q.kind == DepthwiseConv2D.TYPE:
        s += _dims(f"{p}_in", 1, h, w, c) + _dims(f"{p}_filter", 1, q.kernel[0], q.kernel[1], oc)
        s += _dims(f"{p}_bias", 1, 1, 1, oc) + _dims(f"{p}_out", 1, oh, ow, oc)
        s += (f"static const cmsis_nn_dw_conv_params {p}_conv = {{.input_offset = {q.input_offset}, "
              f".output_offset = {q.output_offset}, .ch_mult = {oc // c}, .stride = {_tile(*q.stride)}, "
              f".padding = {_tile(*q.padding)}, .dilation = {_tile(1, 1)}, .activation = {act}}};\n")
        s += per_channel_quant
    elif q.kind == Dense.TYPE:
        k = h * w * c
        s += _dims(f"{p}_in", 1, 1, 1, k) + _dims(f"{p}_filter", k, 1, 1, oc)
        s += _dims(f"{p}_bias", 1, 1, 1, oc) + _dims(f"{p}_out", 1, 1, 1, oc)
        s += (f"static const cmsis_nn_fc_params {p}_fc = {{.input_offset = {q.input_offset}, .filter_offset = 0, "
              f".output_offset = {q.output_offset}, .activation = {act}}};\n")
    elif q.kind in (MaxPool2D.TYPE, AvgPool2D.TYPE, GlobalAvgPool2D.TYPE):
        s += _dims(f"{p}_in", 1, h, w, c) + _dims(f"{p}_filter", 1, q.kernel[0], q.kernel[1], 1)
        s += _dims(f"{p}_out", 1, oh, ow, oc)
        s += (f"static const cmsis_nn_pool_params {p}_pool = {{.stride = {_tile(*q.stride)}, "
              f".padding = {_tile(0, 0)}, .activation = {act}}};\n")
    return s


def _ptr(offset: int | None, external: str) -> str:
    return external if offset is None else f"arena + {offset}"


def _layer_call(i: int, q: QLayer, slot: Slot) -> str:
    p = f"nas_p_{q.name}"
    wsym = WEIGHT_SYMBOL_PREFIX + q.name
    src = _ptr(slot.in_offset, "features")
    dst = _ptr(slot.out_offset, "scores")
    fail = f"return -{i + 1};"
    s = f"\n    /* layer {i} {q.name}: {_describe(q)} */\n"
    if q.kind == Softmax.TYPE:
        return s + (f"    arm_softmax_s8({src}, 1, {q.out_shape[2]}, {_c_int(q.mult[0])}, {_c_int(q.shift[0])}, "
                    f"{_c_int(q.diff_min)}, {dst});\n")
    s += f"    ctx.buf = arena + {slot.scratch_offset};\n    ctx.size = {slot.gap};\n"
    if q.kind == Conv2D.TYPE:
        s += (f"    if (arm_convolve_wrapper_s8_get_buffer_size(&{p}_conv, &{p}_in, &{p}_filter, &{p}_out) > ctx.size)\n"
              f"    {{\n        {fail}\n    }}\n"
              f"    status = arm_convolve_wrapper_s8(&ctx, &{p}_conv, &{p}_quant, &{p}_in, {src}, &{p}_filter,\n"
              f"                                     {wsym}_weights, &{p}_bias, {wsym}_bias, &{p}_out, {dst});\n")
    elif q.kind == DepthwiseConv2D.TYPE:
        s += (f"    if (arm_depthwise_conv_wrapper_s8_get_buffer_size(&{p}_conv, &{p}_in, &{p}_filter, &{p}_out) > "
              f"ctx.size)\n    {{\n        {fail}\n    }}\n"
              f"    status = arm_depthwise_conv_wrapper_s8(&ctx, &{p}_conv, &{p}_quant, &{p}_in, {src}, &{p}_filter,\n"
              f"                                           {wsym}_weights, &{p}_bias, {wsym}_bias, &{p}_out, {dst});\n")
    elif q.kind == Dense.TYPE:
        # A non-zero size means an MVE build that wants precomputed kernel sums: not supported here.
        s += (f"    if (arm_fully_connected_s8_get_buffer_size(&{p}_filter) != 0)\n    {{\n        {fail}\n    }}\n"
              f"    status = arm_fully_connected_s8(&ctx, &{p}_fc, &{wsym}_quant, &{p}_in, {src}, &{p}_filter,\n"
              f"                                    {wsym}_weights, &{p}_bias, {wsym}_bias, &{p}_out, {dst});\n")
    elif q.kind == MaxPool2D.TYPE:
        s += f"    status = arm_max_pool_s8(&ctx, &{p}_pool, &{p}_in, {src}, &{p}_filter, &{p}_out, {dst});\n"
    elif q.kind in (AvgPool2D.TYPE, GlobalAvgPool2D.TYPE):
        s += (f"    if (arm_avgpool_s8_get_buffer_size({p}_out.w, {p}_in.c) > ctx.size)\n    {{\n        {fail}\n    }}\n"
              f"    status = arm_avgpool_s8(&ctx, &{p}_pool, &{p}_in, {src}, &{p}_filter, &{p}_out, {dst});\n")
    else:
        raise TypeError(f"no CMSIS-NN call for {q.kind}")
    return s + f"    if (status != ARM_CMSIS_NN_SUCCESS)\n    {{\n        {fail}\n    }}\n"


def _arena_checks(qm: QuantizedModel, cost: costmodel.Cost) -> str:
    """Preprocessor/enum recomputation of the cost model's arena from the tensor dimensions."""
    lines = ["/* Arena size recomputed from the tensor dimensions (nas.cost: max over layers of input + output",
             " * + scratch, each 4-byte aligned; layer 0 reads the caller's buffer) must equal the cost model. */",
             "#define NAS_A4(n) (((n) + 3) & ~3)", "enum", "{"]
    prev = None
    for i, (q, lc) in enumerate(zip(qm.layers, cost.layers)):
        h, w, c = q.in_shape
        oh, ow, oc = q.out_shape
        inb = "0" if i == 0 else f"NAS_A4({h} * {w} * {c})"
        term = f"{inb} + NAS_A4({oh} * {ow} * {oc}) + NAS_A4({lc.scratch_bytes})"
        lines.append(f"    NAS_ARENA_L{i} = {term},")
        cur = f"NAS_ARENA_L{i}" if prev is None else f"(NAS_ARENA_L{i} > NAS_ARENA_MAX{i - 1} ? NAS_ARENA_L{i} : NAS_ARENA_MAX{i - 1})"
        lines.append(f"    NAS_ARENA_MAX{i} = {cur},")
        prev = i
    lines.append(f"    NAS_ARENA_REQUIRED = NAS_ARENA_MAX{prev}")
    lines.append("};")
    lines.append("typedef char nas_model_arena_equals_cost_model[(NAS_ARENA_REQUIRED == NAS_MODEL_ARENA_BYTES && "
                 "sizeof(nas_model_arena) == NAS_MODEL_ARENA_BYTES) ? 1 : -1];")
    return "\n".join(lines) + "\n"


def model_source(qm: QuantizedModel, cost: costmodel.Cost, origin: str = "") -> str:
    slots = arena_layout(qm, cost)
    names = list(qm.class_names[:qm.num_classes]) + [f"class_{i}" for i in range(len(qm.class_names), qm.num_classes)]
    consts = "".join(_layer_consts(q) for q in qm.layers)
    params = "".join(_layer_params(i, q) for i, q in enumerate(qm.layers))
    calls = "".join(_layer_call(i, q, s) for i, (q, s) in enumerate(zip(qm.layers, slots)))
    layout = "\n".join(
        f" *   {i:>2} {s.name:<10} in {('caller' if s.in_offset is None else f'@{s.in_offset}'):>8} ({s.in_bytes:>6} B)"
        f"  out {('caller' if s.out_offset is None else f'@{s.out_offset}'):>8} ({s.out_bytes:>6} B)"
        f"  scratch @{s.scratch_offset} ({s.scratch_bytes} B needed, {s.gap} B free)"
        for i, s in enumerate(slots))
    needs_status = any(q.kind != Softmax.TYPE for q in qm.layers)
    return f"""/*
 * {MODEL_C} -- int8 CMSIS-NN model "{qm.spec.name}"{(" (" + origin + ")") if origin else ""}.
 * Generated by nas.export; do not edit. See {MODEL_H} for the API.
 *
 * FLASH: network constants nas_w_* = {cost.network_flash_bytes} B (cost model).
 * RAM:   nas_model_arena = {cost.arena_bytes} B (cost model), layout (byte offsets):
{layout}
 */
#include <stddef.h>
#include <stdint.h>

#include "arm_nnfunctions.h"
#include "{MODEL_H}"

#ifndef NAS_MODEL_ARENA_ATTR
#define NAS_MODEL_ARENA_ATTR
#endif

const char *const nas_model_class_names[NAS_MODEL_NUM_CLASSES] = {{
    {(','.join(chr(10) + '    ' + _c_string(n) for n in names)).lstrip(chr(10)).lstrip()}
}};

/* ---- network constants (FLASH) ---- */
{consts}
/* ---- kernel parameters ---- */
{params}
/* ---- activation arena (RAM) ---- */
static int32_t {ARENA_SYMBOL}[NAS_MODEL_ARENA_BYTES / 4] NAS_MODEL_ARENA_ATTR;

{_arena_checks(qm, cost)}
int nas_model_invoke(const int8_t *features, int8_t *scores)
{{
    int8_t *const arena = (int8_t *){ARENA_SYMBOL};
    cmsis_nn_context ctx;
{"    arm_cmsis_nn_status status;" if needs_status else ""}
    if (features == NULL || scores == NULL)
    {{
        return NAS_MODEL_ERR_NULL;
    }}
{calls}
    return NAS_MODEL_OK;
}}
"""


def selftest_source(qm: QuantizedModel, x_int8: np.ndarray, expected: np.ndarray) -> str:
    return f"""/*
 * {SELFTEST_C} -- one validation window and its int8 scores from the Python integer reference.
 * Call nas_model_selftest() once on the target: 0 means the build reproduces the export bit for bit.
 * Built with -DNAS_MODEL_SELFTEST_MAIN it is a host program (make check / ctest).
 */
#include <stdint.h>

#include "{MODEL_H}"

{_c_array("int8_t", "nas_selftest_input", np.asarray(x_int8, np.int8).reshape(-1), 20)}
{_c_array("int8_t", "nas_selftest_expected", np.asarray(expected, np.int8).reshape(-1), 20)}
int nas_model_selftest(void)
{{
    int8_t scores[NAS_MODEL_NUM_CLASSES];
    int i;
    const int rc = nas_model_invoke(nas_selftest_input, scores);
    if (rc != NAS_MODEL_OK)
    {{
        return rc;
    }}
    for (i = 0; i < NAS_MODEL_NUM_CLASSES; i++)
    {{
        if (scores[i] != nas_selftest_expected[i])
        {{
            return 1;
        }}
    }}
    return 0;
}}

#ifdef NAS_MODEL_SELFTEST_MAIN
#include <stdio.h>

int main(void)
{{
    const int rc = nas_model_selftest();
    printf("nas_model_selftest: %s (%d)\\n", rc == 0 ? "bit-exact" : "FAILED", rc);
    return rc == 0 ? 0 : 1;
}}
#endif
"""


def write_model_c(qm: QuantizedModel, cost: costmodel.Cost, out_dir: str | Path, selftest: tuple | None = None,
                  origin: str = "") -> list[Path]:
    """Write model.h, model.c (and model_selftest.c when `selftest` = (x_int8, expected) is given)."""
    out = Path(out_dir)
    files = [out / MODEL_H, out / MODEL_C]
    atomic_write_text(files[0], model_header(qm, cost, origin))
    atomic_write_text(files[1], model_source(qm, cost, origin))
    if selftest is not None:
        files.append(out / SELFTEST_C)
        atomic_write_text(files[2], selftest_source(qm, *selftest))
    return files


# --------------------------------------------------------------------------- front-end

def write_frontend(qm: QuantizedModel, out_dir: str | Path) -> list[Path]:
    """The device front-end (nas_frontend.c/.h, CMSIS-DSP) when `nas.export.frontend_c` is
    available; [] otherwise. The single call site of the front-end generator."""
    try:
        from nas.export.frontend_c import write_frontend as _write
    except ImportError:
        return []
    iq: InputQuant = qm.input_quant
    return [Path(p) for p in _write(qm.spec.frontend, iq, Path(out_dir))]


# --------------------------------------------------------------------------- build files

def copy_portable_kernels(out_dir: str | Path) -> list[Path]:
    dst = Path(out_dir) / PORTABLE_SUBDIR
    dst.mkdir(parents=True, exist_ok=True)
    files = []
    for src in sorted(PORTABLE_DIR.iterdir()):
        if src.suffix in (".c", ".h"):
            shutil.copy2(src, dst / src.name)
            files.append(dst / src.name)
    return files


def _frontend_build_facts() -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(CMSIS-DSP files under Source/, defines, extra C flags) of the generated front-end."""
    try:
        from nas.export import frontend_c as fc
    except ImportError:
        return (), (), ()
    return tuple(fc.CMSIS_DSP_SOURCES), tuple(fc.CMSIS_DSP_DEFINES), tuple(f for f in fc.FRONTEND_CFLAGS
                                                                         if f != "-std=c99")


MAKEFILE = r"""# Build the exported model (generated by nas.export).
#
#   make check                          host self-test, bundled portable CMSIS-NN kernels
#   make check CMSIS_NN_PATH=/path/CMSIS-NN                   ... against the real CMSIS-NN
#   make lib CC=arm-none-eabi-gcc AR=arm-none-eabi-ar \
#        CFLAGS="-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 -O2" \
#        CMSIS_NN_PATH=... CMSIS_DSP_PATH=... [CMSIS_CORE_INCLUDE=...]
#                                       static library for the target: build/libnas_model.a
# The front-end (nas_frontend.c, when present) is part of lib when CMSIS_DSP_PATH names a CMSIS-DSP
# tree; CMSIS_CORE_INCLUDE (the CMSIS-Core Include folder) is optional: without it CMSIS-DSP is
# compiled with __GNUC_PYTHON__ (no cmsis_compiler.h; the f32 functions used have no DSP-intrinsic
# paths, so the code is the same).

CMSIS_NN_PATH ?=
CMSIS_DSP_PATH ?=
CMSIS_CORE_INCLUDE ?=
AR ?= ar
CFLAGS ?= -O2
BUILD ?= build
WARN := -std=c99 -Wall -Wextra @FE_CFLAGS@

ifeq ($(strip $(CMSIS_NN_PATH)),)
NN_SRCS := $(wildcard cmsisnn_portable/*.c)
NN_INC := -Icmsisnn_portable
else
NN_SRCS := $(shell find $(CMSIS_NN_PATH)/Source -name '*.c')
NN_INC := -I$(CMSIS_NN_PATH)/Include
endif

# CMSIS-DSP files the front-end needs (relative to $(CMSIS_DSP_PATH)/Source)
DSP_FILES := @DSP_FILES@
FE_SRCS :=
FE_FLAGS :=
ifneq ($(wildcard nas_frontend.c),)
ifneq ($(strip $(CMSIS_DSP_PATH)),)
FE_SRCS := nas_frontend.c $(addprefix $(CMSIS_DSP_PATH)/Source/,$(DSP_FILES))
FE_FLAGS := @DSP_DEFINES@ -I$(CMSIS_DSP_PATH)/Include -I$(CMSIS_DSP_PATH)/PrivateInclude
ifeq ($(strip $(CMSIS_CORE_INCLUDE)),)
FE_FLAGS += -D__GNUC_PYTHON__
else
FE_FLAGS += -I$(CMSIS_CORE_INCLUDE)
endif
endif
endif

LIB_SRCS := model.c $(NN_SRCS) $(FE_SRCS)
LIB_OBJS := $(addprefix $(BUILD)/,$(notdir $(LIB_SRCS:.c=.o)))
vpath %.c $(sort $(dir $(LIB_SRCS)))
INC := -I. $(NN_INC)

.PHONY: all lib check clean
all: lib

lib: $(BUILD)/libnas_model.a

$(BUILD)/libnas_model.a: $(LIB_OBJS)
	$(AR) rcs $@ $^

$(BUILD)/%.o: %.c | $(BUILD)
	$(CC) $(WARN) $(CFLAGS) $(INC) $(FE_FLAGS) -c $< -o $@

$(BUILD):
	mkdir -p $(BUILD)

$(BUILD)/nas_model_selftest: model_selftest.c model.c $(NN_SRCS) | $(BUILD)
	$(CC) $(WARN) $(CFLAGS) -DNAS_MODEL_SELFTEST_MAIN $(INC) $^ -o $@

check: $(BUILD)/nas_model_selftest
	./$(BUILD)/nas_model_selftest

clean:
	rm -rf $(BUILD)
"""

CMAKELISTS = r"""# Generated by nas.export. In a firmware project:
#   add_subdirectory(path/to/this/folder)   then   target_link_libraries(app PRIVATE nas_model)
# Options: -DCMSIS_NN_PATH=<CMSIS-NN checkout> (default: the bundled portable kernels);
#          -DCMSIS_DSP_PATH=<CMSIS-DSP tree> adds the front-end (nas_frontend.c, when present) and the
#          CMSIS-DSP files it needs; -DCMSIS_CORE_INCLUDE=<CMSIS-Core Include> (optional, else
#          CMSIS-DSP builds with __GNUC_PYTHON__: same code for the f32 functions used).
# On a PC: cmake -B build && cmake --build build && ctest --test-dir build
cmake_minimum_required(VERSION 3.16)
project(nas_model C)

set(CMSIS_NN_PATH "" CACHE PATH "CMSIS-NN checkout (empty: bundled portable kernels)")
set(CMSIS_DSP_PATH "" CACHE PATH "CMSIS-DSP tree (for the front-end)")
set(CMSIS_CORE_INCLUDE "" CACHE PATH "CMSIS-Core Include folder (cmsis_compiler.h), optional")

set(NAS_DIR ${CMAKE_CURRENT_LIST_DIR})
if(CMSIS_NN_PATH)
  file(GLOB_RECURSE NAS_NN_SOURCES ${CMSIS_NN_PATH}/Source/*.c)
  set(NAS_NN_INCLUDE ${CMSIS_NN_PATH}/Include)
else()
  file(GLOB NAS_NN_SOURCES ${NAS_DIR}/cmsisnn_portable/*.c)
  set(NAS_NN_INCLUDE ${NAS_DIR}/cmsisnn_portable)
endif()

add_library(nas_model STATIC ${NAS_DIR}/model.c ${NAS_NN_SOURCES})
target_include_directories(nas_model PUBLIC ${NAS_DIR} ${NAS_NN_INCLUDE})
set_target_properties(nas_model PROPERTIES C_STANDARD 99 C_STANDARD_REQUIRED ON C_EXTENSIONS OFF)

if(EXISTS ${NAS_DIR}/nas_frontend.c AND CMSIS_DSP_PATH)
  set(NAS_DSP_FILES @DSP_FILES@)
  list(TRANSFORM NAS_DSP_FILES PREPEND ${CMSIS_DSP_PATH}/Source/)
  target_sources(nas_model PRIVATE ${NAS_DIR}/nas_frontend.c ${NAS_DSP_FILES})
  target_include_directories(nas_model PUBLIC ${CMSIS_DSP_PATH}/Include PRIVATE ${CMSIS_DSP_PATH}/PrivateInclude)
  target_compile_definitions(nas_model PRIVATE @DSP_DEFINES_CMAKE@)
  target_compile_options(nas_model PRIVATE @FE_CFLAGS@)
  if(CMSIS_CORE_INCLUDE)
    target_include_directories(nas_model PUBLIC ${CMSIS_CORE_INCLUDE})
  else()
    target_compile_definitions(nas_model PRIVATE __GNUC_PYTHON__)
  endif()
endif()

if(NOT CMAKE_CROSSCOMPILING)
  add_executable(nas_model_selftest ${NAS_DIR}/model_selftest.c ${NAS_DIR}/model.c ${NAS_NN_SOURCES})
  target_include_directories(nas_model_selftest PRIVATE ${NAS_DIR} ${NAS_NN_INCLUDE})
  target_compile_definitions(nas_model_selftest PRIVATE NAS_MODEL_SELFTEST_MAIN)
  set_target_properties(nas_model_selftest PROPERTIES C_STANDARD 99 C_STANDARD_REQUIRED ON C_EXTENSIONS OFF)
  enable_testing()
  add_test(NAME nas_model_selftest COMMAND nas_model_selftest)
endif()
"""


def write_build_files(out_dir: str | Path) -> list[Path]:
    """Makefile + CMakeLists.txt (front-end rules filled from `nas.export.frontend_c`) and the portable
    CMSIS-NN kernels under cmsisnn_portable/."""
    out = Path(out_dir)
    files, defines, fe_cflags = _frontend_build_facts()
    own = [d for d in defines if d != "__GNUC_PYTHON__"]      # that one depends on CMSIS_CORE_INCLUDE
    make = (MAKEFILE.replace("@DSP_FILES@", " \\\n    ".join(files))
            .replace("@DSP_DEFINES@", " ".join(f"-D{d}" for d in own))
            .replace("@FE_CFLAGS@", " ".join(fe_cflags)))
    cmake = (CMAKELISTS.replace("@DSP_FILES@", "\n      ".join(files))
             .replace("@DSP_DEFINES_CMAKE@", " ".join(own))
             .replace("@FE_CFLAGS@", " ".join(fe_cflags)))
    atomic_write_text(out / "Makefile", make)
    atomic_write_text(out / "CMakeLists.txt", cmake)
    return [out / "Makefile", out / "CMakeLists.txt", *copy_portable_kernels(out)]
