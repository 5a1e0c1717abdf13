"""How the search spends training: rungs, extra seeds for front candidates, reused duplicates,
distinct sampler seeds per worker."""
from __future__ import annotations

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from nas.arch.space import SearchSpace
from nas.budget import Budget
from nas.cost import analytic as costmodel
from nas.data.urbansound import FoldSplit
from nas.search.fidelity import Fidelity, Point, near_front, rival_ahead
from nas.search.objective import Objective
from nas.study.study import DIRECTIONS, register_worker
from nas.study.trials import pareto_front
from nas.train.recipe import Recipe
from nas.train.trialdata import TrialData
from tests.test_search import BUDGET, SPACE, NoData

SPACE_OBJ = SearchSpace.load(SPACE)
DS24 = SPACE_OBJ.reference_params()["Stride-DS-24"]


def test_rungs_grow_geometrically_below_the_full_training():
    assert Fidelity(min_epochs=4, reduction=3).rungs(30) == [4, 12]
    assert Fidelity(min_epochs=2, reduction=2).rungs(9) == [2, 4, 8]
    assert Fidelity(min_epochs=4).rungs(4) == []


def test_a_rival_must_lead_by_the_margin_at_no_more_cost_within_the_band():
    me = Point(0, 0.50, compute=2.0, ram=2.0)
    assert rival_ahead(me, [Point(1, 0.60, 2.0, 2.0)], 0.05).number == 1
    assert rival_ahead(me, [Point(1, 0.60, 0.5, 2.0)], 0.05, band=4.0).number == 1   # 4x cheaper: same band
    assert rival_ahead(me, [Point(1, 0.90, 0.4, 1.0)], 0.05, band=4.0) is None        # 5x cheaper: another band
    assert rival_ahead(me, [Point(1, 0.54, 1.0, 1.0)], 0.05) is None          # not far enough ahead
    assert rival_ahead(me, [Point(1, 0.90, 3.0, 1.0)], 0.05) is None          # costs more compute
    assert rival_ahead(me, [Point(0, 0.90, 1.0, 1.0)], 0.05) is None          # itself
    front = [Point(1, 0.60, 1.0, 1.0)]
    assert near_front(Point(2, 0.59, 1.0, 1.0), front, 0.02)
    assert not near_front(Point(2, 0.50, 1.0, 1.0), front, 0.02)
    assert near_front(Point(2, 0.30, 0.5, 1.0), front, 0.0)                   # cheaper: on the front


def _distributions():
    return {k: CategoricalDistribution(list(v)) for k, v in SPACE_OBJ.choices().items() if k in DS24}


def _add(study, params, state, user_attrs, values=None):
    study.add_trial(create_trial(params=params, distributions=_distributions(), state=state, values=values,
                                 user_attrs={"feasible": True, **user_attrs}))


@pytest.fixture(scope="module")
def data(demo_root, tmp_path_factory):
    return TrialData(demo_root, FoldSplit.for_test_fold(10, 9), tmp_path_factory.mktemp("cache"), progress=False)


def _objective(data, tmp_path, **fidelity):
    return Objective(SPACE_OBJ, Budget.load(BUDGET), data, Recipe(epochs=4), tmp_path / "ck",
                     fidelity=Fidelity(**fidelity), log=lambda *_: None)


def _study():
    return optuna.create_study(directions=list(DIRECTIONS), sampler=optuna.samplers.TPESampler(seed=0))


DS24_MACS = costmodel.estimate(SPACE_OBJ.build(DS24), Budget.load(BUDGET)).macs_per_second


def test_a_candidate_clearly_behind_a_rival_of_its_band_at_a_rung_is_stopped_there(data, tmp_path):
    study = _study()
    other = {**DS24, "base_filters": 8}
    for _ in range(3):  # trials at 60 % of its compute that scored 0.99 at the 2-epoch rung
        _add(study, other, TrialState.PRUNED, {"rungs": {"2": 0.99}, "macs_per_second": 0.6 * DS24_MACS,
                                               "ram_bytes": 1.0})
    study.enqueue_trial(DS24)
    study.optimize(_objective(data, tmp_path, min_epochs=2, min_rivals=3, seeds=1), n_trials=1)
    t = study.trials[-1]
    assert t.state == TrialState.PRUNED
    assert "stopped at the 2-epoch rung" in t.user_attrs["prune_reason"]
    assert list(t.user_attrs["rungs"]) == ["2"] and len(t.user_attrs["curve"]) == 2


