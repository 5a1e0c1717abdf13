"""What an export measures and records in ``report.json``: float vs int8 accuracy, ONNX Runtime against
torch and the integer reference, and the generated C built and run on the host and on a Cortex-M4
(QEMU). A check that cannot run (no toolchain) is recorded as skipped with its reason; a check that
runs and fails raises `VerifyError`."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from nas.budget import Budget
from nas.cost import analytic as costmodel
from nas.export import onnx_export, verify
from nas.export.api import Api
from nas.quant import confidence as C
from nas.quant import quantize as Q
from nas.train.clips import ClipSet, clip_accuracy, eval_windows

Log = Callable[[str], None]


def jsonable(obj):
    """`obj` with numpy scalars/arrays and paths as plain JSON values; keys starting with _ dropped."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def accuracy(qm: Q.QuantizedModel, folded, val_set: ClipSet, val_folds: Sequence[int], tag: str, log: Log) -> dict:
    """Validation accuracy per clip, float (folded net) and int8 (integer reference), and their
    agreement per window."""
    fe = qm.spec.frontend
    acc: dict = {"val_folds": list(val_folds), "val_clips": len(val_set)}
    if not len(val_set):
        return acc
    acc["val_accuracy"] = clip_accuracy(folded, val_set, fe.frames, fe.window_hop_frames)
    acc["val_accuracy_int8"] = Q.int8_clip_accuracy(qm, val_set)
    acc["delta_points"] = 100.0 * (acc["val_accuracy_int8"] - acc["val_accuracy"])
    clips, starts = eval_windows(val_set, fe.frames, fe.window_hop_frames)
    offsets = starts[:, None] + torch.arange(fe.frames)
    agree = Q.window_agreement(qm, folded, val_set.x[clips[:, None], offsets].unsqueeze(1), val_set.y[clips].numpy())
    acc.update(windows=agree["windows"], window_argmax_agreement=agree["argmax_agreement"],
               window_mean_abs_prob_diff=agree["mean_abs_prob_diff"],
               window_float_accuracy=agree["float_accuracy"], window_int8_accuracy=agree["int8_accuracy"])
    log(f"{tag}: val_accuracy float {acc['val_accuracy']:.3f}, int8 {acc['val_accuracy_int8']:.3f} "
        f"({acc['delta_points']:+.1f} points) on {len(val_set)} clips; on {agree['windows']} windows float "
        f"{agree['float_accuracy']:.3f}, int8 {agree['int8_accuracy']:.3f}, same class {agree['argmax_agreement']:.3f}")
    return acc


def unknown(qm: Q.QuantizedModel, val_set: ClipSet, target_precision: float | None, tag: str, log: Log) -> dict:
    """The "unknown" threshold (`nas.quant.confidence`) chosen on the validation clips: the lowest whose
    precision reaches `target_precision` (None: -128, every clip labelled), with precision, recall and
    the unknown share there and at full recall; `_votes`/`_windows` (not written) feed the C check."""
    votes, windows = C.clip_votes(qm, val_set) if len(val_set) else (np.zeros((0, qm.num_classes), np.int64),
                                                                      np.zeros(0, np.int64))
    out: dict = {"target_precision": target_precision, "_votes": votes, "_windows": windows}
    if not len(val_set):
        return {**out, **C.Curve(np.zeros(256, np.int64), np.zeros(256, np.int64), 0).at(C.NEVER),
                "note": "no validation clips: every clip labelled"}
    curve = C.curve(votes, windows, val_set.y.numpy())
    full = curve.at(C.NEVER)
    chosen = C.NEVER if target_precision is None else curve.threshold_for(target_precision)
    if chosen is None:               # out of reach: the most precise threshold that still labels a clip
        chosen = int(C.THRESHOLDS[np.nanargmax(np.where(curve.labelled > 0, curve.precision, -1.0))])
    at = curve.at(chosen)
    out.update(at, at_full_recall=full, curve=curve.to_dict())
    where = f"on {len(val_set)} validation clips"
    if target_precision is None:
        out["note"] = (f"none, every clip labelled (precision {full['precision']:.3f} {where}); export with "
                       "--target-precision P to set one")
    elif at["precision"] is not None and at["precision"] >= target_precision - 1e-12:
        out["note"] = (f"the lowest reaching precision {target_precision:g} {where}: precision {at['precision']:.3f}, "
                       f"recall {at['recall']:.3f}, unknown {at['unknown']:.1%}")
    else:
        out["note"] = (f"precision {target_precision:g} is out of reach {where}; the most precise threshold: "
                       f"precision {at['precision']:.3f}, recall {at['recall']:.3f}, unknown {at['unknown']:.1%}")
        log(f"WARNING {tag}: --target-precision {target_precision:g} is out of reach on the validation clips")
    log(f"{tag}: unknown below score {chosen} (probability {at['probability']:.3f}): {out['note']}")
    return out


