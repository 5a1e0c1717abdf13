"""Running trials: claim, ask, tell — safely across threads, processes and machines.

`study.optimize` counts trials per process, so N workers on one study overshoot the requested total;
this loop instead claims each new trial under the study-wide lock (`nas.study.claim`) after counting
what the study already holds (`nas.study.trials.counted`).

Every exception a trial raises ends one of two ways, never in a loop. A failure the objective
recorded as the trial's (`fail_reason`: training crashed) is counted and the study goes on. Anything
else (a fault while sampling or building the trial, a full disk, a storage or dataset problem, a
bug) stops the run: the trial is failed without a reason, so it is not counted and the next run
redoes it, and the exception reaches the caller, from whichever thread met it. Ctrl-C/SIGTERM ends
the running trials the same uncounted way.

A budget that no candidate of the space can meet would spend every `--trials` on rejections: once
the study holds `GIVE_UP_AFTER` rejections (or `total`, if fewer) and not one candidate that fit, the
run stops with `NothingFits`, naming the closest candidate and its overshoot.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

import optuna
from optuna.trial import TrialState

from nas.core.errors import UserError
from nas.search.objective import Interrupted
from nas.search.progress import Progress
from nas.study.outcome import record_outcome
from nas.study.record import TrialRecord, write
from nas.study.trials import WORKER, counted, finished

GIVE_UP_AFTER = 50


class NothingFits(UserError):
    """No candidate fits the budget: the budget (or the space) is what is wrong. Exit 1, as
    `nas.cost` exits for a network over budget."""

    exit_code = 1


class Rejections:
    """Rejections before training, across a run's threads; `seen` raises `NothingFits` once the study
    holds `limit` of them and no candidate that fit."""

    def __init__(self, study: optuna.Study, limit: int):
        self.limit, self.lock = limit, threading.Lock()
        self.fits, self.count, self.closest = False, 0, None
        for t in study.get_trials(deepcopy=False):
            self._add(t.number, TrialRecord.of(t), t.constraints)

    def _add(self, number: int, rec: TrialRecord, constraints: dict[str, float]) -> None:
        if rec.feasible:
            self.fits = True
        elif rec.feasible is False:
            self.count += 1
            over = max([v for v in constraints.values() if v > 0] or [float("inf")])
            if self.closest is None or over < self.closest[0]:
                self.closest = (over, number, rec.reject_reason or "rejected")

    def seen(self, trial: optuna.Trial | None = None) -> None:
        """Count `trial` (None: only check what the study already holds)."""
        with self.lock:
            if trial is not None:
                self._add(trial.number, TrialRecord.of(trial), trial.constraints)
            if self.fits or self.count < self.limit:
                return
            _, number, reason = self.closest
        raise NothingFits(f"not one of {self.count} candidates fits the budget: the closest, trial {number}, is "
                          f"{reason}. The budget is too tight for this search space: raise its limits or search "
                          "smaller networks (the rejections are kept in the study)")


def run_trials(study: optuna.Study, objective, total: int, claim, jobs: int = 1, timeout: float | None = None,
               stop: threading.Event | None = None, progress: Progress | None = None, propose=None) -> None:
    """Run trials until the study holds `total` counted trials, `timeout` passes or `stop` is set.

    `propose(study, trial) -> trial` (`nas.search.proposal.Proposer`) runs under the claim right after
    each `study.ask()`: it may end a trial that repeats another and hand back a fresh one.

    With jobs > 1 the trials run in threads; Ctrl-C sets `stop`, running trials end at their next
    epoch (failed, uncounted) and KeyboardInterrupt is re-raised once every thread has told its trial;
    an exception that stops one thread stops the others and is re-raised here.
    """
    stop = stop or threading.Event()
    progress = progress or Progress.off()
    progress.start(finished(study))
    deadline = time.monotonic() + timeout if timeout else None
    rejections = Rejections(study, min(GIVE_UP_AFTER, total))
    rejections.seen()

    def loop() -> None:
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            with claim:
                if counted(study) >= total:
                    return
                trial = _claimed(study, propose)
            progress.trial_started(trial.number)
            _run_one(study, objective, trial, progress)
            progress.trial_finished(trial.number, finished(study))
            rejections.seen(trial)

    if jobs == 1:
        try:
            loop()
        except KeyboardInterrupt:
            stop.set()
            raise
        return
    errors: list[BaseException] = []
    threads = [threading.Thread(target=_guarded, args=(loop, stop, errors), name=f"trial-worker-{i}")
               for i in range(jobs)]
    for t in threads:
        t.start()
    interrupted = False
    while any(t.is_alive() for t in threads):
        try:
            for t in threads:
                t.join(0.2)
        except KeyboardInterrupt:
            interrupted = True
            stop.set()
    if interrupted:
        raise KeyboardInterrupt
    if errors:
        raise errors[0]


def _claimed(study: optuna.Study, propose) -> optuna.Trial:
    """A new trial of this worker (under the claim), through `propose` when given; a fault while
    proposing ends the trial uncounted and stops the run, as one while training does."""
    trial = study.ask()
    write(trial, outcome="running", worker=WORKER)   # outcome first: the dashboard lists it first
    if propose is None:
        return trial
    try:
        chosen = propose(study, trial)
    except Exception as exc:
        _stop_run(study, trial, exc)
    if chosen is not trial:
        write(chosen, outcome="running", worker=WORKER)
    return chosen


def _guarded(loop: Callable[[], None], stop: threading.Event, errors: list[BaseException]) -> None:
    try:
        loop()
    except KeyboardInterrupt:
        stop.set()
    except BaseException as exc:  # one broken worker stops the others instead of leaving them spinning
        errors.append(exc)
        stop.set()


def _run_one(study: optuna.Study, objective, trial: optuna.Trial, progress: Progress) -> None:
    try:
        values = objective(trial)
    except optuna.TrialPruned:
        study.tell(trial, state=TrialState.PRUNED)
    except (Interrupted, KeyboardInterrupt):
        write(trial, interrupted=True)
        record_outcome(trial, "interrupted", "Ctrl-C or SIGTERM ended it before it finished")
        study.tell(trial, state=TrialState.FAIL)
        raise KeyboardInterrupt from None
    except Exception as exc:
        if TrialRecord.of(trial).fail_reason is not None:  # the trial's own failure, its reason stored: the study goes on
            study.tell(trial, state=TrialState.FAIL)
            return
        _stop_run(study, trial, exc)
    else:
        study.tell(trial, values)


def _stop_run(study: optuna.Study, trial: optuna.Trial, exc: Exception) -> None:
    """Fail `trial` uncounted (best effort: the storage may be what failed) and re-raise `exc`."""
    try:
        write(trial, stopped_run=f"{type(exc).__name__}: {exc}")
        record_outcome(trial, "interrupted", f"a fault of the run stopped it ({type(exc).__name__}: {exc})")
        study.tell(trial, state=TrialState.FAIL)
    except Exception:  # noqa: BLE001 - the original error is the one to report; a rerun closes the trial
        pass
    raise exc
