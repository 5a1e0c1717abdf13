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
  (tests/test_report.py checks that this is still so). The running trial's curve is the user
  attribute `curve`, updated every epoch.
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
    """A trained trial's validation accuracy per epoch (the training loop's records) as its
    intermediate values, step = epoch (0-based); see the module docstring for why only then."""
    for record in epochs:
        trial.storage.set_trial_intermediate_value(trial._trial_id, int(record["epoch"]),
                                                   round(float(record["val_acc"]), ACCURACY_DECIMALS))


def objective_values(val_acc: float, cost: costmodel.Cost,
                     compute: str = "macs_per_second") -> tuple[float, float, float]:
    """(val_accuracy, compute, ram_bytes) as the study stores them, no float32 noise; `compute` is the
    budget's compute objective (MAC/s in whole MACs, or the CPU share to 1e-6)."""
    value = getattr(cost, compute)
    value = float(round(value)) if compute == "macs_per_second" else round(float(value), 6)
    return round(float(val_acc), ACCURACY_DECIMALS), value, float(cost.ram_bytes)


def short_name(params: dict, number: int) -> str:
    """A generated model name in the thesis's style (`Stride-DS-24`): downsampling, conv type, base
    filters, blocks, and the trial number that makes it unique; e.g. `Pool-12-b2-t15`."""
    parts = ["Stride" if params["downsampling"] == "strided" else "Pool"]
    if params["conv_type"] == "depthwise_separable":
        parts.append("DS")
    return "-".join([*parts, str(params["base_filters"]), f"b{params['blocks']}", f"t{number}"])


def model_name(trial: optuna.Trial | optuna.trial.FrozenTrial, params: dict) -> str:
    """The reference model's name, or a generated short name."""
    return trial.user_attrs.get("reference") or short_name(params, trial.number)


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
    trial.set_user_attr("spec", spec.to_json())
    trial.set_user_attr("model", spec.name)
    trial.set_user_attr("network", network_summary(spec))
    trial.set_user_attr("input", frontend_summary(spec))


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


def study_note(budget: Budget, space: SearchSpace) -> str:
    """The study's Markdown note on the dashboard: what the objectives and constraints are."""
    lim = budget.limits
    compute = objectives(budget.objectives.compute)[1]
    cpu = f", CPU share {lim.cpu_share:.1%}" if lim.cpu_share is not None else ""
    return "\n".join([
        f"## Hardware-constrained search on {budget.name}",
        "",
        f"Objectives: **{OBJECTIVES[0]}** (max, clip accuracy on the validation fold), "
        f"**{compute}** (min, " + ("int8 MACs per second of audio" if compute == "macs_per_second" else
                                     "the CPU share the model takes at the budget's clock") + f"), **{OBJECTIVES[2]}** (min, "
        "int8 RAM: arena + front-end + reserves). FLASH is a constraint.",
        "",
        f"Constraints, in this order (`cost / limit - 1`, feasible when <= 0): {', '.join(CONSTRAINTS)}; "
        f"limits RAM {lim.ram_bytes:,} B, FLASH {lim.flash_bytes:,} B, MAC/s {lim.macs_per_second:,.0f}{cpu}. "
        "`valid` is 1 for a combination that gives no network.",
        "",
        "Over-budget candidates are pruned before training (reason in `reject_reason`); "
        "intermediate values are the validation accuracy per epoch. "
        f"Search space: {space.name}. Each trained trial has `spec.yaml` and its checkpoint as artifacts.",
    ])


def record_study_note(study: optuna.Study, budget: Budget, space: SearchSpace) -> None:
    """Write the note once (a changed budget or space writes a new version)."""
    from optuna_dashboard import get_note, save_note

    body = study_note(budget, space)
    if get_note(study) != body:
        save_note(study, body)
