"""The typed trial record: every key a trial stores, read and written only through `nas.study.record`."""
from __future__ import annotations

import ast
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from nas.arch.space import SearchSpace
from nas.budget import Budget
from nas.cost import analytic as costmodel
from nas.study.record import COST_KEYS, FIELDS, TrialRecord, write

ROOT = Path(__file__).resolve().parents[1]
SPACE = SearchSpace.load(ROOT / "search_spaces/default.yaml")
BUDGET = Budget.load(ROOT / "budgets/stm32l476.yaml")


def _cost():
    spec = SPACE.build(SPACE.reference_params()["Stride-DS-24"], "Stride-DS-24")
    return spec, costmodel.estimate(spec, BUDGET)


def test_every_cost_the_model_reports_is_a_record_field():
    _, cost = _cost()
    assert set(cost.summary()) == set(COST_KEYS)


def test_a_record_round_trips_through_a_journal_in_the_form_the_dashboard_shows(tmp_path):
    spec, cost = _cost()
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "j.log")))
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    write(trial, spec=spec.to_json(), model=spec.name, feasible=True, rungs={4: 0.5, 12: 0.61},
          curve=[0.1, 0.2], seed_scores=[0.6, 0.62], reject_reason=None, **cost.summary())
    study.tell(trial, 0.61)
    stored = optuna.load_study(study_name="s", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "j.log")))).trials[0]
    assert stored.user_attrs["rungs"] == {"4": 0.5, "12": 0.61}          # flat JSON, as the dashboard lists it
    assert stored.user_attrs["macs_per_second"] == cost.macs_per_second
    assert "reject_reason" not in stored.user_attrs                       # None is not stored
    rec = TrialRecord.of(stored)
    assert rec.rungs == {4: 0.5, 12: 0.61} and rec.curve == [0.1, 0.2] and rec.feasible is True
    assert rec.arch() == spec and rec.name == "Stride-DS-24"
    assert rec.cost("ram_bytes") == cost.ram_bytes
    assert TrialRecord.of(create_trial(state=TrialState.PRUNED, user_attrs=rec.attrs())) == rec


def test_an_older_journal_reads_with_unknown_keys_ignored_and_missing_ones_none():
    old = create_trial(state=TrialState.PRUNED, user_attrs={"reject_reason": "over budget", "legacy_key": 3})
    rec = TrialRecord.of(old)
    assert rec.reject_reason == "over budget" and rec.reason == "over budget"
    assert rec.spec is None and rec.arch() is None and rec.rungs is None


def test_writing_an_unknown_key_fails_at_once():
    study = optuna.create_study()
    trial = study.ask()
    with pytest.raises(KeyError, match="not a trial record field: rung"):
        write(trial, rung=3)
    with pytest.raises(KeyError):
        TrialRecord().cost("feasible")


def _trial_attribute_uses(path: Path) -> list[str]:
    """`x.user_attrs` / `x.set_user_attr` where x is not the study (study attributes are the study's)."""
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("user_attrs", "set_user_attr"):
            receiver = node.value
            if not (isinstance(receiver, ast.Name) and receiver.id == "study"):
                out.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return out


def test_trial_attributes_are_read_and_written_only_through_the_record():
    owner = ROOT / "nas/study/record.py"
    uses = [u for p in sorted([*ROOT.joinpath("nas").rglob("*.py"), *ROOT.joinpath("bench").rglob("*.py")])
            if p != owner for u in _trial_attribute_uses(p)]
    assert uses == [], uses
    assert len(FIELDS) == len(set(FIELDS))
