"""What a study hands back: the Pareto front as a table, `trials.csv` and `pareto.png`."""
from __future__ import annotations

import io
from pathlib import Path

import optuna
import pandas as pd
from optuna.trial import FrozenTrial

from nas.budget import Budget
from nas.core.atomic import atomic_write_bytes, atomic_write_text
from nas.study.trials import pareto_front

COST_KEYS = ("macs_per_second", "cpu_share", "instructions_per_second", "ram_bytes", "flash_bytes", "macs",
             "params", "arena_bytes")


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    front = {t.number for t in pareto_front(study)}
    rows = []
    for t in study.get_trials(deepcopy=False):
        ua = t.user_attrs
        row = {"trial": t.number, "state": t.state.name, "pareto": t.number in front,
               "reference": ua.get("reference", ""), "val_accuracy": t.values[0] if t.values else None}
        row.update({k: ua.get(k) for k in COST_KEYS})
        row.update({"feasible": ua.get("feasible"), "train_seconds": ua.get("train_seconds"),
                    "best_epoch": ua.get("best_epoch"),
                    "reason": ua.get("reject_reason") or ua.get("prune_reason") or ua.get("fail_reason") or ""})
        row.update({f"param_{k}": v for k, v in t.params.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def plot_pareto(df: pd.DataFrame, budget: Budget) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = df[df.state == "COMPLETE"]
    front = done[done.pareto]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    compute = ("macs_per_second", 1e6, "M MAC/s", budget.limits.macs_per_second)
    if budget.objectives.compute == "cpu_share":
        compute = ("cpu_share", 0.01, "CPU share (%)", budget.limits.cpu_share)
    panels = [compute, ("ram_bytes", 1024, "RAM (kB)", budget.limits.ram_bytes)]
    for ax, (key, scale, label, limit) in zip(axes, panels):
        ax.scatter(done[key] / scale, done.val_accuracy, s=18, c="0.65", label="trained")
        ax.scatter(front[key] / scale, front.val_accuracy, s=36, c="tab:red", label="Pareto front")
        order = front.sort_values(key)
        ax.step(order[key] / scale, order.val_accuracy, where="post", c="tab:red", lw=1)
        refs = done[done.reference != ""]
        for _, r in refs.iterrows():
            ax.annotate(r.reference, (r[key] / scale, r.val_accuracy), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        if limit is not None:
            ax.axvline(limit / scale, c="k", ls="--", lw=1, label="budget")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("validation accuracy (clip)")
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(f"Pareto front on {budget.name}", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def front_table(front: list[FrozenTrial]) -> str:
    head = ("trial", "model", "val acc", "MAC/s", "CPU", "RAM kB", "FLASH kB", "params", "input", "network")
    rows = [head]
    for t in front:
        p, ua = t.params, t.user_attrs
        inp = f"{p['sample_rate'] / 1000:g}k/{p['n_mels']}m/{p['frames']}f/ov{p['overlap']:g}"
        net = (f"{'DS' if p['conv_type'] == 'depthwise_separable' else 'std'} "
               f"{p['downsampling']} {p['blocks']}x{p['kernel']}x{p['kernel']} f{p['base_filters']}"
               f"*{p['growth']:g} {p['head']} d{p['dense_units']}")
        cpu = ua.get("cpu_share")
        rows.append((str(t.number), ua.get("reference", ""), f"{t.values[0]:.3f}",
                     f"{ua.get('macs_per_second', 0) / 1e6:.2f} M", "?" if cpu is None else f"{cpu:.1%}",
                     f"{t.values[2] / 1024:.1f}", f"{ua.get('flash_bytes', 0) / 1024:.1f}",
                     f"{ua.get('params', 0):,}", inp, net))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def summarise(study: optuna.Study, budget: Budget, out: Path) -> str:
    df = trials_frame(study)
    atomic_write_text(out / "trials.csv", df.to_csv(index=False))
    counts = df.state.value_counts().to_dict() if len(df) else {}
    rejected = int((df.feasible == False).sum()) if len(df) else 0  # noqa: E712 (pandas)
    lines = [f"{sum(counts.get(s, 0) for s in ('COMPLETE', 'PRUNED', 'FAIL'))} finished trials: "
             f"{counts.get('COMPLETE', 0)} trained, {rejected} rejected before training, "
             f"{counts.get('PRUNED', 0) - rejected} stopped early, {counts.get('FAIL', 0)} failed"
             + (f" ({counts.get('WAITING', 0)} queued, {counts.get('RUNNING', 0)} running)"
                if counts.get("WAITING") or counts.get("RUNNING") else "")]
    front = pareto_front(study)
    if front:
        atomic_write_bytes(out / "pareto.png", plot_pareto(df, budget))
        lines += ["", f"Pareto front ({len(front)} models, all within {budget.name}):", front_table(front),
                  "", f"wrote {out / 'trials.csv'} and {out / 'pareto.png'}"]
    else:
        lines += ["no trained model within the budget yet", f"wrote {out / 'trials.csv'}"]
    return "\n".join(lines)
