"""How a trial ended, where optuna-dashboard shows it first.

The trial's page opens with its note (Markdown) and lists its user attributes in the order they were
first written. So each trial gets `outcome` as its first attribute (written `running` when it starts,
then e.g. `rejected: over budget: CPU 50.9% > 50.0% (+2%)`), and a note that says the same in a
sentence with the figures behind it. The words are `nas.search.report.OUTCOMES`': rejected (over
budget or no network: never trained), stopped (trained a few epochs, stopped at a rung), trained,
reused (another trial's result), replaced (a re-proposed point whose
slot went to a fresh one), failed (training crashed), interrupted (Ctrl-C, SIGTERM, a killed
process or a fault of the run: not counted and redone on the next run — Optuna has no state for it,
so the dashboard's chip reads Fail).
"""
from __future__ import annotations

from typing import Any

from nas.study.record import write

HEADLINES = {
    "queued": "Queued",
    "running": "Running",
    "rejected": "Rejected before training (never trained)",
    "stopped": "Stopped early (trained within the budget, stopped at a rung)",
    "trained": "Trained",
    "reused": "Reused another trial's result (the same parameters; nothing trained)",
    "replaced": "Replaced (the sampler proposed a tried point again; the slot went to a fresh one; not counted)",
    "failed": "Failed (training crashed; the study went on)",
    "interrupted": "Interrupted, not a failure: it does not count and is redone when the same command is rerun "
                   "(Optuna has no state for this, so the chip reads Fail)",
}


def record_outcome(trial: Any, outcome: str, detail: str = "", lines: tuple[str, ...] | list[str] = ()) -> None:
    """`outcome` (a key of `HEADLINES`) with `detail` as the trial's `outcome` attribute and, with
    `lines` below it, as its dashboard note; on a running `trial` (an `optuna.Trial`)."""
    if outcome not in HEADLINES:
        raise KeyError(f"unknown outcome {outcome!r}")
    write(trial, outcome=f"{outcome}: {detail}" if detail else outcome)
    if outcome in ("queued", "running"):
        return
    from optuna_dashboard import save_note

    save_note(trial, "\n".join([f"**{HEADLINES[outcome]}**" + (f": {detail}" if detail else ""), "", *lines]))
