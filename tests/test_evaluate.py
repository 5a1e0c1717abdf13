"""Fold protocols, the final stage (retrain, int8, test once, tables, confusion PNG, the model export
takes), teacher files and quantisation-aware fine-tuning."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from nas.core.errors import UserError
from nas.data.urbansound import FoldSplit, parse_folds
from nas.quant import quantize as Q
from nas.quant.qat import FakeQuantNet, fake_activation, finetune
from nas.arch.net import build, fold_batchnorm
from nas.train.recipe import Recipe
from nas.train.teacher import FORMAT, load_teacher, soft_targets
from tests.test_recipe import PLAIN, _toy_sets, small_spec
from tests.test_search import ROOT, search

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def run(args, cwd, timeout=900):
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=timeout)


# -- fold protocols -------------------------------------------------------------------------------

def test_fold_flags_take_any_disjoint_subsets():
    s = FoldSplit.from_flags("1", "3", "2", present=(1, 2, 3))
    assert (s.train, s.val, s.test) == ((1,), (3,), (2,))
    assert FoldSplit.from_flags(None, "3", "none", present=(1, 2, 3)).train == (1, 2)
    assert FoldSplit.from_flags(None, "9", "10").train == tuple(range(1, 9))
    assert parse_folds("1+2, 4", "--x") == (1, 2, 4)
    with pytest.raises(UserError, match="--val-folds: expected comma-separated fold numbers"):
        FoldSplit.from_flags(None, "three", "2")
    with pytest.raises(UserError, match=r"fold\(s\) \[2\] are in both train and test"):
        FoldSplit.from_flags("1,2", "3", "2")
    with pytest.raises(UserError, match="no fold is left for training"):
        FoldSplit.from_flags(None, "1", "2", present=(1, 2))


def test_empty_folds_are_named_before_the_study_starts(tmp_path, copy_dataset):
    root = copy_dataset()
    csv = root / "metadata" / "UrbanSound8K.csv"
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join([lines[0]] + [ln for ln in lines[1:] if ln.split(",")[5] in ("1", "2", "3")]) + "\n")
    proc = run(["nas.search", "--budget", str(ROOT / "budgets/stm32l476.yaml"), "--data", str(root),
                "--trials", "1", "--epochs", "1"], tmp_path)
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "validation fold 9 lists no clip" in err[0] and "dataset has: 1,2,3" in err[0], proc.stderr
    assert not (tmp_path / "studies" / "nas" / "journal.log").exists()
    proc = run(["nas.search", "--budget", str(ROOT / "budgets/stm32l476.yaml"), "--data", str(root),
                "--train-folds", "1,5", "--val-fold", "3", "--test-fold", "2", "--trials", "1"], tmp_path)
    assert proc.returncode == 2 and "training fold 5 lists no clip" in proc.stderr


# -- the final stage ------------------------------------------------------------------------------

def test_final_stage_retrains_tests_once_and_hands_its_model_to_export(tmp_path, demo_root):
    proc = search(tmp_path, demo_root, "--trials", "1", "--epochs", "2", "--study", "fin")
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out
    cmd = ["nas.evaluate", "--study", "fin", "--trials", "0", "--seeds", "2", "--epochs", "2"]
    first = run(cmd, tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    study_dir = tmp_path / "studies" / "fin"
    records = [json.loads(line) for line in (study_dir / "evaluation.jsonl").read_text().splitlines()]
    assert [(r["trial"], r["seed"], r["test_folds"]) for r in records] == [(0, 0, [10]), (0, 1, [10])]
    for r in records:
        confusion = np.array(r["test_confusion_int8"])
        assert confusion.shape == (10, 10) and confusion.sum() == r["test_clips"] > 0
        assert r["test_acc_int8"] == pytest.approx(np.trace(confusion) / confusion.sum(), abs=1e-4)
        assert 0.0 <= r["test_acc"] <= 1.0 and r["int8_method"] in ("ptq", "qat")
    table = (study_dir / "evaluation.csv").read_text().splitlines()
    header = table[0].split(",")
    assert {"test_acc_mean", "test_acc_std", "test_acc_int8_mean", "test_acc_int8_std", "runs"} <= set(header)
    assert table[1].split(",")[header.index("runs")] == "2"
    assert (study_dir / "confusion_trial_0.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "per_class" not in header and (study_dir / "evaluation_per_class.csv").is_file()
    again = run(cmd, tmp_path)
    assert again.returncode == 0 and "seed 0:" not in again.stdout   # resumed: nothing retrained
    best = max(records, key=lambda r: r["val_score"])
    exp = run(["nas.export", "--study", "fin", "--trial", "0", "--no-verify", "--out", str(tmp_path / "ex")], tmp_path)
    assert exp.returncode == 0, exp.stdout + exp.stderr
    assert f"retrained model (seed {best['seed']}" in exp.stdout
    assert (tmp_path / "ex" / "trial_0" / "model.c").is_file()


def test_a_rotation_runs_every_listed_fold_as_the_test_fold(tmp_path, demo_root):
    proc = search(tmp_path, demo_root, "--trials", "1", "--epochs", "1", "--study", "rot")
    assert proc.communicate(timeout=900)[0] is not None and proc.returncode == 0
    done = run(["nas.evaluate", "--study", "rot", "--trials", "0", "--folds", "1,2", "--seeds", "1", "--epochs", "1"],
               tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    records = [json.loads(line) for line in (tmp_path / "studies/rot/evaluation.jsonl").read_text().splitlines()]
    assert [r["split"] for r in records] == ["train 3,4,5,6,7,8,9,10 / val 2 / test 1",
                                             "train 1,4,5,6,7,8,9,10 / val 3 / test 2"]
    bad = run(["nas.evaluate", "--study", "rot", "--folds", "11"], tmp_path)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--folds" in bad.stderr


# -- teacher files --------------------------------------------------------------------------------

def _teacher(tmp_path, folds, classes=tuple(f"c{i}" for i in range(3)), probs=None):
    path = tmp_path / "teacher.json"
    path.write_text(json.dumps({"format": FORMAT, "trained_on_folds": folds, "classes": list(classes),
                                "probabilities": probs or {"a.wav": [1, 1, 2], "b.wav": [0, 0, 1]}}))
    return path


def test_a_teacher_that_saw_a_validation_or_test_fold_is_refused(tmp_path):
    split = FoldSplit(train=(1, 2), val=(3,), test=(4,))
    classes = tuple(f"c{i}" for i in range(3))
    probs = load_teacher(_teacher(tmp_path, [1, 2]), split, classes)
    assert np.allclose(probs["a.wav"], [0.25, 0.25, 0.5])
    for folds in ([1, 3], [4]):
        with pytest.raises(UserError, match=r"trained on fold\(s\) \[\d\], which this split validates or tests on"):
            load_teacher(_teacher(tmp_path, folds), split, classes)
    with pytest.raises(UserError, match="classes"):
        load_teacher(_teacher(tmp_path, [1]), split, ("x", "y", "z"))
    with pytest.raises(UserError, match="expected 3 non-negative numbers"):
        load_teacher(_teacher(tmp_path, [1], probs={"a.wav": [1, -1, 0]}), split, classes)
    with pytest.raises(UserError, match="no teacher probabilities for 1 training clip"):
        soft_targets(probs, ("a.wav", "c.wav"), 1.0, "t.json")
    hot = soft_targets(probs, ("a.wav",), 0.5, "t.json")[0].numpy()
    assert np.allclose(hot, np.array([1, 1, 4]) / 6)   # T = 0.5 sharpens: p ** 2, renormalised


# -- quantisation-aware fine-tuning --------------------------------------------------------------

def test_fake_quantised_net_matches_the_integer_reference():
    spec = small_spec()
    tr, va = _toy_sets(frames=spec.frontend.frames, mels=spec.frontend.n_mels)
    torch.manual_seed(0)
    net = build(spec).eval()
    calib = Q.calibration_windows(tr, spec.frontend, n=200)
    qm = Q.quantize(net, (0.0, 1.0), calib)
    folded = fold_batchnorm(net)
    in_range, ranges = Q.observe_ranges(folded, calib)
    fq = FakeQuantNet(folded, Q.activation_qparams(*in_range),
                      {k: Q.activation_qparams(*r) for k, r in ranges.items()}).eval()
    x = calib[:64]
    logits_ref = Q.run_int8(qm, Q.quantize_input(qm, x[:, 0]), upto=len(qm.layers) - 1).astype(np.float64)
    last = qm.layers[-2]
    ref = ((logits_ref - last.out_zero_point) * last.out_scale).reshape(len(x), -1)
    with torch.no_grad():
        sim = fq(x).numpy()
    assert np.abs(sim - ref).max() <= 2.5 * last.out_scale       # float vs integer arithmetic: <= 2 LSB
    assert (sim.argmax(1) == ref.argmax(1)).mean() >= 0.95
    assert fake_activation(torch.tensor([1e6, -1e6]), 0.1, 0).tolist() == pytest.approx([12.7, -12.8])


def test_finetuning_returns_a_deploy_net_that_quantises(tmp_path):
    spec = small_spec()
    tr, va = _toy_sets(frames=spec.frontend.frames, mels=spec.frontend.n_mels)
    net = build(spec).eval()
    calib = Q.calibration_windows(tr, spec.frontend, n=100)
    folded, result = finetune(net, tr, va, Recipe(epochs=2, augment=PLAIN), calib, norm_std=1.0, epochs=2)
    assert len(result.curve) == 2
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    ckpt = {"spec": spec.to_json(), "state_dict": folded.state_dict(), "input_norm": [0.0, 1.0], "deploy": True}
    again, _ = Q.net_from_checkpoint(ckpt)
    with torch.no_grad():
        assert torch.allclose(again(calib[:8]), folded(calib[:8]))
    assert 0.0 <= Q.int8_clip_accuracy(Q.quantize(again, (0.0, 1.0), calib), va) <= 1.0
