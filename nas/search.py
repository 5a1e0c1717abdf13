"""`python -m nas.search --budget budgets/stm32l476.yaml`: the hardware-constrained search.

Each trial: sample → ArchSpec → exact int8 cost. Over any limit, the trial is PRUNED at once with
its costs, the violated limits (as Optuna constraints, so TPE learns where the feasible region is)
and the reason stored; no data is touched. Within budget, it trains on the training folds, is
selected on the validation fold, and may be stopped early when it cannot reach the Pareto front.
Objectives: validation accuracy (max), MAC/s (min), RAM (min); FLASH is a constraint.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import optuna
import torch
from optuna.trial import TrialState

from nas import cost as costmodel
from nas.budget import Budget
from nas.errors import UserError, run_cli
from nas.space import InvalidArchitecture, SearchSpace
from nas.spec import ArchSpec
from nas.storage import open_storage
from nas.train import StopTraining, TrainConfig, train
from nas.trialdata import TrialData

OBJECTIVES = ("val_accuracy", "macs_per_second", "ram_bytes")
DIRECTIONS = ("maximize", "minimize", "minimize")
CONSTRAINTS = ("ram", "flash", "macs_per_second", "valid")
DEMO = "demo"
STUDIES = Path("studies")
WORKER = f"{socket.gethostname()}:{os.getpid()}"

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def study_dir(study: str) -> Path:
    return STUDIES / study


def default_storage(study: str) -> str:
    return str(study_dir(study) / "journal.log")


def load_study(study: str, storage: str, seed: int | None) -> optuna.Study:
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=10)
    try:
        s = optuna.create_study(study_name=study, storage=open_storage(storage), directions=list(DIRECTIONS),
                                sampler=sampler, load_if_exists=True)
    except (optuna.exceptions.StorageInternalError, ImportError, ValueError) as exc:
        raise UserError(f"--storage {storage}: cannot open the study ({exc})") from None
    if list(s.directions) != [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE,
                              optuna.study.StudyDirection.MINIMIZE]:
        raise UserError(f"study {study!r} in {storage} was not created by nas.search (other objectives)")
    if not s.metric_names:
        s.set_metric_names(list(OBJECTIVES))
    return s


def close_stale_trials(study: optuna.Study) -> int:
    """Fail RUNNING trials whose worker process on this host is gone (killed run), so TPE's constant
    liar stops avoiding them; trials of live workers (other processes, other hosts) are left alone."""
    host = socket.gethostname()
    closed = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker", "")
        w_host, _, w_pid = worker.rpartition(":")
        if w_host == host and w_pid.isdigit() and not _pid_alive(int(w_pid)):
            study.tell(t.number, state=TrialState.FAIL)
            closed += 1
    return closed


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def enqueue_references(study: optuna.Study, space: SearchSpace, budget: Budget) -> list[str]:
    """Queue the space's reference models that fit the budget, once per study."""
    done = {t.user_attrs.get("reference") for t in study.get_trials(deepcopy=False)}
    queued = []
    for name, params in space.reference_params().items():
        if name in done:
            continue
        spec = space.build(params, name)
        if costmodel.estimate(spec, budget).fits(budget):
            study.enqueue_trial(params, user_attrs={"reference": name}, skip_if_exists=True)
            queued.append(name)
    return queued


def describe_violations(cost: costmodel.Cost, budget: Budget) -> str:
    lim = budget.limits
    parts = []
    if cost.ram_bytes > lim.ram_bytes:
        parts.append(f"RAM {cost.ram_bytes:,} B > {lim.ram_bytes:,} B ({cost.ram_bytes / lim.ram_bytes - 1:+.0%})")
    if cost.flash_bytes > lim.flash_bytes:
        parts.append(f"FLASH {cost.flash_bytes:,} B > {lim.flash_bytes:,} B "
                     f"({cost.flash_bytes / lim.flash_bytes - 1:+.0%})")
    if cost.macs_per_second > lim.macs_per_second:
        parts.append(f"MAC/s {cost.macs_per_second / 1e6:.2f} M > {lim.macs_per_second / 1e6:.2f} M "
                     f"({cost.macs_per_second / lim.macs_per_second - 1:+.0%})")
    return "over budget: " + "; ".join(parts)


