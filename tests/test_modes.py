"""The search modes: `accuracy` (the most accurate model within the budget: one objective, the limits
as constraints, the front still drawn) and `pareto` (three objectives); a study keeps its mode."""
from __future__ import annotations

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from _proc import journal_path, ok, one_error_line, read_study, run, search_cmd, tiny_space
from nas.arch.space import SearchSpace
from nas.budget import Budget
from nas.core.errors import UserError
from nas.cost import analytic as costmodel
from nas.search import report
from nas.search.objective import CONSTRAINTS, Objective
from nas.study.identity import LEGACY, definition, require_definition
from nas.study.study import load_study, study_mode
from nas.study.trials import most_accurate, pareto_front
from nas.train.recipe import Recipe
from tests.test_search import BUDGET, SPACE, NoData

SPACE_OBJ = SearchSpace.load(SPACE)


class Scored(Objective):
    """Trains nothing: a candidate's validation score is a fixed function of its size."""

    def fit(self, trial, spec, cost):
        score = cost.params / (cost.params + 20000) + cost.macs_per_second * 1e-12   # distinct per network
        return score if self.mode == "accuracy" else (score, cost.macs_per_second, cost.ram_bytes)


def _tight(tmp_path) -> Budget:
    cfg = yaml.safe_load(BUDGET.read_text())
    cfg["limits"].update(ram_bytes=30000, macs_per_second=1_500_000)
    path = tmp_path / "tight.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return Budget.load(path)


def test_an_accuracy_study_has_one_objective_the_limits_as_constraints_and_answers_the_most_accurate(tmp_path):
    study = load_study("acc", str(tmp_path / "j.log"), seed=0, mode="accuracy")
    assert study_mode(study) == "accuracy" and study.metric_names == ["val_score"]
    objective = Scored(SPACE_OBJ, _tight(tmp_path), NoData(), Recipe(epochs=1), tmp_path, log=lambda *_: None,
                       mode="accuracy")
    study.optimize(objective, n_trials=40)
    trials = study.get_trials()
    rejected = [t for t in trials if t.state == TrialState.PRUNED]
    trained = [t for t in trials if t.state == TrialState.COMPLETE]
    assert rejected and trained and all(len(t.values) == 1 for t in trained)
    # every trial carries every limit as a constraint, which Optuna's samplers and best_trial read
    assert all(set(CONSTRAINTS) <= set(t.constraints) for t in trials)
    assert all(max(t.constraints.values()) > 0 for t in rejected)
    assert all(max(t.constraints.values()) <= 0 for t in trained)
    best = most_accurate(study)
    assert best.number == study.best_trial.number
    assert best.values[0] == max(t.values[0] for t in trained)
    assert best.user_attrs["ram_bytes"] <= 30000 and best.user_attrs["macs_per_second"] <= 1_500_000


def _dists():
    ref = SPACE_OBJ.reference_params()["Stride-DS-24"]
    return ref, {k: CategoricalDistribution(list(v)) for k, v in SPACE_OBJ.choices().items() if k in ref}


def test_the_front_of_an_accuracy_study_is_drawn_from_the_recorded_costs(tmp_path):
    study = load_study("acc", str(tmp_path / "j.log"), seed=0, mode="accuracy")
    ref, dists = _dists()
    spec = SPACE_OBJ.build(ref)
    attrs = {**costmodel.estimate(spec, Budget.load(BUDGET)).summary(), "spec": spec.to_json(), "feasible": True}
    rows = [(0.60, 1e6, 20000), (0.70, 3e6, 40000), (0.50, 2e6, 30000), (0.65, 0.5e6, 50000)]
    for k, (acc, macs, ram) in enumerate(rows):
        study.add_trial(create_trial(params={**ref, "base_filters": [8, 12, 16, 20][k]}, distributions=dists,
                                     values=[acc], user_attrs={**attrs, "macs_per_second": macs, "ram_bytes": ram,
                                                               "model": f"m{k}"}))
    study.add_trial(create_trial(params=ref, distributions=dists, values=[0.9],   # a reused duplicate: no answer
                                 user_attrs={"feasible": True, "macs_per_second": 1.0, "ram_bytes": 1.0,
                                             "duplicate_of": 1}))
    assert [t.number for t in pareto_front(study)] == [3, 0, 1]     # trial 2 is beaten by 0 on all three
    assert most_accurate(study).number == 1
    text = report.summarise(study, Budget.load(BUDGET), tmp_path).splitlines()
    line = next(x for x in text if x.startswith("Recommended:"))
    assert line.startswith("Recommended: trial 1 m1, the highest val_score") and "val_score 0.700" in text[text.index(line) + 1]


def test_a_resume_in_another_mode_is_refused_and_a_study_older_than_modes_is_pareto(tmp_path, demo_root):
    tiny_space(tmp_path)
    ok(run(search_cmd(tmp_path, demo_root, "--trials", "2", "--study", "m", "--mode", "accuracy"), tmp_path))
    study = read_study(journal_path(tmp_path, "m"), "m")
    assert study_mode(study) == "accuracy" and len(study.trials[0].values) == 1
    line = one_error_line(run(search_cmd(tmp_path, demo_root, "--trials", "3", "--study", "m", "--mode", "pareto"),
                              tmp_path))
    assert "another search mode (search mode was accuracy" in line and "--study NEW" in line
    assert len(read_study(journal_path(tmp_path, "m"), "m").trials) == 2      # nothing added
    old = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    recorded = {k: v for k, v in _definition(tmp_path, "pareto").items() if k not in LEGACY}
    old.set_user_attr("definition", recorded)                                # written before the mode existed
    require_definition(old, _definition(tmp_path, "pareto"))
    with pytest.raises(UserError, match="another search mode"):
        require_definition(old, _definition(tmp_path, "accuracy"))


def _definition(tmp_path, mode: str) -> dict:
    from nas.data.urbansound import FoldSplit
    from nas.data.validate import DatasetReport

    dataset = DatasetReport(root=tmp_path, listed=1, skipped=(), warnings=(), fingerprint="f")
    return definition(Budget.load(BUDGET), BUDGET, SPACE, dataset, FoldSplit(train=(1,), val=(3,), test=(2,)),
                      Recipe().to_dict(), mode)
