"""What a study hands back, on a study built from real specs and costs (no training): trials.csv and
curves.csv typed and rounded, the front table naming every model with its whole network, the summary
telling interrupted from failed, and the data behind the Pareto picture (membership, numbering,
labels that do not overlap), plus the PNG and the HTML written."""
from __future__ import annotations

import io
import statistics
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from nas.arch.space import SearchSpace
from nas.budget import Budget
from nas.cost import analytic as costmodel
from nas.search import plots, report
from nas.search.records import CONSTRAINTS, model_name, network_summary, objective_values, record_spec, short_name
from nas.study.study import DIRECTIONS

ROOT = Path(__file__).resolve().parents[1]
BUDGET = Budget.load(ROOT / "budgets/stm32l476.yaml")
SPACE = SearchSpace.load(ROOT / "search_spaces/default.yaml")


class AttrSink:
    """Collects set_user_attr calls (what record_spec writes)."""

    def __init__(self, number: int, user_attrs=None):
        self.number, self.user_attrs = number, dict(user_attrs or {})

    def set_user_attr(self, key, value):
        self.user_attrs[key] = value


def add(study: optuna.Study, params: dict, state=TrialState.COMPLETE, acc: float | None = None,
        curve=(), **attrs) -> None:
    trial = AttrSink(len(study.trials), attrs)
    spec = SPACE.build(params, name=model_name(trial, params))
    cost = costmodel.estimate(spec, BUDGET)
    record_spec(trial, spec)
    ua = {**trial.user_attrs, **cost.summary(), "feasible": attrs.get("feasible", cost.fits(BUDGET))}
    violations = cost.violations(BUDGET)
    constraints = {k: float(violations.get(k, 0.0)) for k in CONSTRAINTS}
    values = list(objective_values(acc, cost)) if state == TrialState.COMPLETE else None
    dists = {k: CategoricalDistribution(list(SPACE.choices()[k])) for k in params}
    study.add_trial(create_trial(state=state, values=values, params=params, distributions=dists, user_attrs=ua,
                                 intermediate_values=dict(enumerate(curve)), constraints=constraints,
                                 system_attrs={"constraints": list(constraints.values())}))


@pytest.fixture(scope="module")
def study() -> optuna.Study:
    s = optuna.create_study(directions=list(DIRECTIONS))
    refs = SPACE.reference_params()
    add(s, refs["Stride-DS-24"], acc=0.688, curve=[0.3, 0.5, 0.688], reference="Stride-DS-24")
    add(s, refs["Stride-DS-12"], acc=0.575000011920929, curve=[0.2, 0.575], reference="Stride-DS-12")
    add(s, refs["Stride-DS-16"], acc=0.55, curve=[0.4, 0.55], reference="Stride-DS-16")      # dominated by DS-12
    capped = {**refs["Stride-DS-20"], "blocks": 4, "kernel": 3, "base_filters": 32, "max_filters": 48}
    add(s, capped, acc=0.71, curve=[0.5, 0.7, 0.71], seed_accuracies=[0.70, 0.72, 0.71], seed_scores=[0.69, 0.72, 0.72])
    pool = {**refs["Stride-DS-12"], "sample_rate": 8000, "n_fft": 256, "n_mels": 30, "frames": 24,
            "downsampling": "maxpool", "pool": "2x2", "conv_type": "standard", "base_filters": 8, "blocks": 3}
    add(s, pool, acc=0.41, curve=[0.2, 0.41])
    add(s, {**refs["Stride-DS-12"], "base_filters": 16, "kernel": 3}, state=TrialState.PRUNED, curve=[0.1, 0.12],
        prune_reason="not learning: val_score 0.110 after 2 epochs", rungs={"2": 0.11})
    big = {**refs["Stride-DS-24"], "conv_type": "standard", "overlap": 0.75, "base_filters": 32}
    add(s, big, state=TrialState.PRUNED, feasible=False, reject_reason="over budget: MAC/s 15.83 M > 4.50 M")
    add(s, refs["Stride-DS-20"], state=TrialState.FAIL, curve=[0.3], interrupted=True)
    add(s, refs["Stride-DS-3x3"], state=TrialState.FAIL, fail_reason="RuntimeError: out of memory")
    return s


