"""Training and clip-level evaluation of one candidate on cached log-mel features.

Everything stays in tensors: a training batch is one gather of random windows out of the clip
feature tensor, so a step costs no Python per sample and small CNNs train at full CPU speed.
Accuracy is per clip, as in the thesis: a clip's windows (spaced as the device would run them, i.e.
by the spec's overlap) are classified and their probabilities averaged.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from nas.model import Net, build
from nas.spec import ArchSpec


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-3
    windows_per_clip: int = 4      # random training windows drawn from each clip per epoch
    patience: int = 8              # stop when validation accuracy has not improved for this many epochs
    augment: bool = True           # time/mel masking and level changes (the device hears varying loudness)
    seed: int = 0


@dataclass
class ClipSet:
    """Normalised features of a set of clips: x [N, frames, mels], labels, frames holding audio."""

    x: torch.Tensor
    y: torch.Tensor
    valid_frames: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True)
class Normalisation:
    """Scalar dB → network-input affine map; scalar so it folds into int8 input quantisation."""

    mean: float
    std: float

    @classmethod
    def fit(cls, x: np.ndarray, valid_frames: np.ndarray) -> "Normalisation":
        total, sq, n = 0.0, 0.0, 0
        for clip, v in zip(x, valid_frames):
            part = np.asarray(clip[: max(int(v), 1)], dtype=np.float64)
            total += part.sum()
            sq += np.square(part).sum()
            n += part.size
        mean = total / n
        std = math.sqrt(max(sq / n - mean * mean, 1e-12))
        return cls(mean=float(mean), std=float(std))

    def apply(self, x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(((np.asarray(x, dtype=np.float32) - self.mean) / self.std).astype(np.float32))


@dataclass
class TrainResult:
    best_acc: float
    best_epoch: int
    curve: list[dict] = field(default_factory=list)
    state_dict: dict | None = None
    seconds: float = 0.0
    train_windows: int = 0
    stopped: str = ""

    @property
    def windows_per_second(self) -> float:
        return self.train_windows / self.seconds if self.seconds else 0.0


class StopTraining(Exception):
    """Raised by an epoch callback to end training early (e.g. a pruning rule); carries the reason."""


def _gather(x: torch.Tensor, clips: torch.Tensor, starts: torch.Tensor, frames: int) -> torch.Tensor:
    offsets = starts[:, None] + torch.arange(frames)
    return x[clips[:, None], offsets].unsqueeze(1)  # [B, 1, frames, mels]


def eval_windows(data: ClipSet, frames: int, hop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(clip index, start frame) of every inference window, spaced as on the device; >= 1 per clip."""
    clips, starts = [], []
    total = data.x.shape[1]
    for i, v in enumerate(data.valid_frames.tolist()):
        last = max(min(v, total) - frames, 0)
        s = torch.arange(0, last + 1, hop)
        clips.append(torch.full_like(s, i))
        starts.append(s)
    return torch.cat(clips), torch.cat(starts)


@torch.no_grad()
def clip_probabilities(net: nn.Module, data: ClipSet, frames: int, hop: int, batch: int = 1024) -> torch.Tensor:
    """Mean window softmax per clip [N, classes]."""
    net.eval()
    clips, starts = eval_windows(data, frames, hop)
    out = None
    for i in range(0, len(clips), batch):
        c, s = clips[i:i + batch], starts[i:i + batch]
        p = torch.softmax(net(_gather(data.x, c, s, frames)), dim=-1)
        if out is None:
            out = torch.zeros(len(data), p.shape[1])
        out.index_add_(0, c, p)
    counts = torch.bincount(clips, minlength=len(data)).clamp(min=1)
    return out / counts[:, None]


def clip_accuracy(net: nn.Module, data: ClipSet, frames: int, hop: int) -> float:
    probs = clip_probabilities(net, data, frames, hop)
    return float((probs.argmax(1) == data.y).float().mean())