@pytest.mark.parametrize("band", [4.0, 1e9])
def test_a_bigger_candidate_is_not_stopped_by_a_much_cheaper_rival(data, tmp_path, band):
    study = _study()
    for _ in range(3):  # far ahead at the rung, but a fifth of its compute: another band
        _add(study, {**DS24, "base_filters": 8}, TrialState.PRUNED,
             {"rungs": {"2": 0.99}, "macs_per_second": 0.2 * DS24_MACS, "ram_bytes": 1.0})
    study.enqueue_trial(DS24)
    study.optimize(_objective(data, tmp_path, min_epochs=2, min_rivals=3, seeds=1, band=band), n_trials=1)
    t = study.trials[-1]
    assert list(t.user_attrs["rungs"]) == ["2"]
    if band == 1e9:   # the old rule: any cheaper rival stops it
        assert "stopped at the 2-epoch rung" in t.user_attrs["prune_reason"]
    else:             # not stopped by a rival (the tiny demo set may still call it not learning)
        assert "stopped at the" not in t.user_attrs.get("prune_reason", "")


def test_too_few_rivals_stop_nobody_and_a_front_candidate_gets_more_seeds(data, tmp_path):
    study = _study()
    _add(study, {**DS24, "base_filters": 8}, TrialState.PRUNED,
         {"rungs": {"2": 0.99}, "macs_per_second": 1.0, "ram_bytes": 1.0})
    study.enqueue_trial(DS24)
    study.optimize(_objective(data, tmp_path, min_epochs=2, min_rivals=3, seeds=2), n_trials=1)
    t = study.trials[-1]
    assert t.state == TrialState.COMPLETE
    assert len(t.user_attrs["seed_scores"]) == 2
    assert t.values[0] == pytest.approx(sum(t.user_attrs["seed_scores"]) / 2, abs=1e-4)
    assert (tmp_path / "ck" / f"trial_{t.number}.pt").is_file()


def test_a_candidate_far_behind_the_front_is_trained_once(data, tmp_path):
    study = _study()
    _add(study, {**DS24, "base_filters": 8}, TrialState.COMPLETE, {"macs_per_second": 1.0, "ram_bytes": 1.0},
         values=[1.0, 1.0, 1.0])
    study.enqueue_trial(DS24)
    study.optimize(_objective(data, tmp_path, min_epochs=8, seeds=3), n_trials=1)
    t = study.trials[-1]
    assert t.state == TrialState.COMPLETE and len(t.user_attrs["seed_scores"]) == 1


def test_same_parameters_reuse_the_finished_result_without_training(tmp_path):
    study = _study()
    _add(study, DS24, TrialState.COMPLETE, {"seed_scores": [0.61, 0.63]}, values=[0.62, 750078.0, 29992.0])
    study.enqueue_trial(DS24)
    study.optimize(_objective(NoData(), tmp_path), n_trials=1)  # NoData: any data access fails the test
    t = study.trials[-1]
    assert t.state == TrialState.COMPLETE and t.values == [0.62, 750078.0, 29992.0]
    assert t.user_attrs["duplicate_of"] == 0 and t.user_attrs["seed_scores"] == [0.61, 0.63]
    assert [f.number for f in pareto_front(study)] == [0]   # the original stands on the front, once


def test_workers_with_one_seed_get_distinct_sampler_seeds():
    study = _study()
    seeds = [register_worker(study, f"host:{pid}", 5) for pid in (1, 2, 3)]
    assert seeds[0] == 5 and len(set(seeds)) == 3
    assert register_worker(study, "host:4", 6) == 6
    assert [w["sampler_seed"] for w in study.user_attrs["workers"]] == seeds + [6]
