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
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from nas.arch.net import fold_batchnorm
from nas.arch.spec import ArchSpec
from nas.budget import Budget
from nas.core import owned
from nas.core.atomic import atomic_write_text
from nas.core.errors import UserError
from nas.cost import analytic as costmodel
from nas.data import cache as fcache
from nas.data.urbansound import CLASSES, FoldSplit
from nas.data.validate import validate_dataset
from nas.export import codegen, measure, onnx_export
from nas.export.api import Api
from nas.export.folder import check_replaceable, clean_stale, staged
from nas.export.frontend_c import cmsis_dsp_sources
from nas.export.measure import Log
from nas.export.qemu import BuildError
from nas.libraries import LibraryMissing, library
from nas.export.readme import readme
from nas.quant import quantize as Q
from nas.study.artifacts import record_export
from nas.study.folders import study_dir
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
        if t.state != TrialState.COMPLETE or "spec" not in t.user_attrs:
            ua = t.user_attrs
            why = ua.get("reject_reason") or ua.get("prune_reason") or ua.get("fail_reason") or ""
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


@dataclass(frozen=True)
class ExportOptions:
    """How models are exported and checked: the flags of `nas.export` (see its --help)."""

    calibration_windows: int = Q.DEFAULT_CALIBRATION_WINDOWS
    method: str = Q.DEFAULT_METHOD
    build_c: bool = True                   # build and run the generated C (False: --no-verify)
    cmsis_nn: str | None = None            # a CMSIS-NN checkout to verify against, else the portable kernels
    cmsis_dsp: str | None = None           # a CMSIS-DSP tree: also run front-end + model
    force: bool = False
    flash_over_estimate: str = "fail"

    @property
    def library(self) -> str:
        """The kernel library the checks link: the checkout's when given, else the portable copy."""
        return "cmsis-nn" if self.cmsis_nn else "portable"

    def check(self) -> None:
        """One line per bad value, before any work."""
        if self.calibration_windows < 1:
            raise UserError(f"--calibration-windows: expected a positive integer, got {self.calibration_windows}")
        if self.method not in Q.METHODS:
            raise UserError(f"--calibration: expected one of {', '.join(Q.METHODS)}, got {self.method!r}")
        check_libraries(self.cmsis_nn, self.cmsis_dsp)


@dataclass(frozen=True)
class TrialSource:
    """One trained model to export: its trial, weights, and the data it is calibrated and checked on."""

    trial: FrozenTrial
    checkpoint: Path
    train_set: ClipSet
    val_set: ClipSet
    class_names: tuple[str, ...] = ()
    study_name: str = ""
    val_folds: Sequence[int] = ()


def export_trial(src: TrialSource, out_dir: Path, budget: Budget, options: ExportOptions = ExportOptions(),
                 log: Log = _print, api: Api = Api()) -> Path:
    """Export one trained trial into ``out_dir/trial_<n>`` (atomically; an existing folder holding
    files the export did not write is refused unless `options.force`), its C with `api`'s names;
    returns that folder. The cost is computed once, for the kernels the checks link, and is what the
    C, the checks and the report use."""
    t_start = time.perf_counter()
    trial, n = src.trial, src.trial.number
    tag = f"export trial {n}"
    if not src.checkpoint.is_file():
        raise UserError(f"--trial {n}: no checkpoint at {src.checkpoint}")
    net, input_norm = Q.net_from_checkpoint(torch.load(src.checkpoint, map_location="cpu", weights_only=True))
    spec = net.spec
    model_name = trial.user_attrs.get("reference") or spec.name
    cost = costmodel.estimate(spec, budget, options.library)
    log(f"{tag} ({model_name}): calibrating int8 on {options.calibration_windows} training windows ({options.method})")
    calib = Q.calibration_windows(src.train_set, spec.frontend, options.calibration_windows, seed=n)
    qm = Q.quantize(net, input_norm, calib, method=options.method, class_names=src.class_names)
    folded = fold_batchnorm(net)
    report: dict = {"study": src.study_name, "trial": n, "model": model_name, "spec": spec.to_dict(),
                    "exported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                    "budget": budget.name, "c_api": {"invoke": f"{api.model}_invoke", "macros": f"{api.MODEL}_*",
                                                     "frontend": f"{api.frontend}_push"},
                    "accuracy": measure.accuracy(qm, folded, src.val_set, src.val_folds, tag, log),
                    "quantisation": measure.quantisation_summary(qm), "cost_model": measure.cost_summary(cost)}
    checks = check_windows(src.val_set if len(src.val_set) else _as_clipset(calib), spec.frontend)
    x_int8 = Q.quantize_input(qm, checks[:, 0])
    ref = Q.run_int8(qm, x_int8)
    with staged(out_dir, f"trial_{n}", options.force) as tmp:
        spec.save(tmp / "spec.yaml")
        onnx_export.save(onnx_export.float_model(net), tmp / "model.onnx")
        onnx_export.save(onnx_export.int8_model(qm), tmp / "model_int8.onnx")
        report["onnx"] = measure.onnx_checks(tmp, qm, folded, checks, x_int8, ref, tag, log)
        sel = int(np.argmax(ref.max(axis=1)))          # a window the model is confident about
        origin = f"study {src.study_name}, trial {n}" if src.study_name else f"trial {n}"
        codegen.write_model_c(qm, cost, tmp, selftest=(x_int8[sel], ref[sel]), origin=origin, api=api)
        report["frontend_c"] = bool(codegen.write_frontend(qm, tmp, api))
        codegen.write_build_files(tmp, api, fixed_frontend=spec.frontend.arithmetic == "fixed")
        report["host_c"], report["cortex_m4"], report["pipeline"] = measure.c_checks(
            tmp, qm, cost, budget, x_int8, ref, options, tag, log, api)
        report["export_seconds"] = round(time.perf_counter() - t_start, 2)
        report["files"] = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*")
                                 if p.is_file() and p.name != owned.RECORD) + \
            ["README.md", "report.json"]
        atomic_write_text(tmp / "report.json", json.dumps(measure.jsonable(report), indent=2) + "\n")
        atomic_write_text(tmp / "README.md", readme(qm, cost, budget, measure.jsonable(report), api))
    log(f"{tag}: wrote {out_dir / f'trial_{n}'} ({time.perf_counter() - t_start:.1f} s)")
    return out_dir / f"trial_{n}"


