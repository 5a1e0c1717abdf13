"""What a trial leaves in the Optuna study, written so that Optuna and optuna-dashboard show it.

* Constraints through `trial.set_constraint` (what Optuna's samplers and `best_trials` read) and
  also as the legacy `system_attrs["constraints"]` list in `CONSTRAINTS` order, the only form
  optuna-dashboard 0.21 reads (without it the dashboard shows no trial as infeasible).
* The per-epoch validation accuracy of a trained trial as intermediate values, so the dashboard
  draws learning curves. `Trial.report` raises NotImplementedError in a multi-objective study, so
  the values go through the storage's public `set_trial_intermediate_value` (what `report` calls).
  They are written when training has finished, not per epoch: Optuna 5's TPE sorts PRUNED trials
  that have intermediate values by `study.direction`, which raises in a multi-objective study, so a
  stopped trial carrying them would make every later trial fail to sample
  (tests/test_report.py checks that this is still so). In an accuracy-mode (single-objective) study a
  stopped trial's curve is written too: there TPE ranks stopped trials by their last value. The
  running trial's curve is the user attribute `curve`, updated every epoch.
* The model's name and its network in one line as user attributes, objective values rounded to
  what they mean (accuracy of a few hundred clips, whole MAC/s, bytes).
* A trained trial's spec.yaml and checkpoint as `optuna.artifacts` (`nas.study.artifacts`), so a
  user opens them from the dashboard.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact

from nas.arch.space import SearchSpace
from nas.arch.spec import ArchSpec
from nas.budget import Budget
from nas.core import config
from nas.cost import analytic as costmodel
from nas.kinds import kind_of
from nas.study.record import TrialRecord, write
from nas.study.metrics import DEFINITIONS, VAL_ACCURACY, VAL_SCORE
from nas.study.study import OBJECTIVES, objectives

CONSTRAINTS = ("ram", "flash", "macs_per_second", "cpu_share", "valid")
LEGACY_CONSTRAINTS_KEY = "constraints"
ACCURACY_DECIMALS = 4


def record_constraints(trial: optuna.Trial, violations: dict[str, float]) -> None:
    """`cost/limit - 1` per limit (<= 0 is feasible), named and as the dashboard's positional list."""
    values = [float(violations.get(key, 0.0)) for key in CONSTRAINTS]
    for key, value in zip(CONSTRAINTS, values):
        trial.set_constraint(key, value)
    trial.storage.set_trial_system_attr(trial._trial_id, LEGACY_CONSTRAINTS_KEY, values)


def record_curve(trial: optuna.Trial, epochs: list[dict]) -> None:
    """A trained trial's val_accuracy per epoch (the training loop's records) as its
    intermediate values, step = epoch (0-based); see the module docstring for why only then."""
    for record in epochs:
        trial.storage.set_trial_intermediate_value(trial._trial_id, int(record["epoch"]),
                                                   round(float(record["val_acc"]), ACCURACY_DECIMALS))


def objective_values(val_score: float, cost: costmodel.Cost,
                     compute: str = "macs_per_second") -> tuple[float, float, float]:
    """(val_score, compute, ram_bytes) as the study stores them, no float32 noise; `compute` is the
    budget's compute objective (MAC/s in whole MACs, or the CPU share to 1e-6)."""
    value = getattr(cost, compute)
    value = float(round(value)) if compute == "macs_per_second" else round(float(value), 6)
    return round(float(val_score), ACCURACY_DECIMALS), value, float(cost.ram_bytes)


def budget_table(cost: costmodel.Cost, budget: Budget) -> list[str]:
    """Each limited cost against its limit as a Markdown table, an over-budget share in bold (a trial
    note: what the constraint values say, readable)."""
    lim = budget.limits
    kb, mega = (lambda n: f"{n / 1024:.1f} kB"), (lambda n: f"{n / 1e6:.2f} M")
    rows = [("RAM", cost.ram_bytes, lim.ram_bytes, kb), ("FLASH", cost.flash_bytes, lim.flash_bytes, kb),
            ("MAC/s", cost.macs_per_second, lim.macs_per_second, mega)]
    if lim.cpu_share is not None:
        rows.append(("CPU share", cost.cpu_share, lim.cpu_share, lambda n: f"{n:.1%}"))
    lines = [f"| {budget.name} | cost | limit | of the limit |", "|---|---|---|---|"]
    for name, used, limit, fmt in rows:
        share = f"{used / limit:.0%}"
        lines.append(f"| {name} | {fmt(used)} | {fmt(limit)} | {f'**{share}: over**' if used > limit else share} |")
    return lines


def short_name(params: dict, number: int) -> str:
    """A generated model name in the thesis's style (`Stride-DS-24`): downsampling, conv type (DS:
    depthwise separable, MB: inverted residual, as the network's `mb` blocks), base filters, blocks, and
    the trial number that makes it unique; e.g. `Pool-12-b2-t15`, `Pool-MB-20-b3-t143`."""
    parts = ["Stride" if params["downsampling"] == "strided" else "Pool"]
    parts += {"depthwise_separable": ["DS"], "inverted_residual": ["MB"]}.get(params["conv_type"], [])
    return "-".join([*parts, str(params["base_filters"]), f"b{params['blocks']}", f"t{number}"])


