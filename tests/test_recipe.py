"""The training recipe: its YAML section, each augmentation, soft targets, selection and the loop."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from nas.arch.space import SearchSpace
from nas.core.errors import UserError
from nas.train import augment
from nas.train.clips import ClipSet, gather, selection_score
from nas.train.loop import StopTraining, train
from nas.train.recipe import Augment, Distillation, Recipe
from nas.train.teacher import SoftTargets
from tests.test_search import SPACE

SMALL = dict(sample_rate=8000, n_fft=256, hop_ratio=0.5, n_mels=20, frames=16, overlap=0.0,
             conv_type="depthwise_separable", downsampling="strided", blocks=2, kernel=3, base_filters=8,
             growth=1.5, max_filters=0, head="global_avg", dense_units=0)


def small_spec():
    return SearchSpace.load(SPACE).build(SMALL)


def test_the_default_space_file_carries_the_default_recipe():
    assert Recipe.from_space_file(SPACE) == Recipe()


def test_training_section_errors_name_the_file_and_key(tmp_path):
    data = yaml.safe_load(SPACE.read_text())
    data["training"]["augment"]["mixup_alpha"] = -1
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(UserError, match=r"space.yaml: training.augment.mixup_alpha: expected a number >= 0"):
        Recipe.from_space_file(path)
    data["training"]["augment"] = {"mixup": 0.3}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(UserError, match=r"training.augment.mixup: unknown key"):
        Recipe.from_space_file(path)
    SearchSpace.load(path)  # the space itself ignores the training section


def _batch(b=64, t=16, m=20, seed=0):
    return torch.randn(b, 1, t, m, generator=torch.Generator().manual_seed(seed))


def test_gain_and_tilt_are_level_changes_in_db():
    x = _batch()
    off = Augment(gain_db=0, tilt_db=0, mel_shift=0, time_masks=0, mel_masks=0, mixup_alpha=0)
    gained = augment.apply(x, Augment(**{**off.__dict__, "gain_db": 12.0}), torch.Generator().manual_seed(1), 2.0)
    delta = gained - x
    per_window = delta.flatten(1)
    assert torch.allclose(per_window, per_window[:, :1].expand_as(per_window), atol=1e-6)  # one offset per window
    assert per_window[:, 0].abs().max() <= 6.0 + 1e-6 and per_window[:, 0].abs().max() > 3.0  # 12 dB / 2 dB per unit
    tilted = augment.apply(x, Augment(**{**off.__dict__, "tilt_db": 10.0}), torch.Generator().manual_seed(1), 1.0)
    slope = (tilted - x)[:, 0, 0, :]
    assert torch.allclose(slope[:, -1] - slope[:, 0], 2 * slope[:, -1], atol=1e-5)  # linear, centred on the middle band
    assert slope.abs().max() <= 5.0 + 1e-5


def test_mel_shift_moves_bands_and_repeats_the_edge():
    x = torch.arange(20, dtype=torch.float32).expand(8, 1, 4, 20).clone()
    aug = Augment(gain_db=0, tilt_db=0, mel_shift=3, time_masks=0, mel_masks=0, mixup_alpha=0)
    y = augment.apply(x, aug, torch.Generator().manual_seed(0), 1.0)
    for row in y[:, 0, 0]:
        k = int(row[10] - 10) * -1
        assert abs(k) <= 3
        expect = (torch.arange(20) - k).clamp(0, 19).float()
        assert torch.equal(row, expect)


def test_masks_zero_bands_of_bounded_width():
    x = torch.ones(200, 1, 16, 20)
    aug = Augment(gain_db=0, tilt_db=0, mel_shift=0, time_masks=1, time_mask_share=0.25, mel_masks=0, mixup_alpha=0)
    y = augment.apply(x, aug, torch.Generator().manual_seed(0), 1.0)
    zero_frames = (y[:, 0, :, 0] == 0).sum(1)
    assert zero_frames.max() <= 4 and zero_frames.max() >= 1
    assert torch.all((y == 0) == (y[:, :, :, :1] == 0))  # whole frames masked


def test_mixup_blends_inputs_and_targets_alike():
    x = _batch(8)
    t = torch.nn.functional.one_hot(torch.arange(8) % 3, 3).float()
    xm, tm = augment.mixup(x, t, 0.4, torch.Generator().manual_seed(0), np.random.default_rng(0))
    lam = float(np.random.default_rng(0).beta(0.4, 0.4))
    perm = torch.randperm(8, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(xm, lam * x + (1 - lam) * x[perm])
    assert torch.allclose(tm, lam * t + (1 - lam) * t[perm]) and torch.allclose(tm.sum(1), torch.ones(8))
    assert augment.mixup(x, t, 0.0, torch.Generator(), np.random.default_rng(0))[0] is x


def test_stretched_gather_at_rate_one_is_the_plain_window():
    x = torch.randn(3, 50, 7)
    clips, starts = torch.tensor([0, 1, 2]), torch.tensor([0, 5, 30])
    plain = gather(x, clips, starts, 16)
    same = gather(x, clips, starts.float(), 16, torch.ones(3))
    assert torch.allclose(plain, same)
    half = gather(x, clips, starts.float(), 16, torch.full((3,), 0.5))
    assert torch.allclose(half[:, 0, 1], (x[clips, starts] + x[clips, starts + 1]) / 2)


def test_selection_scores_against_a_direct_count():
    y = torch.tensor([0, 0, 0, 0, 1, 1, 2])
    pred = torch.tensor([0, 0, 1, 1, 1, 0, 2])
    probs = torch.nn.functional.one_hot(pred, 3).float()
    assert selection_score(probs, y, "accuracy") == pytest.approx(4 / 7)
    recalls = [2 / 4, 1 / 2, 1 / 1]
    assert selection_score(probs, y, "balanced") == pytest.approx(np.mean(recalls))
    prior = torch.tensor([0.2, 0.3, 0.5])
    assert selection_score(probs, y, "prior", prior) == pytest.approx(0.2 * 0.5 + 0.3 * 0.5 + 0.5 * 1.0)
    # a class absent from validation is left out and the prior renormalised
    keep = y != 2
    assert selection_score(probs[keep], y[keep], "prior", prior) == pytest.approx((0.2 * 0.5 + 0.3 * 0.5) / 0.5)


PLAIN = Augment(gain_db=0, tilt_db=0, mel_shift=0, time_masks=0, mel_masks=0, mixup_alpha=0)


def _toy_sets(n=120, frames=40, mels=20, seed=0):
    """Three separable 'classes' (a loud band at a class-specific mel position)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 10
    x = torch.randn(n, frames, mels, generator=g) * 0.3
    for i in range(n):
        x[i, :, (2 * int(y[i])) % mels] += 3.0
    vf = torch.full((n,), frames)
    return ClipSet(x, y, vf), ClipSet(x[:60].clone(), y[:60].clone(), vf[:60].clone())