def c_apis(prefixes: Sequence[str] | None, n: int) -> list[Api]:
    """The C API of each of `n` exported models: one --prefix each, all different; default nas_model_*."""
    if not prefixes:
        return [Api()] * n
    if len(prefixes) != n:
        raise UserError(f"--prefix: give one per exported model ({n} models, {len(prefixes)} prefixes)")
    if len(set(prefixes)) < n:
        raise UserError(f"--prefix: the names must differ, got {', '.join(prefixes)}")
    return [Api(p) for p in prefixes]


@dataclass(frozen=True)
class StudyExport:
    """What of a study to export and from where: `trials` (default: the Pareto front); budget, data,
    split and cache default to what the study recorded (nas.search stores them); checkpoints to
    ``studies/<study>/checkpoints``; `prefixes` (one per trial) name each model's C API
    (`nas_<prefix>_invoke`; default `nas_model_invoke`)."""

    trials: Sequence[int] | None = None
    budget: Budget | None = None
    data: str | Path | None = None
    split: FoldSplit | None = None
    cache: str | Path | None = None
    checkpoints: str | Path | None = None
    prefixes: Sequence[str] | None = None


def export_study(study: optuna.Study, out_dir: str | Path, what: StudyExport = StudyExport(),
                 options: ExportOptions = ExportOptions(), log: Log = _print, artifacts=None) -> list[Path]:
    """Export `what` of `study` into ``out_dir/trial_<n>/``. Models the final stage (`nas.evaluate`)
    retrained are exported from their recorded retrained checkpoint. With an artifact store each
    folder's report, header and spec are also study artifacts. Returns the folders written."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder (nothing was written)")
    options.check()
    budget, data, split, cache = recorded_settings(study, what.budget, what.data, what.split, what.cache)
    selected = select_trials(study, what.trials)
    apis = c_apis(what.prefixes, len(selected))
    ckpt_dir = Path(what.checkpoints) if what.checkpoints else study_dir(study.study_name) / "checkpoints"
    for t in selected:
        check_replaceable(out / f"trial_{t.number}", options.force)
    validate_dataset(data, split)
    out.mkdir(parents=True, exist_ok=True)
    clean_stale(out)
    log(f"exporting {len(selected)} model(s) of study {study.study_name!r} to {out}")
    provider = TrialData(data, split, cache, progress=False)
    written = []
    for t, api in zip(selected, apis):
        spec = ArchSpec.from_json(t.user_attrs["spec"])
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
        src = TrialSource(t, checkpoint, train_set, val_set, classes[:spec.num_classes], study.study_name, split.val)
        written.append(export_trial(src, out, budget, options, log, api))
        if artifacts is not None:
            record_export(study, artifacts, written[-1])
    return written


def check_libraries(cmsis_nn: str | None, cmsis_dsp: str | None) -> None:
    """One line when a CMSIS-NN or CMSIS-DSP path (a flag or $CMSIS_NN_PATH / $CMSIS_DSP_PATH) is not
    the library's tree, before any work."""
    for flag, path, probe in (("--cmsis-nn / CMSIS_NN_PATH", cmsis_nn, library("cmsis-nn").sources),
                              ("--cmsis-dsp / CMSIS_DSP_PATH", cmsis_dsp, cmsis_dsp_sources)):
        if path:
            try:
                probe(path)
            except (BuildError, LibraryMissing, OSError) as exc:
                raise UserError(f"{flag} {path}: {exc}") from None
