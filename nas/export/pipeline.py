"""Trained models → deployable folders, one per trial: ``<out>/trial_<n>/``.

For every selected trial (default: the study's Pareto front): int8 quantisation calibrated on
training-fold windows (`nas.quant.quantize`), ``model.onnx`` and ``model_int8.onnx``
(`onnx_export`), ``model.c/.h`` calling CMSIS-NN + the front-end C (`codegen`, `frontend_c`), build
files, a README and ``report.json`` with what `measure` found: float vs int8 validation accuracy, the
cost-model figures, the C built with host gcc bit-exact with the integer reference, and with
arm-none-eabi-gcc + QEMU the ELF's FLASH/RAM and instructions per inference. Each folder is built
under a temporary name and renamed into place (`folder.staged`).
"""
from __future__ import annotations

import datetime as _dt
import json
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from nas.arch.net import fold_batchnorm
from nas.budget import Budget
from nas.core.atomic import atomic_write_text
from nas.core.errors import UserError
from nas.cost import analytic as costmodel
from nas.data import cache as fcache
from nas.data.urbansound import CLASSES, FoldSplit
from nas.data.validate import validate_dataset
from nas.export import codegen, measure, onnx_export, summary
from nas.export.api import Api
from nas.export.folder import check_replaceable, clean_stale, staged
from nas.export.frontend_c import cmsis_dsp_sources
from nas.export.measure import Log
from nas.export.qemu import BuildError, cmsis_nn_sources
from nas.export.readme import readme
from nas.quant import confidence
from nas.quant import quantize as Q
from nas.study.artifacts import record_export
from nas.study.folders import study_dir
from nas.study.record import TrialRecord
from nas.study.settings import recorded_settings
from nas.study.trials import pareto_front
from nas.train.clips import ClipSet, eval_windows
from nas.train.trialdata import TrialData

MAX_CHECK_WINDOWS = 256           # validation windows compared C vs reference and ONNX vs torch/reference


def _print(msg: str) -> None:
    print(msg, flush=True)


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
        if t.state != TrialState.COMPLETE or TrialRecord.of(t).spec is None:
            why = TrialRecord.of(t).reason
            raise UserError(f"--trial {n}: trial {n} of study {study.study_name!r} was not trained "
                            f"({t.state.name}{': ' + why if why else ''})")
        out.append(t)
    return out


def check_windows(val: ClipSet, fe, limit: int = MAX_CHECK_WINDOWS) -> torch.Tensor:
    """Up to `limit` validation windows [N, 1, frames, mels], spread evenly over all window positions."""
    clips, starts = eval_windows(val, fe.frames, 1)
    if len(clips) > limit:
        idx = torch.linspace(0, len(clips) - 1, limit).round().long()
        clips, starts = clips[idx], starts[idx]
    offsets = starts[:, None] + torch.arange(fe.frames)
    return val.x[clips[:, None], offsets].unsqueeze(1).contiguous()


def _as_clipset(windows: torch.Tensor) -> ClipSet:
    n = len(windows)
    return ClipSet(x=windows[:, 0], y=torch.zeros(n, dtype=torch.long),
                   valid_frames=torch.full((n,), windows.shape[2], dtype=torch.long))


