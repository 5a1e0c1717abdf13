"""README.md of an exported model folder: what is in it, how to build it, how to call it, its cost."""
from __future__ import annotations

from nas import cost as costmodel
from nas.budget import Budget
from nas.export.quantize import QuantizedModel


def _kb(n: float) -> str:
    return f"{n:,.0f} B ({n / 1024:.1f} kB)"


def _measured(report: dict) -> str:
    lines = []
    acc = report.get("accuracy") or {}
    if acc.get("val_float") is not None:
        lines.append(f"- validation accuracy (clips, fold(s) {acc.get('val_folds')}): float "
                     f"{100 * acc['val_float']:.1f} %, int8 {100 * acc['val_int8']:.1f} % "
                     f"({acc['delta_points']:+.1f} points); float/int8 agree on "
                     f"{100 * acc['window_argmax_agreement']:.1f} % of {acc['windows']} windows")
    ox = report.get("onnx") or {}
    if ox:
        lines.append(f"- model.onnx vs torch: max |p - p_torch| = {ox['float_max_abs_diff']:.2e}; model_int8.onnx "
                     f"(ONNX Runtime) vs the CMSIS-NN integer reference on {ox['windows']} windows: at most "
                     f"{max(ox['int8_layerwise_max_lsb'])} LSB per layer (each layer fed the reference's input), "
                     f"{ox['int8_logits_end_to_end_max_lsb']} LSB on the logits with the whole network chained; "
                     f"the softmax magnifies logit steps: max {ox['int8_end_to_end_max_lsb']} LSB on the scores, "
                     f"{100 * ox['int8_end_to_end_share_differing']:.1f} % of scores differ, same top class on "
                     f"{100 * ox['int8_end_to_end_argmax_agreement']:.1f} % of windows")
    host = report.get("host_c") or {}
    if host.get("bit_exact_windows") is not None:
        lines.append(f"- C on the host ({host['compiler']}, -Wall -Wextra -Werror): bit-exact with the reference "
                     f"on {host['bit_exact_windows']} validation windows")
    m4 = report.get("cortex_m4") or {}
    if "instructions_per_inference" in m4:
        lines.append(f"- Cortex-M4 (QEMU mps2-an386, {m4['kernels']}): {m4['instructions_per_inference']:,} "
                     f"instructions per inference = {m4['instructions_per_mac']:.2f} per MAC; stack "
                     f"{m4['stack_bytes']:,} B")
        lines.append(f"- ELF: FLASH {m4['flash_bytes']:,} B ({m4['flash_vs_estimate']:.2f} x network + runtime "
                     f"reserve), RAM {m4['ram_bytes_with_stack']:,} B incl. stack ({m4['ram_vs_estimate']:.2f} x arena "
                     f"+ feature window + runtime reserve); nas_model_arena = {m4['arena_symbol_bytes']:,} B and "
                     f"nas_w_* = {m4['network_const_bytes']:,} B, both exactly the cost model")
    elif m4.get("skipped"):
        lines.append(f"- Cortex-M4 measurement skipped: {m4['skipped']}")
    pipe = report.get("pipeline") or {}
    if "flash_bytes" in pipe:
        lines.append(f"- whole pipeline on the Cortex-M4 (front-end + model): FLASH {pipe['flash_bytes']:,} B = "
                     f"{pipe['flash_vs_cost_model_total']:.2f} x the cost model total, RAM "
                     f"{pipe['ram_bytes_without_audio_buffer']:,} B incl. stack (the test driver's "
                     f"{pipe['audio_hop_buffer_bytes']:,} B audio hop buffer, the application's, left out) = "
                     f"{pipe['ram_vs_cost_model_total']:.2f} x; "
                     f"front-end {pipe['frontend_instructions_per_frame_max']:,} instructions per frame")
    return "\n".join(lines) if lines else "- (no measurement: run the export with the C toolchains present)"


