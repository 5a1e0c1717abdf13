"""What a study hands back: the summary, the Pareto front as a table, `trials.csv`, `curves.csv`,
`pareto.png` and `pareto.html` (`nas.search.plots`).

Both tables are lists of columns (`TRIAL_COLUMNS`, `FRONT_COLUMNS`): a new figure is one more line.
`trials.csv` has one row per trial, integers as integers and numbers rounded to what they mean;
`curves.csv` has the per-epoch val_accuracy in long format (trial, epoch, val_accuracy), epoch 0-based
as Optuna's intermediate-value steps. The two validation figures are named as everywhere
(`nas.study.metrics`): `val_score` (the objective: the mean over a trial's runs, ± their std) and
`val_accuracy`. The summary names the recommended model first: the highest val_score within the
budget (`recommend`).
"""
from __future__ import annotations

import shutil
import statistics
import sys
import textwrap
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
from nas.study.metrics import VAL_ACCURACY, VAL_SCORE, legend
from nas.study.record import TrialRecord
from nas.study.trials import pareto_front

OUTCOMES = ("trained", "rejected", "stopped", "failed", "reused", "replaced", "interrupted", "running", "queued")
ALTERNATIVE_MARGIN = 0.02    # a front model this close in val_score is named as the cheaper alternative


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
    def score(self) -> float | None:
        """val_score: the objective (mean over the runs) of a trained or reused trial."""
        return self.t.values[0] if self.t.values else None

    @property
    def score_std(self) -> float | None:
        scores = self.rec.seed_scores or []
        return statistics.stdev(scores) if len(scores) > 1 else None

    @property
    def best_rung_score(self) -> float | None:
        """The best val_score a stopped trial reached at a rung."""
        return max((self.rec.rungs or {}).values(), default=None)

    @property
    def accuracy(self) -> float | None:
        """val_accuracy, mean over the runs."""
        return statistics.fmean(self.seeds) if self.seeds else None

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
    Column(VAL_SCORE, lambda v: v.score, f"float{ACCURACY_DECIMALS}"),
    Column(f"{VAL_SCORE}_std", lambda v: v.score_std, f"float{ACCURACY_DECIMALS}"),
    Column(VAL_ACCURACY, lambda v: v.accuracy, f"float{ACCURACY_DECIMALS}"),
    Column(f"{VAL_ACCURACY}_std", lambda v: v.accuracy_std, f"float{ACCURACY_DECIMALS}"),
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
    """Long format: one row per (trial, epoch) with its val_accuracy."""
    rows = [{"trial": v.t.number, "model": v.name, "outcome": v.outcome, "epoch": e,
             VAL_ACCURACY: round(float(a), ACCURACY_DECIMALS)} for v in trials for e, a in v.curve]
    return pd.DataFrame(rows, columns=["trial", "model", "outcome", "epoch", VAL_ACCURACY])


def _score_text(v: TrialView) -> str:
    text = f"{v.score:.3f}"
    if v.score_std is not None:
        text += f" ± {v.score_std:.3f} ({v.n_seeds} seeds)"
    return text


def _accuracy_text(v: TrialView) -> str:
    return "?" if v.accuracy is None else f"{v.accuracy:.3f}"


def _input_text(v: TrialView) -> str:
    fe = v.spec.frontend
    return f"{fe.sample_rate / 1000:g}k/{fe.n_mels}m/{fe.frames}f/ov{fe.overlap:g}"


FRONT_COLUMNS: list[tuple[str, Callable[[TrialView], str]]] = [
    ("trial", lambda v: str(v.t.number)),
    ("model", lambda v: v.name),
    (VAL_SCORE, _score_text),
    (VAL_ACCURACY, _accuracy_text),
    ("MAC/s", lambda v: f"{v.rec.macs_per_second / 1e6:.2f} M"),
    ("CPU", lambda v: "?" if v.rec.cpu_share is None else f"{v.rec.cpu_share:.1%}"),
    ("RAM kB", lambda v: f"{v.rec.ram_bytes / 1024:.1f}"),
    ("FLASH kB", lambda v: f"{v.rec.flash_bytes / 1024:.1f}"),
    ("params", lambda v: f"{v.rec.params:,}"),
    ("input", _input_text),
    ("network", lambda v: v.network),
]
MIN_NETWORK_COLUMNS = 24   # a narrower network column is shown on lines of its own below each row
NETWORK_INDENT = 7
LEGEND = (legend(VAL_SCORE), legend(VAL_ACCURACY),
          "input: kHz/mel bands/frames per window/overlap; network: cF KxK = conv with F filters, dwKxK = depthwise, "
          "/2 = stride 2, mpAxB = max-pool, gap = global average pool, dN = dense, · between blocks")


def front_table(front: list[TrialView], columns=FRONT_COLUMNS, width: int | None = None) -> str:
    """The front, one model a row; within `width` columns (a terminal's) the last column (the network)
    continues on indented lines, broken between blocks, so no row wraps on the screen."""
    rows = [tuple(h for h, _ in columns)] + [tuple(f(v) for _, f in columns) for v in front]
    widths = [max(len(r[i]) for r in rows) for i in range(len(columns))]
    indent = sum(widths[:-1]) + 2 * (len(columns) - 1)
    below = width is not None and width - indent < MIN_NETWORK_COLUMNS   # too narrow: the network goes below
    indent = NETWORK_INDENT if below else indent
    blocks = []
    for r in rows:
        head = "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths))
        parts = _wrap_blocks(r[-1], width - indent) if width else [r[-1]]
        blocks.append(([head.rstrip()] if below else [(head + "  " + parts.pop(0)).rstrip()]) +
                      [" " * indent + p for p in parts])
    lines = [line for block in blocks for line in block]
    rule = "-" * min(max(len(line) for line in lines), width or len(lines[0]) + 10**6)
    return "\n".join([*blocks[0], rule, *lines[len(blocks[0]):]])


