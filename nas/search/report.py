"""What a study hands back: the summary, the Pareto front as a table, `trials.csv`, `curves.csv`,
`pareto.png` and `pareto.html` (`nas.search.plots`).

Both tables are lists of columns (`TRIAL_COLUMNS`, `FRONT_COLUMNS`): a new figure is one more line.
`trials.csv` has one row per trial, integers as integers and numbers rounded to what they mean;
`curves.csv` has the per-epoch validation accuracy in long format (trial, epoch, val_accuracy), epoch
0-based as Optuna's intermediate-value steps. A trial retrained on several seeds (user attribute
`seed_accuracies`) shows their mean ± std and the count.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from nas.arch.spec import ArchSpec
from nas.budget import Budget
from nas.core.atomic import atomic_write_bytes, atomic_write_text
from nas.search import plots
from nas.search.records import ACCURACY_DECIMALS, network_summary
from nas.study.record import TrialRecord
from nas.study.study import study_mode
from nas.study.trials import most_accurate, pareto_front

OUTCOMES = ("trained", "rejected", "stopped", "failed", "reused", "replaced", "interrupted", "running", "queued")


@dataclass
class TrialView:
    """One trial as the tables see it: outcome, name, accuracy (mean over seeds when retrained)."""

    t: FrozenTrial
    pareto: bool = False

    @cached_property
    def rec(self) -> TrialRecord:
        return TrialRecord.of(self.t)

    @property
    def outcome(self) -> str:
        state = self.t.state
        if self.rec.replaced_by is not None:
            return "replaced"      # the sampler proposed a tried point: the slot went to a fresh one, not counted
        if self.rec.duplicate_of is not None and state in (TrialState.COMPLETE, TrialState.PRUNED):
            return "reused"        # the sampler proposed finished parameters again: nothing was trained
        if state == TrialState.COMPLETE:
            return "trained"
        if state == TrialState.PRUNED:
            return "rejected" if self.rec.feasible is False else "stopped"
        if state == TrialState.FAIL:
            return "failed" if self.rec.fail_reason is not None else "interrupted"
        return "running" if state == TrialState.RUNNING else "queued"

    @cached_property
    def spec(self) -> ArchSpec | None:
        return self.rec.arch()

    @property
    def name(self) -> str:
        return self.rec.name

    @property
    def network(self) -> str:
        return self.rec.network or (network_summary(self.spec) if self.spec else "")

    @property
    def seeds(self) -> list[float]:
        return [float(a) for a in self.rec.seed_accuracies or []]

    @property
    def accuracy(self) -> float | None:
        if self.seeds:
            return statistics.fmean(self.seeds)
        return self.t.values[0] if self.t.values else None

    @property
    def accuracy_std(self) -> float | None:
        return statistics.stdev(self.seeds) if len(self.seeds) > 1 else None

    @property
    def n_seeds(self) -> int | None:
        return len(self.seeds) or (1 if self.t.values else None)

    @property
    def curve(self) -> list[tuple[int, float]]:
        """(epoch, validation accuracy): the intermediate values, else the older `curve` attribute."""
        if self.t.intermediate_values:
            return sorted(self.t.intermediate_values.items())
        return list(enumerate(self.rec.curve or []))

    @property
    def reason(self) -> str:
        if self.outcome == "interrupted":
            return "interrupted (redone when the search is rerun)"
        return self.rec.reason


@dataclass(frozen=True)
class Column:
    """One column: its name, how a trial gives its value, and its type in the CSV ('int', 'float1',
    'float4', 'bool', 'str': floats rounded to that many decimals)."""

    name: str
    value: Callable[[TrialView], Any]
    kind: str = "str"


def _rec(key: str) -> Callable[[TrialView], Any]:
    return lambda v: getattr(v.rec, key)


TRIAL_COLUMNS = [
    Column("trial", lambda v: v.t.number, "int"),
    Column("outcome", lambda v: v.outcome),
    Column("pareto", lambda v: v.pareto, "bool"),
    Column("model", lambda v: v.name),
    Column("val_accuracy", lambda v: v.accuracy, f"float{ACCURACY_DECIMALS}"),
    Column("val_accuracy_std", lambda v: v.accuracy_std, f"float{ACCURACY_DECIMALS}"),
    Column("n_seeds", lambda v: v.n_seeds, "int"),
    Column("macs_per_second", _rec("macs_per_second"), "int"),
    Column("cpu_share", _rec("cpu_share"), "float6"),
    Column("instructions_per_second", _rec("instructions_per_second"), "int"),
    Column("ram_bytes", _rec("ram_bytes"), "int"),
    Column("flash_bytes", _rec("flash_bytes"), "int"),
    Column("macs", _rec("macs"), "int"),
    Column("params", _rec("params"), "int"),
    Column("arena_bytes", _rec("arena_bytes"), "int"),
    Column("epochs", lambda v: len(v.curve) or None, "int"),
    Column("best_epoch", _rec("best_epoch"), "int"),
    Column("train_seconds", _rec("train_seconds"), "float1"),
    Column("network", lambda v: v.network),
    Column("reason", lambda v: v.reason),
]


def views(study: optuna.Study) -> list[TrialView]:
    front = {t.number for t in pareto_front(study)}
    return [TrialView(t, t.number in front) for t in study.get_trials(deepcopy=False)]


def _typed(values: list, kind: str) -> pd.Series:
    if kind == "int":
        return pd.Series([None if v is None else round(v) for v in values], dtype="Int64")
    if kind.startswith("float"):
        return pd.Series([None if v is None else round(float(v), int(kind[5:])) for v in values], dtype="Float64")
    if kind == "bool":
        return pd.Series(values, dtype="boolean")
    return pd.Series(["" if v is None else str(v) for v in values], dtype="string")


def trials_frame(trials: list[TrialView], columns: list[Column] = TRIAL_COLUMNS) -> pd.DataFrame:
    """One row per trial: `columns`, then the sampled parameters as `param_<name>`."""
    df = pd.DataFrame({c.name: _typed([c.value(v) for v in trials], c.kind) for c in columns})
    params = pd.DataFrame([{f"param_{k}": p for k, p in v.t.params.items()} for v in trials], index=df.index)
    return pd.concat([df, params], axis=1)


def curves_frame(trials: list[TrialView]) -> pd.DataFrame:
    """Long format: one row per (trial, epoch) with its validation accuracy."""
    rows = [{"trial": v.t.number, "model": v.name, "outcome": v.outcome, "epoch": e,
             "val_accuracy": round(float(a), ACCURACY_DECIMALS)} for v in trials for e, a in v.curve]
    return pd.DataFrame(rows, columns=["trial", "model", "outcome", "epoch", "val_accuracy"])


def _accuracy_text(v: TrialView) -> str:
    text = f"{v.accuracy:.3f}"
    if v.accuracy_std is not None:
        text += f" ± {v.accuracy_std:.3f} ({v.n_seeds} seeds)"
    return text


def _input_text(v: TrialView) -> str:
    fe = v.spec.frontend
    return f"{fe.sample_rate / 1000:g}k/{fe.n_mels}m/{fe.frames}f/ov{fe.overlap:g}"


FRONT_COLUMNS: list[tuple[str, Callable[[TrialView], str]]] = [
    ("trial", lambda v: str(v.t.number)),
    ("model", lambda v: v.name),
    ("val acc", _accuracy_text),
    ("MAC/s", lambda v: f"{v.rec.macs_per_second / 1e6:.2f} M"),
    ("CPU", lambda v: "?" if v.rec.cpu_share is None else f"{v.rec.cpu_share:.1%}"),
    ("RAM kB", lambda v: f"{v.rec.ram_bytes / 1024:.1f}"),
    ("FLASH kB", lambda v: f"{v.rec.flash_bytes / 1024:.1f}"),
    ("params", lambda v: f"{v.rec.params:,}"),
    ("input", _input_text),
    ("network", lambda v: v.network),
]
LEGEND = ("input: kHz/mel bands/frames per window/overlap; network: cF KxK = conv with F filters, dwKxK = "
          "depthwise, /2 = stride 2, mpAxB = max-pool, gap = global average pool, dN = dense, · between blocks")


def front_table(front: list[TrialView], columns=FRONT_COLUMNS) -> str:
    rows = [tuple(h for h, _ in columns)] + [tuple(f(v) for _, f in columns) for v in front]
    widths = [max(len(r[i]) for r in rows) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "-" * max(len(line) for line in lines))
    return "\n".join(lines)


def counts_line(trials: list[TrialView]) -> str:
    """`24 finished trials: 18 trained, ...`; interrupted, running and queued ones said apart."""
    n = {o: 0 for o in OUTCOMES}
    for v in trials:
        n[v.outcome] += 1
    done = sum(n[o] for o in ("trained", "rejected", "stopped", "failed", "reused"))
    line = (f"{done} finished trials: {n['trained']} trained, {n['rejected']} rejected before training, "
            f"{n['stopped']} stopped early, {n['failed']} failed")
    if n["reused"]:
        line += f", {n['reused']} reused the result of the same parameters"
    if n["replaced"]:
        line += f" (and {n['replaced']} re-proposals of a tried point, each replaced by a fresh one, not counted)"
    extra = [f"{n[o]} {o}" for o in ("interrupted", "running", "queued") if n[o]]
    if n["interrupted"]:
        extra[0] += " (redone when you rerun the same command)"
    return line + (f"; {', '.join(extra)}" if extra else "")


def summarise(study: optuna.Study, budget: Budget, out: Path) -> str:
    """Write trials.csv, curves.csv, pareto.png and pareto.html into `out`; return the summary text."""
    trials = views(study)
    atomic_write_text(out / "trials.csv", trials_frame(trials).to_csv(index=False))
    atomic_write_text(out / "curves.csv", curves_frame(trials).to_csv(index=False))
    written = [out / "trials.csv", out / "curves.csv"]
    lines = [counts_line(trials)]
    best = most_accurate(study) if study_mode(study) == "accuracy" else None
    if best is not None:
        v = next(v for v in trials if v.t.number == best.number)
        lines.append(f"Most accurate model within {budget.name}: trial {v.t.number} {v.name}, val acc "
                     f"{_accuracy_text(v)}, MAC/s {v.rec.macs_per_second / 1e6:.2f} M, RAM {v.rec.ram_bytes / 1024:.1f} kB")
    front = sorted((v for v in trials if v.pareto), key=lambda v: v.rec.macs_per_second)
    if front:
        points = plots.points(trials)
        atomic_write_bytes(out / "pareto.png", plots.pareto_png(points, budget))
        atomic_write_text(out / "pareto.html", plots.pareto_html(points, budget))
        written += [out / "pareto.png", out / "pareto.html"]
        lines += ["", f"Pareto front ({len(front)} models, all within {budget.name}):", front_table(front), LEGEND]
    else:
        lines += ["no trained model within the budget yet"]
    return "\n".join(lines + ["", "wrote " + ", ".join(map(str, written))])
