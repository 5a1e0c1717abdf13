"""The Pareto picture: val_score (`nas.study.metrics`) against MAC/s, RAM and FLASH, one panel each.

A three-objective front is not a staircase in any 2-D projection, so it is drawn by membership:
front points filled (coloured by the objective not on the panel's x axis) and numbered with their
trial number, as in the front table; other trained trials grey; trials stopped early faint at the
best val_score they reached at a rung; rejected trials as faint ticks along the bottom at their cost (clipped
at the right edge when far over budget); dashed lines at the budget's limits. Reference models are
labelled by name, placed so that no label overlaps another or a front point (in the PNG; the HTML
shows every point's details on hover). `points` is the data behind both figures (tested),
`pareto_png` (matplotlib) and `pareto_html` (plotly, self-contained).
"""
from __future__ import annotations

import io
import math

import pandas as pd

from nas.budget import Budget
from nas.study.metrics import VAL_SCORE

PANELS = (("macs_per_second", 1e6, "MAC/s (millions, per second of audio)", "ram_bytes", "RAM kB", 1024),
          ("ram_bytes", 1024, "RAM (kB)", "macs_per_second", "M MAC/s", 1e6),
          ("flash_bytes", 1024, "FLASH (kB, a constraint)", None, None, None))
CPU_PANELS = (("cpu_share", 0.01, "CPU share (%, at the budget's clock)", "ram_bytes", "RAM kB", 1024),
              ("ram_bytes", 1024, "RAM (kB)", "cpu_share", "CPU %", 0.01), PANELS[2])
LIMITS = {"macs_per_second": "macs_per_second", "cpu_share": "cpu_share", "ram_bytes": "ram_bytes",
          "flash_bytes": "flash_bytes"}


def panels(budget: Budget) -> tuple:
    """The compute panel follows the study's compute objective (MAC/s or CPU share)."""
    return CPU_PANELS if budget.objectives.compute == "cpu_share" else PANELS
LABEL_OFFSETS = [(dx * r, dy * r) for r in (8, 18, 30, 44) for dx, dy in
                 ((1, 1), (1, -1), (-1, 1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1))]


def points(trials: list) -> pd.DataFrame:
    """`nas.search.report.TrialView`s → one row per drawable trial: kind (front / trained / stopped / rejected), val_score (y), costs, label.
    A rejected combination that gives no network has no costs (NaN): counted in the title, not drawn."""
    rows = []
    for v in trials:
        rec = v.rec
        if v.outcome not in ("trained", "stopped", "rejected") or (rec.macs_per_second is None
                                                                   and v.outcome != "rejected"):
            continue
        kind = "front" if v.pareto else v.outcome
        score = v.score if v.outcome == "trained" else v.best_rung_score
        ref = rec.reference or ""
        label = (f"{v.t.number} {ref}" if ref else str(v.t.number)) if v.pareto else ref
        rows.append({"trial": v.t.number, "kind": kind, "model": v.name, "reference": ref, VAL_SCORE: score,
                     "macs_per_second": rec.macs_per_second, "cpu_share": rec.cpu_share,
                     "ram_bytes": rec.ram_bytes, "flash_bytes": rec.flash_bytes, "network": v.network, "label": label,
                     "reason": v.reason})
    cols = ["trial", "kind", "model", "reference", VAL_SCORE, "macs_per_second", "cpu_share", "ram_bytes", "flash_bytes",
            "network", "label", "reason"]
    return pd.DataFrame(rows, columns=cols)


def _x_max(df: pd.DataFrame, key: str, limit: float) -> float:
    shown = df[df.kind != "rejected"][key]
    return max(limit * 1.12, (shown.max() if len(shown) else 0) * 1.05)


