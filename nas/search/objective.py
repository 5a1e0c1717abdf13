"""One trial of the search: sample → ArchSpec → exact int8 cost → reject, reuse, or train and score.

The study's mode says what a trial returns: in `pareto` mode (validation score, compute, RAM), in
`accuracy` mode the validation score alone, the costs staying recorded. Over any limit, the trial is pruned at once with its costs, the violated limits (as Optuna
constraints, normalised `cost/limit - 1`, so TPE learns where the feasible region is) and the reason
stored; no data is touched. Parameters that a finished trial already had are not trained again: the
trial reuses that result and says so. Within budget it trains on the training folds with the recipe,
is judged at each rung against the trials that reached it (`nas.search.fidelity`), and, when it
would join the front, is trained again with more seeds and scored on the mean.
"""
from __future__ import annotations

import io
import statistics
import threading
import time
from pathlib import Path

import optuna
import torch
from optuna.trial import TrialState

from nas.arch.space import InvalidArchitecture, SearchSpace
from nas.arch.spec import ArchSpec
from nas.budget import Budget
from nas.core.atomic import atomic_write_bytes
from nas.core.errors import fault_line
from nas.cost import analytic as costmodel
from nas.search.fidelity import Fidelity, Point, near_front, near_top, rival_ahead
from nas.search.progress import Progress
from nas.search.records import (CONSTRAINTS, budget_table, model_name, objective_values, record_constraints,
                                record_curve, record_spec, record_trained)
from nas.study.metrics import VAL_ACCURACY, VAL_SCORE
from nas.study.outcome import record_outcome
from nas.study.record import TrialRecord, write
from nas.train.loop import StopTraining, TrainResult, train
from nas.train.recipe import Recipe
from nas.train.trialdata import TrialData

__all__ = ["CONSTRAINTS", "Interrupted", "Objective", "describe_violations", "trial_point"]


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
    if lim.cpu_share is not None and cost.cpu_share > lim.cpu_share:
        parts.append(f"CPU {cost.cpu_share:.1%} > {lim.cpu_share:.1%} ({cost.cpu_share / lim.cpu_share - 1:+.0%})")
    return "over budget: " + "; ".join(parts)


def trial_point(t, score: float, compute: str = "macs_per_second") -> Point:
    """A trial's (score, compute, RAM) for the fidelity rules, from its recorded costs; `compute` is
    the study's compute objective (a cost-summary key)."""
    rec = TrialRecord.of(t)
    value, ram = rec.cost(compute), rec.ram_bytes
    return Point(t.number, score, float("inf") if value is None else value, float("inf") if ram is None else ram)


