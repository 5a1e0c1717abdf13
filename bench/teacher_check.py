"""The pretrained teacher on real clips: its AudioSet predictions, its own accuracy, and its cost.

    python bench/teacher_check.py --weights mn04_as_mAP_432.pt --data ~/us8k-dev \
        --train-folds 1 --val-folds 3 --test-folds 2 [--cache DIR] [--clips 100]

1. AudioSet check (is the network written here the published one?): the share of dog_bark clips
   whose top-3 AudioSet tags include Dog or Bark, and of siren clips with a siren tag, with the top
   tags of a few clips by name (a small subset of AudioSet's 527 class names, below).
2. The teacher's own clip accuracy: a head fitted on the training folds (L2 by cross-fitting, as
   `python -m nas.teacher`), scored on the validation folds and then, once, on the test folds.
3. Cost on this process's threads: seconds per clip for the whole-clip embedding and with the 13
   window embeddings (decoding and resampling included), extrapolated to the dataset.
Slow on a busy machine (minutes): not part of `bench/run.py`.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

# AudioSet class index -> display name, for the UrbanSound8K-like classes only (ontology names)
AUDIOSET = {0: "Speech", 71: "Children playing", 72: "Animal", 73: "Domestic animals, pets", 74: "Dog", 75: "Bark",
            137: "Music", 300: "Vehicle", 307: "Car", 308: "Vehicle horn, car horn, honking",
            322: "Emergency vehicle", 323: "Police car (siren)", 324: "Ambulance (siren)",
            325: "Fire engine, fire truck (siren)", 343: "Engine", 352: "Idling", 396: "Siren",
            397: "Civil defense siren", 412: "Mechanical fan", 413: "Air conditioning", 420: "Jackhammer",
            424: "Power tool", 425: "Drill", 427: "Gunshot, gunfire", 428: "Machine gun", 431: "Cap gun",
            432: "Fireworks"}
EXPECTED = {"dog_bark": {74, 75}, "siren": {396, 397, 322, 323, 324, 325}}


def audioset_check(net, e, data_root) -> None:
    """Top-3 AudioSet tags of every dog_bark and siren clip (from the cached clip embeddings)."""
    import torch

    with torch.no_grad():
        logits = net.logits(torch.from_numpy(e.clip)).numpy()
    top = np.argsort(-logits, axis=1)[:, :3]
    for cls, wanted in EXPECTED.items():
        rows = np.flatnonzero(e.y == e.classes.index(cls))
        hit = np.mean([bool(set(top[i]) & wanted) for i in rows])
        print(f"AudioSet check: {cls}: {hit:.3f} of {len(rows)} clips have {'/'.join(AUDIOSET[w] for w in sorted(wanted)[:2])}"
              f"{' (or another siren tag)' if cls == 'siren' else ''} in their top-3 tags")
        for i in rows[:3]:
            print(f"    {e.names[i]}: " + ", ".join(AUDIOSET.get(int(k), f"#{k}") for k in top[i]))


def accuracy(e, clip_x, split) -> None:
    from nas.teacher import head

    tr, va, te = e.rows(split.train), e.rows(split.val), e.rows(split.test)
    c = len(e.classes)
    _, l2, _ = head.cross_fit(clip_x[tr], e.y[tr], head.groups(e.fs_id[tr]), c)
    h = head.fit(clip_x[tr], e.y[tr], c, l2)
    for what, rows in (("validation", va), ("test", te)):
        if len(rows):
            acc = float((h.probabilities(clip_x[rows]).argmax(1) == e.y[rows]).mean())
            print(f"teacher {what} accuracy (folds {','.join(map(str, sorted(set(e.fold[rows]))))}, {len(rows)} clips, "
                  f"head on folds {','.join(map(str, split.train))}, L2 {l2:g}): {acc:.4f}")


def cost(net, data_root, n: int) -> None:
    import torch

    from nas.data import urbansound as us
    from nas.teacher import melspec
    from nas.teacher.embed import embed_audio

    clips = us.read_metadata(data_root).clips[:n]
    t_decode = t_clip = t_all = 0.0
    for c in clips:
        t0 = time.perf_counter()
        audio = torch.from_numpy(us.load_clip(c.path, melspec.SAMPLE_RATE))[None]
        t1 = time.perf_counter()
        with torch.no_grad():
            net.embed(melspec.TeacherMel()(audio))
        t2 = time.perf_counter()
        embed_audio(net, audio)
        t3 = time.perf_counter()
        t_decode, t_clip, t_all = t_decode + t1 - t0, t_clip + t2 - t1, t_all + t3 - t2
    total = len(us.read_metadata(data_root).clips)
    print(f"cost ({torch.get_num_threads()} thread(s), {n} clips): decode+resample {t_decode / n * 1e3:.1f} ms/clip, "
          f"clip embedding {t_clip / n * 1e3:.1f} ms/clip, clip + 13 windows {t_all / n * 1e3:.1f} ms/clip -> "
          f"{(t_decode + t_all) / n * total:.0f} s for the dataset's {total} clips")


def main(argv: list[str] | None = None) -> int:
    sys.path[:0] = [str(ROOT)]
    import torch

    from nas.data.urbansound import FoldSplit
    from nas.teacher.embed import embeddings, load_network
    from nas.teacher.make import head_inputs

    p = argparse.ArgumentParser(prog="python bench/teacher_check.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--train-folds", default="1")
    p.add_argument("--val-folds", default="3")
    p.add_argument("--test-folds", default="2")
    p.add_argument("--cache", default="studies/.cache/features")
    p.add_argument("--clips", type=int, default=100, help="clips timed for the cost (default: %(default)s)")
    args = p.parse_args(argv)
    split = FoldSplit.from_flags(args.train_folds, args.val_folds, args.test_folds)
    net = load_network(args.weights)
    t0 = time.perf_counter()
    e = embeddings(args.data, args.weights, args.cache, net=net)
    print(f"embeddings of {len(e.names)} clips: {time.perf_counter() - t0:.1f} s "
          f"({'computed' if e.seconds else 'from the cache'}; {torch.get_num_threads()} torch thread(s))")
    audioset_check(net, e, args.data)
    accuracy(e, head_inputs(net, e.clip), split)
    cost(net, args.data, args.clips)
    return 0


if __name__ == "__main__":
    sys.exit(main())
