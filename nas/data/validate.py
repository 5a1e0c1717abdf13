"""A dataset checked once, before a study starts: every problem that would otherwise surface inside
each trial (and be counted as that trial's failure) is one line up front.

`validate_dataset(root, split)` reads the metadata (columns, rows and values: one line naming the file
and the line), requires every fold of the split (training, validation, test) to list clips of which
at least one opens and decodes, checks every listed file's header (RIFF sizes, rate, channels,
frames: no decoding, about 0.2 ms a file), decodes the first readable clips of each fold (which
catches a dataset of silent NaNs or of files soundfile opens but cannot read), and warns about files
that will be skipped and about classes the training folds lack. Its fingerprint (the CSV and the
size of every file it checked) is what a study records as its dataset.
"""
from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from nas.core.errors import UserError
from nas.data.urbansound import (CLIP_SECONDS, AudioError, Clip, FoldSplit, check_header, read_audio,
                                 read_metadata)

DECODE_TRIES = 8     # clips decoded per fold before the fold is declared undecodable


@dataclass(frozen=True)
class DatasetReport:
    root: Path
    listed: int                                  # clips listed in the checked folds
    skipped: tuple[tuple[str, str], ...]         # (path relative to the root, reason)
    warnings: tuple[str, ...]
    fingerprint: str

    @property
    def label(self) -> str:
        return f"{self.root} ({self.listed - len(self.skipped)} usable clips)"


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _roles(splits: tuple[FoldSplit, ...]) -> dict[int, str]:
    roles: dict[int, set[str]] = {}
    for s in splits:
        for role, folds in (("training", s.train), ("validation", s.val), ("test", s.test)):
            for f in folds:
                roles.setdefault(f, set()).add(role)
    return {f: "/".join(sorted(r)) for f, r in roles.items()}


def _first(problems: list[tuple[str, str]]) -> str:
    return f"first: {problems[0][0]}: {problems[0][1]}" if problems else ""


def _usable_fold(root: Path, fold: int, role: str, clips: list[Clip], have: list[int], skipped: list, h) -> None:
    """Check the headers of one fold's clips and decode its first readable ones; UserError when the
    fold has nothing to offer."""
    ok, problems = [], []
    for clip in clips:
        rel = f"audio/fold{fold}/{clip.name}"
        try:
            size = clip.path.stat().st_size
        except OSError:
            size = -1
        h.update(f"\0{fold}/{clip.name}\0{size}".encode("utf-8", "surrogateescape"))
        try:
            check_header(clip.path)
            ok.append(clip)
        except AudioError as exc:
            problems.append((rel, str(exc)))
        except OSError as exc:
            problems.append((rel, f"unreadable: {exc.strerror}"))
    where = f"{root / 'audio' / f'fold{fold}'}"
    if not clips:
        raise UserError(f"{where}: the {role} fold {fold} lists no clip in the metadata CSV "
                        f"(choose folds the dataset has: {','.join(map(str, have))})")
    if not ok:
        raise UserError(f"{where}: none of the {len(clips)} clips of the {role} fold {fold} is readable "
                        f"({_first(problems)})")
    undecodable = []
    for clip in ok[:DECODE_TRIES]:
        try:
            read_audio(clip.path, max_seconds=CLIP_SECONDS)
            break
        except AudioError as exc:
            undecodable.append((f"audio/fold{fold}/{clip.name}", str(exc)))
    else:
        raise UserError(f"{where}: the first {len(undecodable)} readable clips of the {role} fold {fold} do not "
                        f"decode to usable audio ({_first(undecodable)})")
    skipped += problems + undecodable


def validate_dataset(root: str | Path, splits: FoldSplit | Iterable[FoldSplit],
                     log: Callable[[str], None] = _stderr) -> DatasetReport:
    """Check the dataset at `root` for the folds of `splits` (one split or several, e.g. the folds of
    a cross-validation); one UserError for a problem, warnings through `log`, see the module docstring."""
    splits = (splits,) if isinstance(splits, FoldSplit) else tuple(splits)
    ds = read_metadata(root)
    roles = _roles(splits)
    h = hashlib.sha256(ds.csv_path.read_bytes())
    skipped: list[tuple[str, str]] = []
    have = sorted({c.fold for c in ds.clips})
    for fold in sorted(roles):
        _usable_fold(ds.root, fold, roles[fold], [c for c in ds.clips if c.fold == fold], have, skipped, h)
    listed = sum(1 for c in ds.clips if c.fold in roles)
    warnings = []
    if skipped:
        warnings.append(f"warning: {ds.root}: {len(skipped)} of the {listed} clips are unusable and will be "
                        f"skipped ({_first(skipped)})")
    bad = {rel for rel, _ in skipped}
    for train in sorted({s.train for s in splits}):
        present = {c.class_id for c in ds.clips if c.fold in train and f"audio/fold{c.fold}/{c.name}" not in bad}
        missing = [f"{i} ({name})" for i, name in enumerate(ds.classes) if i not in present]
        if missing:
            warnings.append(f"warning: {ds.root}: no usable clip of class {', '.join(missing)} in the training "
                            f"folds {','.join(map(str, train))}: no model can learn it")
    for line in warnings:
        log(line)
    return DatasetReport(root=ds.root, listed=listed, skipped=tuple(skipped), warnings=tuple(warnings),
                         fingerprint=h.hexdigest())
