"""One trial of the search: sample → ArchSpec → exact int8 cost → reject, or train and score.

Over any limit, the trial is pruned at once with its costs, the violated limits (as Optuna
constraints, normalised `cost/limit - 1`, so TPE learns where the feasible region is) and the reason
stored; no data is touched. Within budget it trains on the training folds, is selected on the
validation fold, and may be stopped early when it cannot reach the Pareto front.
"""
from __future__ import annotations

import io
import threading
import time
from dataclasses import asdict
from pathlib import Path

import optuna
import torch
from optuna.trial import TrialState

from nas.arch.space import InvalidArchitecture, SearchSpace
from nas.arch.spec import ArchSpec
from nas.budget import Budget
from nas.core.atomic import atomic_write_bytes
from nas.cost import analytic as costmodel
from nas.train.loop import StopTraining, TrainConfig, train
from nas.train.trialdata import TrialData

CONSTRAINTS = ("ram", "flash", "macs_per_second", "valid")


class Interrupted(Exception):
    """The run is stopping (Ctrl-C, SIGTERM): the trial ends unfinished and is redone on resume."""


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
                 checkpoints: Path, warmup: int = 3, margin: float = 0.10, log=print,
                 stop: threading.Event | None = None):
        self.space, self.budget, self.data, self.cfg = space, budget, data, cfg
        self.checkpoints, self.warmup, self.margin, self.log = checkpoints, warmup, margin, log
        self.stop = stop or threading.Event()

    def reject(self, trial: optuna.Trial, reason: str, violations: dict[str, float]) -> None:
        for key in CONSTRAINTS:
            trial.set_constraint(key, float(violations.get(key, 0.0)))
        trial.set_user_attr("feasible", False)
        trial.set_user_attr("reject_reason", reason)
        self.log(f"trial {trial.number:>4} rejected   {reason}")
        raise optuna.TrialPruned(reason)

    def __call__(self, trial: optuna.Trial) -> tuple[float, float, float]:
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
        except (optuna.TrialPruned, Interrupted):
            raise
        except Exception as exc:  # the trial fails with its reason; the study goes on
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
            trial.set_user_attr("heartbeat", time.time())
            if self.stop.is_set():
                raise Interrupted("the run is stopping")
            self._maybe_prune(trial, cost, curve, chance)

        cfg = TrainConfig(**{**asdict(self.cfg), "seed": self.cfg.seed + trial.number})
        t0 = time.perf_counter()
        try:
            result = train(spec, train_set, val_set, cfg, norm_std=norm.std, on_epoch=on_epoch)
        except Interrupted:
            raise
        except StopTraining as stop:
            trial.set_user_attr("train_seconds", round(time.perf_counter() - t0, 2))
            trial.set_user_attr("prune_reason", str(stop))
            self.log(f"trial {trial.number:>4} stopped    {stop}")
            raise optuna.TrialPruned(str(stop)) from None
        trial.set_user_attr("train_seconds", round(result.seconds, 2))
        trial.set_user_attr("best_epoch", result.best_epoch)
        if result.stopped:
            trial.set_user_attr("early_stop", result.stopped)
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
        buf = io.BytesIO()
        torch.save({"spec": spec.to_json(), "state_dict": state, "input_norm": [norm.mean, norm.std]}, buf)
        atomic_write_bytes(self.checkpoints / f"trial_{number}.pt", buf.getvalue())
