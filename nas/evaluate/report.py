"""What the final stage hands back: a table of test_accuracy per model (float and int8, mean ± std
over seeds and splits), `evaluation.csv`, `evaluation_per_class.csv` and one confusion-matrix PNG per
model (int8, summed over its runs, rows normalised)."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from nas.core.atomic import atomic_write_bytes, atomic_write_text
from nas.data.urbansound import CLASSES
from nas.evaluate import unknown
from nas.study.metrics import VAL_SCORE, legend
from nas.study.record import TrialRecord


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample std; std is None (shown as n/a) for a single value."""
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), (float(arr.std(ddof=1)) if len(arr) > 1 else None)


def summary(records: list[dict], trials) -> pd.DataFrame:
    costs = {t.number: t for t in trials}
    rows = []
    for (number, model), group in pd.DataFrame(records).groupby(["trial", "model"], sort=False):
        f_mean, f_std = _mean_std(group.test_accuracy.tolist())
        q_mean, q_std = _mean_std(group.test_accuracy_int8.tolist())
        rec = TrialRecord.of(costs[number])
        rows.append({"trial": int(number), "model": model, "runs": len(group),
                     "splits": ";".join(sorted(set(group.split))),
                     "test_accuracy_mean": round(f_mean, 4),
                     "test_accuracy_std": None if f_std is None else round(f_std, 4),
                     "test_accuracy_int8_mean": round(q_mean, 4),
                     "test_accuracy_int8_std": None if q_std is None else round(q_std, 4),
                     "val_score_mean": round(float(group.val_score.mean()), 4),
                     "qat_runs": int((group.int8_method == "qat").sum()),
                     **_costs(rec)})
    return pd.DataFrame(rows)


def _costs(rec: TrialRecord) -> dict:
    """The trial's costs as trials.csv writes them: whole MAC/s and bytes, the CPU share to 1e-6."""
    whole = {k: None if rec.cost(k) is None else round(rec.cost(k)) for k in ("macs_per_second", "ram_bytes",
                                                                              "flash_bytes")}
    return {**whole, "cpu_share": None if rec.cpu_share is None else round(float(rec.cpu_share), 6)}


def per_class(records: list[dict]) -> pd.DataFrame:
    rows = []
    for (number, model), group in pd.DataFrame(records).groupby(["trial", "model"], sort=False):
        for kind, column in (("float", "test_per_class"), ("int8", "test_per_class_int8")):
            per = np.array([[np.nan if v is None else v for v in row] for row in group[column]], dtype=np.float64)
            rows.append({"trial": int(number), "model": model, "kind": kind,
                         **{name: round(float(np.nanmean(per[:, i])), 4) if not np.isnan(per[:, i]).all() else None
                            for i, name in enumerate(CLASSES[:per.shape[1]])}})
    return pd.DataFrame(rows)


