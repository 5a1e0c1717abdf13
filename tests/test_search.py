"""The search end to end on the generated dataset: rejection before data, resume after SIGKILL,
outputs, and the study as optuna-dashboard serves it."""
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

    def get(self, fe):
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
        assert set(t.constraints) == set(CONSTRAINTS) and max(t.constraints.values()) > 0
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
    objective = Objective(space, Budget.load(path), NoData(), TrainConfig(epochs=1), checkpoints=tmp_path / "ck",
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
    assert load_study("cpu", storage, seed=0, compute="cpu_share").metric_names == ["val_accuracy", "cpu_share",
                                                                                    "ram_bytes"]
    assert load_study("cpu", storage, seed=0, compute="cpu_share").metric_names[1] == "cpu_share"   # resumed
    with pytest.raises(UserError, match="minimises cpu_share"):
        load_study("cpu", storage, seed=0)
    cfg = yaml.safe_load(BUDGET.read_text())
    cfg["objectives"] = {"compute": "cpu_share"}
    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert Objective(SearchSpace.load(SPACE), Budget.load(path), NoData(), TrainConfig(epochs=1),
                     checkpoints=tmp_path).compute == "cpu_share"


def search(cwd: Path, data: Path, *extra: str, **kw) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "nas.search", "--budget", str(BUDGET), "--space", str(SPACE), "--data", str(data),
           "--cache", str(cwd / "cache"), *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def open_study(cwd: Path, name: str) -> optuna.Study:
    return load_study(name, str(cwd / "studies" / name / "journal.log"), seed=None)


def test_search_cli_writes_front_csv_and_plot(tmp_path, demo_root):
    proc = search(tmp_path, demo_root, "--trials", "8", "--epochs", "2", "--study", "cli")
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
    assert len([t for t in study.trials if t.state.is_finished()]) == 8
    for t in study.best_trials:
        assert max(t.constraints.values()) <= 0 and (study_dir / "checkpoints" / f"trial_{t.number}.pt").is_file()
        assert t.user_attrs["spec"] and len(t.user_attrs["curve"]) >= 1


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


def test_dashboard_serves_the_study_over_http(tmp_path, demo_root):
    from optuna_dashboard import wsgi

    proc = search(tmp_path, demo_root, "--trials", "4", "--epochs", "1", "--study", "dash")
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    server = make_server("127.0.0.1", 0, wsgi(str(tmp_path / "studies" / "dash" / "journal.log")), handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        studies = json.load(urllib.request.urlopen(f"{base}/api/studies", timeout=30))["study_summaries"]
        study_id = next(s["study_id"] for s in studies if s["study_name"] == "dash")
        detail = json.load(urllib.request.urlopen(f"{base}/api/studies/{study_id}", timeout=30))
    finally:
        server.shutdown()
    assert detail["objective_names"] == list(OBJECTIVES)
    attrs = {a["key"] for t in detail["trials"] for a in t["user_attrs"]}
    assert {"ram_bytes", "flash_bytes", "macs_per_second", "spec", "feasible"} <= attrs
    assert detail["best_trials"]
