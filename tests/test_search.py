"""The search end to end on the generated dataset: rejection before data, resume after SIGKILL,
outputs (beside the storage when it is elsewhere), and the study as optuna-dashboard serves it:
constraints, learning curves, names, artifacts."""
from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from nas.arch.space import SearchSpace
from nas.budget import Budget
from nas.core.errors import UserError
from nas.cost import analytic as costmodel
from nas.data import urbansound
from nas.search.objective import CONSTRAINTS, Objective
from nas.study.study import DIRECTIONS, OBJECTIVES, load_study
from nas.train.recipe import Recipe

ROOT = Path(__file__).resolve().parents[1]
BUDGET = ROOT / "budgets/stm32l476.yaml"
SPACE = ROOT / "search_spaces/default.yaml"


class NoData:
    """Stands in for the feature provider: any access is a test failure."""

    def get(self, fe, on_clips=None):
        raise AssertionError("a rejected candidate touched the data")


def test_rejected_candidates_are_fast_store_reasons_and_never_touch_data(tmp_path):
    tight = yaml.safe_load(BUDGET.read_text())
    tight["limits"].update(ram_bytes=16384, macs_per_second=1000)
    tight["reserves"]["runtime"]["ram_bytes"] = 1024
    path = tmp_path / "tight.yaml"
    path.write_text(yaml.safe_dump(tight))
    objective = Objective(SearchSpace.load(SPACE), Budget.load(path), NoData(), Recipe(epochs=1),
                          checkpoints=tmp_path / "ck", log=lambda *_: None)
    decodes = urbansound.decode_count()
    study = optuna.create_study(directions=list(DIRECTIONS), sampler=optuna.samplers.TPESampler(seed=0))
    study.optimize(objective, n_trials=30)
    trials = study.get_trials()
    assert all(t.state == TrialState.PRUNED for t in trials)
    assert urbansound.decode_count() == decodes
    for t in trials:
        assert t.user_attrs["feasible"] is False
        reason = t.user_attrs["reject_reason"]
        assert reason.startswith(("over budget:", "invalid architecture:"))
        assert set(CONSTRAINTS) <= set(t.constraints) and max(t.constraints.values()) > 0
        assert t.system_attrs["constraints"] == [t.constraints[k] for k in CONSTRAINTS]   # what the dashboard reads
        if reason.startswith("over budget"):
            assert {"ram_bytes", "macs_per_second", "flash_bytes", "spec"} <= set(t.user_attrs)
    seconds = [(t.datetime_complete - t.datetime_start).total_seconds() for t in trials]
    assert statistics.median(seconds) < 0.05


def test_cpu_limit_rejects_a_model_that_fits_the_mac_limit(tmp_path):
    """Stride-DS-24 fits the reference budget's MAC/s; with the CPU share limited just below what it
    measurably needs, it is rejected before training, for the CPU alone."""
    space = SearchSpace.load(SPACE)
    params = space.reference_params()["Stride-DS-24"]
    budget = Budget.load(BUDGET)
    cost = costmodel.estimate(space.build(params), budget)
    assert cost.macs_per_second < budget.limits.macs_per_second and cost.fits(budget)
    cfg = yaml.safe_load(BUDGET.read_text())
    cfg["limits"]["cpu_share"] = round(0.9 * cost.cpu_share, 6)
    path = tmp_path / "cpu.yaml"
    path.write_text(yaml.safe_dump(cfg))
    objective = Objective(space, Budget.load(path), NoData(), Recipe(epochs=1), checkpoints=tmp_path / "ck",
                          log=lambda *_: None)
    study = optuna.create_study(directions=list(DIRECTIONS), sampler=optuna.samplers.TPESampler(seed=0))
    study.enqueue_trial(params)
    study.optimize(objective, n_trials=1)
    t = study.trials[0]
    assert t.state == TrialState.PRUNED and t.user_attrs["feasible"] is False
    assert t.user_attrs["reject_reason"].startswith("over budget: CPU ") and "MAC/s" not in t.user_attrs["reject_reason"]
    assert t.constraints["cpu_share"] == pytest.approx(1 / 0.9 - 1, rel=1e-3)
    assert t.constraints["macs_per_second"] < 0 and t.user_attrs["cpu_share"] == pytest.approx(cost.cpu_share)