def model_name(trial: optuna.Trial | optuna.trial.FrozenTrial, params: dict) -> str:
    """The reference model's name, or a generated short name."""
    return TrialRecord.of(trial).reference or short_name(params, trial.number)


def network_summary(spec: ArchSpec) -> str:
    """The whole network in one line, every layer's real size (caps included): e.g.
    `c24 5x5/2 · dw5x5/2 c36 · dw5x5/2 c54 · d64 · d10` (`·` separates blocks; each layer's token is
    its kind's `summary`)."""
    blocks: list[list[str]] = [[]]
    for layer in spec.layers:
        token, new_block = kind_of(layer).summary(layer)
        if not token:
            continue
        if new_block and blocks[-1]:
            blocks.append([])
        blocks[-1].append(token)
    return " · ".join(" ".join(b) for b in blocks if b)


def frontend_summary(spec: ArchSpec) -> str:
    """The input in one line: `22.05 kHz · 60 mels · 31 frames · overlap 0`."""
    fe = spec.frontend
    return f"{fe.sample_rate / 1000:g} kHz · {fe.n_mels} mels · {fe.frames} frames · overlap {fe.overlap:g}"


def record_spec(trial: optuna.Trial, spec: ArchSpec) -> None:
    """The spec (JSON, what the tools read back) and its name, network and input in readable lines."""
    write(trial, spec=spec.to_json(), model=spec.name, network=network_summary(spec), input=frontend_summary(spec))


def record_trained(trial: optuna.Trial, store: FileSystemArtifactStore | None, spec: ArchSpec,
                   checkpoint: Path) -> None:
    """spec.yaml and the checkpoint of a trained trial as artifacts, openable from the dashboard
    (the checkpoint is copied: `nas.export` reads `checkpoints/`, the dashboard its store)."""
    if store is None:
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spec.yaml"
        config.write_yaml(path, spec.to_dict())
        upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=trial, mimetype="text/yaml")
    upload_artifact(artifact_store=store, file_path=str(checkpoint), study_or_trial=trial,
                    mimetype="application/octet-stream")


def study_note(budget: Budget, space: SearchSpace, mode: str = "pareto") -> str:
    """The study's Markdown note on the dashboard: what the objectives, constraints and trial states are."""
    lim = budget.limits
    compute = objectives(budget.objectives.compute)[1]
    cpu = f", CPU share {lim.cpu_share:.1%}" if lim.cpu_share is not None else ""
    what = ("int8 MACs per second of audio" if compute == "macs_per_second" else
            "the CPU share the model takes at the budget's clock")
    aims = (f"Objectives: **{OBJECTIVES[0]}** (max), **{compute}** (min, {what}), "
            f"**{OBJECTIVES[2]}** (min, int8 RAM: arena + front-end + reserves). FLASH is a constraint."
            if mode == "pareto" else
            f"Mode accuracy: the most accurate model that fits the budget. Objective: **{OBJECTIVES[0]}** (max); "
            f"every limit is a constraint; {compute} ({what}) and {OBJECTIVES[2]} are each trial's user attributes, "
            "and the Pareto front over all three is drawn from the trained trials.")
    return "\n".join([
        f"## Hardware-constrained search on {budget.name}",
        "",
        aims,
        "",
        f"- **{VAL_SCORE}**: {DEFINITIONS[VAL_SCORE]}.",
        f"- **{VAL_ACCURACY}**: {DEFINITIONS[VAL_ACCURACY]}; the intermediate values (learning curves) are it.",
        "",
        f"Constraints, in this order (`cost / limit - 1`, feasible when <= 0): {', '.join(CONSTRAINTS)}; "
        f"limits RAM {lim.ram_bytes:,} B, FLASH {lim.flash_bytes:,} B, MAC/s {lim.macs_per_second:,.0f}{cpu}. "
        "`valid` is 1 for a combination that gives no network.",
        "",
        "How a trial ended is its note (at the top of its page) and its first attribute, `outcome`: "
        "**rejected** (Pruned, never trained: over budget or no network), **stopped** (Pruned after a few epochs "
        "at a rung), **trained** (Complete), **reused** (the same parameters as another trial), **failed** "
        "(Fail: training crashed), **interrupted** (Fail, but not a failure: Ctrl-C, SIGTERM or a killed "
        "process; not counted, redone when the search is rerun).",
        "",
        f"Search space: {space.name}. Each trained trial has `spec.yaml` and its checkpoint as artifacts.",
    ])


def record_study_note(study: optuna.Study, budget: Budget, space: SearchSpace, mode: str = "pareto") -> None:
    """Write the note once (a changed budget or space writes a new version)."""
    from optuna_dashboard import get_note, save_note

    body = study_note(budget, space, mode)
    if get_note(study) != body:
        save_note(study, body)
