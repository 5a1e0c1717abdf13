"""Cached features → normalised training/validation tensors for the trials of one study.

Trials that share a front-end (sample rate, FFT, hop, mels) share one feature set, loaded once per
process from the on-disk cache. Only train and validation folds are ever turned into tensors here;
the test fold is out of reach of model selection by construction.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from nas.arch.frontend import LOG_FLOOR_DB
from nas.arch.spec import FrontEnd
from nas.data import cache as fcache
from nas.data.urbansound import FoldSplit
from nas.train.clips import ClipSet, Normalisation
from nas.train.teacher import SoftTargets, Teacher, soft_targets


def valid_frames(x: np.ndarray) -> np.ndarray:
    """Frames per clip up to the last one holding sound; zero padding of short clips is left out
    so no training or evaluation window is pure padding."""
    loud = (np.asarray(x, dtype=np.float32) > LOG_FLOOR_DB + 1.0).any(axis=2)  # [N, T]
    last = loud.shape[1] - np.argmax(loud[:, ::-1], axis=1)
    return np.where(loud.any(axis=1), last, loud.shape[1]).astype(np.int64)


def to_clipset(features: fcache.ClipFeatures, norm: Normalisation, soft: SoftTargets | None = None) -> ClipSet:
    x = np.asarray(features.x)
    return ClipSet(x=norm.apply(x), y=torch.from_numpy(np.asarray(features.y, dtype=np.int64)),
                   valid_frames=torch.from_numpy(valid_frames(x)), soft=soft)


class TrialData:
    """Per-process memo of (train, val, normalisation) by front-end feature parameters; with a
    teacher (`nas.train.teacher.Teacher`), the training set carries its tempered soft targets.

    Bounded (least recently used out): on UrbanSound8K one front-end's float32 tensors take ~300 MB,
    and a search visits dozens of front-ends; reloading from the memory-mapped cache is cheap."""

    def __init__(self, root: str | Path, split: FoldSplit, cache_dir: str | Path, progress: bool = True,
                 keep: int = 4, teacher: Teacher | None = None, temperature: float = 1.0):
        self.root, self.split, self.cache_dir, self.progress = Path(root), split, Path(cache_dir), progress
        self.teacher, self.temperature = teacher, temperature
        self._memo: OrderedDict[str, tuple[ClipSet, ClipSet, Normalisation]] = OrderedDict()
        self._lock = threading.Lock()
        self.keep = keep
        self.loads = 0

    def get(self, fe: FrontEnd, on_clips=None) -> tuple[ClipSet, ClipSet, Normalisation]:
        """(train, val, normalisation) of `fe`; `on_clips(done, total)` hears about features computed."""
        key = repr(sorted(fcache.feature_params(fe).items()))
        with self._lock:
            if key not in self._memo:
                self.loads += 1
                feats = fcache.load_features(self.root, fe, self.cache_dir, progress=self.progress, on_clips=on_clips)
                sel = feats.selection(self.split)
                train_x = np.asarray(sel.train.x)
                norm = Normalisation.fit(train_x, valid_frames(train_x))
                soft = None if self.teacher is None else soft_targets(self.teacher, sel.train.names,
                                                                       self.temperature, "teacher")
                self._memo[key] = (to_clipset(sel.train, norm, soft), to_clipset(sel.val, norm), norm)
                while len(self._memo) > self.keep:
                    self._memo.popitem(last=False)
            self._memo.move_to_end(key)
            return self._memo[key]
