"""The pretrained teacher (`nas.teacher`): strict loading, the front-end against an independent numpy
computation, embeddings, cross-fitted heads, the teacher file, its cache and CLI, and window-level
soft targets. A random state dict of the published structure stands in for the AudioSet weights."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from nas.core.errors import UserError
from nas.data import urbansound as us
from nas.data.urbansound import FoldSplit
from nas.teacher import head, melspec
from nas.teacher.embed import embed_audio, embeddings, load_network
from nas.teacher.make import make_teacher
from nas.teacher.mobilenet import MobileNetAudio
from nas.train.loop import train
from nas.train.recipe import Distillation, Recipe
from nas.arch.net import build
from nas.train.clips import gather
from nas.train.teacher import EMBEDDING_DIMS, SoftTargets, Teacher, load_teacher, soft_targets, whitened
from tests.test_recipe import PLAIN, _toy_sets, small_spec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}


def _random_state(seed: int = 0) -> dict:
    """A state dict of the published structure with random weights and BatchNorm statistics."""
    torch.manual_seed(seed)
    net = MobileNetAudio()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return net.state_dict()


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "mn04_random.pt"
    torch.save(_random_state(), path)
    return path


# -- the network ---------------------------------------------------------------------------------

def test_the_network_has_the_published_structure_and_loads_strictly(weights, tmp_path):
    state = _random_state()
    assert len(state) == 312 and state["classifier.5.weight"].shape == (527, 512)
    assert state["features.15.block.2.conc_se_layers.0.fc1.weight"].shape == (96, 384)
    assert sum(v.numel() for k, v in state.items() if "running" not in k and "num_batches" not in k) == 983_599
    net = load_network(weights)
    assert all(torch.equal(net.state_dict()[k], v) for k, v in state.items())
    broken = dict(state)
    broken.pop("features.16.1.running_var")
    broken["extra.weight"] = torch.zeros(1)
    for bad, match in ((broken, "not the EfficientAT mn04_as state dict"), ({**state, "classifier.5.bias": torch.zeros(3)},
                                                                          "not the EfficientAT mn04_as state dict"),
                       ([1, 2], "expected a state dict")):
        torch.save(bad, tmp_path / "bad.pt")
        with pytest.raises(UserError, match=match) as err:
            load_network(tmp_path / "bad.pt")
        assert "\n" not in str(err.value)
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(UserError, match="not a PyTorch state dict"):
        load_network(tmp_path / "text.pt")
    with pytest.raises(UserError, match="no such file"):
        load_network(tmp_path / "absent.pt")


def test_embeddings_have_the_documented_shapes_and_feed_the_published_head(weights):
    net = load_network(weights)
    audio = torch.randn(2, 4 * melspec.SAMPLE_RATE) * 0.1
    clip, windows = embed_audio(net, audio)
    assert clip.shape == (2, 384) and windows.shape == (2, 13, 384)
    mel = melspec.TeacherMel()(audio)
    assert mel.shape == (2, 1, 128, 400) == (2, 1, 128, melspec.frames_for(audio.shape[1]))
    with torch.no_grad():
        via_state_dict_head = net.classifier(net.features(mel))      # the pooling inside the published head
        assert torch.allclose(net(mel), via_state_dict_head, atol=1e-5)
        assert torch.allclose(net.embed(mel[..., 25:125]), windows[:, 1], atol=1e-3)   # window 1: 0.25-1.25 s


# -- the front-end against an independent computation --------------------------------------------

def _numpy_logmel(audio: np.ndarray) -> np.ndarray:
    """The documented formulas, step by step in numpy: [128, frames]."""
    x = audio[1:] - 0.97 * audio[:-1]
    x = np.pad(x, 512, mode="reflect")
    window = np.zeros(1024)
    window[112:912] = np.hanning(800)                      # symmetric Hann, centred in the frame
    frames = np.stack([x[i:i + 1024] * window for i in range(0, len(x) - 1024 + 1, 320)])
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2       # [frames, 513]
    mel = lambda f: 1127.0 * np.log(1.0 + f / 700.0)       # noqa: E731 - the Kaldi mel scale
    lo, hi, n = mel(0.0), mel(15000.0), 128
    step = (hi - lo) / (n + 1)
    banks = np.zeros((n, 513))
    for b in range(n):
        left, centre, right = lo + b * step, lo + (b + 1) * step, lo + (b + 2) * step
        for k in range(512):                              # the Nyquist bin stays 0
            m = mel(k * 32000 / 1024)
            if left < m < right:
                banks[b, k] = (m - left) / (centre - left) if m <= centre else (right - m) / (right - centre)
    return (np.log(banks @ power.T + 1e-5) + 4.5) / 5.0


def test_the_front_end_matches_an_independent_numpy_computation():
    rng = np.random.default_rng(0)
    t = np.arange(32000) / 32000
    audio = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(32000)).astype(np.float32)
    ours = melspec.TeacherMel()(torch.from_numpy(audio)[None])[0, 0].numpy()
    ref = _numpy_logmel(audio.astype(np.float64))
    assert ours.shape == ref.shape == (128, 100)
    assert np.abs(ours - ref).max() < 2e-3
    banks = melspec.mel_banks()
    assert banks.shape == (128, 513) and not banks[:, -1].any() and banks.max() <= 1.0
    tone = melspec.TeacherMel()(torch.sin(2 * np.pi * 440 * torch.from_numpy(t).float())[None])[0, 0, :, 50]
    peak = int(tone.argmax())                              # 440 Hz lands in the band centred nearest it
    centres = 700 * np.expm1(np.linspace(0, 1127 * np.log1p(15000 / 700), 130)[1:-1] / 1127)
    assert abs(centres[peak] - 440) < 40


# -- heads and cross-fitting ---------------------------------------------------------------------

def test_a_head_learns_and_cross_fitting_never_scores_a_clip_with_a_head_that_saw_its_recording():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 30)
    x = rng.standard_normal((120, 40)) + 2.0 * np.eye(4, 40)[y]
    h = head.fit(x, y, 4, 1e-2)
    assert (h.probabilities(x).argmax(1) == y).mean() > 0.95
    assert np.allclose(h.probabilities(x).sum(1), 1)
    fs_id = np.arange(120) // 3                           # 3 slices per recording
    g = head.groups(fs_id)
    assert sorted(np.bincount(g)) == [24] * 5
    assert all(len(set(g[fs_id == r])) == 1 for r in np.unique(fs_id))
    uneven = np.repeat(np.arange(6), [5, 4, 3, 2, 1, 1])      # largest recording first, into the smallest set
    assert np.array_equal(head.groups(uneven, n=3), [0] * 5 + [1] * 4 + [2] * 3 + [2, 2, 1, 0])
    # labels that are pure noise: a weakly regularised head repeats them in-sample, not out of fold
    noise, wide = rng.integers(0, 4, 120), rng.standard_normal((120, 200))
    weak = head.fit(wide, noise, 4, 1e-4)
    oof, l2, heads = head.cross_fit(wide, noise, g, 4)
    assert (weak.probabilities(wide).argmax(1) == noise).mean() > 0.9
    assert (oof.argmax(1) == noise).mean() < 0.45 and l2 in head.L2_GRID and sorted(heads) == list(range(5))


# -- the teacher file, its cache and the CLI -----------------------------------------------------

def test_make_teacher_writes_out_of_fold_targets_for_training_clips_only_and_caches(weights, demo_root, tmp_path):
    split = FoldSplit(train=(1, 2), val=(3,), test=(4,))
    out, cache = tmp_path / "t.json", tmp_path / "cache"
    lines = []
    (r,) = make_teacher(weights, demo_root, [split], cache, out, log=lines.append, progress=False)
    ds = us.read_metadata(demo_root)
    data = json.loads(out.read_text())
    assert data["format"] == "nas-teacher-v1" and data["trained_on_folds"] == [1, 2]
    assert set(data["probabilities"]) == {c.name for c in ds.clips if c.fold in (1, 2)}
    assert data["windows"]["seconds"] == 1.0 and data["windows"]["hop_seconds"] == 0.25
    t = load_teacher(out, split, ds.classes)                     # level auto: the file's windows are used
    assert set(t.windows) == set(t.clips) and next(iter(t.windows.values())).shape == (13, 10)
    assert load_teacher(out, split, ds.classes, level="clip").windows is None
    assert 0.0 <= r.val_acc <= 1.0 and "validation accuracy" in lines[-1]
    with pytest.raises(UserError, match=r"trained on fold\(s\) \[1\]"):
        load_teacher(out, FoldSplit(train=(2,), val=(1,), test=(4,)), ds.classes)
    before = us.decode_count()
    make_teacher(weights, demo_root, [split], cache, tmp_path / "again.json", log=lines.append, progress=False)
    assert us.decode_count() == before and "cached" in lines[-2]          # the embeddings came from the cache
    other = tmp_path / "other.pt"
    torch.save(_random_state(seed=1), other)
    embeddings(demo_root, other, cache, progress=False)
    assert us.decode_count() > before and len(list(cache.glob("teacher-*.npz"))) == 2   # other weights: a miss


def test_a_rotation_gets_one_teacher_per_split_and_each_split_reads_its_own(weights, demo_root, tmp_path):
    splits = [FoldSplit(train=(3, 4), val=(2,), test=(1,)), FoldSplit(train=(1, 4), val=(3,), test=(2,))]
    out = tmp_path / "rot.json"
    make_teacher(weights, demo_root, splits, tmp_path / "cache", out, log=lambda s: None, progress=False)
    data = json.loads(out.read_text())
    assert [e["trained_on_folds"] for e in data["splits"]] == [[3, 4], [1, 4]]
    assert data["trained_on_folds"] == [1, 3, 4]            # the union: a one-entry reader refuses it
    classes = us.read_metadata(demo_root).classes
    for split, entry in zip(splits, data["splits"]):
        assert set(load_teacher(out, split, classes).clips) == set(entry["probabilities"])
    with pytest.raises(UserError, match="validates or tests on"):
        load_teacher(out, FoldSplit(train=(1, 2), val=(3,), test=(4,)), classes)


def _cli(args, cwd):
    return subprocess.run([sys.executable, "-m", "nas.teacher", *args], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=600)


def test_the_cli_prints_the_validation_accuracy_last_and_refuses_bad_input_in_one_line(weights, demo_root, tmp_path):
    common = ["--data", str(demo_root), "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "t.json")]
    ok = _cli(["--weights", str(weights), "--train-folds", "1,2", "--val-folds", "3", "--test-folds", "4", *common],
              tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip().splitlines()[-1].startswith("teacher validation accuracy: ")
    bad_state = tmp_path / "bad.pt"
    torch.save({"features.0.0.weight": torch.zeros(1)}, bad_state)
    for args, words in ((["--weights", str(tmp_path / "none.pt")], "no such file"),
                        (["--weights", str(bad_state)], "not the EfficientAT mn04_as state dict"),
                        (["--weights", str(weights), "--val-folds", "11"], "--val-folds"),
                        (["--weights", str(weights), "--train-folds", "1", "--val-folds", "1"], "fold"),
                        (["--weights", str(weights), "--folds", "1,2", "--val-folds", "3"], "--folds")):
        bad = _cli([*args, *common], tmp_path)
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and words in bad.stderr, (args, bad.stderr)


# -- window-level soft targets -------------------------------------------------------------------

def test_window_targets_average_the_teacher_windows_a_span_covers():
    windows = torch.zeros(1, 13, 3)
    windows[0, :, 0] = 1.0
    windows[0, 4:7] = torch.tensor([0.0, 1.0, 0.0])        # windows centred at 1.5, 1.75, 2.0 s say class 1
    soft = SoftTargets(torch.tensor([[0.2, 0.3, 0.5]]), windows, 1.0, 0.25)
    clip = torch.zeros(3, dtype=torch.long)
    got = soft.pick(clip, torch.tensor([1.4, 1.6, 0.0]), torch.tensor([2.1, 1.7, 0.1]))
    assert torch.allclose(got[0], torch.tensor([0.0, 1.0, 0.0]))       # covers centres 1.5, 1.75, 2.0
    assert torch.allclose(got[1], torch.tensor([0.0, 1.0, 0.0]))       # covers none: the nearest, 1.75 (1.5 ties)
    assert torch.allclose(got[2], torch.tensor([1.0, 0.0, 0.0]))       # the nearest is the first window
    assert torch.allclose(SoftTargets(soft.clips).pick(clip, got[:, 0], got[:, 0]), soft.clips.expand(3, 3))


def test_a_network_follows_window_targets(tmp_path):
    tr, va = _toy_sets()
    names = tuple(f"c{i}.wav" for i in range(len(tr)))
    probs = {n: np.eye(10)[0] for n in names}
    wins = {n: np.tile(np.eye(10)[0], (13, 1)) for n in names}
    path = tmp_path / "t.json"
    from nas.train.teacher import teacher_entry, write_teachers

    write_teachers(path, tuple(f"k{i}" for i in range(10)),
                   [teacher_entry((1,), names, [probs[n] for n in names], [wins[n] for n in names], (1.0, 0.25))])
    teacher = load_teacher(path, FoldSplit(train=(1,), val=(2,), test=()), tuple(f"k{i}" for i in range(10)), "window")
    soft = soft_targets(teacher, names, 1.0, "t")
    assert soft.windows.shape == (len(tr), 13, 10)
    tr.soft = soft
    recipe = Recipe(epochs=3, seed=0, augment=PLAIN, distillation=Distillation(teacher="file", weight=1.0, level="window"))
    r = train(small_spec(), tr, va, recipe, device="cpu")
    assert r.best_acc == pytest.approx(float((va.y == 0).float().mean()))
    write_teachers(path, ("a",), [teacher_entry((1,), ("x.wav",), [[1.0]])])     # no windows in the file
    assert load_teacher(path, FoldSplit(train=(1,), val=(2,), test=()), ("a",)).windows is None   # auto: per clip
    with pytest.raises(UserError, match="needs per-window probabilities"):
        load_teacher(path, FoldSplit(train=(1,), val=(2,), test=()), ("a",), "window")


# -- mimicking the teacher's window embeddings ---------------------------------------------------

def test_the_teacher_file_names_its_embeddings_and_a_split_reads_them_whitened(weights, demo_root, tmp_path):
    splits = [FoldSplit(train=(3, 4), val=(2,), test=(1,)), FoldSplit(train=(1, 4), val=(3,), test=(2,))]
    out = tmp_path / "rot.json"
    make_teacher(weights, demo_root, splits, tmp_path / "cache", out, log=lambda s: None, progress=False)
    ref = json.loads(out.read_text())["embeddings"]
    npz = tmp_path / ref["file"]
    assert npz.name == "rot.embeddings.npz"
    ds = us.read_metadata(demo_root)
    with np.load(npz) as z:             # every training clip of any split, 13 windows of 384 values
        assert set(z["names"]) == {c.name for c in ds.clips if c.fold in (1, 3, 4)}
        assert z["windows"].shape[1:] == (13, 384) and z["windows"].dtype == np.float16
    t = load_teacher(out, splits[1], ds.classes, embeddings=True)
    assert set(t.embeddings) >= set(t.clips) and t.window_seconds == 1.0 and t.hop_seconds == 0.25
    assert load_teacher(out, splits[1], ds.classes).embeddings is None          # not asked: not read
    names = tuple(sorted(t.clips))
    with pytest.raises(UserError, match="do not vary"):      # random weights embed every clip alike
        soft_targets(t, names, 2.0, "t")
    from nas.train.teacher import write_embeddings, write_teachers

    entry = json.loads(out.read_text())["splits"][1]
    emb = np.random.default_rng(0).normal(size=(len(names), 13, 384)) @ np.diag(np.linspace(3, 0.1, 384))
    write_teachers(out, ds.classes, [entry], embeddings=write_embeddings(npz, names, emb, (1.0, 0.25)))
    teacher = load_teacher(out, splits[1], ds.classes, embeddings=True)
    f = soft_targets(teacher, names, 2.0, "t").features
    assert soft_targets(teacher, names, 1.0, "t").features is f          # whitened once per set of clips
    f = f.reshape(-1, EMBEDDING_DIMS).double()
    # whitened on the split's training windows: mean 0, unit variance, uncorrelated
    assert torch.allclose(f.mean(0), torch.zeros(EMBEDDING_DIMS, dtype=torch.float64), atol=1e-4)
    assert torch.allclose(torch.cov(f.T, correction=0), torch.eye(EMBEDDING_DIMS, dtype=torch.float64), atol=1e-3)
    body = bytearray(npz.read_bytes())
    body[len(body) // 2] ^= 1                                                      # one bit changed
    npz.write_bytes(bytes(body))
    with pytest.raises(UserError, match="not the one this teacher file was written with"):
        load_teacher(out, splits[1], ds.classes, embeddings=True)
    write_teachers(out, ds.classes, [entry])                  # a file without embeddings: its probabilities alone
    assert load_teacher(out, splits[1], ds.classes, embeddings=True).embeddings is None


def test_whitening_keeps_the_principal_axes_of_an_independent_eigendecomposition():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3)) @ np.array([[3.0, 0, 0], [1.0, 1.0, 0], [0, 0, 0.2]]) + 5.0
    w = whitened(x, dims=2)
    values, vectors = np.linalg.eigh(np.cov(x.T, bias=True))
    top = vectors[:, ::-1][:, :2] / np.sqrt(values[::-1][:2])
    assert np.allclose(np.abs(w), np.abs((x - x.mean(0)) @ top), atol=1e-4)     # same axes up to sign
    assert whitened(np.c_[x, x[:, :1] * 2], dims=8).shape == (400, 3)            # a 4th axis with no variance: dropped


def test_a_student_mimicking_embeddings_learns_what_the_labels_do_not_say():
    """The labels name a band's position; the teacher's embedding also says whether a second, unlabelled
    band is there. Only the student that mimics the embedding makes its features say it."""
    tr, va = _toy_sets()
    present = (torch.arange(len(tr)) // 10) % 2 == 1                  # independent of the label (i % 10)
    tr.x[present, :, 19] += 3.0
    names = tuple(f"c{i}.wav" for i in range(len(tr)))
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(len(tr), 13, 40)) * 0.1 + present.numpy()[:, None, None] * rng.normal(size=40)
    teacher = Teacher({n: np.eye(10)[0] for n in names}, None, 1.0, 0.25, dict(zip(names, emb)))
    tr.soft = soft_targets(teacher, names, 1.0, "t")
    spec = small_spec()
    fe = spec.frontend
    windows = gather(tr.x, torch.arange(len(tr)), torch.zeros(len(tr), dtype=torch.long), fe.frames)

    def r2(weight: float) -> float:
        recipe = Recipe(epochs=6, batch_size=32, lr=1e-2, seed=0, augment=PLAIN,
                        distillation=Distillation(teacher="file", weight=0.0, embedding_weight=weight))
        net = build(spec)
        net.load_state_dict(train(spec, tr, va, recipe, device="cpu").state_dict)   # strict: the head is dropped
        with torch.no_grad():
            h = net.eval().features_and_logits(windows)[0].double().numpy()
        a = np.c_[h, np.ones(len(h))]
        fit = a @ np.linalg.lstsq(a, present.double().numpy(), rcond=None)[0]
        return 1 - np.mean((fit - present.numpy()) ** 2) / np.var(present.numpy())

    mimic, plain = r2(3.0), r2(0.0)
    assert mimic > 0.9 and mimic > plain + 0.2, (mimic, plain)


def test_the_search_and_final_stage_say_what_the_student_learns_from_the_teacher(demo_root, tmp_path):
    from nas.train.distill import describe, teacher_for
    from nas.train.teacher import teacher_entry, write_teachers

    probs = {"a.wav": np.eye(10)[0]}
    both = Teacher(probs, {"a.wav": np.ones((13, 10))}, 1.0, 0.25, {"a.wav": np.ones((13, 384))})
    recipe = Recipe(distillation=Distillation(teacher="t.json", weight=0.5, temperature=2.0, embedding_weight=1.0))
    assert describe(recipe, both) == ("distilling from teacher t.json: its window probabilities (weight 0.5, "
                                      "temperature 2); its window embeddings (weight 1)")
    assert describe(recipe, Teacher(probs)) == ("distilling from teacher t.json: its clip probabilities (weight 0.5, "
                                                "temperature 2); not its window embeddings: the file has none")
    path = tmp_path / "t.json"
    write_teachers(path, us.read_metadata(demo_root).classes, [teacher_entry((1,), ("a.wav",), [np.eye(10)[0]])])
    labels_only = Recipe(distillation=Distillation(teacher=str(path), weight=0.0, embedding_weight=1.0))
    with pytest.raises(UserError, match="would teach nothing: weight is 0 and it has no window embeddings"):
        teacher_for(labels_only, demo_root, FoldSplit(train=(1,), val=(2,), test=(3,)), tmp_path, tmp_path)
