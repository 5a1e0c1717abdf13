"""`python -m nas.teacher --weights mn04_as_mAP_432.pt --data DIR --out teacher.json`: the pretrained teacher.

Flags → `nas.teacher.make.make_teacher`: the EfficientAT AudioSet tagger embeds every clip once
(cached), a head per fold split is fitted on that split's training folds, and the soft targets of
the training clips are written as a teacher file for `nas.search --teacher` and the final stage,
with the training clips' window embeddings beside it (`<out stem>.embeddings.npz`). The last line
is the teacher's validation accuracy.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from nas.core.errors import UserError, run_cli
from nas.data.urbansound import read_metadata
from nas.data.validate import validate_dataset
from nas.evaluate.stage import rotation
from nas.search.run import fold_split, training_threads
from nas.study.folders import DEFAULT_CACHE, resolve_data
from nas.teacher.make import embeddings_path, make_teacher


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nas.teacher", description="Soft targets from the pretrained "
                                "EfficientAT mn04_as AudioSet tagger: a head per fold split on its frozen embeddings.")
    p.add_argument("--weights", required=True, help="the state dict mn04_as_mAP_432.pt (EfficientAT GitHub release)")
    p.add_argument("--data", required=True, help="UrbanSound8K root (folder with metadata/ and audio/), or 'demo'")
    p.add_argument("--out", required=True, help="teacher file to write (JSON, format nas-teacher-v1)")
    p.add_argument("--train-folds", default=None, help="folds the head is fitted on (default: every fold that is "
                   "not a validation or test fold)")
    p.add_argument("--val-fold", "--val-folds", dest="val_folds", default=None,
                   help="fold(s) the teacher's accuracy is reported on (default: 9)")
    p.add_argument("--test-fold", "--test-folds", dest="test_folds", default=None,
                   help="fold(s) held out, never read (default: 10)")
    p.add_argument("--folds", default=None, help="one head per split of a rotation over these test folds, e.g. "
                   "1,2,3,4,5,6,7,8,9,10 (as nas.evaluate --folds); replaces the three fold flags")
    p.add_argument("--cache", default=str(DEFAULT_CACHE), help="embedding cache folder (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: $OMP_NUM_THREADS, else all cores)")
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    if a.folds is not None and (a.train_folds or a.val_folds or a.test_folds):
        raise UserError("--folds: a rotation sets every split's folds; leave out --train/--val/--test-folds")
    if a.threads is not None and a.threads < 1:
        raise UserError(f"--threads: expected a positive integer, got {a.threads}")
    torch.set_num_threads(a.threads or training_threads(1))
    root = resolve_data(a.data, 0)
    if a.folds is not None:
        splits = rotation(a.folds, sorted({c.fold for c in read_metadata(root).clips}))
    else:
        splits = [fold_split(root, a.train_folds, a.val_folds or "9", a.test_folds or "10")]
    validate_dataset(root, splits)
    results = make_teacher(a.weights, root, splits, a.cache, a.out)
    mean = sum(r.val_acc for r in results) / len(results)
    emb = embeddings_path(Path(a.out))
    print(f"wrote {a.out}: {len(results)} split(s), and its window embeddings {emb} "
          f"({emb.stat().st_size / 1e6:.1f} MB)")
    print(f"teacher validation accuracy: {mean:.4f}" + (" (mean over splits)" if len(results) > 1 else ""))
    return 0


if __name__ == "__main__":
    run_cli(main)
