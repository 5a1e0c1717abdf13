"""Hostile conditions lose nothing: signals, killed cache builds, parallel workers on one journal and
on a real PostgreSQL server, training faults, bad flags and files."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from optuna.trial import TrialState

from nas.arch.space import SearchSpace
from nas.arch.spec import FrontEnd
from nas.budget import Budget
from nas.data import cache as fcache
from nas.search.objective import Objective
from nas.search.worker import run_trials
from nas.study.claim import claim_for
from nas.study.study import DIRECTIONS
from nas.study.trials import counted
from nas.train.clips import ClipSet, Normalisation
from nas.train.recipe import Recipe

ROOT = Path(__file__).resolve().parents[1]
BUDGET = ROOT / "budgets/stm32l476.yaml"
SPACE = ROOT / "search_spaces/default.yaml"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def search_cmd(cwd: Path, data: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "nas.search", "--budget", str(BUDGET), "--space", str(SPACE), "--data", str(data),
            "--cache", str(cwd / "cache"), *extra]


def load(cwd: Path, name: str, storage: str | None = None) -> optuna.Study:
    from nas.study.study import load_study

    return load_study(name, storage or str(cwd / "studies" / name / "journal.log"), seed=None)


def assert_each_trial_once(study: optuna.Study, total: int) -> None:
    trials = study.get_trials()
    assert [t.number for t in trials] == list(range(len(trials)))  # every trial recorded once, in order
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert counted(study) == total


# -- parallel workers -----------------------------------------------------------------------------

def test_jobs_in_one_process_reach_the_exact_total(tmp_path, demo_root):
    out = subprocess.run(search_cmd(tmp_path, demo_root, "--trials", "10", "--epochs", "2", "--jobs", "3",
                                    "--study", "jobs"), cwd=tmp_path, env=ENV, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Traceback" not in out.stderr and "lock" not in out.stderr.lower()
    assert_each_trial_once(load(tmp_path, "jobs"), 10)


def test_processes_sharing_one_journal_reach_the_exact_total(tmp_path, demo_root):
    procs = [subprocess.Popen(search_cmd(tmp_path, demo_root, "--trials", "14", "--epochs", "2", "--study", "multi",
                                         "--seed", str(i)), cwd=tmp_path, env=ENV, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for i in range(3)]
    outs = [p.communicate(timeout=900)[0] for p in procs]
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out
        assert "Traceback" not in out and "database is locked" not in out
    assert_each_trial_once(load(tmp_path, "multi"), 14)
    references = [t.user_attrs.get("reference") for t in load(tmp_path, "multi").trials if t.user_attrs.get("reference")]
    assert len(references) == len(set(references))  # queued once although three processes started together


def test_processes_on_a_postgresql_server_reach_the_exact_total(tmp_path, demo_root, postgres_url):
    procs = [subprocess.Popen(search_cmd(tmp_path, demo_root, "--trials", "12", "--epochs", "2", "--study", "pg",
                                         "--storage", postgres_url, "--seed", str(i), "--jobs", "2"),
                              cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(2)]
    outs = [p.communicate(timeout=900)[0] for p in procs]
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out
        assert "Traceback" not in out
    assert_each_trial_once(load(tmp_path, "pg", postgres_url), 12)


# -- interruptions --------------------------------------------------------------------------------

def wait_for_running_training(cwd: Path, name: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    journal = cwd / "studies" / name / "journal.log"
    deadline = time.time() + timeout
    while time.time() < deadline:
        time.sleep(0.05)
        assert proc.poll() is None, proc.stdout.read()
        if journal.exists() and any(t.state == TrialState.RUNNING and "curve" in t.user_attrs
                                    for t in load(cwd, name).get_trials()):
            return
    raise AssertionError("no trial started training before the deadline")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_training_stops_cleanly_and_rerun_completes(tmp_path, demo_root, sig):
    # a terminal's Ctrl-C finds SIGINT at its default; a shell's background job inherits it ignored
    proc = subprocess.Popen(search_cmd(tmp_path, demo_root, "--trials", "8", "--epochs", "3", "--study", "sig"),
                            cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    wait_for_running_training(tmp_path, "sig", proc)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "interrupted" in out and "Traceback" not in out
    assert " 0 failed; 1 interrupted (redone when you rerun the same command)" in out, out
    assert (tmp_path / "studies" / "sig" / "trials.csv").is_file()
    study = load(tmp_path, "sig")
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    interrupted = [t for t in study.trials if t.user_attrs.get("interrupted")]
    assert len(interrupted) == 1 and interrupted[0].state == TrialState.FAIL
    from optuna_dashboard import get_note   # what the dashboard shows first: not a failure

    assert interrupted[0].user_attrs["outcome"].startswith("interrupted: ") and list(interrupted[0].user_attrs)[0] == "outcome"
    note = get_note(optuna.trial.Trial(study, interrupted[0]._trial_id))
    assert note.startswith("**Interrupted, not a failure") and "redone when the same command is rerun" in note
    rerun = subprocess.run(search_cmd(tmp_path, demo_root, "--trials", "8", "--epochs", "3", "--study", "sig"),
                           cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert counted(load(tmp_path, "sig")) == 8


def test_killed_cache_build_leaves_nothing_corrupt(tmp_path, copy_dataset):
    root = copy_dataset("ds")
    cache_dir = tmp_path / "cache"
    fe = FrontEnd(sample_rate=16000, n_fft=512, hop_length=256, n_mels=40)
    code = ("import sys; from nas.data.cache import load_features; from nas.arch.spec import FrontEnd; "
            "load_features(sys.argv[1], FrontEnd(sample_rate=16000, n_fft=512, hop_length=256, n_mels=40), "
            "sys.argv[2], workers=1)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(root), str(cache_dir)], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list(cache_dir.glob(".tmp-*")):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not [p for p in cache_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]  # no half cache
    feats = fcache.load_features(root, fe, cache_dir, progress=False)
    assert len(feats) > 0 and np.isfinite(np.asarray(feats.x, dtype=np.float32)).all()
    again = fcache.load_features(root, fe, cache_dir, progress=False)
    assert again.path == feats.path


# -- training faults ------------------------------------------------------------------------------

class FaultyData:
    """Feature provider whose data makes training fail in a chosen way."""

    def __init__(self, kind: str):
        self.kind = kind

    def get(self, fe: FrontEnd, on_clips=None):
        if self.kind == "crash":
            raise RuntimeError("simulated out-of-memory while loading features")
        n, t = 40, 80
        x = torch.randn(n, t, fe.n_mels)
        if self.kind == "nan":
            x[:, :, 0] = float("nan")
        y = torch.arange(n) % 10
        clips = ClipSet(x=x, y=y, valid_frames=torch.full((n,), t))
        return clips, clips, Normalisation(0.0, 1.0)


@pytest.mark.parametrize("kind,state,attr,text", [
    ("nan", TrialState.PRUNED, "prune_reason", "loss became nan"),
    ("crash", TrialState.FAIL, "fail_reason", "simulated out-of-memory"),
])
def test_training_faults_end_the_trial_with_its_reason_and_the_study_goes_on(tmp_path, kind, state, attr, text):
    space = SearchSpace.load(SPACE)
    objective = Objective(space, Budget.load(BUDGET), FaultyData(kind), Recipe(epochs=2), tmp_path,
                          log=lambda *_: None)
    study = optuna.create_study(directions=list(DIRECTIONS), sampler=optuna.samplers.TPESampler(seed=1))
    for params in list(space.reference_params().values())[:3]:
        study.enqueue_trial(params)
    run_trials(study, objective, total=6, claim=claim_for(str(tmp_path / "j.log"), "faults"))
    trials = study.get_trials()
    assert len(trials) == 6  # the study went on after every fault
    trained = [t for t in trials if t.user_attrs.get("feasible")]
    assert trained and all(t.state == state and text in t.user_attrs[attr] for t in trained)


# -- bad flags and files --------------------------------------------------------------------------

@pytest.mark.parametrize("extra,message", [
    (["--trials", "0"], "--trials: expected a positive integer"),
    (["--jobs", "-2"], "--jobs: expected a positive integer"),
    (["--data", "/nonexistent/UrbanSound8K"], "UrbanSound8K"),
    (["--space", "/nonexistent.yaml"], "/nonexistent.yaml: file not found"),
    (["--val-fold", "10"], "in both val and test"),
    (["--test-fold", "11"], "--test-folds: fold(s) [11] out of range"),
])
def test_bad_flags_are_one_line(tmp_path, extra, message):
    cmd = [sys.executable, "-m", "nas.search", "--budget", str(BUDGET), "--cache", str(tmp_path / "c"), *extra]
    out = subprocess.run(cmd, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in out.stderr
    assert not (tmp_path / "studies").exists() or not any((tmp_path / "studies").rglob("journal.log"))


def test_killed_export_leaves_complete_folders_only_and_rerun_completes(tmp_path, demo_root):
    out = subprocess.run(search_cmd(tmp_path, demo_root, "--trials", "3", "--epochs", "1", "--study", "ex"),
                         cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    export = [sys.executable, "-m", "nas.export", "--study", "ex", "--trial", "0", "--trial", "1", "--trial", "2"]
    proc = subprocess.Popen(export, cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    root = tmp_path / "export" / "ex"
    deadline = time.time() + 300
    while time.time() < deadline and not list(root.glob(".tmp-*")):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for folder in root.glob("trial_*"):  # whatever is visible is whole
        assert (folder / "report.json").is_file() and (folder / "model.c").is_file()
    rerun = subprocess.run(export, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert sorted(p.name for p in root.iterdir()) == ["trial_0", "trial_1", "trial_2"]  # leftovers cleaned
