"""No wasted trials: a proposal that repeats a tried point gives its slot to a fresh point, so
`--trials N` means N distinct candidates, with one process or several on one journal."""
from __future__ import annotations

import subprocess

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from _proc import ENV, counted_trials, journal_path, ok, read_study, run, search_cmd, tiny_space
from nas.arch.space import SearchSpace
from nas.budget import Budget
from nas.cost import analytic as costmodel
from nas.search.proposal import Proposer
from nas.study.record import TrialRecord
from nas.study.study import DIRECTIONS
from nas.study.trials import counted
from tests.test_search import BUDGET, SPACE

SPACE_OBJ = SearchSpace.load(SPACE)
DS24 = SPACE_OBJ.reference_params()["Stride-DS-24"]


def _study_with_ds24() -> optuna.Study:
    study = optuna.create_study(directions=list(DIRECTIONS))
    dists = {k: CategoricalDistribution(list(v)) for k, v in SPACE_OBJ.choices().items() if k in DS24}
    study.add_trial(create_trial(params=DS24, distributions=dists, values=[0.6, 7.5e5, 3e4],
                                 user_attrs={"feasible": True}))
    return study


def test_a_repeated_proposal_gives_its_slot_to_a_fresh_point_within_the_budget():
    study = _study_with_ds24()
    study.enqueue_trial(DS24)                  # stands for the sampler proposing trial 0's point again
    proposer = Proposer(SPACE_OBJ, Budget.load(BUDGET), seed=0)
    trial = proposer(study, study.ask())
    repeat = study.trials[1]
    assert repeat.state == TrialState.PRUNED
    rec = TrialRecord.of(repeat)
    assert rec.duplicate_of == 0 and rec.replaced_by == trial.number == 2
    params = SPACE_OBJ.suggest(trial)
    assert params != DS24 and costmodel.estimate(SPACE_OBJ.build(params), Budget.load(BUDGET)).fits(Budget.load(BUDGET))
    assert counted(study) == 2                 # trial 0 and the running fresh one; the repeat does not count


def test_a_queued_reference_keeps_its_parameters():
    study = _study_with_ds24()
    study.enqueue_trial(DS24, user_attrs={"reference": "Stride-DS-24"})
    trial = Proposer(SPACE_OBJ, Budget.load(BUDGET), seed=0)(study, study.ask())
    assert trial.number == 1 and SPACE_OBJ.suggest(trial) == DS24


def test_two_processes_on_one_journal_train_n_distinct_candidates(tmp_path, demo_root):
    """The tiny space has 16 points: 12 trials make TPE repeat itself often."""
    tiny_space(tmp_path)
    procs = [subprocess.Popen(search_cmd(tmp_path, demo_root, "--trials", "12", "--study", "d", "--seed", str(i)),
                              cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(2)]
    outs = [p.communicate(timeout=900)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    study = read_study(journal_path(tmp_path, "d"), "d")
    counted_ = counted_trials(study)
    assert len(counted_) == 12
    assert len({tuple(sorted(t.params.items())) for t in counted_}) == 12          # 12 distinct candidates
    assert not [t for t in study.trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    replaced = [t for t in study.trials if "replaced_by" in t.user_attrs]
    assert all(t.state == TrialState.PRUNED and t.params == study.trials[t.user_attrs["duplicate_of"]].params
               for t in replaced)


def test_when_the_space_is_exhausted_the_rest_reuses_results_and_the_search_ends(tmp_path, demo_root):
    tiny_space(tmp_path)
    ok(run(search_cmd(tmp_path, demo_root, "--trials", "18", "--study", "x"), tmp_path))
    study = read_study(journal_path(tmp_path, "x"), "x")
    counted_ = counted_trials(study)
    assert len(counted_) == 18 and len({tuple(sorted(t.params.items())) for t in counted_}) == 16
    assert [t for t in study.trials if "replaced_by" in t.user_attrs]       # repeats were replaced while it could
    assert sum("duplicate_of" in t.user_attrs and "replaced_by" not in t.user_attrs for t in counted_) == 2
