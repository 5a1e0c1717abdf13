"""The pretrained teacher's embeddings of every clip, computed once and cached on disk.

For each clip: the pooled embedding of the whole 4-s clip, and that of each 1-s window every 0.25 s
(13 per clip), the spans a student's training windows are scored against (`nas.train.teacher`).
Windows are cut from the clip's log-mel, so one front-end pass serves both.

Cache: CACHE_DIR/teacher-<key>.npz, one file written atomically under CACHE_DIR/teacher-<key>.lock;
key = sha256 of (format version, the weights file's sha256, the dataset fingerprint of the feature
cache, the front-end and window constants). A different weights file or a touched audio file misses.
"""
from __future__ import annotations

import hashlib
import io
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from nas.core.atomic import atomic_write_bytes
from nas.core.errors import UserError
from nas.core.locks import FileLock
from nas.data import urbansound as us
from nas.data import cache as fcache
from nas.teacher import melspec
from nas.teacher.mobilenet import MobileNetAudio

FORMAT_VERSION = 1
WINDOW_SECONDS = 1.0
WINDOW_HOP_SECONDS = 0.25
BATCH = 16


@dataclass(frozen=True)
class Embeddings:
    clip: np.ndarray            # [N, D] float32, whole clips
    windows: np.ndarray         # [N, K, D] float16, 1-s windows every 0.25 s
    names: tuple[str, ...]
    y: np.ndarray               # [N] class ids
    fold: np.ndarray            # [N]
    fs_id: np.ndarray           # [N] source recording (freesound id)
    classes: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.0        # time spent computing them (0 for a cache hit)

    def rows(self, folds) -> np.ndarray:
        return np.flatnonzero(np.isin(self.fold, list(folds)))


def weights_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_network(path: str | Path) -> MobileNetAudio:
    """The teacher network with the weights at `path`, loaded strictly; UserError for a missing or
    unreadable file or a state dict of another structure."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"--weights {p}: no such file (the EfficientAT release file mn04_as_mAP_432.pt; "
                        "README 'Pretrained teacher')")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file, said in one line
        raise UserError(f"--weights {p}: not a PyTorch state dict ({type(exc).__name__})") from None
    net = MobileNetAudio()
    if not isinstance(state, dict):
        raise UserError(f"--weights {p}: expected a state dict, found a {type(state).__name__}")
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[1:2] or [str(exc)]
        raise UserError(f"--weights {p}: not the EfficientAT mn04_as state dict ({first[0].strip()[:200]})") from None
    return net.eval()


def window_starts(frames: int) -> list[int]:
    """First frame of each teacher window of a clip with `frames` frames."""
    span, hop = _frames(WINDOW_SECONDS), _frames(WINDOW_HOP_SECONDS)
    return list(range(0, max(frames - span, 0) + 1, hop))


def _frames(seconds: float) -> int:
    return int(round(seconds / melspec.frame_seconds()))


@torch.no_grad()
def embed_audio(net: MobileNetAudio, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """audio [B, samples] at 32 kHz → (clip embeddings [B, D], window embeddings [B, K, D])."""
    mel = _frontend()(audio)
    span = _frames(WINDOW_SECONDS)
    starts = window_starts(mel.shape[-1])
    wins = torch.stack([mel[..., s:s + span] for s in starts], dim=1)       # [B, K, 1, mels, span]
    b, k = wins.shape[:2]
    return net.embed(mel), net.embed(wins.flatten(0, 1)).view(b, k, -1)


@lru_cache(maxsize=1)
def _frontend() -> melspec.TeacherMel:
    return melspec.TeacherMel()


def cache_key(root: Path, digest: str) -> str:
    body = {"format": FORMAT_VERSION, "weights": digest, "dataset": fcache.dataset_fingerprint(root),
            "frontend": [melspec.SAMPLE_RATE, melspec.N_FFT, melspec.WIN_LENGTH, melspec.HOP, melspec.N_MELS,
                         melspec.FMIN, melspec.FMAX], "windows": [WINDOW_SECONDS, WINDOW_HOP_SECONDS],
            "clip_seconds": us.CLIP_SECONDS}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:24]


def embeddings(root: str | Path, weights: str | Path, cache_dir: str | Path, progress: bool = True,
               net: MobileNetAudio | None = None) -> Embeddings:
    """Every readable clip's embeddings, from the cache or computed once (and cached)."""
    root = us.find_root(root)
    net = net if net is not None else load_network(weights)
    path = Path(cache_dir).expanduser() / f"teacher-{cache_key(root, weights_digest(weights))}.npz"
    hit = _try_load(path)
    if hit is not None:
        return hit
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cache folder {path.parent}: cannot create it ({exc.strerror})") from None
    with FileLock(path.with_suffix(".lock")):
        hit = _try_load(path)
        if hit is not None:
            return hit
        emb = _compute(net, us.read_metadata(root), progress)
        _save(path, emb)
    return emb


