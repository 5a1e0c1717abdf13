"""What a trial slot trains: the sampler's proposal, or a fresh point when the proposal repeats one.

TPE re-proposes finished points of a small discrete space (a fifth of the trials of the dev searches)
and two workers may propose the same one. `Proposer` runs under the study's claim lock, right after
`study.ask()`: it samples the trial's parameters there, and when another trial of the study already
has them (finished, stopped, rejected or running) it ends this trial as PRUNED, uncounted, with
`duplicate_of` and `replaced_by`, and gives the slot to a new trial at a fresh point: a uniformly
random point of the space that no trial has had, within the budget when one is found. So `--trials N`
means N distinct candidates, with one process or many. Queued trials (references, redone ones) keep
their parameters; when every point of the space has been tried, the proposal runs as it is and the
objective reuses the earlier result.
"""
from __future__ import annotations

import random

import optuna
from optuna.trial import TrialState

from nas.arch.space import InvalidArchitecture, SearchSpace
from nas.budget import Budget
from nas.cost import analytic as costmodel
from nas.study.outcome import record_outcome
from nas.study.record import TrialRecord, write
from nas.study.trials import unfinished

DRAWS = 500          # random points tried for a fresh one before giving up (the space is then nearly exhausted)


def same_point(study: optuna.Study, number: int, params: dict) -> int | None:
    """Another trial of the study with exactly `params`, unless it ended unfinished (it is redone) or
    was itself a replaced duplicate."""
    for t in study.get_trials(deepcopy=False):
        if t.number == number or t.params != params or unfinished(t) or TrialRecord.of(t).replaced_by is not None:
            continue
        return t.number
    return None


class Proposer:
    """Callable `(study, trial) -> trial` for `nas.search.worker.run_trials`; see the module docstring."""

    def __init__(self, space: SearchSpace, budget: Budget, seed: int):
        self.space, self.budget, self.rng = space, budget, random.Random(seed)

    def __call__(self, study: optuna.Study, trial: optuna.Trial) -> optuna.Trial:
        rec = TrialRecord.of(trial)
        if rec.reference is not None or rec.redo_of is not None:
            return trial
        for _ in range(3):   # a fresh point is untried, so one replacement suffices unless another queue pops
            same = same_point(study, trial.number, self.space.suggest(trial))
            if same is None:
                return trial
            fresh = self.fresh_point(study)
            if fresh is None:
                return trial
            study.enqueue_trial(fresh)
            new = study.ask()
            reason = (f"the sampler proposed the parameters of trial {same} again: the slot went to trial "
                      f"{new.number}, a fresh point of the space")
            write(trial, duplicate_of=same, replaced_by=new.number, prune_reason=reason)
            record_outcome(trial, "replaced", reason)
            study.tell(trial, state=TrialState.PRUNED)
            trial = new
        return trial

    def fresh_point(self, study: optuna.Study) -> dict | None:
        """A random point of the space no trial has had, one within the budget if found; None when
        none is found in `DRAWS` draws."""
        taken = [t.params for t in study.get_trials(deepcopy=False) if t.params]
        untried = None
        for _ in range(DRAWS):
            params = self.space.sample(self.rng)
            if params in taken:
                continue
            try:
                spec = self.space.build(params)
            except InvalidArchitecture:
                continue
            if costmodel.estimate(spec, self.budget).fits(self.budget):
                return params
            untried = untried or params
        return untried