class Objective:
    """One trial of the study; see the module docstring. Data is loaded lazily, only for survivors."""

    def __init__(self, space: SearchSpace, budget: Budget, data: TrialData, recipe: Recipe, checkpoints: Path,
                 fidelity: Fidelity | None = None, log=print, stop: threading.Event | None = None, artifacts=None,
                 progress: Progress | None = None, mode: str = "pareto"):
        self.space, self.budget, self.data, self.recipe, self.mode = space, budget, data, recipe, mode
        self.fidelity = fidelity or Fidelity()
        self.checkpoints, self.log = checkpoints, log
        self.stop = stop or threading.Event()
        self.compute = budget.objectives.compute     # the second objective: macs_per_second or cpu_share
        self.artifacts, self.progress = artifacts, progress or Progress.off()

    def reject(self, trial: optuna.Trial, reason: str, violations: dict[str, float],
               cost: costmodel.Cost | None = None) -> None:
        record_constraints(trial, violations)
        write(trial, feasible=False, reject_reason=reason)
        record_outcome(trial, "rejected", reason, budget_table(cost, self.budget) if cost else [])
        self.log(f"trial {trial.number:>4} rejected   {reason}")
        raise optuna.TrialPruned(reason)

    def __call__(self, trial: optuna.Trial) -> tuple[float, float, float] | float:
        params = self.space.suggest(trial)
        try:
            spec = self.space.build(params, name=model_name(trial, params))
        except InvalidArchitecture as exc:
            self.reject(trial, f"invalid architecture: {exc}", {"valid": 1.0})
        cost = costmodel.estimate(spec, self.budget)
        record_spec(trial, spec)
        write(trial, **cost.summary())
        violations = cost.violations(self.budget)
        if not cost.fits(self.budget):
            self.reject(trial, describe_violations(cost, self.budget), violations, cost)
        record_constraints(trial, violations)
        write(trial, feasible=True)
        reused = self.reuse(trial, params)
        if reused is not None:
            return reused
        try:
            return self.fit(trial, spec, cost)
        except (optuna.TrialPruned, Interrupted):
            raise
        except Exception as exc:  # the trial fails with its reason; the study goes on
            if fault_line(exc) is not None:  # a dataset, disk or storage problem is the run's: it stops
                raise
            write(trial, fail_reason=f"{type(exc).__name__}: {exc}")
            record_outcome(trial, "failed", f"{type(exc).__name__}: {exc}")
            self.log(f"trial {trial.number:>4} FAILED     {type(exc).__name__}: {exc}")
            raise

    def reuse(self, trial: optuna.Trial, params: dict) -> tuple[float, float, float] | None:
        """The result of a finished trial with the same parameters (TPE re-proposes points in small
        discrete spaces; two workers may propose the same one): reused, recorded, never retrained."""
        for other in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
            rec = TrialRecord.of(other)
            if other.number == trial.number or other.params != params or not rec.feasible:
                continue
            write(trial, duplicate_of=other.number, seed_scores=rec.seed_scores, seed_accuracies=rec.seed_accuracies,
                  val_score_std=rec.val_score_std, best_epoch=rec.best_epoch)
            if other.state == TrialState.PRUNED:
                reason = f"same parameters as trial {other.number}: {rec.prune_reason or 'stopped'}"
                write(trial, prune_reason=reason)
                record_outcome(trial, "reused", reason)
                self.log(f"trial {trial.number:>4} duplicate  {reason}")
                raise optuna.TrialPruned(reason)
            record_outcome(trial, "reused", f"trial {other.number}'s result ({VAL_SCORE} {other.values[0]:.4f})")
            self.log(f"trial {trial.number:>4} duplicate  of trial {other.number}: its result is reused")
            return tuple(other.values) if self.mode == "pareto" else other.values[0]
        return None

    def fit(self, trial: optuna.Trial, spec: ArchSpec, cost: costmodel.Cost) -> tuple[float, float, float] | float:
        train_set, val_set, norm = self.data.get(
            spec.frontend, on_clips=lambda done, total: self.progress.features(trial.number, done, total))
        t0 = time.perf_counter()
        runs = [self._train(trial, spec, cost, train_set, val_set, norm.std, seed_index=0)]
        me = trial_point(trial, runs[0].best_score, self.compute)
        contender = near_front if self.mode == "pareto" else near_top
        if self.fidelity.seeds > 1 and contender(me, self._completed(trial), self.fidelity.seed_margin):
            for k in range(1, self.fidelity.seeds):
                runs.append(self._train(trial, spec, cost, train_set, val_set, norm.std, seed_index=k))
        scores = [r.best_score for r in runs]
        score = statistics.fmean(scores)
        best = max(runs, key=lambda r: r.best_score)
        write(trial, seed_scores=[round(s, 4) for s in scores], seed_accuracies=[round(r.best_acc, 4) for r in runs],
              val_score_std=round(statistics.stdev(scores), 4) if len(scores) > 1 else 0.0,
              train_seconds=round(time.perf_counter() - t0, 2), best_epoch=best.best_epoch,
              train_windows_per_second=round(best.windows_per_second, 1), input_norm=[norm.mean, norm.std])
        for k, r in enumerate(runs):
            self._save_checkpoint(f"trial_{trial.number}_seed{k}.pt", spec, r.state_dict, norm)
        record_trained(trial, self.artifacts, spec,
                       self._save_checkpoint(f"trial_{trial.number}.pt", spec, best.state_dict, norm))
        record_curve(trial, runs[0].curve)
        values = objective_values(score, cost, self.compute)
        spread = f" ± {statistics.stdev(scores):.3f} ({len(scores)} seeds)" if len(scores) > 1 else ""
        accuracy = statistics.fmean(r.best_acc for r in runs)
        record_outcome(trial, "trained", f"{VAL_SCORE} {values[0]:.4f}{spread}, {VAL_ACCURACY} {accuracy:.4f}",
                       budget_table(cost, self.budget))
        self.log(f"trial {trial.number:>4} trained    {VAL_SCORE} {values[0]:.3f}{spread}  {VAL_ACCURACY} {accuracy:.3f}  "
                 f"MAC/s {cost.macs_per_second / 1e6:6.2f} M  CPU {cost.cpu_share:6.1%}  RAM {cost.ram_bytes / 1024:5.1f} kB  "
                 f"FLASH {cost.flash_bytes / 1024:6.1f} kB  {time.perf_counter() - t0:5.1f} s  [{spec.name}]")
        return values if self.mode == "pareto" else values[0]

    def _completed(self, trial: optuna.Trial) -> list[Point]:
        return [trial_point(t, t.values[0], self.compute)
                for t in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if t.number != trial.number and TrialRecord.of(t).feasible]

    def _train(self, trial: optuna.Trial, spec: ArchSpec, cost: costmodel.Cost, train_set, val_set, norm_std: float,
               seed_index: int) -> TrainResult:
        """One training run; the first is judged at the rungs, extra seeds are not. In an accuracy study a
        stopped run's curve becomes its intermediate values, which TPE ranks stopped trials by."""
        rungs = self.fidelity.rungs(self.recipe.epochs) if seed_index == 0 else []
        curve: list[float] = []
        epochs: list[dict] = []
        best = [0.0]

        def on_epoch(record: dict) -> None:
            write(trial, heartbeat=time.time())
            if self.stop.is_set():
                raise Interrupted("the run is stopping")
            best[0] = max(best[0], record["smoothed"])
            self.progress.epoch(trial.number, record)
            if seed_index == 0:
                curve.append(round(record["val_acc"], 4))
                epochs.append(record)
                write(trial, curve=curve)
            if record["epoch"] + 1 in rungs:
                self._judge(trial, spec, record["epoch"] + 1, best[0])

        recipe = self.recipe.replace(seed=self.recipe.seed + trial.number + 1000 * seed_index)
        self.progress.training(trial.number, seed_index, self.fidelity.seeds)
        try:
            return train(spec, train_set, val_set, recipe, norm_std=norm_std, on_epoch=on_epoch)
        except StopTraining as stop:
            write(trial, prune_reason=str(stop))
            record_outcome(trial, "stopped", str(stop), [f"{VAL_SCORE} at the rungs (epoch: score): " + ", ".join(
                f"{k}: {v:.4f}" for k, v in sorted((TrialRecord.of(trial).rungs or {}).items()))])
            if self.mode == "accuracy":
                record_curve(trial, epochs)
            self.log(f"trial {trial.number:>4} stopped    {stop}")
            raise optuna.TrialPruned(str(stop)) from None

    def _judge(self, trial: optuna.Trial, spec: ArchSpec, rung: int, score: float) -> None:
        """Record this rung's score; stop the trial if it is not learning or a rival is clearly ahead."""
        write(trial, rungs={**(TrialRecord.of(trial).rungs or {}), rung: round(score, 4)})
        reached = ((t, TrialRecord.of(t).rungs or {}) for t in trial.study.get_trials(deepcopy=False))
        rivals = [trial_point(t, scores[rung], self.compute) for t, scores in reached
                  if t.number != trial.number and rung in scores]
        ahead = (rival_ahead(trial_point(trial, score, self.compute), rivals, self.fidelity.margin, self.fidelity.band)
                 if len(rivals) >= self.fidelity.min_rivals else None)
        if ahead is not None:
            what = "MAC/s" if self.compute == "macs_per_second" else "CPU"
            raise StopTraining(f"stopped at the {rung}-epoch rung: trial {ahead.number}'s {VAL_SCORE} was "
                               f"{ahead.score:.3f} vs {score:.3f} there at no more {what} and RAM (and at most "
                               f"{self.fidelity.band:g}x cheaper)")
        if score <= 1.2 / spec.num_classes:
            raise StopTraining(f"not learning: {VAL_SCORE} {score:.3f} after {rung} epochs")

    def _save_checkpoint(self, name: str, spec: ArchSpec, state: dict, norm) -> Path:
        """`trial_<n>_seed<k>.pt` per training run; `trial_<n>.pt` is the best run's, the one exported."""
        buf = io.BytesIO()
        torch.save({"spec": spec.to_json(), "state_dict": state, "input_norm": [norm.mean, norm.std]}, buf)
        atomic_write_bytes(self.checkpoints / name, buf.getvalue())
        return self.checkpoints / name