def _decode_32k(clip: us.Clip):
    """(clip, audio at 32 kHz or None, why not): the feature cache's decoding, at the teacher's rate."""
    return fcache._decode(clip, melspec.SAMPLE_RATE)


def _compute(net: MobileNetAudio, ds: us.Dataset, progress: bool) -> Embeddings:
    from tqdm import tqdm

    t0 = time.perf_counter()
    report = us.SkipReport()
    kept, clip_out, win_out = [], [], []
    bar = tqdm(total=len(ds.clips), desc="teacher embeddings", unit="clip", file=sys.stderr,
               disable=not progress, dynamic_ncols=True)
    with ThreadPoolExecutor(max_workers=max(1, torch.get_num_threads())) as ex:  # decoding beside the network
        for i in range(0, len(ds.clips), BATCH):
            batch = []
            for clip, audio, err in ex.map(_decode_32k, ds.clips[i:i + BATCH]):
                if err is None:
                    batch.append((clip, audio))
                else:
                    report.add(str(clip.path.relative_to(ds.root)), err)
            if batch:
                c, w = embed_audio(net, torch.from_numpy(np.stack([a for _, a in batch])))
                clip_out.append(c.numpy())
                win_out.append(w.numpy().astype(np.float16))
                kept += [clip for clip, _ in batch]
            bar.update(min(BATCH, len(ds.clips) - i))
    bar.close()
    if not kept:
        raise UserError(f"{ds.csv_path}: none of the {len(ds.clips)} listed audio files could be read")
    if report and progress:
        print(f"warning: {report.summary()}", file=sys.stderr)
    return Embeddings(clip=np.concatenate(clip_out), windows=np.concatenate(win_out),
                      names=tuple(c.name for c in kept), y=np.array([c.class_id for c in kept]),
                      fold=np.array([c.fold for c in kept]), fs_id=np.array([c.fs_id for c in kept]),
                      classes=ds.classes, skipped=tuple(report.skipped), seconds=time.perf_counter() - t0)


def _save(path: Path, e: Embeddings) -> None:
    meta = {"format": FORMAT_VERSION, "classes": list(e.classes), "skipped": [list(s) for s in e.skipped],
            "seconds": round(e.seconds, 3)}
    buf = io.BytesIO()
    np.savez(buf, clip=e.clip, windows=e.windows, names=np.array(e.names), y=e.y, fold=e.fold, fs_id=e.fs_id,
             meta=np.array(json.dumps(meta)))
    atomic_write_bytes(path, buf.getvalue())


def _try_load(path: Path) -> Embeddings | None:
    """The cached embeddings at `path`; None when absent or not readable as such."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            e = Embeddings(clip=z["clip"], windows=z["windows"], names=tuple(str(n) for n in z["names"]),
                           y=z["y"].astype(np.int64), fold=z["fold"].astype(np.int64),
                           fs_id=z["fs_id"].astype(np.int64), classes=tuple(meta["classes"]),
                           skipped=tuple((str(a), str(b)) for a, b in meta["skipped"]))
    except (OSError, ValueError, KeyError, TypeError, EOFError):
        return None
    n = len(e.names)
    if meta.get("format") != FORMAT_VERSION or e.clip.shape[0] != n or e.windows.shape[0] != n or len(e.y) != n:
        return None
    return e
