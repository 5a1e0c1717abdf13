"""One run of the final stage: train a model on a split's training folds with the recipe, pick its
epoch on the validation folds, quantise it to int8 (fine-tuning through the int8 rounding when
post-training quantisation loses more than `QAT_THRESHOLD` on validation), and score the test folds
once, float and int8, per clip, per class and as a confusion matrix; and the int8 model's "unknown"
curve (`nas.quant.confidence`: precision, recall, unknown share at every threshold) on the validation
and on the test folds, so a threshold chosen on validation is read once on test.

The int8 scores are those of the integer reference (`nas.quant.quantize.run_int8`), bit-exact with
the C the exporter writes. Validation decides everything (epoch, PTQ or QAT); the test folds are read
after the model is fixed.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from nas.arch.net import build
from nas.arch.spec import ArchSpec
from nas.data import cache as fcache
from nas.data.urbansound import FoldSplit
from nas.quant import confidence
from nas.quant import quantize as Q
from nas.quant.qat import finetune
from nas.train.clips import ClipSet, Normalisation, class_recalls, clip_probabilities
from nas.train.loop import train
from nas.train.recipe import Recipe
from nas.train.teacher import Teacher, soft_targets
from nas.train.trialdata import to_clipset, valid_frames

QAT_THRESHOLD = 0.005   # int8 validation accuracy loss (0.5 points) above which the model is fine-tuned


def _scores(probs: np.ndarray, y: np.ndarray, num_classes: int) -> dict:
    pred = probs.argmax(1)
    confusion = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(confusion, (y, pred), 1)
    recalls = class_recalls(torch.from_numpy(pred), torch.from_numpy(y), num_classes)
    return {"acc": float((pred == y).mean()) if len(y) else float("nan"),
            "per_class": [None if np.isnan(r) else round(float(r), 4) for r in recalls.tolist()],
            "confusion": confusion.tolist()}


def _sets(feats: fcache.ClipFeatures, split: FoldSplit, teacher: Teacher | None,
          temperature: float) -> tuple[ClipSet, ClipSet, ClipSet, Normalisation]:
    sel = feats.selection(split)
    train_x = np.asarray(sel.train.x)
    norm = Normalisation.fit(train_x, valid_frames(train_x))
    soft = None if teacher is None else soft_targets(teacher, sel.train.names, temperature, "teacher")
    return (to_clipset(sel.train, norm, soft), to_clipset(sel.val, norm),
            to_clipset(feats.held_out(split), norm), norm)


def _int8(net, train_set: ClipSet, val_set: ClipSet, recipe: Recipe, norm: Normalisation,
          classes: tuple[str, ...]) -> tuple[Q.QuantizedModel, dict, str, dict | None]:
    """(int8 model, validation accuracies, "ptq" or "qat", deploy-form state after QAT or None)."""
    fe = net.spec.frontend
    calib = Q.calibration_windows(train_set, fe)
    qm = Q.quantize(net, (norm.mean, norm.std), calib, class_names=classes)
    val = {"float": float((clip_probabilities(net, val_set, fe.frames, fe.window_hop_frames).argmax(1)
                           == val_set.y).float().mean()),
           "int8_ptq": Q.int8_clip_accuracy(qm, val_set)}
    if val["float"] - val["int8_ptq"] <= QAT_THRESHOLD:
        return qm, val, "ptq", None
    folded, _ = finetune(net, train_set, val_set, recipe, calib, norm.std)
    qm_qat = Q.quantize(folded, (norm.mean, norm.std), calib, class_names=classes)
    val["int8_qat"] = Q.int8_clip_accuracy(qm_qat, val_set)
    if val["int8_qat"] > val["int8_ptq"]:
        return qm_qat, val, "qat", folded.state_dict()
    return qm, val, "ptq", None


def retrain(spec: ArchSpec, feats: fcache.ClipFeatures, split: FoldSplit, recipe: Recipe,
            teacher: Teacher | None = None) -> tuple[dict, dict]:
    """(record, checkpoint) of one final-stage run of `spec` on `split` with `recipe` (its seed)."""
    t0 = time.perf_counter()
    train_set, val_set, test_set, norm = _sets(feats, split, teacher, recipe.distillation.temperature)
    result = train(spec, train_set, val_set, recipe, norm_std=norm.std)
    net = build(spec)
    net.load_state_dict(result.state_dict)
    net.eval()
    qm, val, method, deploy_state = _int8(net, train_set, val_set, recipe, norm, feats.classes[:spec.num_classes])
    fe = spec.frontend
    y = test_set.y.numpy()
    test_float = _scores(clip_probabilities(net, test_set, fe.frames, fe.window_hop_frames).numpy(), y, spec.num_classes)
    test_votes = confidence.clip_votes(qm, test_set)
    test_int8 = _scores(confidence.mean_probabilities(*test_votes), y, spec.num_classes)
    record = {"val_score": round(result.best_score, 4), "val_accuracy": round(val["float"], 4),
              "val_accuracy_int8": round(max(v for k, v in val.items() if k.startswith("int8")), 4),
              "int8_method": method, "best_epoch": result.best_epoch,
              "test_accuracy": round(test_float["acc"], 4), "test_accuracy_int8": round(test_int8["acc"], 4),
              "test_per_class": test_float["per_class"], "test_per_class_int8": test_int8["per_class"],
              "test_confusion_int8": test_int8["confusion"], "test_clips": int(len(y)),
              "val_unknown_curve": confidence.curve(*confidence.clip_votes(qm, val_set), val_set.y.numpy()).to_dict(),
              "test_unknown_curve": confidence.curve(*test_votes, y).to_dict(),
              "seconds": round(time.perf_counter() - t0, 1)}
    checkpoint = {"spec": spec.to_json(), "input_norm": [norm.mean, norm.std],
                  "state_dict": deploy_state if deploy_state is not None else result.state_dict,
                  "deploy": deploy_state is not None}
    return record, checkpoint
