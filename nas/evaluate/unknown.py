"""The final stage's "unknown" report (`nas.quant.confidence`): per model, precision, recall and the
share of clips called unknown against the confidence threshold on the validation folds (pooled over
its runs: a plot and `unknown_curves.csv`), and, per run, the lowest threshold reaching the target
precision on validation, read once on the test folds (columns of `evaluation.csv`, lines of the
table). precision = labelled clips labelled correctly; recall = all clips labelled correctly;
unknown = clips left unlabelled."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd

from nas.quant import confidence as C

FIGURES = ("precision", "recall", "unknown")


def _curve(rec: dict, key: str) -> C.Curve | None:
    return C.Curve.from_dict(rec[key]) if rec.get(key) else None


def run_rows(records: list[dict], target: float) -> pd.DataFrame:
    """One row per run with curves: the threshold its validation curve picks for `target` (NaN when out
    of reach) and the figures there, on validation and on test."""
    rows = []
    for r in records:
        val, test = _curve(r, "val_unknown_curve"), _curve(r, "test_unknown_curve")
        if val is None or test is None:
            continue
        q = val.threshold_for(target)
        row = {"trial": r["trial"], "model": r["model"], "threshold": np.nan if q is None else C.probability(q)}
        for name, curve in (("val", val), ("test", test)):
            at = curve.at(q) if q is not None else {}
            row.update({f"{name}_{f}": np.nan if at.get(f) is None else at[f] for f in FIGURES})
        rows.append(row)
    return pd.DataFrame(rows, columns=["trial", "model", "threshold",
                                       *[f"{n}_{f}" for n in ("val", "test") for f in FIGURES]])


def columns(records: list[dict], target: float) -> pd.DataFrame:
    """Per trial: the target, how many runs reach it on validation, and the mean of each figure there."""
    runs = run_rows(records, target)
    out = []
    for number, group in runs.groupby("trial", sort=False):
        reached = group.dropna(subset=["threshold"])
        row = {"trial": int(number), "target_precision": target, "runs_reaching_target": len(reached)}
        for key in ("threshold", *[f"{n}_{f}" for n in ("val", "test") for f in FIGURES]):
            vals = reached[key].dropna()
            row[f"{key}_at_target"] = round(float(vals.mean()), 4) if len(vals) else None
        out.append(row)
    return pd.DataFrame(out)


def pooled(records: list[dict]) -> C.Curve | None:
    """The validation curves of `records` pooled (counts added)."""
    curves = [c for c in (_curve(r, "val_unknown_curve") for r in records) if c is not None]
    return sum(curves[1:], curves[0]) if curves else None


def curves_frame(records: list[dict]) -> pd.DataFrame:
    """Long format, one row per (trial, threshold): the pooled validation figures."""
    frames = []
    for (number, model), group in pd.DataFrame(records).groupby(["trial", "model"], sort=False):
        curve = pooled(group.to_dict("records"))
        if curve is None:
            continue
        frames.append(pd.DataFrame({"trial": int(number), "model": model, "min_score": C.THRESHOLDS,
                                    "probability": [C.probability(q) for q in C.THRESHOLDS],
                                    "precision": np.round(curve.precision, 4), "recall": np.round(curve.recall, 4),
                                    "unknown": np.round(curve.unknown, 4)}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def line(row: pd.Series, width: int) -> str:
    """One terminal line per model: threshold, validation recall, test precision/recall/unknown."""
    if not row.runs_reaching_target:
        return f"trial {row.trial:>4} {row.model:<{width}} precision {row.target_precision:.0%} not reached on validation"
    return (f"trial {row.trial:>4} {row.model:<{width}} unknown below p {row.threshold_at_target:.2f}  validation: "
            f"recall {row.val_recall_at_target:.1%}, unknown {row.val_unknown_at_target:.1%}  test: precision "
            f"{_pct(row.test_precision_at_target)}, recall {_pct(row.test_recall_at_target)}, unknown "
            f"{_pct(row.test_unknown_at_target)}  ({row.runs_reaching_target} runs)")


def _pct(v) -> str:
    return "n/a" if v is None or v != v else f"{v:.1%}"


def png(records: list[dict], title: str, target: float) -> bytes:
    """Precision, recall and unknown share against the threshold (mean top probability), validation
    folds, pooled over `records`' runs; each run's precision faint; the target and its threshold marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.array([C.probability(q) for q in C.THRESHOLDS])
    fig, ax = plt.subplots(figsize=(7.0, 4.4))
    for r in records:
        run = _curve(r, "val_unknown_curve")
        if run is not None:
            ax.plot(x, run.precision, c="tab:blue", lw=0.6, alpha=0.25)
    curve = pooled(records)
    ax.plot(x, curve.precision, c="tab:blue", lw=2, label="precision (labelled clips right)")
    ax.plot(x, curve.recall, c="tab:green", lw=2, ls="--", label="recall (all clips labelled right)")
    ax.plot(x, curve.unknown, c="0.4", lw=1.5, ls=":", label="unknown (clips left unlabelled)")
    ax.axhline(target, c="tab:red", lw=0.8, ls="--")
    q = curve.threshold_for(target)
    if q is not None:
        at = curve.at(q)
        ax.axvline(at["probability"], c="tab:red", lw=0.8)
        ax.annotate(f"precision {at['precision']:.2f} at recall {at['recall']:.2f}\n({at['unknown']:.0%} unknown)",
                    (at["probability"], target), xytext=(8, -36), textcoords="offset points", fontsize=8)
    top = x[np.flatnonzero(curve.labelled)[-1]] if curve.labelled.any() else 1.0
    ax.set_xlim(0, min(1.0, top + 0.05))
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("threshold: a clip's mean top probability below it is 'unknown'")
    ax.set_ylabel("share (validation folds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()
