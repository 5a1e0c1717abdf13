"""Training one candidate on cached log-mel features with a `Recipe`.

Everything stays in tensors: a training batch is one gather of random windows out of the clip
feature tensor (class-balanced clips, a random window in each), so a step costs no Python per
sample and small CNNs train at full CPU speed. Targets are soft (label smoothing, mixup, teacher
probabilities), so one loss covers every recipe; a student mimicking a teacher's embeddings adds a
regression of them through a linear head that only training sees. Model selection keeps the epoch
with the best validation score averaged over the last `select_smoothing` epochs: on a few hundred
validation clips one epoch's accuracy moves by several points, and picking its maximum rewards luck.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nas.arch.net import build
from nas.arch.spec import ArchSpec, FrontEnd
from nas.train import augment
from nas.train.clips import ClipSet, clip_probabilities, gather, selection_score
from nas.train.recipe import Recipe
from nas.train.teacher import SoftTargets


@dataclass
class TrainResult:
    best_score: float              # smoothed selection score at the best epoch
    best_acc: float                # validation accuracy of the kept weights
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


def class_prior(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    return torch.bincount(y, minlength=num_classes).float() / max(len(y), 1)


def _draw_windows(data: ClipSet, weights: torch.Tensor, n: int, frames: int, rates: torch.Tensor | None,
                  gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(clip, start frame) of `n` random training windows, clips drawn with `weights`; with stretch
    rates the window spans (frames - 1) * rate + 1 frames and starts at a fractional frame."""
    clips = torch.multinomial(weights, n, replacement=True, generator=gen)
    if rates is None:
        room = (data.valid_frames[clips] - frames).clamp(min=0) + 1
        return clips, (torch.rand(n, generator=gen) * room).long().clamp(max=data.x.shape[1] - frames)
    span = (frames - 1) * rates + 1
    room = (data.valid_frames[clips].float() - span).clamp(min=0)
    return clips, torch.rand(n, generator=gen) * room


