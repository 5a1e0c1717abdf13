"""Linear heads on the frozen teacher embeddings, and their out-of-fold scores.

A head is multinomial logistic regression on standardised embeddings (L-BFGS, L2 penalty), fitted in
torch (float32, at most `MAX_ITER` iterations: seconds for thousands of clips). A head scoring the
clips it was fitted on mostly repeats their labels, so the soft targets of training clips are
cross-fitted: each clip is scored by a head that never saw its recording. The groups are `GROUPS`
sets of whole recordings (fsID), balanced by clip count, across all training folds: each head sees
four fifths of the clips (whole folds as groups left each head of a two-fold split one fold, and
its targets far worse: docs/results.md, "More training clips"). The L2 strength
is the grid value whose out-of-fold scores have the lowest log-loss: chosen on the training folds alone.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1)
GROUPS = 5
MAX_ITER = 100


@dataclass(frozen=True)
class Head:
    mean: np.ndarray        # [D] standardisation
    std: np.ndarray         # [D]
    weight: np.ndarray      # [D, C]
    bias: np.ndarray        # [C]
    l2: float

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        z = ((np.asarray(x, np.float64) - self.mean) / self.std) @ self.weight + self.bias
        z -= z.max(axis=-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=-1, keepdims=True)


def fit(x: np.ndarray, y: np.ndarray, num_classes: int, l2: float) -> Head:
    """Minimise mean cross-entropy + l2/2 * |W|^2 over standardised `x` [N, D]."""
    x = np.asarray(x, np.float64)
    mean, std = x.mean(0), x.std(0) + 1e-6
    xs = torch.from_numpy(((x - mean) / std).astype(np.float32))
    yt = torch.from_numpy(np.asarray(y, np.int64))
    w = torch.zeros(x.shape[1], num_classes, requires_grad=True)
    b = torch.zeros(num_classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=MAX_ITER, tolerance_grad=1e-6, tolerance_change=1e-9,
                            history_size=20, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        opt.zero_grad()
        value = torch.nn.functional.cross_entropy(xs @ w + b, yt) + 0.5 * l2 * w.square().sum()
        value.backward()
        return value

    opt.step(loss)
    return Head(mean=mean, std=std, weight=w.detach().double().numpy(), bias=b.detach().double().numpy(), l2=l2)


def groups(fs_id: np.ndarray, n: int = GROUPS) -> np.ndarray:
    """Cross-fitting group per clip: one of `n` sets of whole recordings, filled largest recording
    first into the smallest set (deterministic)."""
    ids, counts = np.unique(fs_id, return_counts=True)
    size = np.zeros(n, np.int64)
    of = {}
    for i in np.lexsort((ids, -counts)):
        g = int(np.argmin(size))
        of[int(ids[i])] = g
        size[g] += counts[i]
    return np.array([of[int(f)] for f in fs_id], np.int64)


def out_of_fold(x: np.ndarray, y: np.ndarray, group: np.ndarray, num_classes: int,
                l2: float) -> tuple[np.ndarray, dict[int, Head]]:
    """([N, C] each row scored by a head fitted on the other groups' rows, group → that head)."""
    out = np.zeros((len(y), num_classes))
    heads = {}
    for g in np.unique(group):
        held = group == g
        heads[int(g)] = fit(x[~held], y[~held], num_classes, l2)
        out[held] = heads[int(g)].probabilities(x[held])
    return out, heads


def log_loss(probs: np.ndarray, y: np.ndarray) -> float:
    return float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None)).mean())


def cross_fit(x: np.ndarray, y: np.ndarray, group: np.ndarray, num_classes: int,
              grid=L2_GRID) -> tuple[np.ndarray, float, dict[int, Head]]:
    """(out-of-fold probabilities, L2, group → head) for the grid value whose out-of-fold log-loss is lowest."""
    best = None
    for l2 in grid:
        probs, heads = out_of_fold(x, y, group, num_classes, l2)
        loss = log_loss(probs, y)
        if best is None or loss < best[0]:
            best = (loss, probs, l2, heads)
    return best[1], best[2], best[3]