def decision_check(folder: Path, votes: np.ndarray, windows: np.ndarray, min_score: int, build_c: bool,
                   tag: str, log: Log, api: Api = Api()) -> dict:
    """model_decide.h compiled on the host and run on every validation clip's votes (and the self-test's
    edge cases): the same decisions as Python's, else a VerifyError."""
    if not build_c:
        return {"skipped": "--no-verify"}
    if verify.host_compiler() is None:
        return {"skipped": "no host C compiler (gcc/cc)"}
    cases = C.decision_cases(votes, windows, min_score, n=0)
    votes, windows = np.concatenate([votes, cases[0]]), np.concatenate([windows, cases[1]])
    with tempfile.TemporaryDirectory(prefix="nas_export_decide_") as work:
        got = verify.run_decide(folder, work, votes, windows, api)
    want = C.decide(votes, windows, min_score)
    bad = int((got != want).sum())
    if bad:
        raise verify.VerifyError(f"{tag}: model_decide.h decides {bad} of {len(want)} clips differently from Python")
    log(f"{tag}: model_decide.h takes Python's decision on all {len(want) - len(cases[0])} validation clips and "
        f"{len(cases[0])} votes at the threshold (host)")
    return {"decisions_equal": int(len(want))}


def quantisation_summary(qm: Q.QuantizedModel) -> dict:
    iq = qm.input_quant
    return {**qm.calibration, "input": {"scale": qm.input_scale, "zero_point": qm.input_zero_point,
                                        "mean_db": iq.mean, "std_db": iq.std,
                                        "gain": float(iq.gain), "offset": float(iq.offset)},
            "layers": [q.summary() for q in qm.layers]}


def cost_summary(cost: costmodel.Cost) -> dict:
    """The cost model's figures; per layer the kernels model.c calls (`kernel`: their names, `functions`:
    the C functions, `libraries`: whose) and its predicted instructions (kernels + generated code)."""
    return {**cost.summary(), "flash_bytes_total": cost.flash_bytes, "ram_bytes_total": cost.ram_bytes,
            "reserve_flash_bytes": cost.reserve_flash_bytes, "reserve_ram_bytes": cost.reserve_ram_bytes,
            "layers": [{"name": lc.name, "kind": lc.kind, "macs": lc.macs, "flash_bytes": lc.flash_bytes,
                        "scratch_bytes": lc.scratch_bytes, "arena_bytes": lc.arena_bytes, "kernel": lc.kernel,
                        "functions": [k.function for k in lc.kernels], "libraries": [k.library for k in ch],
                        "instructions": round(lc.instructions),
                        "instructions_per_mac": lc.instructions / lc.macs if lc.macs else None}
                       for lc, ch in zip(cost.layers, cost.chip.choices)]}


def onnx_checks(folder: Path, qm: Q.QuantizedModel, folded, checks: torch.Tensor, x_int8: np.ndarray,
                ref: np.ndarray, tag: str, log: Log) -> dict:
    """``model.onnx`` in ONNX Runtime against torch, ``model_int8.onnx`` against the integer reference."""
    with torch.no_grad():
        p_torch = torch.softmax(folded(checks), dim=-1).numpy()
    p_onnx = onnx_export.run_float(onnx_export.session(folder / "model.onnx"), checks)
    s_onnx = onnx_export.run_int8(onnx_export.session(folder / "model_int8.onnx"), qm, x_int8)
    d = np.abs(s_onnx.astype(np.int32) - ref.astype(np.int32))
    layerwise = onnx_export.layerwise_int8_diff(qm, x_int8)
    logits = onnx_export.logits_int8_diff(qm, x_int8)
    result = {"opset": onnx_export.OPSET, "windows": int(len(checks)),
              "float_max_abs_diff": float(np.abs(p_onnx - p_torch).max()),
              "int8_layerwise_max_lsb": layerwise,
              "int8_logits_end_to_end_max_lsb": int(logits.max()),
              "int8_end_to_end_max_lsb": int(d.max()),
              "int8_end_to_end_share_differing": float((d > 0).mean()),
              "int8_end_to_end_argmax_agreement": float((s_onnx.argmax(1) == ref.argmax(1)).mean())}
    log(f"{tag}: ONNX written (float vs torch max |diff| {result['float_max_abs_diff']:.1e}; "
        f"int8 ONNX Runtime vs reference: max {max(layerwise)} LSB per layer, {int(logits.max())} LSB on the "
        f"logits end to end, {int(d.max())} LSB on the softmax scores)")
    return result