class _Trainer:
    """Optimiser, schedule, targets and the optional weight average of one training run."""

    def __init__(self, net: nn.Module, recipe: Recipe, steps: int, num_classes: int, soft: SoftTargets | None,
                 fe: FrontEnd):
        self.net, self.recipe, self.num_classes, self.soft, self.fe = net, recipe, num_classes, soft, fe
        self.mimic = None
        if recipe.distillation.embedding_weight and soft is not None and soft.features is not None:
            self.mimic = nn.Linear(net.feature_size, soft.features.shape[-1]).to(next(net.parameters()).device)
        params = list(net.parameters()) + (list(self.mimic.parameters()) if self.mimic is not None else [])
        self.opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
        total = recipe.epochs * steps
        warm = recipe.warmup_share
        if recipe.schedule == "onecycle":
            self.sched = torch.optim.lr_scheduler.OneCycleLR(self.opt, max_lr=recipe.lr, total_steps=total,
                                                             pct_start=max(warm, 1e-3))
        else:
            warm_steps = max(1, int(warm * total))
            self.sched = torch.optim.lr_scheduler.LambdaLR(
                self.opt, lambda s: min(1.0, (s + 1) / warm_steps) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
        self.ema = copy.deepcopy(net) if recipe.ema_decay else None

    @property
    def model(self) -> nn.Module:
        """The weights that are scored and kept: the average when there is one."""
        return self.ema if self.ema is not None else self.net

    def targets(self, y: torch.Tensor, clips: torch.Tensor, starts: torch.Tensor,
                rates: torch.Tensor | None) -> torch.Tensor:
        """One-hot labels (smoothed), blended with the teacher's targets for the windows' spans; when
        mimicking, followed by the teacher's features of those spans (so that mixup blends both alike)."""
        t = F.one_hot(y, self.num_classes).float()
        if self.recipe.label_smoothing:
            t = t * (1 - self.recipe.label_smoothing) + self.recipe.label_smoothing / self.num_classes
        if self.soft is not None:
            fe, w = self.fe, self.recipe.distillation.weight
            span = fe.frames - 1 if rates is None else (fe.frames - 1) * rates.cpu()
            start_s = starts.cpu() * fe.hop_length / fe.sample_rate
            end_s = start_s + (span * fe.hop_length + fe.n_fft) / fe.sample_rate
            t = (1 - w) * t + w * self.soft.pick(clips.cpu(), start_s, end_s).to(t.device)
            if self.mimic is not None:
                t = torch.cat([t, self.soft.pick_features(clips.cpu(), start_s, end_s).to(t.device)], dim=1)
        return t

    def step(self, xb: torch.Tensor, targets: torch.Tensor, epoch: int) -> float:
        if self.mimic is None:
            logits = self.net(xb)
        else:
            features, logits = self.net.features_and_logits(xb)
            targets, teacher = targets[:, :self.num_classes], targets[:, self.num_classes:]
        loss = -(targets * F.log_softmax(logits, dim=-1)).sum(-1).mean()
        if self.mimic is not None:
            loss = loss + self.recipe.distillation.embedding_weight * F.mse_loss(self.mimic(features), teacher)
        if not torch.isfinite(loss):
            raise StopTraining(f"loss became {loss.item()} at epoch {epoch}")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.sched.step()
        if self.ema is not None:
            self._average()
        return loss.item()

    @torch.no_grad()
    def _average(self) -> None:
        d = self.recipe.ema_decay
        for pe, p in zip(self.ema.parameters(), self.net.parameters()):
            pe.mul_(d).add_(p.detach(), alpha=1 - d)
        for be, b in zip(self.ema.buffers(), self.net.buffers()):
            be.copy_(b)


def _train_epoch(tr: _Trainer, data: ClipSet, x_train: torch.Tensor, weights: torch.Tensor, n: int,
                 frames: int, gen: torch.Generator, rng: np.random.Generator, db_per_unit: float, epoch: int) -> float:
    """One pass over `n` freshly drawn windows; returns the mean loss."""
    r = tr.recipe
    dev = x_train.device
    rates = augment.stretch_rates(n, r.augment, gen)
    clips, starts = _draw_windows(data, weights, n, frames, rates, gen)
    tr.net.train()
    total = 0.0
    for i in range(0, n, r.batch_size):
        c, s = clips[i:i + r.batch_size], starts[i:i + r.batch_size]
        rb = None if rates is None else rates[i:i + r.batch_size]
        xb = gather(x_train, c.to(dev), s.to(dev), frames, None if rb is None else rb.to(dev))
        xb = augment.apply(xb, r.augment, gen, db_per_unit)
        xb, targets = augment.mixup(xb, tr.targets(data.y[c].to(dev), c, s, rb), r.augment.mixup_alpha, gen, rng)
        total += tr.step(xb, targets, epoch) * len(c)
    return total / n


def train(spec: ArchSpec, train_set: ClipSet, val_set: ClipSet, recipe: Recipe, norm_std: float = 1.0,
          on_epoch: Callable[[dict], None] | None = None, device: str | None = None,
          net: nn.Module | None = None) -> TrainResult:
    """Train `spec` with `recipe`; keep the weights of the epoch with the best smoothed validation score.

    A training set with `soft` targets (a teacher's clip or window probabilities) is distilled from. `net`
    continues training a given module (fine-tuning) instead of a freshly built one.
    `on_epoch` sees each epoch's record ({epoch, loss, val_acc, val_score, smoothed, seconds}) and may
    raise StopTraining.
    """
    torch.manual_seed(recipe.seed)
    gen = torch.Generator().manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    fe = spec.frontend
    net = (net if net is not None else build(spec)).to(dev)
    counts = torch.bincount(train_set.y, minlength=spec.num_classes).float().clamp(min=1)
    weights = (1.0 / counts)[train_set.y] if recipe.balance_classes else torch.ones(len(train_set))
    prior = class_prior(train_set.y, spec.num_classes)
    n = len(train_set) * recipe.windows_per_clip
    tr = _Trainer(net, recipe, max(1, math.ceil(n / recipe.batch_size)), spec.num_classes, train_set.soft, fe)
    x_train = train_set.x.to(dev)
    val_dev = ClipSet(val_set.x.to(dev), val_set.y.to(dev), val_set.valid_frames)
    result = TrainResult(best_score=-1.0, best_acc=-1.0, best_epoch=-1)
    scores: list[float] = []
    t_start = time.perf_counter()
    for epoch in range(recipe.epochs):
        t0 = time.perf_counter()
        loss = _train_epoch(tr, train_set, x_train, weights, n, fe.frames, gen, rng, norm_std, epoch)
        result.train_windows += n
        probs = clip_probabilities(tr.model, val_dev, fe.frames, fe.window_hop_frames).cpu()
        acc = float((probs.argmax(1) == val_set.y).float().mean())
        scores.append(selection_score(probs, val_set.y, recipe.selection_metric, prior))
        smoothed = float(np.mean(scores[-recipe.select_smoothing:]))
        record = {"epoch": epoch, "loss": loss, "val_acc": acc, "val_score": scores[-1], "smoothed": smoothed,
                  "seconds": time.perf_counter() - t0}
        result.curve.append(record)
        if smoothed > result.best_score:
            result.best_score, result.best_acc, result.best_epoch = smoothed, acc, epoch
            result.state_dict = copy.deepcopy({k: v.cpu() for k, v in tr.model.state_dict().items()})
        result.seconds = time.perf_counter() - t_start
        if on_epoch is not None:
            on_epoch(record)
        if recipe.patience and epoch - result.best_epoch >= recipe.patience:
            result.stopped = f"no better smoothed validation score for {recipe.patience} epochs"
            break
    result.seconds = time.perf_counter() - t_start
    return result
