"""Training one candidate on cached log-mel features: the recipe and the loop.

Everything stays in tensors: a training batch is one gather of random windows out of the clip
feature tensor (class-balanced clips, a random window in each), so a step costs no Python per
sample and small CNNs train at full CPU speed. Model selection keeps the epoch with the best
clip-level validation accuracy (`nas.train.clips`).
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from nas.arch.net import Net, build
from nas.arch.spec import ArchSpec
from nas.train.augment import level_and_masks
from nas.train.clips import ClipSet, clip_accuracy, gather


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


def _draw_windows(data: ClipSet, weights: torch.Tensor, n: int, frames: int,
                  gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(clip, start frame) of `n` random training windows, clips drawn with `weights`."""
    clips = torch.multinomial(weights, n, replacement=True, generator=gen)
    room = (data.valid_frames[clips] - frames).clamp(min=0) + 1
    starts = (torch.rand(n, generator=gen) * room).long().clamp(max=data.x.shape[1] - frames)
    return clips, starts


def _train_epoch(net: Net, opt, sched, x_train: torch.Tensor, y_train: torch.Tensor, clips: torch.Tensor,
                 starts: torch.Tensor, cfg: TrainConfig, gen: torch.Generator, norm_std: float, frames: int,
                 epoch: int) -> float:
    """One optimisation pass over the drawn windows; returns the summed loss."""
    dev = x_train.device
    loss_fn = nn.CrossEntropyLoss()
    net.train()
    total_loss = 0.0
    for i in range(0, len(clips), cfg.batch_size):
        c, s = clips[i:i + cfg.batch_size], starts[i:i + cfg.batch_size]
        xb = gather(x_train, c.to(dev), s.to(dev), frames)
        if cfg.augment:
            xb = level_and_masks(xb, gen, norm_std)
        loss = loss_fn(net(xb), y_train[c].to(dev))
        if not torch.isfinite(loss):
            raise StopTraining(f"loss became {loss.item()} at epoch {epoch}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        total_loss += loss.item() * len(c)
    return total_loss


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
    val_dev = ClipSet(val_set.x.to(dev), val_set.y.to(dev), val_set.valid_frames)
    result = TrainResult(best_acc=-1.0, best_epoch=-1)
    t_start = time.perf_counter()
    since_best = 0
    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        clips, starts = _draw_windows(train_set, weights, n_per_epoch, fe.frames, gen)
        total_loss = _train_epoch(net, opt, sched, x_train, train_set.y, clips, starts, cfg, gen, norm_std,
                                  fe.frames, epoch)
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