def readme(qm: QuantizedModel, cost: costmodel.Cost, budget: Budget, report: dict, has_frontend: bool) -> str:
    spec, fe = qm.spec, qm.spec.frontend
    title = f"{report.get('model') or spec.name} — trial {report.get('trial')} of study {report.get('study')!r}"
    fe_files = ("| `nas_frontend.c`, `nas_frontend.h` | streaming log-mel front-end (CMSIS-DSP f32) + int8 "
                "quantisation, exactly the training features |\n") if has_frontend else ""
    fe_note = "" if has_frontend else (
        "\nThe front-end C generator was not available at export time: compute the log-mel window "
        "yourself and quantise each dB value as `q = clamp(roundf(dB * NAS_MODEL_INPUT_GAIN + "
        "NAS_MODEL_INPUT_OFFSET), -128, 127)`.\n")
    loop = ("""void audio_task(void)
{
    nas_frontend_init();
    for (;;) {
        const int16_t *hop = wait_for_audio();          /* your driver: NAS_FRONTEND_HOP_LENGTH samples */
        if (nas_frontend_push(hop)) {                   /* a new window is ready */
            if (nas_model_invoke(nas_frontend_window(), scores) == NAS_MODEL_OK) {
                int best = 0;
                for (int i = 1; i < NAS_MODEL_NUM_CLASSES; i++) if (scores[i] > scores[best]) best = i;
                report(nas_model_class_names[best], (scores[best] + 128) / 256.0f);   /* yours */
            }
        }
    }
}""" if has_frontend else """void classify(const int8_t *features)   /* NAS_MODEL_INPUT_BYTES, quantised as above */
{
    if (nas_model_invoke(features, scores) == NAS_MODEL_OK) {
        /* scores[i] / probability (scores[i] + 128) / 256 of class nas_model_class_names[i] */
    }
}""")
    return f"""# {title}

Int8 CMSIS-NN export of `{spec.name}` for {budget.target.core} ({budget.name}), generated by
`python -m nas.export`. Input: {fe.frames} frames x {fe.n_mels} log-mel bands ({fe.sample_rate} Hz,
FFT {fe.n_fft}, hop {fe.hop_length}, {fe.window_seconds:.2f} s per window, a new window every
{fe.window_hop_frames} frames = {fe.windows_per_second:.2f} inferences/s). Output: {spec.num_classes} classes
({", ".join(qm.class_names) or "unnamed"}).

## Files

| file | what |
|---|---|
| `model.c`, `model.h` | the network: weights in FLASH, one static arena, calls to the CMSIS-NN v7 s8 kernels |
| `model_selftest.c` | one validation window + its expected scores: `nas_model_selftest()` returns 0 when bit-exact |
{fe_files}| `Makefile`, `CMakeLists.txt` | build files (`CMSIS_NN_PATH`, `CMSIS_DSP_PATH`) |
| `cmsisnn_portable/` | portable C versions of the CMSIS-NN v7 kernels used (same API, bit-exact), for PCs |
| `model.onnx` | float network (folded BatchNorm), input `features` [N, 1, {fe.frames}, {fe.n_mels}] normalised log-mel, output `probabilities` |
| `model_int8.onnx` | the same in QDQ int8 with the C code's scales/zero points, output `scores` int8 (scale 1/256, zero point -128) |
| `report.json` | accuracy float vs int8, cost-model figures, measured sizes and instruction counts |

## Check it on a PC

    make check                                   # bundled portable kernels
    make check CMSIS_NN_PATH=/path/to/CMSIS-NN   # the real library (v7)
    cmake -B build && cmake --build build && ctest --test-dir build

## Put it into a firmware project

1. Compile `model.c`{" and `nas_frontend.c`" if has_frontend else ""} with the CMSIS-NN sources
   (`$CMSIS_NN_PATH/Source/**/*.c`, include `$CMSIS_NN_PATH/Include`){" and the CMSIS-DSP files the front-end lists (see the Makefile)" if has_frontend else ""},
   for example `add_subdirectory(<this folder>)` + `target_link_libraries(app PRIVATE nas_model)` with
   `-DCMSIS_NN_PATH=...`{" `-DCMSIS_DSP_PATH=...` (optionally `-DCMSIS_CORE_INCLUDE=...`)" if has_frontend else ""}, or
   `make lib CC=arm-none-eabi-gcc AR=arm-none-eabi-ar CFLAGS="-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 -O2" CMSIS_NN_PATH=...`.
   The DSP kernels are chosen by `-mcpu=cortex-m4`; keep CMSIS-NN's default double rounding (do not
   define `CMSIS_NN_USE_SINGLE_ROUNDING`).
2. Call it:

```c
#include "model.h"
{'#include "nas_frontend.h"' if has_frontend else ""}

static int8_t scores[NAS_MODEL_NUM_CLASSES];
{loop}
```
{fe_note}
3. Run `nas_model_selftest()` once on the board: 0 means the build reproduces this export bit for bit.

API (`model.h`): `int nas_model_invoke(const int8_t *features, int8_t *scores)` returns `NAS_MODEL_OK`,
`NAS_MODEL_ERR_NULL` or `-(1 + i)` when layer i failed (a kernel error, or a CMSIS-NN build that wants
more scratch than the arena gap, e.g. Arm Compiler's 1x1 kernel or MVE). Input quantisation:
`NAS_MODEL_INPUT_SCALE` = {qm.input_scale:.9g}, `NAS_MODEL_INPUT_ZERO_POINT` = {qm.input_zero_point} in normalised
units (dB {"-" if qm.input_quant.mean >= 0 else "+"} {abs(qm.input_quant.mean):.4f}) / {qm.input_quant.std:.4f}, i.e.
`q = roundf(dB * NAS_MODEL_INPUT_GAIN + NAS_MODEL_INPUT_OFFSET)` saturated to int8. Not re-entrant (one static arena, `NAS_MODEL_ARENA_ATTR` places it).

## Memory (cost model = what the search optimised)

| | bytes |
|---|---|
| network constants in FLASH (`nas_w_*`) | {_kb(cost.network_flash_bytes)} |
| activation arena in RAM (`nas_model_arena`) | {_kb(cost.arena_bytes)} |
| front-end tables in FLASH | {_kb(cost.frontend_flash_bytes)} |
| front-end buffers in RAM | {_kb(cost.frontend_ram_bytes)} |
| reserves (kernel code, stack, ...) FLASH / RAM | {cost.reserve_flash_bytes:,} / {cost.reserve_ram_bytes:,} B |
| **total FLASH / RAM** | **{cost.flash_bytes:,} / {cost.ram_bytes:,} B** (limits {budget.limits.flash_bytes:,} / {budget.limits.ram_bytes:,} B) |
| MACs per inference / per second of audio | {cost.macs:,} / {cost.macs_per_second:,.0f} |

```
{costmodel.report(spec, budget, cost)}
```

## Measured at export

{_measured(report)}
"""