def c_checks(folder: Path, qm: Q.QuantizedModel, cost: costmodel.Cost, budget: Budget, x_int8: np.ndarray,
             ref: np.ndarray, options, tag: str, log: Log, api: Api = Api()) -> tuple[dict, dict, dict]:
    """The ``host_c``, ``cortex_m4`` and ``pipeline`` entries: the C of `folder` against `ref`, measured
    against `cost` (priced for the kernels the checks link); an ELF above the FLASH estimate is a
    VerifyError unless `options.flash_over_estimate` is 'warn' (`options`: `pipeline.ExportOptions`)."""
    cmsis_nn = options.cmsis_nn
    if not options.build_c:
        reason = "--no-verify"
        return {"skipped": reason}, {"skipped": reason}, {"skipped": reason}
    with tempfile.TemporaryDirectory(prefix="nas_export_build_") as work:
        work = Path(work)
        host = _host(folder, work, qm, x_int8, ref, cmsis_nn, tag, log, api)
        problem = verify.qemu.toolchain_problem()
        if problem:
            log(f"{tag}: Cortex-M4 measurement skipped: {problem}")
            return host, {"skipped": problem}, {"skipped": problem}
        m4 = _m4(folder, work, qm, cost, budget, x_int8, ref, cmsis_nn, tag, log, options.flash_over_estimate, api)
        return host, m4, _pipeline(folder, work, qm, cost, cmsis_nn, options.cmsis_dsp, tag, log, api)


def _host(folder: Path, work: Path, qm, x_int8, ref, cmsis_nn, tag: str, log: Log, api: Api) -> dict:
    """Host build with -Wall -Wextra -Werror, bit-exact on every check window."""
    cc = verify.host_compiler()
    if cc is None:
        return {"skipped": "no host C compiler (gcc/cc)"}
    exe = verify.build_host(folder, work / "host", cmsis_nn, api=api)
    got = verify.run_host(exe, x_int8, qm.num_classes)
    bad = int((got != ref).any(axis=1).sum())
    if bad:
        raise verify.VerifyError(f"{tag}: generated C differs from the integer reference on {bad} of "
                                 f"{len(ref)} windows (host build)")
    log(f"{tag}: C bit-exact with the integer reference on {len(ref)} windows (host {Path(cc).name})")
    return {"compiler": Path(cc).name, "kernels": f"CMSIS-NN at {cmsis_nn}" if cmsis_nn else "portable",
            "bit_exact_windows": int(len(ref))}


def _m4(folder: Path, work: Path, qm, cost, budget, x_int8, ref, cmsis_nn, tag: str, log: Log,
        flash_over_estimate: str, api: Api) -> dict:
    """The budget's core under QEMU: bit-exact on every check window, instructions against the
    prediction, FLASH against the estimate and RAM."""
    m4 = verify.measure_m4(folder, work / "m4", cost, budget, qm.spec, x_int8, ref, cmsis_nn, api)
    log(f"{tag}: {m4['isa']} -{m4['opt_level']} bit-exact on {m4['bit_exact_windows']} windows; "
        f"{m4['instructions_per_inference']:,} instructions/inference ({m4['instructions_vs_predicted']:.3f} x the "
        f"cost model's {m4['instructions_predicted']:,}), FLASH {m4['flash_bytes']:,} B "
        f"({m4['flash_vs_estimate']:.4f} x the estimate), RAM {m4['ram_bytes_with_stack']:,} B incl. stack "
        f"(arena {m4['arena_symbol_bytes']:,} B = cost model)")
    if not m4["flash_within_estimate"]:
        msg = (f"{tag}: the ELF's FLASH {m4['flash_bytes']:,} B is above the cost model's estimate "
               f"{m4['flash_estimate_bytes']:,} B (nas/cost/data does not describe this toolchain or library)")
        if flash_over_estimate != "warn":
            raise verify.VerifyError(msg + "; rerun with --flash-over-estimate warn to export anyway")
        log(f"WARNING {msg}")
    return m4


def _pipeline(folder: Path, work: Path, qm, cost, cmsis_nn, cmsis_dsp, tag: str, log: Log, api: Api) -> dict:
    """Front-end + model from audio in on the Cortex-M4 (needs a CMSIS-DSP tree)."""
    if not (folder / "nas_frontend.c").is_file():
        return {"skipped": "no front-end C in the export"}
    if not cmsis_dsp:
        return {"skipped": "no CMSIS-DSP tree (set CMSIS_DSP_PATH or --cmsis-dsp)"}
    pipe = verify.measure_pipeline(folder, work / "pipe", cost, qm, cmsis_dsp, cmsis_nn, api)
    if not pipe["model_bit_exact_on_c_frontend_windows"]:
        raise verify.VerifyError(f"{tag}: pipeline scores differ from the reference on the C front-end's windows")
    if qm.spec.frontend.arithmetic == "fixed" and pipe["features_equal_to_python_frontend"] != 1.0:
        raise verify.VerifyError(f"{tag}: the fixed-point C front-end's windows differ from the training features")
    log(f"{tag}: front-end + model on the Cortex-M4: FLASH {pipe['flash_bytes']:,} B "
        f"({pipe['flash_vs_cost_model_total']:.2f} x cost model), RAM {pipe['ram_bytes_without_audio_buffer']:,} B "
        f"({pipe['ram_vs_cost_model_total']:.2f} x)")
    return pipe