def _wrap_blocks(text: str, room: int) -> list[str]:
    """`text` in pieces of at most `room` characters, broken after a block separator ` · `."""
    pieces, line = [], ""
    for block in text.split(" · "):
        candidate = f"{line} · {block}" if line else block
        if line and len(candidate) + 2 > room:          # room for the trailing " ·"
            pieces.append(line + " ·")
            line = block
        else:
            line = candidate
    return pieces + [line]


def terminal_width() -> int | None:
    """The terminal's columns when stdout is one, else None (a log file keeps one row per model)."""
    return shutil.get_terminal_size().columns if sys.stdout.isatty() else None


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


def within(v: TrialView, budget: Budget) -> bool:
    """Whether `v`'s recorded costs fit every limit of `budget`."""
    lim, rec = budget.limits, v.rec
    if None in (rec.ram_bytes, rec.flash_bytes, rec.macs_per_second):
        return False
    return (rec.ram_bytes <= lim.ram_bytes and rec.flash_bytes <= lim.flash_bytes
            and rec.macs_per_second <= lim.macs_per_second
            and (lim.cpu_share is None or (rec.cpu_share is not None and rec.cpu_share <= lim.cpu_share)))


def recommend(trials: list[TrialView], budget: Budget) -> TrialView | None:
    """The model to pick: the highest val_score among the trained models within `budget` (the lower
    compute and RAM on a tie); None when none is."""
    fits = [v for v in trials if v.outcome == "trained" and v.score is not None and within(v, budget)]
    return max(fits, key=lambda v: (v.score, -v.rec.macs_per_second, -v.rec.ram_bytes), default=None)


def recommendation(trials: list[TrialView], budget: Budget, study: str) -> list[str]:
    """The answer first: which model, why, what it costs, a cheaper one nearly as good, how to export it."""
    best = recommend(trials, budget)
    if best is None:
        return ["no trained model within the budget yet"]
    n = sum(1 for v in trials if v.outcome == "trained" and within(v, budget))
    lines = [f"Recommended: trial {best.t.number} {best.name}, the highest {VAL_SCORE} of the {n} trained models "
             f"within {budget.name}",
             f"  {VAL_SCORE} {_score_text(best)}, {VAL_ACCURACY} {_accuracy_text(best)}; {_costs_text(best)}"]
    cheaper = [v for v in trials if v.pareto and v is not best and v.score is not None and within(v, budget)
               and v.score >= best.score - ALTERNATIVE_MARGIN and v.rec.macs_per_second < best.rec.macs_per_second]
    if cheaper:
        alt = min(cheaper, key=lambda v: v.rec.macs_per_second)
        lines.append(f"  within {ALTERNATIVE_MARGIN} of it for less compute: trial {alt.t.number} {alt.name}, "
                     f"{VAL_SCORE} {alt.score:.3f}; {_costs_text(alt)}")
    lines.append(f"  export it: python -m nas.export --study {study} --trial {best.t.number}")
    return lines


def _costs_text(v: TrialView) -> str:
    cpu = "?" if v.rec.cpu_share is None else f"{v.rec.cpu_share:.1%}"
    return (f"MAC/s {v.rec.macs_per_second / 1e6:.2f} M, CPU {cpu}, RAM {v.rec.ram_bytes / 1024:.1f} kB, "
            f"FLASH {v.rec.flash_bytes / 1024:.1f} kB")


def summarise(study: optuna.Study, budget: Budget, out: Path, width: int | None = -1) -> str:
    """Write trials.csv, curves.csv, pareto.png and pareto.html into `out`; return the summary text:
    the counts, the recommended model, then the front table fitted to `width` columns (default: the
    terminal's, when stdout is one)."""
    width = terminal_width() if width == -1 else width
    trials = views(study)
    atomic_write_text(out / "trials.csv", trials_frame(trials).to_csv(index=False))
    atomic_write_text(out / "curves.csv", curves_frame(trials).to_csv(index=False))
    written = [out / "trials.csv", out / "curves.csv"]
    lines = [counts_line(trials), "", *recommendation(trials, budget, study.study_name)]
    front = sorted((v for v in trials if v.pareto), key=lambda v: v.rec.macs_per_second)
    if front:
        points = plots.points(trials)
        atomic_write_bytes(out / "pareto.png", plots.pareto_png(points, budget))
        atomic_write_text(out / "pareto.html", plots.pareto_html(points, budget))
        written += [out / "pareto.png", out / "pareto.html"]
        lines += ["", f"Pareto front ({len(front)} models, all within {budget.name}):", front_table(front, width=width),
                  *(textwrap.fill(line, width) if width else line for line in LEGEND)]
    return "\n".join(lines + ["", "wrote " + ", ".join(map(str, written))])