def test_trials_csv_has_integers_as_integers_rounded_accuracy_and_seed_spread(study, tmp_path):
    text = report.summarise(study, BUDGET, tmp_path)
    csv = (tmp_path / "trials.csv").read_text()
    df = pd.read_csv(io.StringIO(csv))
    assert list(df.columns[:len(report.TRIAL_COLUMNS)]) == [c.name for c in report.TRIAL_COLUMNS]
    assert "0.575000011920929" not in csv
    row = df.set_index("trial")
    assert row.loc[0, "ram_bytes"] == 30552 and str(row.loc[0, "macs_per_second"]) == "750078"
    assert row.loc[1, "val_score"] == 0.575 and pd.isna(row.loc[1, "val_accuracy"])   # no runs recorded
    assert row.loc[3, "n_seeds"] == 3 and row.loc[3, "val_score"] == 0.71             # the objective: mean of runs
    assert row.loc[3, "val_score_std"] == round(statistics.stdev([0.69, 0.72, 0.72]), 4)
    assert row.loc[3, "val_accuracy"] == round(statistics.fmean([0.70, 0.72, 0.71]), 4)
    assert row.loc[3, "val_accuracy_std"] == round(statistics.stdev([0.70, 0.72, 0.71]), 4)
    assert pd.isna(row.loc[0, "val_score_std"]) and row.loc[0, "n_seeds"] == 1
    assert pd.isna(row.loc[5, "val_score"])                                           # stopped: no result
    assert list(row.outcome) == ["trained"] * 5 + ["stopped", "rejected", "interrupted", "failed"]
    assert row.loc[7, "reason"].startswith("interrupted")
    for line in csv.splitlines()[1:]:            # integer columns never carry a decimal point
        cells = dict(zip(df.columns, line.split(",")))
        for c in report.TRIAL_COLUMNS:
            if c.kind == "int" and cells.get(c.name):
                assert cells[c.name].isdigit(), (c.name, cells[c.name])
    assert "trials.csv" in text and "curves.csv" in text


def test_curves_csv_is_long_format_from_the_intermediate_values(study, tmp_path):
    report.summarise(study, BUDGET, tmp_path)
    curves = pd.read_csv(tmp_path / "curves.csv")
    assert list(curves.columns) == ["trial", "model", "outcome", "epoch", "val_accuracy"]
    expected = [(t.number, step, round(v, 4)) for t in study.trials for step, v in sorted(t.intermediate_values.items())]
    assert list(curves[["trial", "epoch", "val_accuracy"]].itertuples(index=False, name=None)) == expected


def test_front_table_names_every_model_and_shows_the_whole_network(study):
    front = sorted((v for v in report.views(study) if v.pareto), key=lambda v: v.rec.macs_per_second)
    assert {v.t.number for v in front} == {t.number for t in study.best_trials} == {0, 1, 3, 4}
    table = report.front_table(front).splitlines()
    header = table[0].split()
    assert header[:2] == ["trial", "model"]
    body = {int(line.split()[0]): line for line in table[2:]}
    assert set(body) == {0, 1, 3, 4}
    assert "Stride-DS-24" in body[0] and "Stride-DS-12" in body[1]
    assert "Stride-DS-32-b4-t3" in body[3] and "Pool-8-b3-t4" in body[4]           # generated names
    capped_spec = report.TrialView(study.trials[3]).spec
    assert network_summary(capped_spec) in body[3] and "c48" in body[3] and "c72" not in body[3]   # cap 48 shown
    assert f"0.710 ± {statistics.stdev([0.69, 0.72, 0.72]):.3f} (3 seeds)  0.710" in body[3]   # val_score, val_accuracy
    assert "mp2x2" in body[4]


def test_summary_tells_interrupted_from_failed(study):
    line = report.counts_line(report.views(study))
    assert line.startswith("8 finished trials: 5 trained, 1 rejected before training, 1 stopped early, 1 failed")
    assert "1 interrupted (redone when you rerun the same command)" in line


