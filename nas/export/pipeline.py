"""`python -m nas.export --study S [--trial N | --pareto]`: trained models -> deployable folders.

For every selected trial (default: the study's Pareto front) one folder ``<out>/trial_<n>/``:
int8 quantisation calibrated on training-fold windows (`nas.export.quantize`), ``model.onnx`` and
``model_int8.onnx`` (`onnx_export`), ``model.c/.h`` calling CMSIS-NN + the front-end C
(`codegen`, `frontend_c`), build files, a README and ``report.json`` with float vs int8 validation
accuracy, the cost-model figures and what was measured: the C built with host gcc must match the
integer reference bit for bit, and with arm-none-eabi-gcc + QEMU the ELF's FLASH/RAM and the
instructions per inference are recorded (skipped with the reason when the tools are absent).
A folder is built under a temporary name and renamed into place, so it is complete or absent.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shutil
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from nas import config
from nas import cost as costmodel
from nas.atomic import atomic_write_text
from nas.budget import Budget
from nas.errors import UserError, run_cli
from nas.export import codegen, onnx_export, quantize as Q, verify
from nas.export.readme import readme
from nas.locks import pid_alive
from nas.model import fold_batchnorm
from nas.report import pareto_front
from nas.search import open_study, study_dir
from nas.train import ClipSet, clip_accuracy, eval_windows

MAX_CHECK_WINDOWS = 256           # validation windows compared C vs reference and ONNX vs torch/reference
DEFAULT_EXPORT_ROOT = Path("export")
Log = Callable[[str], None]


def _print(msg: str) -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------- study access

def select_trials(study: optuna.Study, numbers: Sequence[int] | None) -> list[FrozenTrial]:
    """The Pareto front (numbers None) or the given trials, each checked to be trained."""
    if numbers is None:
        front = pareto_front(study)
        if not front:
            raise UserError(f"study {study.study_name!r}: no trained model on the Pareto front yet")
        return front
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    out = []
    for n in numbers:
        t = trials.get(n)
        if t is None:
            have = f"trials 0..{max(trials)}" if trials else "no trials"
            raise UserError(f"--trial {n}: not found in study {study.study_name!r} ({have})")
        if t.state != TrialState.COMPLETE or "spec" not in t.user_attrs:
            ua = t.user_attrs
            why = ua.get("reject_reason") or ua.get("prune_reason") or ua.get("fail_reason") or ""
            raise UserError(f"--trial {n}: trial {n} of study {study.study_name!r} was not trained "
                            f"({t.state.name}{': ' + why if why else ''})")
        out.append(t)
    return out


def _study_settings(study: optuna.Study, budget, data, split, cache):
    ua = study.user_attrs
    from nas.data.urbansound import FoldSplit

    if budget is None:
        if "budget" not in ua:
            raise UserError(f"study {study.study_name!r} records no budget: pass --budget")
        budget = config.load(Budget, ua["budget"], f"study {study.study_name} budget")
    if data is None:
        if "data" not in ua:
            raise UserError(f"study {study.study_name!r} records no dataset: pass --data")
        data = ua["data"]
    if split is None:
        if "split" not in ua:
            raise UserError(f"study {study.study_name!r} records no fold split")
        split = FoldSplit(**{k: tuple(v) for k, v in ua["split"].items()})
    if cache is None:
        cache = ua.get("cache", str(Path("studies") / ".cache" / "features"))
    return budget, Path(data), split, Path(cache)


def _clean_stale(out_dir: Path) -> None:
    """Remove temporary folders of exports killed on this host."""
    host = socket.gethostname()
    for old in out_dir.glob(".old-trial_*"):       # a replaced folder whose removal was cut short
        shutil.rmtree(old, ignore_errors=True)
    for tmp in out_dir.glob(".tmp-*"):
        parts = tmp.name.split("-")
        try:
            t_host, pid = "-".join(parts[2:-2]), int(parts[-2])
        except (ValueError, IndexError):
            continue
        if t_host == host and not pid_alive(pid):
            shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- one trial

def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
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


def check_windows(val: ClipSet, fe, limit: int = MAX_CHECK_WINDOWS) -> torch.Tensor:
    """Up to `limit` validation windows [N, 1, frames, mels], spread evenly over all window positions."""
    clips, starts = eval_windows(val, fe.frames, 1)
    if len(clips) > limit:
        idx = torch.linspace(0, len(clips) - 1, limit).round().long()
        clips, starts = clips[idx], starts[idx]
    offsets = starts[:, None] + torch.arange(fe.frames)
    return val.x[clips[:, None], offsets].unsqueeze(1).contiguous()


def export_trial(trial: FrozenTrial, checkpoint: Path, out_dir: Path, budget: Budget, train_set: ClipSet,
                 val_set: ClipSet, *, class_names: tuple[str, ...] = (), study_name: str = "",
                 val_folds: Sequence[int] = (), calibration_windows: int = Q.DEFAULT_CALIBRATION_WINDOWS,
                 method: str = Q.DEFAULT_METHOD, build_c: bool = True, cmsis_nn: str | None = None,
                 cmsis_dsp: str | None = None, log: Log = _print) -> Path:
    """Export one trained trial into ``out_dir/trial_<n>`` (atomically); returns that folder."""
    t_start = time.perf_counter()
    n = trial.number
    tag = f"export trial {n}"
    if not checkpoint.is_file():
        raise UserError(f"--trial {n}: no checkpoint at {checkpoint}")
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    net, input_norm = Q.net_from_checkpoint(ckpt)
    spec, fe = net.spec, net.spec.frontend
    model_name = trial.user_attrs.get("reference") or spec.name
    cost = costmodel.estimate(spec, budget)
    log(f"{tag} ({model_name}): calibrating int8 on {calibration_windows} training windows ({method})")
    calib = Q.calibration_windows(train_set, fe, calibration_windows, seed=n)
    qm = Q.quantize(net, input_norm, calib, method=method, class_names=class_names)
    folded = fold_batchnorm(net)

    report: dict = {"study": study_name, "trial": n, "model": model_name, "spec": spec.to_dict(),
                    "exported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                    "budget": budget.name}
    acc: dict = {"val_folds": list(val_folds), "val_clips": len(val_set)}
    if len(val_set):
        acc["val_float"] = clip_accuracy(folded, val_set, fe.frames, fe.window_hop_frames)
        acc["val_int8"] = Q.int8_clip_accuracy(qm, val_set)
        acc["delta_points"] = 100.0 * (acc["val_int8"] - acc["val_float"])
        clips, starts = eval_windows(val_set, fe.frames, fe.window_hop_frames)
        offsets = starts[:, None] + torch.arange(fe.frames)
        agree = Q.window_agreement(qm, folded, val_set.x[clips[:, None], offsets].unsqueeze(1),
                                   val_set.y[clips].numpy())
        acc.update(windows=agree["windows"], window_argmax_agreement=agree["argmax_agreement"],
                   window_mean_abs_prob_diff=agree["mean_abs_prob_diff"],
                   window_float_accuracy=agree["float_accuracy"], window_int8_accuracy=agree["int8_accuracy"])
        log(f"{tag}: validation accuracy float {acc['val_float']:.3f}, int8 {acc['val_int8']:.3f} "
            f"({acc['delta_points']:+.1f} points) on {len(val_set)} clips; on {agree['windows']} windows float "
            f"{agree['float_accuracy']:.3f}, int8 {agree['int8_accuracy']:.3f}, same class {agree['argmax_agreement']:.3f}")
    report["accuracy"] = acc
    report["quantisation"] = {
        **qm.calibration, "input": {"scale": qm.input_scale, "zero_point": qm.input_zero_point,
                                    "mean_db": qm.input_quant.mean, "std_db": qm.input_quant.std,
                                    "gain": float(qm.input_quant.gain), "offset": float(qm.input_quant.offset)},
        "layers": [q.summary() for q in qm.layers]}
    report["cost_model"] = {**cost.summary(), "flash_bytes_total": cost.flash_bytes, "ram_bytes_total": cost.ram_bytes,
                            "reserve_flash_bytes": cost.reserve_flash_bytes, "reserve_ram_bytes": cost.reserve_ram_bytes,
                            "layers": [{"name": lc.name, "kind": lc.kind, "macs": lc.macs, "flash_bytes": lc.flash_bytes,
                                        "scratch_bytes": lc.scratch_bytes, "arena_bytes": lc.arena_bytes}
                                       for lc in cost.layers]}

    checks = check_windows(val_set if len(val_set) else _as_clipset(calib), fe)
    x_int8 = Q.quantize_input(qm, checks[:, 0])
    ref = Q.run_int8(qm, x_int8)

    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / f"trial_{n}"
    tmp = out_dir / f".tmp-trial_{n}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        # ONNX
        fm, im = onnx_export.float_model(net), onnx_export.int8_model(qm)
        onnx_export.save(fm, tmp / "model.onnx")
        onnx_export.save(im, tmp / "model_int8.onnx")
        with torch.no_grad():
            p_torch = torch.softmax(folded(checks), dim=-1).numpy()
        p_onnx = onnx_export.run_float(onnx_export.session(tmp / "model.onnx"), checks)
        s_onnx = onnx_export.run_int8(onnx_export.session(tmp / "model_int8.onnx"), qm, x_int8)
        d = np.abs(s_onnx.astype(np.int32) - ref.astype(np.int32))
        layerwise = onnx_export.layerwise_int8_diff(qm, x_int8)
        logits = onnx_export.logits_int8_diff(qm, x_int8)
        report["onnx"] = {"opset": onnx_export.OPSET, "windows": int(len(checks)),
                          "float_max_abs_diff": float(np.abs(p_onnx - p_torch).max()),
                          "int8_layerwise_max_lsb": layerwise,
                          "int8_logits_end_to_end_max_lsb": int(logits.max()),
                          "int8_end_to_end_max_lsb": int(d.max()),
                          "int8_end_to_end_share_differing": float((d > 0).mean()),
                          "int8_end_to_end_argmax_agreement": float((s_onnx.argmax(1) == ref.argmax(1)).mean())}
        log(f"{tag}: ONNX written (float vs torch max |diff| {report['onnx']['float_max_abs_diff']:.1e}; "
            f"int8 ONNX Runtime vs reference: max {max(layerwise)} LSB per layer, {int(logits.max())} LSB on the "
            f"logits end to end, {int(d.max())} LSB on the softmax scores)")

        # C
        sel = int(np.argmax(ref.max(axis=1)))          # a window the model is confident about
        origin = f"study {study_name}, trial {n}" if study_name else f"trial {n}"
        files = codegen.write_model_c(qm, cost, tmp, selftest=(x_int8[sel], ref[sel]), origin=origin)
        fe_files = codegen.write_frontend(qm, tmp)
        files += fe_files + codegen.write_build_files(tmp)
        report["frontend_c"] = bool(fe_files)
        report["host_c"], report["cortex_m4"], report["pipeline"] = _verify_c(
            tmp, qm, cost, budget, x_int8, ref, sel, build_c, cmsis_nn, cmsis_dsp, tag, log)

        report["export_seconds"] = round(time.perf_counter() - t_start, 2)
        report["files"] = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file()) + \
            ["README.md", "report.json"]
        atomic_write_text(tmp / "report.json", json.dumps(_jsonable(report), indent=2) + "\n")
        atomic_write_text(tmp / "README.md", readme(qm, cost, budget, _jsonable(report)))
        _publish(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"{tag}: wrote {final} ({time.perf_counter() - t_start:.1f} s)")
    return final


def _as_clipset(windows: torch.Tensor) -> ClipSet:
    n = len(windows)
    return ClipSet(x=windows[:, 0], y=torch.zeros(n, dtype=torch.long),
                   valid_frames=torch.full((n,), windows.shape[2], dtype=torch.long))


def _verify_c(folder: Path, qm, cost, budget, x_int8, ref, sel, build_c, cmsis_nn, cmsis_dsp, tag, log):
    host: dict = {}
    m4: dict = {}
    pipe: dict = {}
    if not build_c:
        reason = "--no-verify"
        return {"skipped": reason}, {"skipped": reason}, {"skipped": reason}
    with tempfile.TemporaryDirectory(prefix="nas_export_build_") as work:
        work = Path(work)
        cc = verify.host_compiler()
        if cc is None:
            host = {"skipped": "no host C compiler (gcc/cc)"}
        else:
            exe = verify.build_host(folder, work / "host", cmsis_nn)
            got = verify.run_host(exe, x_int8, qm.num_classes)
            bad = int((got != ref).any(axis=1).sum())
            if bad:
                raise verify.VerifyError(f"{tag}: generated C differs from the integer reference on {bad} of "
                                         f"{len(ref)} windows (host build)")
            host = {"compiler": Path(cc).name, "kernels": f"CMSIS-NN at {cmsis_nn}" if cmsis_nn else "portable",
                    "bit_exact_windows": int(len(ref))}
            log(f"{tag}: C bit-exact with the integer reference on {len(ref)} windows (host {Path(cc).name})")
        problem = verify.qemu.toolchain_problem()
        if problem:
            m4 = {"skipped": problem}
            pipe = {"skipped": problem}
            log(f"{tag}: Cortex-M4 measurement skipped: {problem}")
            return host, m4, pipe
        m4 = verify.measure_m4(folder, work / "m4", cost, budget, qm.spec, x_int8[sel], cmsis_nn)
        if m4["scores"] != ref[sel].tolist():
            raise verify.VerifyError(f"{tag}: Cortex-M4 scores {m4['scores']} differ from the reference "
                                     f"{ref[sel].tolist()}")
        m4["bit_exact_windows"] = 1
        log(f"{tag}: Cortex-M4 {m4['instructions_per_inference']:,} instructions/inference "
            f"({m4['instructions_per_mac']:.2f}/MAC), FLASH {m4['flash_bytes']:,} B, RAM {m4['ram_bytes_with_stack']:,} B "
            f"incl. stack (arena {m4['arena_symbol_bytes']:,} B = cost model)")
        if not (folder / "nas_frontend.c").is_file():
            pipe = {"skipped": "no front-end C in the export"}
        elif not cmsis_dsp:
            pipe = {"skipped": "no CMSIS-DSP tree (set CMSIS_DSP_PATH or --cmsis-dsp)"}
        else:
            pipe = verify.measure_pipeline(folder, work / "pipe", cost, budget, qm, cmsis_dsp, cmsis_nn)
            if not pipe["model_bit_exact_on_c_frontend_windows"]:
                raise verify.VerifyError(f"{tag}: pipeline scores differ from the reference on the C front-end's windows")
            log(f"{tag}: front-end + model on the Cortex-M4: FLASH {pipe['flash_bytes']:,} B "
                f"({pipe['flash_vs_cost_model_total']:.2f} x cost model), RAM {pipe['ram_bytes_without_audio_buffer']:,} B "
                f"({pipe['ram_vs_cost_model_total']:.2f} x)")
    return host, m4, pipe


def _publish(tmp: Path, final: Path) -> None:
    old = None
    if final.exists():
        old = final.with_name(f".old-{final.name}-{uuid.uuid4().hex[:8]}")
        os.rename(final, old)
    os.rename(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------- study

def export_study(study: optuna.Study, out_dir: str | Path, budget: Budget | None = None, data: str | Path | None = None,
                 split=None, cache: str | Path | None = None, *, trials: Sequence[int] | None = None,
                 calibration_windows: int = Q.DEFAULT_CALIBRATION_WINDOWS, method: str = Q.DEFAULT_METHOD,
                 checkpoints: str | Path | None = None, build_c: bool = True, cmsis_nn: str | None = None,
                 cmsis_dsp: str | None = None, log: Log = _print) -> list[Path]:
    """Export `trials` (default: the Pareto front) of `study` into ``out_dir/trial_<n>/``.

    budget/data/split/cache default to what the study recorded (nas.search stores them);
    checkpoints default to ``studies/<study>/checkpoints``. Returns the folders written."""
    from nas.data import cache as fcache
    from nas.data.urbansound import CLASSES
    from nas.spec import ArchSpec
    from nas.trialdata import TrialData

    if calibration_windows < 1:
        raise UserError(f"--calibration-windows: expected a positive integer, got {calibration_windows}")
    if method not in Q.METHODS:
        raise UserError(f"--calibration: expected one of {', '.join(Q.METHODS)}, got {method!r}")
    budget, data, split, cache = _study_settings(study, budget, data, split, cache)
    selected = select_trials(study, trials)
    ckpt_dir = Path(checkpoints) if checkpoints else study_dir(study.study_name) / "checkpoints"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _clean_stale(out)
    log(f"exporting {len(selected)} model(s) of study {study.study_name!r} to {out}")
    provider = TrialData(data, split, cache, progress=False)
    written = []
    for t in selected:
        spec = ArchSpec.from_json(t.user_attrs["spec"])
        train_set, val_set, _ = provider.get(spec.frontend)
        try:
            classes = tuple(fcache.load_features(data, spec.frontend, cache, progress=False).classes)
        except Exception:  # names are cosmetic; never fail an export on them
            classes = CLASSES[:spec.num_classes]
        written.append(export_trial(t, ckpt_dir / f"trial_{t.number}.pt", out, budget, train_set, val_set,
                                    class_names=classes[:spec.num_classes], study_name=study.study_name,
                                    val_folds=split.val, calibration_windows=calibration_windows, method=method,
                                    build_c=build_c, cmsis_nn=cmsis_nn, cmsis_dsp=cmsis_dsp, log=log))
    return written


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nas.export", description=__doc__.split("\n\n")[0])
    p.add_argument("--study", required=True, help="study name (as given to nas.search)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--trial", type=int, action="append", metavar="N",
                       help="export trial N (repeatable); default: the Pareto front")
    which.add_argument("--pareto", action="store_true", help="export every model of the Pareto front (default)")
    p.add_argument("--out", default=None, help="output folder (default export/<study>/)")
    p.add_argument("--storage", default=None, help="Optuna storage (default studies/<study>/journal.log)")
    p.add_argument("--calibration-windows", type=int, default=Q.DEFAULT_CALIBRATION_WINDOWS,
                   help=f"training windows the int8 ranges are calibrated on (default {Q.DEFAULT_CALIBRATION_WINDOWS})")
    p.add_argument("--calibration", choices=Q.METHODS, default=Q.DEFAULT_METHOD,
                   help=f"activation ranges: full min/max or the [{100 - Q.DEFAULT_PERCENTILE:g}, "
                        f"{Q.DEFAULT_PERCENTILE:g}] percentiles (default {Q.DEFAULT_METHOD})")
    p.add_argument("--budget", default=None, help="budget YAML (default: the one the study was searched with)")
    p.add_argument("--data", default=None, help="dataset root (default: the study's)")
    p.add_argument("--cache", default=None, help="feature cache folder (default: the study's)")
    p.add_argument("--checkpoints", default=None,
                   help="checkpoint folder (default: checkpoints/ beside the journal, else studies/<study>/checkpoints)")
    p.add_argument("--cmsis-nn", default=os.environ.get("CMSIS_NN_PATH") or None,
                   help="CMSIS-NN checkout to verify against (default $CMSIS_NN_PATH, else the portable kernels)")
    p.add_argument("--cmsis-dsp", default=os.environ.get("CMSIS_DSP_PATH") or None,
                   help="CMSIS-DSP tree: also run front-end + model on the Cortex-M4 (default $CMSIS_DSP_PATH)")
    p.add_argument("--no-verify", action="store_true", help="do not build or run the generated C")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.calibration_windows < 1:
        raise UserError(f"--calibration-windows: expected a positive integer, got {args.calibration_windows}")
    study, storage = open_study(args.study, args.storage)
    if args.checkpoints:
        ckpts = Path(args.checkpoints)
    elif "://" not in storage and (Path(storage).parent / "checkpoints").is_dir():
        ckpts = Path(storage).parent / "checkpoints"
    else:
        ckpts = study_dir(args.study) / "checkpoints"
    budget = Budget.load(args.budget) if args.budget else None
    out = Path(args.out) if args.out else DEFAULT_EXPORT_ROOT / args.study
    for flag, path in (("--cmsis-nn", args.cmsis_nn), ("--cmsis-dsp", args.cmsis_dsp)):
        if path and not Path(path).is_dir():
            raise UserError(f"{flag} {path}: not a folder")
    try:
        export_study(study, out, budget, args.data, None, args.cache, trials=args.trial,
                     calibration_windows=args.calibration_windows, method=args.calibration, checkpoints=ckpts,
                     build_c=not args.no_verify, cmsis_nn=args.cmsis_nn, cmsis_dsp=args.cmsis_dsp)
    except verify.VerifyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    run_cli(main)
