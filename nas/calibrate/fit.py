"""Fit per-kernel instruction models: non-negative least squares on the loop trip-count features.

Rows are scaled by 1/measured (the fit minimises relative error, so small layers count as much as
large ones) and columns by their largest value (conditioning); coefficients are instructions per
trip of each loop level, hence non-negative. `holdout_errors` reports the relative error on calls
left out of the fit, which is what the shipped accuracy figures quote. `feats` is the trip-count
function (the library kernels' `nas.cost.cpu.features` by default; an own kernel's its own).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from scipy.optimize import nnls

from nas.cost.cpu import KernelCall, features


Features = Callable[[KernelCall], dict]


def design(calls: Sequence[KernelCall], feats: Features = features) -> tuple[list[str], np.ndarray]:
    rows = [feats(c) for c in calls]
    names = sorted({k for r in rows for k in r})
    return names, np.array([[r.get(k, 0.0) for k in names] for r in rows], dtype=np.float64)


def fit(calls: Sequence[KernelCall], counts: Sequence[int], feats: Features = features) -> dict[str, float]:
    names, x = design(calls, feats)
    y = np.asarray(counts, dtype=np.float64)
    w = 1.0 / np.maximum(y, 1.0)
    scale = np.maximum(np.abs(x).max(axis=0), 1.0)
    coef, _ = nnls((x / scale) * w[:, None], y * w, maxiter=50 * x.shape[1])
    coef = coef / scale
    return {n: float(c) for n, c in zip(names, coef) if c > 0}


def predict(coef: dict[str, float], call: KernelCall, feats: Features = features) -> float:
    return sum(coef.get(k, 0.0) * v for k, v in feats(call).items())


def relative_errors(coef: dict[str, float], calls: Sequence[KernelCall], counts: Sequence[int],
                    feats: Features = features) -> np.ndarray:
    pred = np.array([predict(coef, c, feats) for c in calls])
    y = np.asarray(counts, dtype=np.float64)
    return (pred - y) / y


def holdout_errors(calls: Sequence[KernelCall], counts: Sequence[int], folds: int = 5, seed: int = 0,
                   feats: Features = features) -> np.ndarray:
    """Relative error of every call predicted by a model fitted without it (k-fold)."""
    n = len(calls)
    order = np.random.default_rng(seed).permutation(n)
    err = np.empty(n)
    for f in range(folds):
        test = order[f::folds]
        train = np.setdiff1d(order, test)
        coef = fit([calls[i] for i in train], [counts[i] for i in train], feats)
        err[test] = relative_errors(coef, [calls[i] for i in test], [counts[i] for i in test], feats)
    return err
