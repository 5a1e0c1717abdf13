"""Every key a trial stores in its Optuna user attributes, in one typed record.

The search writes, and every reader (front table, plots, final stage, export, the study's own
bookkeeping) reads, trial attributes only through `TrialRecord` and `write`: a key is named once, here,
with its type and meaning. The stored form stays what optuna-dashboard shows: flat keys, JSON values
(numbers, strings, lists; `rungs` maps the rung's epoch, as a string, to its score). Keys a record does
not know (a journal written by another version) are ignored on reading, and keys it knows but a trial
lacks read as None, so older journals stay readable.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from nas.arch.spec import ArchSpec


@dataclass(frozen=True)
class TrialRecord:
    """A trial's user attributes, typed; None where the trial has not stored the key."""

    # how it ended, in one line (nas.study.outcome: written first, so the dashboard lists it first)
    outcome: str | None = None
    # how the trial came to run
    reference: str | None = None            # a reference model queued by name
    redo_of: int | None = None              # the unfinished trial this one redoes
    worker: str | None = None               # host:pid that ran it
    heartbeat: float | None = None          # time of its last epoch (stale-trial detection)
    # what it is
    spec: str | None = None                 # ArchSpec as JSON: what every tool rebuilds the network from
    model: str | None = None                # readable name (`Stride-DS-24`, `Pool-12-b2-t15`)
    network: str | None = None              # the network in one line
    input: str | None = None                # the front-end in one line
    # its cost (nas.cost.analytic.Cost.summary, one key each)
    params: int | None = None
    macs: int | None = None
    macs_per_second: float | None = None
    windows_per_second: float | None = None
    ram_bytes: int | None = None
    flash_bytes: int | None = None
    arena_bytes: int | None = None
    frontend_ram_bytes: int | None = None
    network_flash_bytes: int | None = None
    frontend_flash_bytes: int | None = None
    code_bytes: int | None = None
    instructions_per_window: float | None = None
    frontend_instructions_per_second: float | None = None
    instructions_per_second: float | None = None
    cpu_share: float | None = None
    # how it ended
    feasible: bool | None = None            # within every limit of the budget
    reject_reason: str | None = None        # over budget / invalid: pruned before training
    duplicate_of: int | None = None         # the sampler proposed this trial's parameters again
    replaced_by: int | None = None          # ... and the slot went to this trial, a fresh point (not counted)
    prune_reason: str | None = None         # stopped at a rung (or the reason a duplicate was)
    fail_reason: str | None = None          # training crashed: counted, the study goes on
    stopped_run: str | None = None          # a fault of the run ended it: not counted, redone
    interrupted: bool | None = None         # Ctrl-C / SIGTERM ended it: not counted, redone
    # its training
    curve: list[float] | None = None        # validation accuracy per epoch of the first run
    rungs: dict[int, float] | None = None   # rung epoch -> smoothed validation score there
    seed_scores: list[float] | None = None  # selection score of each training run
    seed_accuracies: list[float] | None = None
    val_score_std: float | None = None
    best_epoch: int | None = None
    train_seconds: float | None = None
    train_windows_per_second: float | None = None
    input_norm: list[float] | None = None   # [mean, std] of the training features

    @classmethod
    def of(cls, trial: Any) -> "TrialRecord":
        """The record of an Optuna `Trial` or `FrozenTrial` (unknown keys ignored)."""
        ua = trial.user_attrs
        return cls(**{k: _load(k, ua[k]) for k in FIELDS if k in ua})

    def attrs(self) -> dict[str, Any]:
        """The stored form of the keys this record sets (for `enqueue_trial`, `create_trial`)."""
        return {k: _store(k, v) for k in FIELDS if (v := getattr(self, k)) is not None}

    def arch(self) -> ArchSpec | None:
        return ArchSpec.from_json(self.spec) if self.spec else None

    @property
    def name(self) -> str:
        """The model's name: recorded, else the reference's, else the spec's."""
        return self.model or self.reference or (self.arch().name if self.spec else "")

    @property
    def reason(self) -> str:
        """Why the trial did not train to the end ("" when it did)."""
        return self.reject_reason or self.prune_reason or self.fail_reason or ""

    def cost(self, key: str) -> float | None:
        """One cost by its `Cost.summary` key (e.g. the study's compute objective)."""
        if key not in COST_KEYS:
            raise KeyError(f"{key!r} is not a recorded cost")
        return getattr(self, key)


FIELDS = tuple(f.name for f in fields(TrialRecord))
COST_KEYS = FIELDS[FIELDS.index("params"):FIELDS.index("cpu_share") + 1]


def write(trial: Any, **values: Any) -> None:
    """Store `values` (record fields) on a running `trial`, None ones left out; an unknown key is a bug,
    raised at once."""
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise KeyError(f"not a trial record field: {', '.join(unknown)}")
    for key, value in values.items():
        if value is not None:
            trial.set_user_attr(key, _store(key, value))


def _store(key: str, value: Any) -> Any:
    return {str(k): v for k, v in value.items()} if key == "rungs" else value


def _load(key: str, value: Any) -> Any:
    return {int(k): v for k, v in value.items()} if key == "rungs" and isinstance(value, dict) else value