def _panel(ax, df: pd.DataFrame, budget: Budget, panel: tuple, fig) -> None:
    """Draw one panel, all but its labels."""
    import matplotlib.transforms as mtransforms

    key, scale, xlabel, ckey, clabel, cscale = panel
    limit = getattr(budget.limits, LIMITS[key])
    xmax = _x_max(df, key, limit) / scale
    by = {k: df[df.kind == k] for k in ("front", "trained", "stopped", "rejected")}
    ax.scatter(by["trained"][key] / scale, by["trained"].val_score, s=22, c="0.6", label="trained, dominated", zorder=2)
    ax.scatter(by["stopped"][key] / scale, by["stopped"].val_score, s=20, marker="x", c="0.75", alpha=0.6,
               label="stopped early (best val_score at a rung)", zorder=1)
    bottom = mtransforms.blended_transform_factory(ax.transData, ax.transAxes)
    ax.scatter((by["rejected"][key] / scale).clip(upper=xmax * 0.995), [0.015] * len(by["rejected"]), marker="|",
               s=60, c="tab:red", alpha=0.3, transform=bottom, label="rejected before training", zorder=1)
    front = by["front"]
    if ckey:
        sc = ax.scatter(front[key] / scale, front.val_score, s=70, c=front[ckey] / cscale, cmap="viridis",
                        edgecolors="k", linewidths=0.8, label="Pareto front", zorder=4)
        fig.colorbar(sc, ax=ax, pad=0.01, fraction=0.05).set_label(f"{clabel} (front)", fontsize=8)
    else:
        ax.scatter(front[key] / scale, front.val_score, s=70, c="tab:red", edgecolors="k", linewidths=0.8,
                   label="Pareto front", zorder=4)
    ax.axvline(limit / scale, c="k", ls="--", lw=1)
    ax.text(limit / scale, 0.99, " budget", transform=bottom, fontsize=7, va="top", ha="left")
    ax.set_xlim(0, xmax)
    ax.set_xlabel(xlabel)
    ax.grid(alpha=0.3)


def _labels(ax, df: pd.DataFrame, panel: tuple, fig) -> list:
    key, scale = panel[:2]
    labelled = df[(df.label != "") & df.val_score.notna()]
    front = df[df.kind == "front"]
    return _place_labels(ax, fig, labelled[key] / scale, labelled.val_score, labelled.label,
                         front[key] / scale, front.val_score)


def _overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def _place_labels(ax, fig, xs, ys, texts, marker_x, marker_y) -> list:
    """Greedy placement: each label takes the first offset where it overlaps no placed label, no front
    marker and stays inside the axes; a leader line joins a label set further off."""
    from matplotlib.text import Text
    from matplotlib.transforms import Bbox

    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    markers = [Bbox.from_extents(px - 5, py - 5, px + 5, py + 5)
               for px, py in ax.transData.transform(list(zip(marker_x, marker_y)))] if len(marker_x) else []
    placed: list = []
    for x, y, text in sorted(zip(xs, ys, texts), key=lambda p: -p[1]):
        ann = ax.annotate(text, (x, y), xytext=LABEL_OFFSETS[0], textcoords="offset points", fontsize=7,
                          zorder=5, bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.8),
                          arrowprops=dict(arrowstyle="-", lw=0.5, color="0.4", shrinkA=0, shrinkB=3))
        px, py = ax.transData.transform((x, y))
        own = Bbox.from_extents(px - 5, py - 5, px + 5, py + 5)
        for dx, dy in LABEL_OFFSETS:
            ann.set_position((dx, dy))
            ann.set_ha("left" if dx >= 0 else "right")
            ann.update_positions(renderer)
            box = Text.get_window_extent(ann, renderer)  # the text alone, not its leader line
            obstacles = placed + [m for m in markers if not _same(m, own)]
            if (frame.contains(box.x0, box.y0) and frame.contains(box.x1, box.y1)
                    and not any(_overlaps(box, o) for o in obstacles)):
                break
        ann.arrow_patch.set_visible(math.hypot(*ann.xyann) > 20)
        placed.append(box)
    return placed


def _same(a, b) -> bool:
    return abs(a.x0 - b.x0) < 0.5 and abs(a.y0 - b.y0) < 0.5