def test_the_compute_objective_is_the_studys_second_metric(tmp_path):
    storage = str(tmp_path / "j.log")
    assert load_study("cpu", storage, seed=0, compute="cpu_share").metric_names == ["val_score", "cpu_share",
                                                                                    "ram_bytes"]
    assert load_study("cpu", storage, seed=0, compute="cpu_share").metric_names[1] == "cpu_share"   # resumed
    with pytest.raises(UserError, match="minimises cpu_share"):
        load_study("cpu", storage, seed=0)
    cfg = yaml.safe_load(BUDGET.read_text())
    cfg["objectives"] = {"compute": "cpu_share"}
    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert Objective(SearchSpace.load(SPACE), Budget.load(path), NoData(), Recipe(epochs=1),
                     checkpoints=tmp_path).compute == "cpu_share"


def search(cwd: Path, data: Path, *extra: str, **kw) -> subprocess.Popen:
    budget = [] if "--budget" in extra else ["--budget", str(BUDGET)]
    cmd = [sys.executable, "-m", "nas.search", *budget, "--space", str(SPACE), "--data", str(data),
           "--cache", str(cwd / "cache"), *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def open_study(cwd: Path, name: str) -> optuna.Study:
    return load_study(name, str(cwd / "studies" / name / "journal.log"), seed=None)


def test_search_cli_writes_front_csv_and_plot(tmp_path, demo_root):
    proc = search(tmp_path, demo_root, "--trials", "8", "--epochs", "2", "--study", "cli", "--mode", "pareto")
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    assert "Pareto front" in out and "Stride-DS-24" in out
    front = out[out.index("Pareto front"):].splitlines()
    assert "CPU" in front[1].split() and all("%" in row for row in front[3:] if row.strip() and row[0].isdigit())
    study_dir = tmp_path / "studies" / "cli"
    assert (study_dir / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    header = (study_dir / "trials.csv").read_text().splitlines()[0]
    assert "val_accuracy" in header and "macs_per_second" in header and "cpu_share" in header and "reason" in header
    study = open_study(tmp_path, "cli")
    assert_one_name_per_number(out, study, study_dir)
    assert len([t for t in study.trials if t.state.is_finished()]) == 8
    for t in study.best_trials:
        assert max(t.constraints.values()) <= 0 and (study_dir / "checkpoints" / f"trial_{t.number}.pt").is_file()
        assert t.user_attrs["spec"] and len(t.user_attrs["curve"]) >= 1
    for t in study.trials:
        if t.state == TrialState.COMPLETE and "duplicate_of" not in t.user_attrs:   # a duplicate trains nothing
            assert [round(v, 4) for _, v in sorted(t.intermediate_values.items())] == t.user_attrs["curve"]
            assert t.values[0] == round(t.values[0], 4) and t.values[1] == round(t.values[1])
        elif t.state != TrialState.COMPLETE:   # a pruned trial with intermediate values breaks TPE (test_report.py)
            assert t.intermediate_values == {}


def assert_one_name_per_number(out: str, study: optuna.Study, study_dir: Path) -> None:
    """val_score (the objective) and val_accuracy carry those names, and the same values, in the terminal,
    trials.csv, curves.csv, the study's metric names and note, and both plots; the recommended model is
    named first, the most accurate within the budget."""
    import pandas as pd

    from nas.search import plots, report
    from nas.study.metrics import DEFINITIONS

    csv = pd.read_csv(study_dir / "trials.csv").set_index("trial")
    assert study.metric_names[0] == "val_score" and "val_accuracy" in pd.read_csv(study_dir / "curves.csv").columns
    trained = [t for t in study.trials if t.state == TrialState.COMPLETE and "duplicate_of" not in t.user_attrs]
    for t in trained:   # the terminal's line, the CSV and the study hold the same two numbers under one name each
        line = next(x for x in out.splitlines() if x.startswith(f"trial {t.number:>4} trained"))
        accuracy = statistics.fmean(t.user_attrs["seed_accuracies"])
        assert f"val_score {t.values[0]:.3f}" in line and f"val_accuracy {accuracy:.3f}" in line, line
        assert csv.loc[t.number, "val_score"] == t.values[0]
        assert csv.loc[t.number, "val_accuracy"] == pytest.approx(accuracy, abs=1e-4)
    tail = out[out.index("finished trials"):]
    words = tail.replace(DEFINITIONS["val_score"], "").replace(DEFINITIONS["val_accuracy"], "")
    assert " score " not in words and "val acc " not in words and "accuracy (clip)" not in words
    table = tail[tail.index("Pareto front"):].splitlines()
    assert table[1].split()[2:4] == ["val_score", "val_accuracy"]
    assert f"val_score: {DEFINITIONS['val_score']}" in tail and f"val_accuracy: {DEFINITIONS['val_accuracy']}" in tail
    best = max((t for t in trained), key=lambda t: t.values[0])
    assert tail.splitlines()[2].startswith(f"Recommended: trial {best.number} ")     # right after the counts
    assert tail.index("Recommended:") < tail.index("Pareto front")
    fig, _ = plots.draw(plots.points(report.views(study)), Budget.load(BUDGET))
    assert fig.axes[0].get_ylabel() == "val_score (validation folds)"
    assert "val_score (validation folds)" in (study_dir / "pareto.html").read_text()


def test_killed_search_resumes_without_losing_trials(tmp_path, demo_root):
    proc = search(tmp_path, demo_root, "--trials", "10", "--epochs", "2", "--study", "resume")
    journal = tmp_path / "studies" / "resume" / "journal.log"
    deadline = time.time() + 300
    while time.time() < deadline:
        time.sleep(0.05)
        if not journal.exists():
            continue
        trials = open_study(tmp_path, "resume").get_trials()
        if (sum(t.state == TrialState.COMPLETE for t in trials) >= 2
                and any(t.state == TrialState.RUNNING for t in trials)):
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    trials = open_study(tmp_path, "resume").get_trials()  # what the killed run left behind
    completed = {t.number: tuple(t.values) for t in trials if t.state == TrialState.COMPLETE}
    left_running = [t.number for t in trials if t.state == TrialState.RUNNING]
    assert len(completed) >= 2, "the search did not complete two trials before the deadline"
    rerun = search(tmp_path, demo_root, "--trials", "10", "--epochs", "2", "--study", "resume")  # the same study
    out, _ = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, out
    if left_running:  # killed mid-trial (almost always): that trial is closed, not lost as RUNNING
        assert f"{len(left_running)} stale running trial(s) closed" in out
    trials = open_study(tmp_path, "resume").get_trials()
    assert len([t for t in trials if t.state.is_finished()]) >= 10
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    for number, values in completed.items():
        assert trials[number].state == TrialState.COMPLETE and tuple(trials[number].values) == values


def get_json(base: str, path: str):
    return json.load(urllib.request.urlopen(f"{base}{path}", timeout=30))


def test_dashboard_shows_constraints_curves_names_and_artifacts_and_outputs_sit_beside_the_storage(tmp_path,
                                                                                                    demo_root):
    from optuna_dashboard import wsgi
    from optuna.artifacts import FileSystemArtifactStore

    tight = yaml.safe_load(BUDGET.read_text())
    tight["limits"]["macs_per_second"] = 500_000        # three references fit; most sampled models do not
    budget = tmp_path / "tight.yaml"
    budget.write_text(yaml.safe_dump(tight))
    journal = tmp_path / "elsewhere" / "runs.log"
    proc = search(tmp_path, demo_root, "--trials", "6", "--epochs", "2", "--study", "dash", "--storage", str(journal),
                  "--budget", str(budget), "--mode", "pareto")
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out
    outputs = tmp_path / "elsewhere" / "dash"
    for name in ("trials.csv", "curves.csv", "pareto.png", "pareto.html"):
        assert (outputs / name).is_file(), name
    assert not (tmp_path / "studies").exists()
    study = load_study("dash", str(journal), seed=None)
    assert all((outputs / "checkpoints" / f"trial_{t.number}.pt").is_file()
               for t in study.trials if t.state == TrialState.COMPLETE)

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    app = wsgi(str(journal), artifact_store=FileSystemArtifactStore(str(outputs / "artifacts")))
    server = make_server("127.0.0.1", 0, app, handler_class=Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        study_id = next(s["study_id"] for s in get_json(base, "/api/studies")["study_summaries"]
                        if s["study_name"] == "dash")
        detail = get_json(base, f"/api/studies/{study_id}")
        trained = [t for t in detail["trials"] if t["state"] == "Complete"]
        first = trained[0]
        ids = {a["filename"]: a["artifact_id"] for a in first["artifacts"]}
        url = f"{base}/artifacts/{study_id}/{first['trial_id']}/"
        checkpoint = urllib.request.urlopen(url + ids[f"trial_{first['number']}.pt"], timeout=30).read()
        spec_yaml = urllib.request.urlopen(url + ids["spec.yaml"], timeout=30).read().decode()
    finally:
        server.shutdown()
    assert detail["objective_names"] == list(OBJECTIVES)
    note = detail["note"]["body"]
    assert "**val_score**: the selection score" in note and "**val_accuracy**: the share" in note
    assert "ram, flash, macs_per_second, cpu_share, valid" in note and "**interrupted** (Fail, but not a failure" in note
    by_number = {t.number: t for t in study.trials}
    rejected = [t for t in detail["trials"] if by_number[t["number"]].user_attrs.get("feasible") is False]
    assert rejected, "no over-budget trial to show as infeasible"
    for t in detail["trials"]:
        if t["state"] in ("Complete", "Pruned"):   # the dashboard's constraint list, in CONSTRAINTS order
            assert t["constraints"] == [by_number[t["number"]].constraints[k] for k in CONSTRAINTS]
    assert all(max(t["constraints"]) > 0 for t in rejected)
    for t in detail["trials"]:    # how it ended: the first attribute and the top of the trial's page
        first = t["user_attrs"][0]
        outcome = first["value"].split(":")[0]
        assert first["key"] == "outcome" and outcome in ("trained", "rejected", "stopped", "reused", "replaced"), first
        assert t["note"]["body"].startswith({"trained": "**Trained**", "rejected": "**Rejected before training",
                                             "stopped": "**Stopped early", "reused": "**Reused",
                                             "replaced": "**Replaced"}[outcome])
        if outcome == "rejected":   # why, at a glance, with the costs against the limits
            reason = by_number[t["number"]].user_attrs["reject_reason"]
            assert first["value"] == f"rejected: {reason}" and reason in t["note"]["body"]
            assert "| MAC/s |" in t["note"]["body"] and ": over** |" in t["note"]["body"]
    assert all(max(t["constraints"]) <= 0 for t in trained)
    for t in trained:   # the learning curve the dashboard draws (a duplicate reuses a result: no curve)
        assert [v["value"] for v in t["intermediate_values"]] == by_number[t["number"]].user_attrs.get("curve", [])
        assert [v["step"] for v in t["intermediate_values"]] == list(range(len(t["intermediate_values"])))
        attrs = {a["key"]: a["value"] for a in t["user_attrs"]}
        assert attrs["model"] and attrs["network"].startswith("c") and "·" in attrs["network"]
    assert detail["has_intermediate_values"]
    assert checkpoint == (outputs / "checkpoints" / f"trial_{trained[0]['number']}.pt").read_bytes()
    assert yaml.safe_load(spec_yaml)["name"] == by_number[trained[0]["number"]].user_attrs["model"]



def test_training_threads_follow_omp_num_threads_else_share_the_cores(monkeypatch):
    """Several processes on one machine must not each take every core (OpenMP threads then spin
    against each other): $OMP_NUM_THREADS wins, else the cores are divided among --jobs."""
    from nas.search.run import training_threads

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert training_threads(jobs=1) == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert training_threads(jobs=1) == 8 and training_threads(jobs=3) == 2 and training_threads(jobs=16) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "")
    assert training_threads(jobs=2) == 4