def confusion_png(records: list[dict], title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    total = np.sum([np.asarray(r["test_confusion_int8"]) for r in records], axis=0)
    share = total / np.maximum(total.sum(axis=1, keepdims=True), 1)
    names = CLASSES[:total.shape[0]]
    fig, ax = plt.subplots(figsize=(7.2, 6.2))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(total.shape[0]):
        for j in range(total.shape[1]):
            if total[i, j]:
                ax.text(j, i, f"{share[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if share[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("predicted (int8)")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def selection(records: list[dict], own: str) -> str:
    """Which model each selection rule picks and what the test folds, read afterwards, say of it:
    the validation score on the study's split (`own`) against the mean over every split of the
    selection rotation (more validation clips)."""
    df = pd.DataFrame(records)
    mine = df[df.split == own]
    by = pd.DataFrame({"own": mine.groupby("trial").val_score.mean(), "rotation": df.groupby("trial").val_score.mean(),
                       "test": mine.groupby("trial").test_accuracy_int8.mean()}).dropna()
    if by.empty:
        return "selection: no model has runs on every split"
    best = by.test.idxmax()
    lines = ["", f"selection over {df.split.nunique()} splits ({'; '.join(sorted(df.split.unique()))}):"]
    for rule, label in (("own", f"validation on the study's split ({own})"), ("rotation", "mean over the rotation")):
        pick = by[rule].idxmax()
        lines.append(f"  by {label}: trial {pick} (val_score {100 * by[rule][pick]:.1f} %), test_accuracy int8 "
                     f"{100 * by.test[pick]:.1f} %, {100 * (by.test[best] - by.test[pick]):.1f} points below the "
                     f"best on test (trial {best})")
    return "\n".join(lines)


def _pm(mean: float, std: float | None) -> str:
    return f"{mean * 100:5.1f} % ± {'n/a' if std is None or np.isnan(std) else f'{std * 100:.1f}'}"


def write(records: list[dict], trials, out: Path, study_name: str, target_precision: float = 0.9) -> str:
    """Write the CSVs and PNGs; return the table to print."""
    if not records:
        return "no evaluation runs"
    table = summary(records, trials)
    unk = unknown.columns(records, target_precision)
    if len(unk):
        table = table.merge(unk, on="trial", how="left")
    atomic_write_text(out / "evaluation.csv", table.to_csv(index=False))
    atomic_write_text(out / "evaluation_per_class.csv", per_class(records).to_csv(index=False))
    curves = unknown.curves_frame(records)
    if len(curves):
        atomic_write_text(out / "unknown_curves.csv", curves.to_csv(index=False))
    lines = ["", "final stage: test folds read once, after training and selection on the validation folds; "
             f"best val_score first ({legend(VAL_SCORE)}; test_accuracy: the share of test clips classified "
             "correctly, mean ± std over the runs)", ""]
    width = max(len(m) for m in table.model)
    ordered = table.sort_values("val_score_mean", ascending=False, kind="stable")
    for _, r in ordered.iterrows():
        runs = [x for x in records if x["trial"] == r.trial]
        png = out / f"confusion_trial_{r.trial}.png"
        atomic_write_bytes(png, confusion_png(runs, f"study {study_name}, trial {r.trial} {r.model}: int8, "
                                                    f"{len(runs)} run(s), test_accuracy {_pm(r.test_accuracy_int8_mean, r.test_accuracy_int8_std)}"))
        lines.append(f"trial {r.trial:>4} {r.model:<{width}} val_score {100 * r.val_score_mean:4.1f} %  "
                     f"test_accuracy float {_pm(r.test_accuracy_mean, r.test_accuracy_std)}  "
                     f"int8 {_pm(r.test_accuracy_int8_mean, r.test_accuracy_int8_std)}  ({r.runs} runs, {r.qat_runs} QAT)  "
                     f"MAC/s {r.macs_per_second / 1e6:.2f} M  RAM {r.ram_bytes / 1024:.1f} kB")
    written = [out / "evaluation.csv", out / "evaluation_per_class.csv", "confusion_trial_<n>.png"]
    if len(curves):
        lines += _unknown_lines(ordered, records, out, study_name, target_precision, width)
        written += [out / "unknown_curves.csv", "unknown_trial_<n>.png"]
    lines.append("wrote " + ", ".join(map(str, written)))
    return "\n".join(lines)


def _unknown_lines(ordered: pd.DataFrame, records: list[dict], out: Path, study_name: str, target: float,
                   width: int) -> list[str]:
    """The "unknown" block of the table, and one precision/recall plot per model."""
    lines = ["", f"unknown (int8): per run, the lowest threshold whose precision reaches {target:.0%} on the "
             "validation folds, then read once on the test folds; precision = labelled clips right, recall = "
             "all clips labelled right", ""]
    for _, r in ordered.iterrows():
        runs = [x for x in records if x["trial"] == r.trial and x.get("val_unknown_curve")]
        if not runs:
            continue
        atomic_write_bytes(out / f"unknown_trial_{r.trial}.png",
                           unknown.png(runs, f"study {study_name}, trial {r.trial} {r.model}: int8, validation "
                                             f"folds, {len(runs)} run(s) pooled", target))
        lines.append(unknown.line(r, width))
    return lines
