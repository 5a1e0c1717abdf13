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

A file may also name the teacher's window embeddings, `"embeddings": {"file": "<name>.npz",
"sha256": ...}` beside it (`names` [N], `windows` [N, K, D] float16 on the grid of "windows"). With
`distillation.embedding_weight` > 0 the student mimics them when the file has them
(`nas.train.loop`): per fold split they are projected on their `EMBEDDING_DIMS` principal axes,
fitted on the split's training windows only, and whitened, so every axis weighs alike in the loss.
384 numbers per window carry far more of what the teacher learnt from AudioSet than 10 class
probabilities.
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from nas.arch.space import Params, network_layers
from nas.arch.spec import ArchSpec, FrontEnd
from nas.core.atomic import atomic_write_bytes, atomic_write_text
from nas.core.errors import UserError
from nas.data.urbansound import FoldSplit

FORMAT = "nas-teacher-v1"
# The built-in teacher: an ensemble of MEMBERS networks of the shape that trained best on real clips
# (Stride-DS-24's), each scoring every window of a clip with 75 % overlap; no budget applies to it.
TEACHER = Params(sample_rate=22050, n_fft=1024, hop_ratio=0.5, n_mels=60, frames=31, overlap=0.75,
                 conv_type="depthwise_separable", downsampling="strided", blocks=3, kernel=5, base_filters=24,
                 growth=1.5, max_filters=0, head="flatten", dense_units=64)
MEMBERS = 4
EMBEDDING_DIMS = 32


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
    embeddings: dict[str, np.ndarray] | None = None   # clip name → [K, D] window embeddings
    _whitened: dict = field(default_factory=dict, compare=False, repr=False)

    def features(self, names: tuple[str, ...]) -> torch.Tensor:
        """[N, K, <= EMBEDDING_DIMS] whitened window embeddings of `names`, computed once per set of
        names: every front-end a search loads asks for the same training clips (seconds each on 8 folds)."""
        if names not in self._whitened:
            self._whitened[names] = torch.from_numpy(whitened(np.stack([self.embeddings[n] for n in names])))
        return self._whitened[names]


@dataclass(frozen=True)
class SoftTargets:
    """Tempered teacher targets of a training set, in its clip order: per clip, or per teacher window."""

    clips: torch.Tensor                               # [N, classes]
    windows: torch.Tensor | None = None               # [N, K, classes]
    window_seconds: float = 0.0
    hop_seconds: float = 0.0
    features: torch.Tensor | None = None              # [N, K, EMBEDDING_DIMS] whitened window embeddings

    def pick(self, clips: torch.Tensor, start_s: torch.Tensor, end_s: torch.Tensor) -> torch.Tensor:
        """[B, classes] for training windows spanning [start_s, end_s] seconds of `clips`: the mean of
        the teacher windows whose centres the span covers (the nearest if none); per clip without windows."""
        if self.windows is None:
            return self.clips[clips]
        return torch.einsum("bk,bkc->bc", self._cover(start_s, end_s, self.windows.shape[1]), self.windows[clips])

    def pick_features(self, clips: torch.Tensor, start_s: torch.Tensor, end_s: torch.Tensor) -> torch.Tensor:
        """[B, EMBEDDING_DIMS]: the mean feature of the teacher windows each span covers, as `pick`."""
        return torch.einsum("bk,bkc->bc", self._cover(start_s, end_s, self.features.shape[1]), self.features[clips])

    def _cover(self, start_s: torch.Tensor, end_s: torch.Tensor, k: int) -> torch.Tensor:
        """[B, K] weights: 1/n for each of the n teacher windows whose centre lies in the span."""
        centres = torch.arange(k, dtype=torch.float32) * self.hop_seconds + self.window_seconds / 2
        start_s, end_s = start_s.float()[:, None], end_s.float()[:, None]
        inside = (centres >= start_s) & (centres <= end_s)
        nearest = (centres - (start_s + end_s) / 2).abs().argmin(1)
        inside[torch.arange(len(start_s)), nearest] |= ~inside.any(1)
        return inside.float() / inside.sum(1, keepdim=True)


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


def _embeddings(p: Path, data: dict, names) -> tuple[dict[str, np.ndarray] | None, float, float]:
    """(clip name → [K, D] window embeddings, window seconds, hop) of the file's embeddings file, checked;
    (None, 0, 0) for a file that names none."""
    ref = data.get("embeddings")
    if ref is None:
        return None, 0.0, 0.0
    if not isinstance(ref, dict) or not isinstance(ref.get("file"), str):
        raise UserError(f"{p}: embeddings: expected {{\"file\": <npz file beside it>, \"sha256\": <its digest>}}")
    f = p.parent / ref["file"]
    try:
        body = f.read_bytes()
    except OSError as exc:
        raise UserError(f"{p}: embeddings file {f}: {exc.strerror or exc}") from None
    if hashlib.sha256(body).hexdigest() != ref.get("sha256"):
        raise UserError(f"{p}: embeddings file {f} is not the one this teacher file was written with (sha256 differs)")
    with np.load(io.BytesIO(body), allow_pickle=False) as z:
        emb = dict(zip((str(n) for n in z["names"]), z["windows"]))
        grid = float(z["seconds"]), float(z["hop_seconds"])
    missing = [n for n in names if n not in emb]
    if missing:
        raise UserError(f"{p}: embeddings file {f} lacks {len(missing)} clip(s) of the teacher, e.g. {missing[0]}")
    return emb, *grid


def load_teacher(path: str | Path, split: FoldSplit, classes: tuple[str, ...], level: str = "auto",
                 embeddings: bool = False) -> Teacher:
    """The teacher of a file for `split`, checked; with its per-window probabilities for `level` window,
    and for auto when the file has them; with its window embeddings when asked and the file has them
    (a teacher without them, e.g. the built-in one, is distilled from its probabilities alone)."""
    p = Path(path)
    data = _read(p)
    if list(data.get("classes") or []) != list(classes):
        raise UserError(f"{p}: classes {data.get('classes')} differ from the dataset's {list(classes)}")
    entry = _entry(p, data, split)
    clips = _rows(p, "probabilities", entry.get("probabilities"), (len(classes),))
    emb, e_seconds, e_hop = _embeddings(p, data, clips) if embeddings else (None, 0.0, 0.0)
    win = entry.get("windows")
    if level == "clip" or (level == "auto" and win is None):
        return Teacher(clips, None, e_seconds, e_hop, emb)
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
    if emb is not None and (e_seconds, e_hop) != (seconds, hop):
        raise UserError(f"{p}: the embeddings' windows ({e_seconds:g} s every {e_hop:g} s) differ from the "
                        f"probabilities' ({seconds:g} s every {hop:g} s)")
    return Teacher(clips, rows, seconds, hop, emb)


def _tempered(rows: list[np.ndarray], temperature: float) -> torch.Tensor:
    p = np.stack(rows).clip(min=1e-8) ** (1.0 / temperature)
    return torch.from_numpy((p / p.sum(axis=-1, keepdims=True)).astype(np.float32))


def whitened(x: np.ndarray, dims: int = EMBEDDING_DIMS) -> np.ndarray:
    """[..., D] → [..., <= dims]: `x` on its first `dims` principal axes (fitted on `x` itself), each
    scaled to unit variance; axes with no variance to speak of (under 1e-4 of the first's) are left out."""
    flat = np.asarray(x, np.float64).reshape(-1, x.shape[-1])
    mean = flat.mean(0)
    _, sv, axes = np.linalg.svd(flat - mean, full_matrices=False)
    scale = sv[:dims] / np.sqrt(len(flat))
    keep = scale > scale[0] * 1e-4
    return (((flat - mean) @ axes[:dims][keep].T) / scale[keep]).reshape(*x.shape[:-1], -1).astype(np.float32)


def soft_targets(teacher: Teacher, names: tuple[str, ...], temperature: float, source: str) -> SoftTargets:
    """Tempered teacher probabilities (p ** (1/T), renormalised) of the clips `names`, in that order,
    and their whitened window embeddings when the teacher has them (the axes fitted on these clips)."""
    tables = [teacher.clips] + [t for t in (teacher.windows, teacher.embeddings) if t is not None]
    missing = [n for n in names if any(n not in t for t in tables)]
    if missing:
        raise UserError(f"{source}: no teacher probabilities for {len(missing)} training clip(s), "
                        f"e.g. {missing[0]}")
    windows = None if teacher.windows is None else _tempered([teacher.windows[n] for n in names], temperature)
    features = None if teacher.embeddings is None else teacher.features(tuple(names))
    if features is not None and features.shape[-1] == 0:
        raise UserError(f"{source}: the teacher's window embeddings do not vary over the training clips: "
                        "nothing to mimic")
    return SoftTargets(_tempered([teacher.clips[n] for n in names], temperature), windows,
                       teacher.window_seconds, teacher.hop_seconds, features)


def teacher_entry(folds, names, probs, windows=None, grid: tuple[float, float] = (0.0, 0.0)) -> dict:
    """One split's entry of a teacher file: clip (and optionally window) probabilities of `names`."""
    entry = {"trained_on_folds": sorted(int(f) for f in folds),
             "probabilities": {n: [round(float(v), 6) for v in row] for n, row in zip(names, probs)}}
    if windows is not None:
        entry["windows"] = {"seconds": grid[0], "hop_seconds": grid[1], "probabilities": {
            n: [[round(float(v), 5) for v in w] for w in rows] for n, rows in zip(names, windows)}}
    return entry


def write_embeddings(path: Path, names, windows: np.ndarray, grid: tuple[float, float]) -> dict:
    """Write the window embeddings [N, K, D] of `names` to `path` (float16); returns the teacher file's
    "embeddings" reference to it."""
    buf = io.BytesIO()
    np.savez(buf, names=np.array(list(names)), windows=np.asarray(windows, np.float16), seconds=grid[0],
             hop_seconds=grid[1])
    atomic_write_bytes(path, buf.getvalue())
    return {"file": path.name, "sha256": hashlib.sha256(buf.getvalue()).hexdigest()}


def write_teachers(path: Path, classes: tuple[str, ...], entries: list[dict], about: dict | None = None,
                   embeddings: dict | None = None) -> None:
    """A teacher file of one entry (flat) or several (`splits`), naming its embeddings file if any."""
    body: dict = {"format": FORMAT, "classes": list(classes)}
    if embeddings:
        body["embeddings"] = embeddings
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
