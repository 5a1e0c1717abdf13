"""Knowledge distillation: a teacher's per-clip probabilities as soft training targets.

A teacher file is JSON:

    {"format": "nas-teacher-v1",
     "trained_on_folds": [1, 2],                       # every fold the teacher could have seen
     "classes": ["air_conditioner", ..., "street_music"],
     "probabilities": {"100032-3-0-0.wav": [0.01, ...], ...}}   # per clip, one value per class

`--teacher FILE` (or `training.distillation.teacher: FILE`) brings any teacher, e.g. a large
pretrained model run elsewhere. A file is refused when a fold it was trained on is a validation or
test fold of the search (its targets would leak what selection and testing must not know), when its
classes differ, or when it lacks a training clip. `auto` trains the built-in teacher -- an
ensemble of `MEMBERS` networks (`TEACHER`) -- once per fold split (`nas.train.distill`).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from nas.arch.space import Params, network_layers
from nas.arch.spec import ArchSpec, FrontEnd
from nas.core.atomic import atomic_write_text
from nas.core.errors import UserError
from nas.data.urbansound import FoldSplit

FORMAT = "nas-teacher-v1"
# The built-in teacher: an ensemble of MEMBERS networks of the shape that trained best on real clips
# (Stride-DS-24's), each scoring every window of a clip with 75 % overlap; no budget applies to it.
TEACHER = Params(sample_rate=22050, n_fft=1024, hop_ratio=0.5, n_mels=60, frames=31, overlap=0.75,
                 conv_type="depthwise_separable", downsampling="strided", blocks=3, kernel=5, base_filters=24,
                 growth=1.5, max_filters=0, head="flatten", dense_units=64)
MEMBERS = 4


def teacher_spec(params: Params = TEACHER, num_classes: int = 10) -> ArchSpec:
    fe = FrontEnd(sample_rate=params.sample_rate, n_fft=params.n_fft, hop_length=int(params.n_fft * params.hop_ratio),
                  n_mels=params.n_mels, frames=params.frames, overlap=params.overlap)
    return ArchSpec(name="teacher", frontend=fe, layers=tuple(network_layers(params, 0.3, num_classes)),
                    num_classes=num_classes)


def load_teacher(path: str | Path, split: FoldSplit, classes: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Clip name → probabilities of a teacher file, checked against the split; UserError otherwise."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{p}: cannot read the teacher file ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserError(f"{p}: not a teacher file (expected \"format\": \"{FORMAT}\")")
    seen = data.get("trained_on_folds")
    if not isinstance(seen, list) or not all(isinstance(f, int) for f in seen):
        raise UserError(f"{p}: trained_on_folds: expected the list of folds the teacher was trained on")
    leaked = sorted(set(seen) & set(split.val + split.test))
    if leaked:
        raise UserError(f"{p}: the teacher was trained on fold(s) {leaked}, which this split validates or tests on "
                        f"({split.describe()}); its targets would leak them")
    if list(data.get("classes") or []) != list(classes):
        raise UserError(f"{p}: classes {data.get('classes')} differ from the dataset's {list(classes)}")
    probs = data.get("probabilities")
    if not isinstance(probs, dict):
        raise UserError(f"{p}: probabilities: expected a mapping of clip file name to class probabilities")
    out = {}
    for name, row in probs.items():
        v = np.asarray(row, dtype=np.float64)
        if v.shape != (len(classes),) or not np.all(np.isfinite(v)) or (v < 0).any() or v.sum() <= 0:
            raise UserError(f"{p}: probabilities[{name!r}]: expected {len(classes)} non-negative numbers")
        out[name] = v / v.sum()
    return out


def soft_targets(teacher: dict[str, np.ndarray], names: tuple[str, ...], temperature: float,
                 source: str) -> torch.Tensor:
    """[len(names), classes] tempered teacher probabilities (p ** (1/T), renormalised) in `names` order."""
    missing = [n for n in names if n not in teacher]
    if missing:
        raise UserError(f"{source}: no teacher probabilities for {len(missing)} training clip(s), "
                        f"e.g. {missing[0]}")
    p = np.stack([teacher[n] for n in names]).clip(min=1e-8) ** (1.0 / temperature)
    return torch.from_numpy((p / p.sum(axis=1, keepdims=True)).astype(np.float32))


def write_teacher(path: Path, names, probs: torch.Tensor, split: FoldSplit, classes: tuple[str, ...]) -> None:
    body = {"format": FORMAT, "trained_on_folds": list(split.train), "classes": list(classes),
            "probabilities": {n: [round(float(v), 6) for v in row] for n, row in zip(names, probs)}}
    atomic_write_text(path, json.dumps(body))