def _augment(xb: torch.Tensor, gen: torch.Generator, std: float) -> torch.Tensor:
    """+-6 dB level change, one time mask and one mel mask of up to 1/8 of the axis (SpecAugment-like)."""
    b, _, t, m = xb.shape
    gain = (torch.rand(b, 1, 1, 1, generator=gen) * 12.0 - 6.0) / std
    tw = torch.randint(0, max(t // 8, 1) + 1, (b,), generator=gen)
    t0 = (torch.rand(b, generator=gen) * (t - tw + 1)).long()
    fw = torch.randint(0, max(m // 8, 1) + 1, (b,), generator=gen)
    f0 = (torch.rand(b, generator=gen) * (m - fw + 1)).long()
    ar_t, ar_f = torch.arange(t), torch.arange(m)
    tmask = (ar_t[None] >= t0[:, None]) & (ar_t[None] < (t0 + tw)[:, None])
    fmask = (ar_f[None] >= f0[:, None]) & (ar_f[None] < (f0 + fw)[:, None])
    mask = (tmask[:, None, :, None] | fmask[:, None, None, :]).to(xb.device)
    return (xb + gain.to(xb.device)).masked_fill(mask, 0.0)


def train(spec: ArchSpec, train_set: ClipSet, val_set: ClipSet, cfg: TrainConfig, norm_std: float = 1.0,
          on_epoch: Callable[[dict], None] | None = None, device: str | None = None) -> TrainResult:
    """Train `spec`, keep the weights of the best validation epoch (the thesis's model selection).

    `on_epoch` sees each epoch's record ({epoch, loss, val_acc, seconds}) and may raise StopTraining.
    """
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    fe = spec.frontend
    net: Net = build(spec).to(dev)
    x_train = train_set.x.to(dev)
    counts = torch.bincount(train_set.y, minlength=spec.num_classes).float().clamp(min=1)
    weights = (1.0 / counts)[train_set.y]  # class-balanced sampling
    n_per_epoch = len(train_set) * cfg.windows_per_clip
    steps = max(1, math.ceil(n_per_epoch / cfg.batch_size))
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps)
    loss_fn = nn.CrossEntropyLoss()
    val_dev = ClipSet(val_set.x.to(dev), val_set.y.to(dev), val_set.valid_frames)
    result = TrainResult(best_acc=-1.0, best_epoch=-1)
    t_start = time.perf_counter()
    since_best = 0
    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        net.train()
        clips = torch.multinomial(weights, n_per_epoch, replacement=True, generator=gen)
        room = (train_set.valid_frames[clips] - fe.frames).clamp(min=0) + 1
        starts = (torch.rand(n_per_epoch, generator=gen) * room).long().clamp(max=train_set.x.shape[1] - fe.frames)
        total_loss = 0.0
        for i in range(steps):
            c, s = clips[i * cfg.batch_size:(i + 1) * cfg.batch_size], starts[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            if len(c) == 0:
                continue
            xb = _gather(x_train, c.to(dev), s.to(dev), fe.frames)
            if cfg.augment:
                xb = _augment(xb, gen, norm_std)
            loss = loss_fn(net(xb), train_set.y[c].to(dev))
            if not torch.isfinite(loss):
                raise StopTraining(f"loss became {loss.item()} at epoch {epoch}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total_loss += loss.item() * len(c)
        result.train_windows += n_per_epoch
        acc = clip_accuracy(net, val_dev, fe.frames, fe.window_hop_frames)
        record = {"epoch": epoch, "loss": total_loss / n_per_epoch, "val_acc": acc,
                  "seconds": time.perf_counter() - t0}
        result.curve.append(record)
        if acc > result.best_acc:
            result.best_acc, result.best_epoch, since_best = acc, epoch, 0
            result.state_dict = copy.deepcopy({k: v.cpu() for k, v in net.state_dict().items()})
        else:
            since_best += 1
        result.seconds = time.perf_counter() - t_start
        if on_epoch is not None:
            on_epoch(record)
        if since_best >= cfg.patience:
            result.stopped = f"no improvement for {cfg.patience} epochs"
            break
    result.seconds = time.perf_counter() - t_start
    return result
