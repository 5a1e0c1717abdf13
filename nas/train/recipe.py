"""The training recipe: every knob of how a candidate is trained, as typed data.

It is the `training:` section of a search-space file (validated at load time like the rest of the
file, one-line errors naming the key), recorded on the study and on every trial, and used unchanged
by the search, the final stage (`nas.evaluate`) and the teacher. Defaults are the recipe that the
ablation on real UrbanSound8K clips kept (README, "Training recipe"): every element below was kept
only where a measured ablation showed that it helps.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from nas.core import config
from nas.core.config import bounded

Schedule = Literal["cosine", "onecycle"]
SelectionMetric = Literal["accuracy", "balanced", "prior"]
DistillLevel = Literal["auto", "clip", "window"]


@dataclass(frozen=True)
class Augment:
    """Augmentation of the log-mel training windows (all applied per window, on the fly)."""

    gain_db: float = bounded(20.0, ge=0.0, le=60.0, doc="level change, uniform in +-gain_db dB")
    tilt_db: float = bounded(10.0, ge=0.0, le=60.0, doc="spectral tilt across the mel axis, +-tilt_db dB end to end")
    mel_shift: int = bounded(2, ge=0, le=32, doc="shift along the mel axis by up to this many bands (pitch-like)")
    time_masks: int = bounded(1, ge=0, le=8)
    time_mask_share: float = bounded(0.125, ge=0.0, le=1.0, doc="longest time mask, share of the window")
    mel_masks: int = bounded(1, ge=0, le=8)
    mel_mask_share: float = bounded(0.125, ge=0.0, le=1.0, doc="widest mel mask, share of the bands")
    time_stretch: float = bounded(0.0, ge=0.0, le=1.0, doc="time stretch by a rate in [1/(1+s), 1+s]")
    mixup_alpha: float = bounded(0.3, ge=0.0, le=10.0, doc="mixup Beta(a, a) between windows; 0 = off")


@dataclass(frozen=True)
class Distillation:
    """What a student learns from a teacher (`nas.train.teacher`): its probabilities, per clip or per
    window, as soft targets, and its window embeddings, mimicked."""

    teacher: str = bounded("none", doc="none, auto (train one per fold split) or a teacher file")
    weight: float = bounded(0.5, ge=0.0, le=1.0, doc="share of the target taken from the teacher's probabilities")
    temperature: float = bounded(2.0, gt=0.0, le=20.0, doc="teacher probabilities are raised to 1/T")
    # window: each training window learns from the teacher windows it covers (the file must have them);
    # clip: from the clip's probabilities; auto: per window when the teacher file has windows, else per clip
    level: DistillLevel = "auto"
    embedding_weight: float = bounded(1.0, ge=0.0, le=100.0,
                                      doc="weight of mimicking the teacher's window embeddings: a linear head, "
                                          "dropped after training, regresses them from the student's last hidden "
                                          "features; 0 = off (needs a teacher file of python -m nas.teacher)")


@dataclass(frozen=True)
class Recipe:
    epochs: int = bounded(30, ge=1, le=10000)
    batch_size: int = bounded(128, ge=1, le=65536)
    lr: float = bounded(3e-3, gt=0.0, le=10.0)
    weight_decay: float = bounded(1e-3, ge=0.0, le=10.0)
    schedule: Schedule = "cosine"
    warmup_share: float = bounded(0.05, ge=0.0, lt=1.0, doc="share of the steps spent warming the learning rate up")
    windows_per_clip: int = bounded(4, ge=1, le=1000, doc="random training windows drawn per clip and epoch")
    label_smoothing: float = bounded(0.0, ge=0.0, lt=1.0)
    ema_decay: float = bounded(0.0, ge=0.0, lt=1.0, doc="exponential moving average of the weights per step; 0 = off")
    selection_metric: SelectionMetric = "prior"
    select_smoothing: int = bounded(3, ge=1, le=100, doc="epochs averaged when picking the best epoch")
    patience: int = bounded(0, ge=0, le=10000, doc="stop after this many epochs without a better smoothed score; 0 = never")
    balance_classes: bool = True
    augment: Augment = field(default_factory=Augment)
    distillation: Distillation = field(default_factory=Distillation)
    seed: int = bounded(0, ge=0)

    def replace(self, **changes: Any) -> "Recipe":
        import dataclasses

        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return config.to_dict(self)

    @classmethod
    def from_dict(cls, data: Any, source: str, key: str = "training") -> "Recipe":
        return config.load(cls, data, source, key)

    @classmethod
    def from_space_file(cls, path: str | Path) -> "Recipe":
        """The `training:` section of a search-space file (the defaults where it has none)."""
        data = config.read_yaml(path)
        section = data.get("training", {}) if isinstance(data, dict) else {}
        return cls.from_dict(section or {}, str(path))
