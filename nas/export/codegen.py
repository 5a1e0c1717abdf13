"""C code of an exported model: one translation unit calling the kernel library's s8 API (CMSIS-NN v7's).

`write_model_c(qm, cost, out_dir)` writes

* ``model.h``: the API (`nas_model_invoke`), the quantisation the firmware needs (input scale, zero
  point and the dB -> int8 gain/offset, output scale/zero point), shapes, class names and the cost
  model's memory figures;
* ``model.c``: weights, biases, multipliers and shifts as ``static const`` arrays (symbols
  ``nas_w_<layer>_*``, exactly ``cost.network_flash_bytes`` bytes), the kernel parameter structs,
  ONE static arena ``nas_model_arena`` of exactly ``cost.arena_bytes`` bytes and the layer calls,
  each layer's part written by its kind's template (``nas/kinds/<TYPE>.c.j2``) with the functions
  of the kernels the cost model chose (``cost.layers[i].kernels``);
* ``model_selftest.c``: one validation window and the scores the integer reference gives for it,
  with ``int nas_model_selftest(void)`` (0 = bit-exact) for a first run on the target; with
  decision cases, also clips' votes and Python's decision for each (`DecisionCases`);
* ``model_decide.h`` (`write_decide`): the "unknown" answer, header-only: the confidence threshold
  in int8 score units and ``nas_model_votes_add`` / ``nas_model_decide`` (`nas.quant.confidence`).

Arena layout (the cost model's contract, `nas.cost`): layer 0 reads the caller's feature buffer and
writes its output at the bottom of the arena; from then on each layer reads its input at one end,
writes its output at the other end and gets the gap between them as CMSIS-NN scratch buffer, every
buffer 4-byte aligned; the ends flip each layer. The final softmax writes straight into the caller's
``scores``. The arena size is checked at compile time against the per-layer sizes recomputed by the
preprocessor from the tensor dimensions, and at run time each layer checks that the scratch size
the linked CMSIS-NN asks for (``*_get_buffer_size``) fits its gap.

`write_build_files` adds a Makefile and a CMakeLists.txt (CMSIS_NN_PATH, CMSIS_DSP_PATH), a copy
of the portable CMSIS-NN kernels, so the folder builds and self-tests on a PC without any checkout,
and of the add-on libraries' (``nas_kernels/``: the project's own kernels, which the layers the cost
model gives them call instead of the CMSIS-NN wrapper, with its arguments).

The text of every file is a template in `templates/` (``model.h.j2``, ``model.c.j2``,
``model_selftest.c.j2``, ``Makefile.j2``, ``CMakeLists.txt.j2``); this module computes what fills
them: the arena layout and each layer's quantised parameters.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nas.core.atomic import atomic_write_text
from nas.cost import analytic as costmodel
from nas.export import frontend_c
from nas.export.api import Api
from nas.export.render import macros, render
from nas.kinds import KINDS, kind_of
from nas.kinds.base import LayerC, Slot
from nas.libraries import ADDONS
from nas.libraries.cmsis_nn import CMSIS_NN_SOURCES, PORTABLE_DIR
from nas.quant.quantize import QuantizedModel, SOFTMAX_SCALE, SOFTMAX_ZERO_POINT

MODEL_C = "model.c"
MODEL_H = "model.h"
SELFTEST_C = "model_selftest.c"
DECIDE_H = "model_decide.h"
PORTABLE_SUBDIR = "cmsisnn_portable"
OWN_SUBDIR = ADDONS["nas"].folder
ARENA_SYMBOL = "nas_model_arena"
WEIGHT_SYMBOL_PREFIX = "nas_w_"
ERR_NULL = -100


# --------------------------------------------------------------------------- arena layout

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
        if len(lc.calls) == 1 and gap < a4(lc.scratch_bytes):
            raise AssertionError(f"{q.name}: arena {arena} B leaves {gap} B of scratch, cost model needs "
                                 f"{lc.scratch_bytes} B (cost model and layout disagree)")
        slots.append(Slot(q.name, in_off, lc.in_bytes, out_off, lc.out_bytes, bottom, gap, lc.scratch_bytes))
        prev_at_bottom = out_bottom
    return slots


# --------------------------------------------------------------------------- model.h, model.c, model_selftest.c

def _values(qm: QuantizedModel, cost: costmodel.Cost, origin: str, api: Api) -> dict:
    layers = [LayerC(i, q, s, lc.kernels, lc.scratches, cost.arena_bytes, kind_of(q))
              for i, (q, s, lc) in enumerate(zip(qm.layers, arena_layout(qm, cost), cost.layers))]
    names = list(qm.class_names[:qm.num_classes]) + [f"class_{i}" for i in range(len(qm.class_names), qm.num_classes)]
    return dict(spec=qm.spec, fe=qm.spec.frontend, iq=qm.input_quant, input_scale=qm.input_scale,
                input_zero_point=qm.input_zero_point, output_scale=SOFTMAX_SCALE, output_zero_point=SOFTMAX_ZERO_POINT,
                cost=cost, origin=origin, layers=layers, class_names=names, err_null=ERR_NULL, api=api,
                headers=sorted({ADDONS[k.library].header for lay in cost.chip.choices for k in lay if k.library in ADDONS}),
                kinds={kind.type: macros(kind.template) for kind in KINDS})


def model_header(qm: QuantizedModel, cost: costmodel.Cost, origin: str = "", api: Api = Api()) -> str:
    return render(MODEL_H + ".j2", **_values(qm, cost, origin, api))


def model_source(qm: QuantizedModel, cost: costmodel.Cost, origin: str = "", api: Api = Api()) -> str:
    return render(MODEL_C + ".j2", **_values(qm, cost, origin, api))


@dataclass(frozen=True)
class DecisionCases:
    """What the self-test checks of model_decide.h: clips' votes [N, classes], windows [N] and the
    decision Python takes for each [N] (a class index or -1 for unknown)."""

    votes: np.ndarray
    windows: np.ndarray
    decisions: np.ndarray


def selftest_source(qm: QuantizedModel, x_int8: np.ndarray, expected: np.ndarray, api: Api = Api(),
                    decide: DecisionCases | None = None) -> str:
    return render(SELFTEST_C + ".j2", x_int8=np.asarray(x_int8, np.int8), expected=np.asarray(expected, np.int8),
                  api=api, decide=decide)


def write_model_c(qm: QuantizedModel, cost: costmodel.Cost, out_dir: str | Path, selftest: tuple | None = None,
                  origin: str = "", api: Api = Api(), decide: DecisionCases | None = None) -> list[Path]:
    """Write model.h, model.c (and model_selftest.c when `selftest` = (x_int8, expected) is given,
    checking `decide`'s cases too when given: the folder then needs model_decide.h, `write_decide`),
    with `api`'s external names (`nas_model_*` by default)."""
    out = Path(out_dir)
    files = [out / MODEL_H, out / MODEL_C]
    atomic_write_text(files[0], model_header(qm, cost, origin, api))
    atomic_write_text(files[1], model_source(qm, cost, origin, api))
    if selftest is not None:
        files.append(out / SELFTEST_C)
        atomic_write_text(files[2], selftest_source(qm, *selftest, api=api, decide=decide))
    return files


def write_decide(qm: QuantizedModel, out_dir: str | Path, min_score: int, note: str, checked: int = 0,
                 api: Api = Api()) -> Path:
    """model_decide.h: the confidence threshold `min_score` (an int8 softmax score), why it was chosen
    (`note`) and the integer decision; `checked` = validation clips the host check compares."""
    if not -128 <= int(min_score) <= 127:
        raise ValueError(f"min_score {min_score} is not an int8 score")
    path = Path(out_dir) / DECIDE_H
    atomic_write_text(path, render(DECIDE_H + ".j2", spec=qm.spec, min_score=int(min_score), note=note,
                                   checked=checked, api=api,
                                   probability=(int(min_score) - SOFTMAX_ZERO_POINT) * SOFTMAX_SCALE))
    return path


# --------------------------------------------------------------------------- front-end

def write_frontend(qm: QuantizedModel, out_dir: str | Path, api: Api = Api()) -> list[Path]:
    """The device front-end (nas_frontend.c/.h, CMSIS-DSP): the single call site of its generator."""
    return [Path(p) for p in frontend_c.write_frontend(qm.spec.frontend, qm.input_quant, Path(out_dir), api)]


# --------------------------------------------------------------------------- build files

def copy_portable_kernels(out_dir: str | Path) -> list[Path]:
    """The portable CMSIS-NN kernels and each add-on library's, each in its sub-folder."""
    folders = [(PORTABLE_SUBDIR, [PORTABLE_DIR])] + [(lib.folder, lib.sources()[1]) for lib in ADDONS.values()]
    files = []
    for sub, dirs in folders:
        dst = Path(out_dir) / sub
        dst.mkdir(parents=True, exist_ok=True)
        for src in sorted(p for d in dirs for p in d.iterdir()):
            if src.suffix in (".c", ".h"):
                shutil.copy2(src, dst / src.name)
                files.append(dst / src.name)
    return files


def write_build_files(out_dir: str | Path, api: Api = Api(), fixed_frontend: bool = False) -> list[Path]:
    """Makefile + CMakeLists.txt (front-end rules filled from `nas.export.frontend_c`, the CMSIS-NN
    files from `qemu.CMSIS_NN_SOURCES`) and the portable CMSIS-NN kernels under cmsisnn_portable/."""
    out = Path(out_dir)
    facts = dict(dsp_files=frontend_c.FIXED_DSP_SOURCES if fixed_frontend else frontend_c.CMSIS_DSP_SOURCES,
                 nn_files=CMSIS_NN_SOURCES, fe_fixed=fixed_frontend,
                 # __GNUC_PYTHON__ is the build files' choice: it depends on CMSIS_CORE_INCLUDE
                 dsp_defines=[d for d in frontend_c.CMSIS_DSP_DEFINES if d != "__GNUC_PYTHON__"],
                 fe_cflags=[f for f in frontend_c.FRONTEND_CFLAGS if f != "-std=c99"], api=api)
    atomic_write_text(out / "Makefile", render("Makefile.j2", **facts))
    atomic_write_text(out / "CMakeLists.txt", render("CMakeLists.txt.j2", **facts))
    return [out / "Makefile", out / "CMakeLists.txt", *copy_portable_kernels(out)]