def test_a_reused_duplicate_is_counted_apart_and_not_drawn():
    s = optuna.create_study(directions=list(DIRECTIONS))
    ds24 = SPACE.reference_params()["Stride-DS-24"]
    add(s, ds24, acc=0.688, curve=[0.688], reference="Stride-DS-24")
    add(s, ds24, acc=0.688, duplicate_of=0)
    views = report.views(s)
    assert [v.outcome for v in views] == ["trained", "reused"]
    assert report.counts_line(views) == ("2 finished trials: 1 trained, 0 rejected before training, 0 stopped early, "
                                         "0 failed, 1 reused the result of the same parameters")
    assert list(plots.points(views).trial) == [0] and [v.t.number for v in views if v.pareto] == [0]


def test_pareto_points_membership_numbering_and_labels(study):
    views = report.views(study)
    pts = plots.points(views)
    front = pts[pts.kind == "front"]
    assert set(front.trial) == {t.number for t in study.best_trials}
    assert set(pts.kind) == {"front", "trained", "stopped", "rejected"}
    assert pts.set_index("trial").loc[5, "val_score"] == 0.11                   # stopped: best at a rung
    assert pd.isna(pts.set_index("trial").loc[6, "val_score"])                  # rejected: no score
    table_numbers = [int(line.split()[0]) for line in report.front_table(
        sorted((v for v in views if v.pareto), key=lambda v: v.rec.macs_per_second)).splitlines()[2:]]
    assert sorted(int(lbl.split()[0]) for lbl in front.label) == sorted(table_numbers)
    assert pts.set_index("trial").loc[2, "label"] == "Stride-DS-16"             # a reference off the front
    fig, boxes = plots.draw(pts, BUDGET)
    for panel in boxes:
        assert len(panel) == int((pts.label != "").sum() - pts[pts.label != ""].val_score.isna().sum())
        for i, a in enumerate(panel):
            for b in panel[i + 1:]:
                assert not (a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1), "labels overlap"
    texts = {t.get_text() for ax in fig.axes for t in ax.texts}
    assert {"0 Stride-DS-24", "1 Stride-DS-12", "3", "4", "Stride-DS-16"} <= texts
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_pareto_png_and_html_are_written(study, tmp_path):
    report.summarise(study, BUDGET, tmp_path)
    assert (tmp_path / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    html = (tmp_path / "pareto.html").read_text()
    assert "plotly" in html.lower() and "Stride-DS-24" in html and "trial 3 Stride-DS-32-b4-t3" in html


def test_a_column_is_one_line(study):
    extra = [*report.TRIAL_COLUMNS, report.Column("cpu_share", lambda v: 0.25 if v.t.values else None, "float4")]
    df = report.trials_frame(report.views(study), extra)
    assert df.cpu_share.tolist()[:2] == [0.25, 0.25] and pd.isna(df.cpu_share.iloc[-1])


def test_tpe_still_cannot_sample_after_a_pruned_trial_with_intermediate_values():
    """Why `records.record_curve` writes a curve only once a trial is trained: in a multi-objective
    study TPE reads `study.direction` for pruned trials that have intermediate values. When this
    test fails, Optuna has fixed it and curves can be written per epoch again."""
    def fill(with_curve: bool) -> optuna.Study:
        s = optuna.create_study(directions=list(DIRECTIONS), sampler=optuna.samplers.TPESampler(n_startup_trials=2))
        dist = {"x": CategoricalDistribution([1, 2, 3])}
        for i in range(4):
            s.add_trial(create_trial(state=TrialState.PRUNED, params={"x": 1 + i % 3}, distributions=dist,
                                     intermediate_values={0: 0.1} if with_curve else None))
        s.add_trial(create_trial(values=[0.5, 1.0, 1.0], params={"x": 2}, distributions=dist))
        return s

    fill(False).ask().suggest_categorical("x", [1, 2, 3])
    with pytest.raises(RuntimeError, match="single direction"):
        fill(True).ask().suggest_categorical("x", [1, 2, 3])


def test_the_picture_counts_every_rejected_trial_as_the_terminal_does(tmp_path):
    """A combination that gives no network has no costs: not drawn, but counted in the title."""
    s = optuna.create_study(directions=list(DIRECTIONS))
    refs = SPACE.reference_params()
    add(s, refs["Stride-DS-24"], acc=0.688, curve=[0.688], reference="Stride-DS-24")
    add(s, {**refs["Stride-DS-24"], "conv_type": "standard", "overlap": 0.75, "base_filters": 32},
        state=TrialState.PRUNED, feasible=False, reject_reason="over budget: MAC/s 15.83 M > 4.50 M")
    s.add_trial(create_trial(state=TrialState.PRUNED, user_attrs={"feasible": False,
                                                                  "reject_reason": "invalid architecture: too small"}))
    views = report.views(s)
    assert "2 rejected before training" in report.counts_line(views)
    fig, _ = plots.draw(plots.points(views), BUDGET)
    assert fig._suptitle.get_text().endswith("0 stopped early, 2 rejected (1 invalid: no network, not drawn)")
    import matplotlib.pyplot as plt

    plt.close(fig)
    report.summarise(s, BUDGET, tmp_path)
    assert (tmp_path / "pareto.png").is_file() and (tmp_path / "pareto.html").is_file()


def test_the_front_table_fits_a_terminal_by_continuing_the_network_below(study):
    front = sorted((v for v in report.views(study) if v.pareto), key=lambda v: v.rec.macs_per_second)
    one_line = report.front_table(front).splitlines()
    assert max(map(len, one_line)) > 100                          # the whole network on each row
    networks = {int(r.split()[0]): r[one_line[0].index("network"):] for r in one_line[2:]}
    for width in (130, 150):
        lines = report.front_table(front, width=width).splitlines()
        assert max(map(len, lines)) <= width, width
        got: dict[int, str] = {}                                   # each row's network put back together
        body = lines[lines.index(next(x for x in lines if set(x) == {"-"})) + 1:]
        for line in body:
            if line[:report.NETWORK_INDENT].strip():
                key = int(line.split()[0])
                got[key] = line[one_line[0].index("network"):] if len(line) > one_line[0].index("network") else ""
            else:
                got[key] += " " + line.strip()
        assert {k: " ".join(v.split()) for k, v in got.items()} == networks, width


def test_the_recommended_model_is_the_most_accurate_within_the_budget(study, tmp_path):
    import yaml

    views = report.views(study)
    fits = [v for v in views if v.outcome == "trained" and report.within(v, BUDGET)]
    best = report.recommend(views, BUDGET)
    assert best.score == max(v.score for v in fits) == 0.71 and best.t.number == 3
    lines = report.recommendation(views, BUDGET, "s")
    assert lines[0] == f"Recommended: trial 3 {best.name}, the highest val_score of the 5 trained models within {BUDGET.name}"
    assert lines[-1] == "  export it: python -m nas.export --study s --trial 3"
    cfg = yaml.safe_load((ROOT / "budgets/stm32l476.yaml").read_text())
    for ram in sorted({v.rec.ram_bytes for v in fits}, reverse=True):   # tighten RAM: the best that still fits
        cfg["limits"]["ram_bytes"] = ram
        (tmp_path / "b.yaml").write_text(yaml.safe_dump(cfg))
        tight = Budget.load(tmp_path / "b.yaml")
        inside = [v for v in fits if v.rec.ram_bytes <= ram]
        assert report.recommend(views, tight).score == max(v.score for v in inside)
        assert all(v.rec.ram_bytes <= ram for v in [report.recommend(views, tight)])
    assert report.recommend([v for v in views if v.outcome != "trained"], BUDGET) is None


def test_generated_names_say_the_block_kind():
    base = {"downsampling": "maxpool", "base_filters": 20, "blocks": 3}
    assert short_name({**base, "conv_type": "standard"}, 7) == "Pool-20-b3-t7"
    assert short_name({**base, "conv_type": "depthwise_separable"}, 7) == "Pool-DS-20-b3-t7"
    assert short_name({**base, "conv_type": "inverted_residual", "downsampling": "strided"}, 7) == "Stride-MB-20-b3-t7"
