"""The "unknown" answer: a clip the model is not confident about is left unlabelled.

The device and Python decide alike, with integers only. Per clip, the int8 softmax scores of its
windows (probability = (score + 128) / 256) are summed per class (`clip_votes`: the votes, int32 on
the device); the clip gets the first class with the highest vote, or `UNKNOWN` when that vote is
below `min_score` x windows, i.e. when the best class's mean score is below the threshold
`min_score` (`decide`; `NEVER` = -128 labels every clip). The label is the argmax of the mean int8
probabilities, so with `NEVER` the decisions are exactly the int8 clip accuracy's.

`curve` counts, for every threshold -128..127, the clips labelled and labelled correctly. Its three
figures, on the validation folds where a threshold is chosen:

* **precision**: the share of labelled clips labelled correctly;
* **recall**: the share of all clips labelled correctly;
* **unknown**: the share of clips left unlabelled.

`Curve.threshold_for(p)` is the lowest threshold (the most recall) whose precision reaches `p`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nas.quant import quantize as Q
from nas.train.clips import ClipSet, eval_windows, gather

UNKNOWN = -1
NEVER = -128                                  # the threshold that labels every clip
THRESHOLDS = np.arange(-128, 128)             # every int8 score a threshold can be


def probability(min_score: int) -> float:
    """The softmax probability an int8 score stands for."""
    return (int(min_score) - Q.SOFTMAX_ZERO_POINT) * Q.SOFTMAX_SCALE


def clip_votes(qm: Q.QuantizedModel, data: ClipSet, hop: int | None = None,
               batch: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(votes [N, classes] int64: each clip's int8 scores summed over its windows, windows [N]), the
    windows spaced as the device runs them and scored by the integer reference."""
    fe = qm.spec.frontend
    clips, starts = eval_windows(data, fe.frames, hop or fe.window_hop_frames)
    votes = np.zeros((len(data), qm.num_classes), np.int64)
    for i in range(0, len(clips), batch):
        c, s = clips[i:i + batch], starts[i:i + batch]
        scores = Q.run_int8(qm, Q.quantize_input(qm, gather(data.x, c, s, fe.frames)[:, 0]))
        np.add.at(votes, c.numpy(), scores.astype(np.int64))
    return votes, np.bincount(clips.numpy(), minlength=len(data)).astype(np.int64)


def mean_probabilities(votes: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """Each clip's mean int8 window probability per class, from its votes (as `Q.int8_clip_probabilities`)."""
    n = np.maximum(np.asarray(windows, np.float64), 1.0)[:, None]
    return (np.asarray(votes, np.float64) - Q.SOFTMAX_ZERO_POINT * n) * Q.SOFTMAX_SCALE / n


def decide(votes: np.ndarray, windows: np.ndarray, min_score: int) -> np.ndarray:
    """Per clip: the class with the highest vote (the first on a tie), or `UNKNOWN` when that vote is
    below `min_score` x windows; what the exported C's `nas_model_decide` returns."""
    votes, windows = np.asarray(votes, np.int64), np.asarray(windows, np.int64)
    return np.where(votes.max(axis=1) < int(min_score) * windows, UNKNOWN, votes.argmax(axis=1))


@dataclass(frozen=True)
class Curve:
    """Clips labelled and labelled correctly at every threshold in `THRESHOLDS`, of `clips` clips."""

    labelled: np.ndarray
    correct: np.ndarray
    clips: int

    @property
    def precision(self) -> np.ndarray:
        """NaN where no clip is labelled."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.labelled > 0, self.correct / np.maximum(self.labelled, 1), np.nan)

    @property
    def recall(self) -> np.ndarray:
        return self.correct / max(self.clips, 1)

    @property
    def unknown(self) -> np.ndarray:
        return 1.0 - self.labelled / max(self.clips, 1)

    def at(self, min_score: int) -> dict:
        """precision, recall and unknown share at one threshold, rounded to 4 decimals."""
        i = int(min_score) - NEVER
        p = self.precision[i]
        return {"min_score": int(min_score), "probability": probability(min_score),
                "precision": None if np.isnan(p) else round(float(p), 4),
                "recall": round(float(self.recall[i]), 4), "unknown": round(float(self.unknown[i]), 4)}

    def threshold_for(self, target: float) -> int | None:
        """The lowest threshold whose precision reaches `target` (None when none does)."""
        ok = np.flatnonzero(np.nan_to_num(self.precision, nan=-1.0) >= target - 1e-12)
        return int(THRESHOLDS[ok[0]]) if len(ok) else None

    def __add__(self, other: "Curve") -> "Curve":
        """Pooled over runs: counts add."""
        return Curve(self.labelled + other.labelled, self.correct + other.correct, self.clips + other.clips)

    def to_dict(self) -> dict:
        return {"labelled": self.labelled.tolist(), "correct": self.correct.tolist(), "clips": int(self.clips)}

    @classmethod
    def from_dict(cls, d: dict) -> "Curve":
        return cls(np.asarray(d["labelled"], np.int64), np.asarray(d["correct"], np.int64), int(d["clips"]))


def curve(votes: np.ndarray, windows: np.ndarray, y: np.ndarray) -> Curve:
    """The counts of `decide` at every threshold at once: a clip is labelled at every threshold up to
    floor(best vote / windows), and correctly when its best class is its label."""
    votes, windows = np.asarray(votes, np.int64), np.maximum(np.asarray(windows, np.int64), 1)
    confidence = np.clip(votes.max(axis=1) // windows, NEVER, THRESHOLDS[-1]) - NEVER
    right = votes.argmax(axis=1) == np.asarray(y)
    size = len(THRESHOLDS)
    at_least = lambda hits: np.cumsum(np.bincount(hits, minlength=size)[::-1])[::-1]  # noqa: E731
    return Curve(at_least(confidence), at_least(confidence[right]), len(votes))


def decision_cases(votes: np.ndarray, windows: np.ndarray, min_score: int,
                   n: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Up to `n` (votes, windows) cases for the C self-test: the clips nearest the threshold on both
    sides, plus votes exactly at it and one below (where the comparison must not be off by one)."""
    votes, windows = np.asarray(votes, np.int64), np.asarray(windows, np.int64)
    margin = votes.max(axis=1) - int(min_score) * windows
    near = np.argsort(np.abs(margin), kind="stable")[:max(0, n - 2)]
    edge = np.full((2, votes.shape[1]), NEVER * 3, np.int64)        # 3 windows, every class at the lowest score
    edge[:, -1] = [int(min_score) * 3, int(min_score) * 3 - 1]      # but the last: at the threshold, one below
    return np.concatenate([votes[near], edge]), np.concatenate([windows[near], [3, 3]])
