"""The "unknown" answer in Python: votes are the int8 clip scores the accuracy is computed from, the
curve counts exactly what `decide` decides at every threshold, and the chosen threshold is the lowest
reaching the target precision. (The C's decisions against these: tests/test_export.py.)"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nas.arch.spec import ArchSpec, Conv2D, Dense, FrontEnd, GlobalAvgPool2D, Softmax
from nas.calibrate.models import random_model
from nas.quant import confidence as C
from nas.quant import quantize as Q
from nas.train.clips import ClipSet

FE = FrontEnd(sample_rate=8000, n_fft=256, hop_length=128, n_mels=20, frames=16, overlap=0.5)


@pytest.fixture(scope="module")
def scored():
    spec = ArchSpec(name="t", frontend=FE, num_classes=10, layers=(
        Conv2D(filters=8, kernel=(3, 3), stride=(2, 2)), GlobalAvgPool2D(), Dense(units=10, activation="none"),
        Softmax()))
    qm = random_model(spec, seed=3)
    gen = torch.Generator().manual_seed(0)
    n = 120
    data = ClipSet(x=torch.randn(n, 60, FE.n_mels, generator=gen) * 2,
                   y=torch.randint(0, 10, (n,), generator=gen),
                   valid_frames=torch.randint(FE.frames, 61, (n,), generator=gen))
    votes, windows = C.clip_votes(qm, data)
    return qm, data, votes, windows


def test_votes_give_the_int8_clip_decisions(scored):
    qm, data, votes, windows = scored
    probs = Q.int8_clip_probabilities(qm, data)
    assert (windows >= 1).all() and windows.max() > 1                    # several windows per clip
    np.testing.assert_allclose(C.mean_probabilities(votes, windows), probs, atol=1e-9)
    labels = C.decide(votes, windows, C.NEVER)
    np.testing.assert_array_equal(labels, probs.argmax(1))
    assert float((labels == data.y.numpy()).mean()) == Q.int8_clip_accuracy(qm, data)


def test_the_curve_counts_what_decide_decides_at_every_threshold(scored):
    _, data, votes, windows = scored
    y = data.y.numpy()
    curve = C.curve(votes, windows, y)
    for i, q in enumerate(C.THRESHOLDS):
        labels = C.decide(votes, windows, q)
        assert curve.labelled[i] == (labels != C.UNKNOWN).sum(), q
        assert curve.correct[i] == (labels == y).sum(), q
    full = curve.at(C.NEVER)
    assert full["unknown"] == 0 and full["precision"] == full["recall"] == round(float((votes.argmax(1) == y).mean()), 4)
    assert (np.diff(curve.labelled) <= 0).all() and (np.diff(curve.recall) <= 0).all()
    assert C.probability(C.NEVER) == 0.0 and C.probability(127) == 255 / 256


def test_the_chosen_threshold_is_the_lowest_reaching_the_target():
    # four clips, 1 window each: confidences 10 (right), 20 (wrong), 30 (right), 40 (right)
    votes = np.full((4, 3), -128)
    votes[:, 0] = [10, 20, 30, 40]
    curve = C.curve(votes, np.ones(4, np.int64), np.array([0, 1, 0, 0]))
    assert curve.at(10) == {"min_score": 10, "probability": 138 / 256, "precision": 0.75, "recall": 0.75,
                            "unknown": 0.0}
    assert curve.at(11)["precision"] == round(2 / 3, 4) and curve.at(21)["precision"] == 1.0
    assert curve.at(41)["precision"] is None and curve.at(41)["unknown"] == 1.0
    assert curve.threshold_for(0.75) == C.NEVER and curve.threshold_for(0.9) == 21
    assert curve.threshold_for(1.0) == 21 and C.curve(votes, np.ones(4), np.array([1, 1, 1, 1])).threshold_for(0.5) is None
    pooled = curve + curve
    assert pooled.clips == 8 and pooled.at(11)["precision"] == curve.at(11)["precision"]
    assert C.Curve.from_dict(curve.to_dict()).at(21) == curve.at(21)


def test_a_vote_exactly_at_the_threshold_is_labelled():
    votes = np.array([[-384, 30], [-384, 29]])                            # 3 windows, threshold 10
    np.testing.assert_array_equal(C.decide(votes, np.array([3, 3]), 10), [1, C.UNKNOWN])
    cases, windows = C.decision_cases(votes, np.array([3, 3]), 10)
    assert len(cases) == 4 and list(C.decide(cases[-2:], windows[-2:], 10)) == [1, C.UNKNOWN]
