"""Which trials of a study count, which are stale, which are redone, which form the Pareto front and
which is the most accurate.

A trial interrupted by Ctrl-C/SIGTERM, stopped by a fault of the run, or left RUNNING by a killed
process is failed without a reason and not counted; the next run queues it again with its parameters
(a reference model keeps its name), so the work is redone and the study still reaches its total.
Each running trial records its worker (`host:pid`) and a heartbeat per epoch, which is how a later
run tells a dead worker's trial.
"""
from __future__ import annotations

import os
import socket
import time

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.arch.spec import ArchSpec
from nas.core.errors import UserError
from nas.core.locks import pid_alive
from nas.study.outcome import record_outcome
from nas.study.record import TrialRecord
from nas.study.study import study_mode

WORKER = f"{socket.gethostname()}:{os.getpid()}"


def unfinished(t: FrozenTrial) -> bool:
    """A trial that ended without a result of its own (killed, interrupted, stopped by the run)."""
    return t.state == TrialState.FAIL and TrialRecord.of(t).fail_reason is None


def replaced(t: FrozenTrial) -> bool:
    """A sampler proposal that repeated a trial and gave its slot to a fresh point (`nas.search.proposal`)."""
    return TrialRecord.of(t).replaced_by is not None


def counted(study: optuna.Study) -> int:
    """Trials that count towards --trials: finished ones, running ones, and real failures; not the
    proposals replaced by a fresh point, so N counted trials are N distinct candidates."""
    return sum(1 for t in study.get_trials(deepcopy=False)
               if (t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING) and not replaced(t))
               or (t.state == TrialState.FAIL and not unfinished(t)))


def requeue_unfinished(study: optuna.Study) -> list[int]:
    """Queue every unfinished trial again, once, with its parameters and reference name (the new trial
    records `redo_of`); returns the numbers of the trials queued again."""
    trials = study.get_trials(deepcopy=False)
    redone = {r.redo_of for r in map(TrialRecord.of, trials) if r.redo_of is not None}
    queued = []
    for t in trials:
        if unfinished(t) and t.number not in redone:
            attrs = TrialRecord(outcome="queued", redo_of=t.number,
                                reference=TrialRecord.of(t).reference or None).attrs()
            study.enqueue_trial(t.params, user_attrs=attrs, skip_if_exists=False)
            queued.append(t.number)
    return queued


def finished(study: optuna.Study) -> int:
    """Counted trials that have ended (what a progress bar shows done)."""
    return sum(1 for t in study.get_trials(deepcopy=False)
               if (t.state in (TrialState.COMPLETE, TrialState.PRUNED) and not replaced(t))
               or (t.state == TrialState.FAIL and not unfinished(t)))


def close_stale_trials(study: optuna.Study, stale_after: float = 3600.0) -> int:
    """Fail RUNNING trials whose worker is gone: on this host, when its process no longer exists;
    elsewhere, when it has not reported an epoch for `stale_after` seconds."""
    host = socket.gethostname()
    closed = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        rec = TrialRecord.of(t)
        w_host, _, w_pid = (rec.worker or "").rpartition(":")
        if w_host == host and w_pid.isdigit():
            stale = not pid_alive(int(w_pid))
        else:
            last = rec.heartbeat or (t.datetime_start.timestamp() if t.datetime_start else 0)
            stale = time.time() - last > stale_after
        if stale:
            record_outcome(optuna.trial.Trial(study, t._trial_id), "interrupted",
                           f"its worker {rec.worker or '?'} stopped reporting (killed or lost)")
            study.tell(t.number, state=TrialState.FAIL)
            closed += 1
    return closed


def compute_objective(study: optuna.Study) -> str:
    """The cost key the study's front is drawn on: its second objective, or in an accuracy-mode study
    the recorded budget's compute objective."""
    if study_mode(study) == "pareto" and study.metric_names:
        return study.metric_names[1]
    return ((study.user_attrs.get("budget") or {}).get("objectives") or {}).get("compute", "macs_per_second")


def trained(study: optuna.Study) -> list[FrozenTrial]:
    """Complete, feasible trials that trained a model of their own (not a reused duplicate)."""
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if (rec := TrialRecord.of(t)).feasible is not False and rec.duplicate_of is None and t.values]


def pareto_front(study: optuna.Study) -> list[FrozenTrial]:
    """Trained trials no other one beats on accuracy, compute and RAM together, cheapest compute first:
    in a pareto study Optuna's `best_trials` (feasible, non-dominated), in an accuracy study the same
    rule on the recorded costs. A trial that reused a duplicate's result stands for nothing new."""
    key = compute_objective(study)
    if study_mode(study) == "pareto":
        front = [t for t in study.best_trials if TrialRecord.of(t).duplicate_of is None]
    else:
        points = [(t, t.values[0], TrialRecord.of(t).cost(key), TrialRecord.of(t).ram_bytes) for t in trained(study)]
        front = [t for t, acc, c, r in points
                 if not any(a >= acc and c2 <= c and r2 <= r and (a, c2, r2) != (acc, c, r) for _, a, c2, r2 in points)]
    return sorted(front, key=lambda t: TrialRecord.of(t).cost(key))


def most_accurate(study: optuna.Study) -> FrozenTrial | None:
    """The answer to "the most accurate model that fits the budget": the trained trial with the best
    validation score (the mean over its runs), the cheaper one on a tie."""
    key = compute_objective(study)
    return max(trained(study), key=lambda t: (t.values[0], -TrialRecord.of(t).cost(key)), default=None)


def trial_spec(study: optuna.Study, number: int) -> ArchSpec:
    """The architecture trial `number` of `study` was built from; UserError when there is none."""
    trials = study.get_trials(deepcopy=False)
    if not 0 <= number < len(trials):
        have = f"trials 0..{len(trials) - 1}" if trials else "no trials"
        raise UserError(f"--trial {number}: not in study {study.study_name!r} ({have})")
    rec = TrialRecord.of(trials[number])
    if rec.spec is None:
        raise UserError(f"--trial {number}: trial {number} of study {study.study_name!r} has no architecture "
                        f"({rec.reject_reason or trials[number].state.name})")
    return ArchSpec.from_json(rec.spec, f"study {study.study_name} trial {number}")