class Objective:
    """One trial of the study; see the module docstring. Data is loaded lazily, only for survivors."""

    def __init__(self, space: SearchSpace, budget: Budget, data: TrialData, cfg: TrainConfig,
                 checkpoints: Path, warmup: int = 3, margin: float = 0.10, log=print):
        self.space, self.budget, self.data, self.cfg = space, budget, data, cfg
        self.checkpoints, self.warmup, self.margin, self.log = checkpoints, warmup, margin, log

    def reject(self, trial: optuna.Trial, reason: str, violations: dict[str, float]) -> None:
        for key in CONSTRAINTS:
            trial.set_constraint(key, float(violations.get(key, 0.0)))
        trial.set_user_attr("feasible", False)
        trial.set_user_attr("reject_reason", reason)
        self.log(f"trial {trial.number:>4} rejected   {reason}")
        raise optuna.TrialPruned(reason)

    def __call__(self, trial: optuna.Trial) -> tuple[float, float, float]:
        trial.set_user_attr("worker", WORKER)
        params = self.space.suggest(trial)
        try:
            spec = self.space.build(params, name=trial.user_attrs.get("reference") or f"trial{trial.number}")
        except InvalidArchitecture as exc:
            self.reject(trial, f"invalid architecture: {exc}", {"valid": 1.0})
        cost = costmodel.estimate(spec, self.budget)
        trial.set_user_attr("spec", spec.to_json())
        for key, value in cost.summary().items():
            trial.set_user_attr(key, value)
        violations = cost.violations(self.budget)
        if not cost.fits(self.budget):
            self.reject(trial, describe_violations(cost, self.budget), violations)
        for key in CONSTRAINTS:
            trial.set_constraint(key, float(violations.get(key, 0.0)))
        trial.set_user_attr("feasible", True)
        try:
            return self.fit(trial, spec, cost)
        except optuna.TrialPruned:
            raise
        except Exception as exc:  # the trial fails with its reason; the study goes on (optimize's catch)
            trial.set_user_attr("fail_reason", f"{type(exc).__name__}: {exc}")
            self.log(f"trial {trial.number:>4} FAILED     {type(exc).__name__}: {exc}")
            raise

    def fit(self, trial: optuna.Trial, spec: ArchSpec, cost: costmodel.Cost) -> tuple[float, float, float]:
        train_set, val_set, norm = self.data.get(spec.frontend)
        curve: list[float] = []
        chance = 1.0 / spec.num_classes

        def on_epoch(record: dict) -> None:
            curve.append(round(record["val_acc"], 4))
            trial.set_user_attr("curve", curve)
            self._maybe_prune(trial, cost, curve, chance)

        cfg = TrainConfig(**{**asdict(self.cfg), "seed": self.cfg.seed + trial.number})
        t0 = time.perf_counter()
        try:
            result = train(spec, train_set, val_set, cfg, norm_std=norm.std, on_epoch=on_epoch)
        except StopTraining as stop:
            trial.set_user_attr("train_seconds", round(time.perf_counter() - t0, 2))
            trial.set_user_attr("prune_reason", str(stop))
            self.log(f"trial {trial.number:>4} stopped    {stop}")
            raise optuna.TrialPruned(str(stop)) from None
        trial.set_user_attr("train_seconds", round(result.seconds, 2))
        trial.set_user_attr("best_epoch", result.best_epoch)
        trial.set_user_attr("train_windows_per_second", round(result.windows_per_second, 1))
        trial.set_user_attr("input_norm", [norm.mean, norm.std])
        self._save_checkpoint(trial.number, spec, result.state_dict, norm)
        ref = trial.user_attrs.get("reference")
        self.log(f"trial {trial.number:>4} trained    acc {result.best_acc:.3f}  MAC/s {cost.macs_per_second / 1e6:6.2f} M  "
                 f"RAM {cost.ram_bytes / 1024:5.1f} kB  FLASH {cost.flash_bytes / 1024:6.1f} kB  "
                 f"{result.seconds:5.1f} s" + (f"  [{ref}]" if ref else ""))
        return result.best_acc, cost.macs_per_second, float(cost.ram_bytes)

    def _maybe_prune(self, trial: optuna.Trial, cost: costmodel.Cost, curve: list[float], chance: float) -> None:
        """Multi-objective studies cannot use Optuna's pruners; this rule stops a trial that cannot
        reach the front: not learning, or clearly beaten at the same epoch by a completed trial that
        is no more expensive in MAC/s and RAM."""
        epoch = len(curve) - 1
        if epoch < self.warmup:
            return
        best = max(curve)
        if best <= 1.2 * chance:
            raise StopTraining(f"not learning: best validation accuracy {best:.3f} after {epoch + 1} epochs")
        for other in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            oc = other.user_attrs.get("curve") or []
            if (len(oc) > epoch and oc[epoch] >= best + self.margin
                    and other.user_attrs.get("macs_per_second", float("inf")) <= cost.macs_per_second
                    and other.user_attrs.get("ram_bytes", float("inf")) <= cost.ram_bytes):
                raise StopTraining(f"dominated at epoch {epoch}: trial {other.number} had {oc[epoch]:.3f} "
                                   f"vs {best:.3f} at no more MAC/s and RAM")

    def _save_checkpoint(self, number: int, spec: ArchSpec, state: dict, norm) -> None:
        import io

        from nas.atomic import atomic_write_bytes

        buf = io.BytesIO()
        torch.save({"spec": spec.to_json(), "state_dict": state, "input_norm": [norm.mean, norm.std]}, buf)
        atomic_write_bytes(self.checkpoints / f"trial_{number}.pt", buf.getvalue())


