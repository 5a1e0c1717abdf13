"""Knowledge distillation: a teacher's per-clip (or per-window) probabilities as soft training targets.

A teacher file is JSON:

    {"format": "nas-teacher-v1",
     "trained_on_folds": [1, 2],                       # every fold the teacher could have seen
     "classes": ["air_conditioner", ..., "street_music"],
     "probabilities": {"100032-3-0-0.wav": [0.01, ...], ...},   # per clip, one value per class
     "windows": {"seconds": 1.0, "hop_seconds": 0.25,           # optional: per window of each clip,
                 "probabilities": {"100032-3-0-0.wav": [[0.02, ...], ...], ...}}}   # windows from 0 s

or, for several fold splits (e.g. the 10-fold rotation: one teacher per split), the same entries
under `"splits": [{"trained_on_folds": ..., "probabilities": ..., "windows": ...}, ...]` with
`trained_on_folds` at the top the union of theirs (a reader that knows one entry refuses it).

`--teacher FILE` (or `training.distillation.teacher: FILE`) brings any teacher, e.g. the pretrained
one of `python -m nas.teacher`. The entry used for a split is one whose folds are all training folds
(the split's own training folds first); a file is refused when every entry was trained on a
validation or test fold of the split (its targets would leak what selection and testing must not
know), when its classes differ, or when it lacks a training clip. With per-window probabilities
(`distillation.level`: auto, the default, or window), a training window learns from the teacher
windows whose centres it covers (the nearest one if none), so a window that misses the clip's event
is not told it heard it. `auto` trains the built-in teacher
-- an ensemble of `MEMBERS` networks (`TEACHER`) -- once per fold split (`nas.train.distill`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Teacher:
    """A teacher file's entry for one split: clip name → probabilities, and per-window ones when asked."""

    clips: dict[str, np.ndarray]
    windows: dict[str, np.ndarray] | None = None      # clip name → [K, classes]
    window_seconds: float = 0.0
    hop_seconds: float = 0.0


@dataclass(frozen=True)
class SoftTargets:
    """Tempered teacher targets of a training set, in its clip order: per clip, or per teacher window."""

    clips: torch.Tensor                               # [N, classes]
    windows: torch.Tensor | None = None               # [N, K, classes]
    window_seconds: float = 0.0
    hop_seconds: float = 0.0

    def pick(self, clips: torch.Tensor, start_s: torch.Tensor, end_s: torch.Tensor) -> torch.Tensor:
        """[B, classes] for training windows spanning [start_s, end_s] seconds of `clips`: the mean of
        the teacher windows whose centres the span covers (the nearest if none); per clip without windows."""
        if self.windows is None:
            return self.clips[clips]
        k = self.windows.shape[1]
        centres = torch.arange(k, dtype=torch.float32) * self.hop_seconds + self.window_seconds / 2
        start_s, end_s = start_s.float()[:, None], end_s.float()[:, None]
        inside = (centres >= start_s) & (centres <= end_s)
        nearest = (centres - (start_s + end_s) / 2).abs().argmin(1)
        inside[torch.arange(len(clips)), nearest] |= ~inside.any(1)
        w = inside.float() / inside.sum(1, keepdim=True)
        return torch.einsum("bk,bkc->bc", w, self.windows[clips])


def _read(p: Path) -> dict:
    try:
        data = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{p}: cannot read the teacher file ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserError(f"{p}: not a teacher file (expected \"format\": \"{FORMAT}\")")
    return data


def _entry(p: Path, data: dict, split: FoldSplit) -> dict:
    """The file's entry for `split`: one trained on training folds only, the split's own first."""
    entries = data.get("splits", [data])
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise UserError(f"{p}: splits: expected a non-empty list of teacher entries")
    usable, leaks = [], []
    for e in entries:
        seen = e.get("trained_on_folds")
        if not isinstance(seen, list) or not all(isinstance(f, int) for f in seen):
            raise UserError(f"{p}: trained_on_folds: expected the list of folds the teacher was trained on")
        leaked = sorted(set(seen) & set(split.val + split.test))
        (leaks if leaked else usable).append(leaked or e)
    if not usable:
        raise UserError(f"{p}: the teacher was trained on fold(s) {leaks[0]}, which this split validates or tests on "
                        f"({split.describe()}); its targets would leak them")
    own = [e for e in usable if sorted(e["trained_on_folds"]) == sorted(split.train)]
    return (own or usable)[0]