def export_trial(trial: FrozenTrial, checkpoint: Path, out_dir: Path, budget: Budget, train_set: ClipSet,
                 val_set: ClipSet, *, class_names: tuple[str, ...] = (), study_name: str = "",
                 val_folds: Sequence[int] = (), calibration_windows: int = Q.DEFAULT_CALIBRATION_WINDOWS,
                 method: str = Q.DEFAULT_METHOD, build_c: bool = True, cmsis_nn: str | None = None,
                 cmsis_dsp: str | None = None, force: bool = False, flash_over_estimate: str = "fail",
                 log: Log = _print, api: Api = Api(), target_precision: float | None = None) -> Path:
    """Export one trained trial into ``out_dir/trial_<n>`` (atomically; an existing folder holding
    files the export did not write is refused unless `force`), its C with `api`'s names and the
    "unknown" threshold reaching `target_precision` on the validation clips (None: none);
    returns that folder."""
    t_start = time.perf_counter()
    n = trial.number
    tag = f"export trial {n}"
    if not checkpoint.is_file():
        raise UserError(f"--trial {n}: no checkpoint at {checkpoint}")
    net, input_norm = Q.net_from_checkpoint(torch.load(checkpoint, map_location="cpu", weights_only=True))
    spec = net.spec
    model_name = TrialRecord.of(trial).reference or spec.name
    cost = costmodel.estimate(spec, budget)
    log(f"{tag} ({model_name}): calibrating int8 on {calibration_windows} training windows ({method})")
    calib = Q.calibration_windows(train_set, spec.frontend, calibration_windows, seed=n)
    qm = Q.quantize(net, input_norm, calib, method=method, class_names=class_names)
    folded = fold_batchnorm(net)
    report: dict = {"study": study_name, "trial": n, "model": model_name, "spec": spec.to_dict(),
                    "exported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                    "budget": budget.name, "c_api": {"invoke": f"{api.model}_invoke", "macros": f"{api.MODEL}_*",
                                                     "frontend": f"{api.frontend}_push"},
                    "accuracy": measure.accuracy(qm, folded, val_set, val_folds, tag, log),
                    "quantisation": measure.quantisation_summary(qm), "cost_model": measure.cost_summary(cost),
                    "unknown": measure.unknown(qm, val_set, target_precision, tag, log)}
    checks = check_windows(val_set if len(val_set) else _as_clipset(calib), spec.frontend)
    x_int8 = Q.quantize_input(qm, checks[:, 0])
    ref = Q.run_int8(qm, x_int8)
    with staged(out_dir, f"trial_{n}", force) as tmp:
        spec.save(tmp / "spec.yaml")
        onnx_export.save(onnx_export.float_model(net), tmp / "model.onnx")
        onnx_export.save(onnx_export.int8_model(qm), tmp / "model_int8.onnx")
        report["onnx"] = measure.onnx_checks(tmp, qm, folded, checks, x_int8, ref, tag, log)
        sel = int(np.argmax(ref.max(axis=1)))          # a window the model is confident about
        origin = f"study {study_name}, trial {n}" if study_name else f"trial {n}"
        codegen.write_model_c(qm, cost, tmp, selftest=(x_int8[sel], ref[sel]), origin=origin, api=api,
                              decide=_write_decide(qm, tmp, report["unknown"], api))
        report["frontend_c"] = bool(codegen.write_frontend(qm, tmp, api))
        codegen.write_build_files(tmp, api)
        report["host_c"], report["cortex_m4"], report["pipeline"] = measure.c_checks(
            tmp, qm, budget, x_int8, ref, build_c, cmsis_nn, cmsis_dsp, tag, log, flash_over_estimate, api)
        unk = report["unknown"]
        unk["host_c"] = measure.decision_check(tmp, unk["_votes"], unk["_windows"], unk["min_score"], build_c, tag,
                                               log, api)
        report["export_seconds"] = round(time.perf_counter() - t_start, 2)
        report["files"] = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file()) + \
            ["README.md", "report.json"]
        atomic_write_text(tmp / "report.json", json.dumps(measure.jsonable(report), indent=2) + "\n")
        atomic_write_text(tmp / "README.md", readme(qm, cost, budget, measure.jsonable(report), api))
    log(f"{tag}: wrote {out_dir / f'trial_{n}'} ({time.perf_counter() - t_start:.1f} s)")
    return out_dir / f"trial_{n}"


def _write_decide(qm: Q.QuantizedModel, folder: Path, unknown: dict, api: Api) -> codegen.DecisionCases:
    """model_decide.h with the chosen threshold; returns the cases the self-test checks."""
    votes, windows, min_score = unknown["_votes"], unknown["_windows"], unknown["min_score"]
    codegen.write_decide(qm, folder, min_score, unknown["note"], checked=len(votes), api=api)
    cases = confidence.decision_cases(votes, windows, min_score)
    return codegen.DecisionCases(*cases, confidence.decide(*cases, min_score))


def c_apis(prefixes: Sequence[str] | None, n: int) -> list[Api]:
    """The C API of each of `n` exported models: one --prefix each, all different; default nas_model_*."""
    if not prefixes:
        return [Api()] * n
    if len(prefixes) != n:
        raise UserError(f"--prefix: give one per exported model ({n} models, {len(prefixes)} prefixes)")
    if len(set(prefixes)) < n:
        raise UserError(f"--prefix: the names must differ, got {', '.join(prefixes)}")
    return [Api(p) for p in prefixes]