def draw(df: pd.DataFrame, budget: Budget):
    """(figure, label boxes per panel)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 5), sharey=True, layout="constrained")
    acc = df[VAL_SCORE].dropna()
    axes[0].set_ylim(max(0.0, (acc.min() if len(acc) else 0.0) - 0.1), min(1.02, (acc.max() if len(acc) else 1.0) + 0.08))
    for ax, panel in zip(axes, panels(budget)):
        _panel(ax, df, budget, panel, fig)
    axes[0].set_ylabel(f"{VAL_SCORE} (validation folds)")
    axes[-1].legend(fontsize=7, loc="lower right")
    n = df.kind.value_counts()
    invalid = int((df[df.kind == "rejected"].macs_per_second.isna()).sum())
    fig.suptitle(f"{n.get('front', 0)} Pareto-front models (numbered by trial, as in the table) on {budget.name}; "
                 f"{n.get('trained', 0)} more trained, {n.get('stopped', 0)} stopped early, "
                 f"{n.get('rejected', 0)} rejected" + (f" ({invalid} invalid: no network, not drawn)" if invalid else ""),
                 fontsize=10)
    fig.canvas.draw()  # the layout settles before labels are measured in display coordinates
    fig.set_layout_engine("none")
    return fig, [_labels(ax, df, panel, fig) for ax, panel in zip(axes, panels(budget))]


def pareto_png(df: pd.DataFrame, budget: Budget) -> bytes:
    import matplotlib.pyplot as plt

    fig, _ = draw(df, budget)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _alternate(x: pd.Series) -> list[str]:
    """Text above and below in turn along x, so neighbouring labels of the HTML front part."""
    rank = x.rank(method="first").astype(int)
    return ["top center" if r % 2 else "bottom center" for r in rank]


def pareto_html(df: pd.DataFrame, budget: Budget) -> str:
    """The same panels in plotly (hover: trial, model, network, costs), one self-contained HTML file."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=3, shared_yaxes=True, subplot_titles=[p[2] for p in panels(budget)])
    style = {"front": dict(size=11, color="crimson", line=dict(width=1, color="black")),
             "trained": dict(size=7, color="grey"), "stopped": dict(size=7, color="lightgrey", symbol="x"),
             "rejected": dict(size=9, color="rgba(214,39,40,0.3)", symbol="line-ns-open")}
    for col, (key, scale, *_rest) in enumerate(panels(budget), start=1):
        limit = getattr(budget.limits, LIMITS[key])
        xmax = _x_max(df, key, limit) / scale
        for kind, marker in style.items():
            part = df[df.kind == kind]
            y = part[VAL_SCORE] if kind != "rejected" else [0.0] * len(part)
            x = part[key] / scale if kind != "rejected" else (part[key] / scale).clip(upper=xmax * 0.995)
            hover = [f"trial {r.trial} {r.model}<br>{r.network}<br>{VAL_SCORE} {r.val_score if r.val_score == r.val_score else '-'}"
                     f"<br>MAC/s {r.macs_per_second:,.0f} RAM {r.ram_bytes:,} B FLASH {r.flash_bytes:,} B"
                     + (f"<br>{r.reason}" if r.reason else "") for r in part.itertuples()]
            fig.add_trace(go.Scatter(x=x, y=y, mode="markers+text" if kind == "front" else "markers",
                                     text=part.label if kind == "front" else None,
                                     textposition=_alternate(part[key]) if kind == "front" else None,
                                     marker=marker, name=kind, legendgroup=kind, showlegend=col == 1,
                                     hovertext=hover, hoverinfo="text"), row=1, col=col)
        fig.add_vline(x=limit / scale, line_dash="dash", row=1, col=col)
        fig.update_xaxes(range=[0, xmax], row=1, col=col)
    fig.update_yaxes(title_text=f"{VAL_SCORE} (validation folds)", row=1, col=1)
    fig.update_layout(title=f"Pareto front on {budget.name}", height=520, width=1500, template="plotly_white")
    return fig.to_html(include_plotlyjs=True, full_html=True)