def _rows(p: Path, key: str, table, shape) -> dict[str, np.ndarray]:
    if not isinstance(table, dict):
        raise UserError(f"{p}: {key}: expected a mapping of clip file name to class probabilities")
    out = {}
    for name, row in table.items():
        try:
            v = np.asarray(row, dtype=np.float64)
        except (TypeError, ValueError):
            v = np.zeros(0)
        if (v.ndim != len(shape) or v.shape[-1] != shape[-1] or not np.all(np.isfinite(v)) or (v < 0).any()
                or (v.sum(-1) <= 0).any()):
            raise UserError(f"{p}: {key}[{name!r}]: expected {'rows of ' if len(shape) > 1 else ''}"
                            f"{shape[-1]} non-negative numbers")
        out[name] = v / v.sum(-1, keepdims=True)
    return out


def load_teacher(path: str | Path, split: FoldSplit, classes: tuple[str, ...], level: str = "auto") -> Teacher:
    """The teacher of a file for `split`, checked; with its per-window probabilities for `level` window,
    and for auto when the file has them."""
    p = Path(path)
    data = _read(p)
    if list(data.get("classes") or []) != list(classes):
        raise UserError(f"{p}: classes {data.get('classes')} differ from the dataset's {list(classes)}")
    entry = _entry(p, data, split)
    clips = _rows(p, "probabilities", entry.get("probabilities"), (len(classes),))
    win = entry.get("windows")
    if level == "clip" or (level == "auto" and win is None):
        return Teacher(clips)
    if not isinstance(win, dict):
        raise UserError(f"{p}: distillation level 'window' needs per-window probabilities (\"windows\"), which "
                        "this file lacks; `python -m nas.teacher` writes them")
    rows = _rows(p, "windows.probabilities", win.get("probabilities"), (1, len(classes)))
    if len({r.shape for r in rows.values()}) > 1:
        raise UserError(f"{p}: windows.probabilities: every clip needs the same number of windows")
    try:
        seconds, hop = float(win["seconds"]), float(win["hop_seconds"])
    except (KeyError, TypeError, ValueError):
        seconds = hop = 0.0
    if not (seconds > 0 and hop > 0):
        raise UserError(f"{p}: windows: expected positive \"seconds\" and \"hop_seconds\"")
    return Teacher(clips, rows, seconds, hop)


def _tempered(rows: list[np.ndarray], temperature: float) -> torch.Tensor:
    p = np.stack(rows).clip(min=1e-8) ** (1.0 / temperature)
    return torch.from_numpy((p / p.sum(axis=-1, keepdims=True)).astype(np.float32))


def soft_targets(teacher: Teacher, names: tuple[str, ...], temperature: float, source: str) -> SoftTargets:
    """Tempered teacher probabilities (p ** (1/T), renormalised) of the clips `names`, in that order."""
    missing = [n for n in names if n not in teacher.clips or (teacher.windows is not None and n not in teacher.windows)]
    if missing:
        raise UserError(f"{source}: no teacher probabilities for {len(missing)} training clip(s), "
                        f"e.g. {missing[0]}")
    windows = None if teacher.windows is None else _tempered([teacher.windows[n] for n in names], temperature)
    return SoftTargets(_tempered([teacher.clips[n] for n in names], temperature), windows,
                       teacher.window_seconds, teacher.hop_seconds)


def teacher_entry(folds, names, probs, windows=None, grid: tuple[float, float] = (0.0, 0.0)) -> dict:
    """One split's entry of a teacher file: clip (and optionally window) probabilities of `names`."""
    entry = {"trained_on_folds": sorted(int(f) for f in folds),
             "probabilities": {n: [round(float(v), 6) for v in row] for n, row in zip(names, probs)}}
    if windows is not None:
        entry["windows"] = {"seconds": grid[0], "hop_seconds": grid[1], "probabilities": {
            n: [[round(float(v), 5) for v in w] for w in rows] for n, rows in zip(names, windows)}}
    return entry


def write_teachers(path: Path, classes: tuple[str, ...], entries: list[dict], about: dict | None = None) -> None:
    """A teacher file of one entry (flat) or several (`splits`)."""
    body: dict = {"format": FORMAT, "classes": list(classes)}
    if len(entries) == 1:
        body.update(entries[0])
    else:
        body["trained_on_folds"] = sorted({f for e in entries for f in e["trained_on_folds"]})
        body["splits"] = entries
    if about:
        body["about"] = about
    atomic_write_text(path, json.dumps(body))


def write_teacher(path: Path, names, probs: torch.Tensor, split: FoldSplit, classes: tuple[str, ...]) -> None:
    write_teachers(path, classes, [teacher_entry(split.train, names, probs)])