def test_training_learns_and_keeps_the_best_smoothed_epoch():
    tr, va = _toy_sets()
    r = train(small_spec(), tr, va, Recipe(epochs=8, batch_size=32, lr=1e-2, seed=0, augment=PLAIN), device="cpu")
    assert r.best_acc > 0.5
    smoothed = [c["smoothed"] for c in r.curve]
    assert r.best_epoch == int(np.argmax(smoothed)) and r.best_score == pytest.approx(max(smoothed))
    means = [np.mean([c["val_score"] for c in r.curve[max(0, e - 2):e + 1]]) for e in range(len(r.curve))]
    assert smoothed == pytest.approx(means)


def test_patience_stops_and_soft_targets_are_learnt():
    tr, va = _toy_sets()
    r = train(small_spec(), tr, va, Recipe(epochs=30, patience=1, select_smoothing=1, seed=0, augment=PLAIN),
              device="cpu")
    assert len(r.curve) < 30 and r.stopped
    # a teacher that always says class 0: the network follows it when weight = 1
    soft = torch.zeros(len(tr), 10)
    soft[:, 0] = 1.0
    tr_soft = ClipSet(tr.x, tr.y, tr.valid_frames, soft=SoftTargets(soft))
    recipe = Recipe(epochs=3, seed=0, augment=PLAIN, distillation=Distillation(teacher="file", weight=1.0))
    r = train(small_spec(), tr_soft, va, recipe, device="cpu")
    assert r.best_acc == pytest.approx(float((va.y == 0).float().mean()))


def test_a_callback_can_stop_training():
    tr, va = _toy_sets()

    def stop(record):
        raise StopTraining("enough")

    with pytest.raises(StopTraining, match="enough"):
        train(small_spec(), tr, va, Recipe(epochs=3), on_epoch=stop, device="cpu")