class StopAtTotal:
    """Stop once the study holds `total` finished trials, counted over every worker."""

    def __init__(self, total: int):
        self.total = total

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if finished(study) >= self.total:
            study.stop()


def finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)))


def resolve_data(data: str, seed: int) -> Path:
    """`demo` → the built-in synthetic dataset (generated once under studies/), else a dataset root."""
    if data != DEMO:
        return Path(data)
    root = STUDIES / "demo_data"
    if not (root / "metadata" / "UrbanSound8K.csv").is_file():
        from nas.data import synth

        print(f"generating the demo dataset in {root} (synthetic, UrbanSound8K layout) ...", file=sys.stderr)
        synth.generate(root, seed=seed)
    return root


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nas.search", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--budget", required=True, help="hardware budget YAML (budgets/*.yaml)")
    p.add_argument("--space", default="search_spaces/default.yaml", help="search space YAML")
    p.add_argument("--data", default=DEMO, help="UrbanSound8K root (folder with metadata/ and audio/), or "
                   "'demo' for the built-in synthetic dataset")
    p.add_argument("--trials", type=int, default=None, help="finished trials the study should hold, instant "
                   "rejections included (default: 24 on the demo data, 200 otherwise)")
    p.add_argument("--timeout", type=float, default=None, help="stop starting new trials after this many seconds")
    p.add_argument("--study", default="nas", help="study name; rerun with the same name to resume")
    p.add_argument("--storage", default=None, help="Optuna storage: a journal file path (default "
                   "studies/<study>/journal.log, shareable by local processes) or a URL such as "
                   "postgresql://user:pw@host/db for several machines")
    p.add_argument("--seed", type=int, default=0, help="sampler and training seed")
    p.add_argument("--epochs", type=int, default=None, help="maximum training epochs per candidate "
                   "(default: 12 on the demo data, 40 otherwise)")
    p.add_argument("--jobs", type=int, default=1, help="trials run in parallel threads in this process")
    p.add_argument("--val-fold", type=int, default=9, help="fold used for model selection")
    p.add_argument("--test-fold", type=int, default=10, help="fold held out, never read by the search")
    p.add_argument("--cache", default="studies/.cache/features", help="feature cache folder")
    p.add_argument("--export", action="store_true", help="export the Pareto front (ONNX + CMSIS-NN C) at the end")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    budget = Budget.load(args.budget)
    space = SearchSpace.load(args.space)
    demo = args.data == DEMO
    trials = args.trials if args.trials is not None else (24 if demo else 200)
    epochs = args.epochs if args.epochs is not None else (12 if demo else 40)
    for flag, value in (("--trials", trials), ("--epochs", epochs), ("--jobs", args.jobs)):
        if value < 1:
            raise UserError(f"{flag}: expected a positive integer, got {value}")
    from nas.data.urbansound import FoldSplit

    split = FoldSplit.for_test_fold(args.test_fold, args.val_fold)
    root = resolve_data(args.data, args.seed)
    from nas.data.urbansound import find_root

    find_root(root)  # a missing dataset is one clear error before the study starts
    out = study_dir(args.study)
    out.mkdir(parents=True, exist_ok=True)
    storage = args.storage or default_storage(args.study)
    study = load_study(args.study, storage, args.seed)
    closed = close_stale_trials(study)
    queued = enqueue_references(study, space, budget)
    if "budget" not in study.user_attrs:
        study.set_user_attr("budget", asdict(budget))
    done = finished(study)
    print(f"study {args.study!r} in {storage}: {done} finished trials"
          + (f", {closed} stale running trial(s) closed" if closed else "")
          + (f", references queued: {', '.join(queued)}" if queued else ""), flush=True)
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // args.jobs))
    objective = Objective(space, budget, TrialData(root, split, args.cache), TrainConfig(epochs=epochs, seed=args.seed),
                          checkpoints=out / "checkpoints")
    if done < trials:
        study.optimize(objective, n_trials=trials - done, timeout=args.timeout, n_jobs=args.jobs,
                       callbacks=[StopAtTotal(trials)], catch=(Exception,))
    from nas import report

    print(report.summarise(study, budget, out), flush=True)
    if args.export:
        from nas.export.__main__ import export_study

        export_study(study, out_dir=Path("export") / args.study, budget=budget, data=root, split=split,
                     cache=args.cache)
    return 0


if __name__ == "__main__":
    run_cli(main)