def export_study(study: optuna.Study, out_dir: str | Path, budget: Budget | None = None, data: str | Path | None = None,
                 split: FoldSplit | None = None, cache: str | Path | None = None, *, trials: Sequence[int] | None = None,
                 calibration_windows: int = Q.DEFAULT_CALIBRATION_WINDOWS, method: str = Q.DEFAULT_METHOD,
                 checkpoints: str | Path | None = None, build_c: bool = True, cmsis_nn: str | None = None,
                 cmsis_dsp: str | None = None, force: bool = False, flash_over_estimate: str = "fail",
                 log: Log = _print, prefixes: Sequence[str] | None = None, artifacts=None,
                 target_precision: float | None = None) -> list[Path]:
    """Export `trials` (default: the Pareto front) of `study` into ``out_dir/trial_<n>/``.

    budget/data/split/cache default to what the study recorded (nas.search stores them);
    checkpoints default to ``studies/<study>/checkpoints``, except for models the final stage
    (`nas.evaluate`) retrained: their recorded retrained model is exported. `prefixes` (one per trial)
    name each model's C API (`nas_<prefix>_invoke`; default `nas_model_invoke`); with an artifact
    store each folder's report, header and spec are also study artifacts; `target_precision` sets each
    model's "unknown" threshold (`nas.quant.confidence`). Ends with the summary table; returns the
    folders written."""
    _check_flags(calibration_windows, method, target_precision)
    check_libraries(cmsis_nn, cmsis_dsp)
    budget, data, split, cache = recorded_settings(study, budget, data, split, cache)
    selected = select_trials(study, trials)
    apis = c_apis(prefixes, len(selected))
    ckpt_dir = Path(checkpoints) if checkpoints else study_dir(study.study_name) / "checkpoints"
    out = Path(out_dir)
    for t in selected:
        check_replaceable(out / f"trial_{t.number}", force)
    validate_dataset(data, split)
    out.mkdir(parents=True, exist_ok=True)
    clean_stale(out)
    log(f"exporting {len(selected)} model(s) of study {study.study_name!r} to {out}")
    provider = TrialData(data, split, cache, progress=False)
    written = []
    for t, api in zip(selected, apis):
        spec = TrialRecord.of(t).arch()
        train_set, val_set, _ = provider.get(spec.frontend)
        try:
            classes = tuple(fcache.load_features(data, spec.frontend, cache, progress=False).classes)
        except Exception:  # names are cosmetic; never fail an export on them
            classes = CLASSES[:spec.num_classes]
        retrained = (study.user_attrs.get("final_models") or {}).get(str(t.number))
        checkpoint = Path(retrained["checkpoint"]) if retrained else ckpt_dir / f"trial_{t.number}.pt"
        if retrained:
            log(f"trial {t.number}: exporting the final stage's retrained model (seed {retrained['seed']}, "
                f"{retrained['int8_method'].upper()}, validation score {retrained['val_score']:.3f})")
        written.append(export_trial(t, checkpoint, out, budget, train_set, val_set,
                                    class_names=classes[:spec.num_classes], study_name=study.study_name,
                                    val_folds=split.val, calibration_windows=calibration_windows, method=method,
                                    build_c=build_c, cmsis_nn=cmsis_nn, cmsis_dsp=cmsis_dsp, force=force,
                                    flash_over_estimate=flash_over_estimate, log=log, api=api,
                                    target_precision=target_precision))
        if artifacts is not None:
            record_export(study, artifacts, written[-1])
    log(f"\nexported {len(written)} model(s) of study {study.study_name!r}:\n{summary.table(written)}")
    return written


def _check_flags(calibration_windows: int, method: str, target_precision: float | None) -> None:
    if calibration_windows < 1:
        raise UserError(f"--calibration-windows: expected a positive integer, got {calibration_windows}")
    if method not in Q.METHODS:
        raise UserError(f"--calibration: expected one of {', '.join(Q.METHODS)}, got {method!r}")
    if target_precision is not None and not 0.0 < target_precision <= 1.0:
        raise UserError(f"--target-precision: expected a share in (0, 1], e.g. 0.9, got {target_precision:g}")


def check_libraries(cmsis_nn: str | None, cmsis_dsp: str | None) -> None:
    """One line when a CMSIS-NN or CMSIS-DSP path (a flag or $CMSIS_NN_PATH / $CMSIS_DSP_PATH) is not
    the library's tree, before any work."""
    for flag, path, probe in (("--cmsis-nn / CMSIS_NN_PATH", cmsis_nn, cmsis_nn_sources),
                              ("--cmsis-dsp / CMSIS_DSP_PATH", cmsis_dsp, cmsis_dsp_sources)):
        if path:
            try:
                probe(path)
            except (BuildError, OSError) as exc:
                raise UserError(f"{flag} {path}: {exc}") from None
