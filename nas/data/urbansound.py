"""UrbanSound8K in its official layout: metadata, decoding, folds.

    ROOT/metadata/UrbanSound8K.csv    slice_file_name,fsID,start,end,salience,fold,classID,class
    ROOT/audio/fold1 .. fold10/*.wav

`ROOT` may also be the folder that contains the extracted `UrbanSound8K/` folder. Class names and
ids come from the CSV (ids 0..9); folds are the predefined ones (1..10); slices of one recording
share a fold, so only the predefined folds give honest accuracy.

Every encoding the dataset ships decodes through soundfile (libsndfile): 8/16/24/32-bit PCM, float,
IMA and MS ADPCM, mono and stereo, 8 to 96+ kHz. Audio is mixed to mono (channel mean), resampled
with soxr (HQ) to the front-end's rate, clipped to [-1, 1] (what an int16 device ADC sees) and padded
with zeros or cropped to 4 s (only the first 4 s are decoded). Unreadable, corrupt, truncated or
non-audio files, and headers claiming a rate outside 1-384 kHz or more than 16 channels, are skipped
and listed with the reason.

Fold discipline: `FoldSplit` names the train, validation and test folds; `select_clips` /
`ClipFeatures.selection` (nas.data.cache) hand the search only train+val data, so the selection path
never holds the test fold.
"""
from __future__ import annotations

import csv
import io
import math
import os
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from nas.core.errors import UserError

CSV_RELPATH = Path("metadata") / "UrbanSound8K.csv"
COLUMNS = ("slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class")
CLASSES = ("air_conditioner", "car_horn", "children_playing", "dog_bark", "drilling",
           "engine_idling", "gun_shot", "jackhammer", "siren", "street_music")
N_CLASSES = len(CLASSES)
FOLDS = tuple(range(1, 11))
CLIP_SECONDS = 4.0
RESAMPLE_QUALITY = "HQ"
RESAMPLE_MARGIN_S = 0.05     # audio read past the clip's end, so the resampler's filter sees no edge there
MIN_RATE, MAX_RATE = 1000, 384000   # Hz a header may claim; anything else is a damaged file
MAX_CHANNELS = 16
DATASET_URL = "https://urbansounddataset.weebly.com/urbansound8k.html"
GET_DATASET = (f"download UrbanSound8K from {DATASET_URL} (also on Zenodo: search 'UrbanSound8K') and "
               "extract it there, or generate a synthetic stand-in with "
               "`python -m nas.data.synth --out DIR`")


@dataclass(frozen=True)
class Clip:
    """One row of the metadata CSV."""

    name: str          # slice_file_name
    fold: int          # 1..10
    class_id: int      # 0..9
    class_name: str
    salience: int      # 1 foreground, 2 background
    fs_id: int
    start: float
    end: float
    path: Path         # ROOT/audio/fold<fold>/<name>
    row: int           # line number in the CSV (header = line 1)


@dataclass(frozen=True)
class Dataset:
    root: Path
    csv_path: Path
    clips: tuple[Clip, ...]
    classes: tuple[str, ...]

    def clips_in(self, folds) -> tuple[Clip, ...]:
        folds = _fold_set(folds, "folds")
        return tuple(c for c in self.clips if c.fold in folds)


# -- locating and reading the metadata ----------------------------------------------------------

def find_root(root: str | os.PathLike) -> Path:
    """The dataset folder under `root` (root itself or root/UrbanSound8K); one UserError if absent."""
    root = Path(root).expanduser()
    candidates = [root, root / "UrbanSound8K"]
    for cand in candidates:
        if (cand / CSV_RELPATH).is_file():
            if not (cand / "audio").is_dir():
                raise UserError(f"UrbanSound8K: {cand / CSV_RELPATH} exists but the audio folder "
                                f"{cand / 'audio'} does not; {GET_DATASET}")
            return cand
    looked = " and ".join(str(c / CSV_RELPATH) for c in candidates)
    raise UserError(f"UrbanSound8K not found: looked for {looked}; {GET_DATASET}")


def read_metadata(root: str | os.PathLike) -> Dataset:
    """Parse and validate metadata/UrbanSound8K.csv; every problem is one UserError naming file and row."""
    root = find_root(root)
    csv_path = root / CSV_RELPATH
    raw = csv_path.read_bytes()
    if b"\x00" in raw[:4096]:
        raise UserError(f"{csv_path}: not a text file (expected the UrbanSound8K CSV)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"{csv_path}: not UTF-8 text (expected the UrbanSound8K CSV)") from None
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise UserError(f"{csv_path}: file is empty (expected header {','.join(COLUMNS)})") from None
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise UserError(f"{csv_path}: missing column(s) {', '.join(missing)} "
                        f"(expected {','.join(COLUMNS)})")
    idx = {c: header.index(c) for c in COLUMNS}
    clips, names_by_id, seen = [], {}, {}
    for line, row in enumerate(reader, start=2):
        if not row or all(not v.strip() for v in row):
            continue
        if len(row) < len(header):
            raise UserError(f"{csv_path}: line {line}: {len(row)} fields, expected {len(header)}")
        get = lambda c: row[idx[c]].strip()  # noqa: E731
        name = get("slice_file_name")
        where = f"{csv_path}: line {line} ({name or 'no file name'})"
        if not name or "/" in name or "\\" in name or name in (".", ".."):
            raise UserError(f"{where}: slice_file_name must be a plain file name, got {name!r}")
        fold = _int(get("fold"), "fold", where)
        if fold not in FOLDS:
            raise UserError(f"{where}: fold {fold} is out of range 1..10")
        class_id = _int(get("classID"), "classID", where)
        if not 0 <= class_id < N_CLASSES:
            raise UserError(f"{where}: classID {class_id} is out of range 0..{N_CLASSES - 1}")
        class_name = get("class")
        if names_by_id.setdefault(class_id, class_name) != class_name:
            raise UserError(f"{where}: classID {class_id} is named {class_name!r} here but "
                            f"{names_by_id[class_id]!r} earlier")
        salience = _int(get("salience"), "salience", where)
        if salience not in (1, 2):
            raise UserError(f"{where}: salience {salience} must be 1 (foreground) or 2 (background)")
        if name in seen:
            raise UserError(f"{where}: {name} is listed twice (first on line {seen[name]})")
        seen[name] = line
        clips.append(Clip(name=name, fold=fold, class_id=class_id, class_name=class_name,
                          salience=salience, fs_id=_int(get("fsID"), "fsID", where),
                          start=_float(get("start"), "start", where), end=_float(get("end"), "end", where),
                          path=root / "audio" / f"fold{fold}" / name, row=line))
    if not clips:
        raise UserError(f"{csv_path}: no clips listed (the file has a header only)")
    classes = tuple(names_by_id.get(i, CLASSES[i]) for i in range(N_CLASSES))
    return Dataset(root=root, csv_path=csv_path, clips=tuple(clips), classes=classes)


def _int(text: str, column: str, where: str) -> int:
    try:
        value = float(text)
        if value != int(value):
            raise ValueError
        return int(value)
    except (ValueError, OverflowError):
        raise UserError(f"{where}: {column} must be an integer, got {text!r}") from None


def _float(text: str, column: str, where: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise UserError(f"{where}: {column} must be a number, got {text!r}") from None


# -- folds --------------------------------------------------------------------------------------

def _fold_set(folds, what: str) -> frozenset[int]:
    if isinstance(folds, int):
        folds = (folds,)
    out = frozenset(int(f) for f in folds)
    bad = sorted(f for f in out if f not in FOLDS)
    if bad:
        raise UserError(f"{what}: fold(s) {bad} out of range 1..10")
    return out


@dataclass(frozen=True)
class FoldSplit:
    """Disjoint train / validation / test folds. The search (training + model selection) sees only
    `selection_folds`; the test fold is read once, by the final evaluation."""

    train: tuple[int, ...]
    val: tuple[int, ...]
    test: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for name in ("train", "val", "test"):
            value = getattr(self, name)
            object.__setattr__(self, name, tuple(sorted(_fold_set(value, f"FoldSplit.{name}"))))
        if not self.train:
            raise UserError("FoldSplit.train: no training fold")
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            common = set(getattr(self, a)) & set(getattr(self, b))
            if common:
                raise UserError(f"FoldSplit: fold(s) {sorted(common)} are in both {a} and {b}")

    @classmethod
    def for_test_fold(cls, test: int, val: int | tuple[int, ...] | None = None) -> "FoldSplit":
        """Test on `test`, validate on `val` (default: the next fold, cyclically), train on the rest."""
        test_set = _fold_set(test, "test fold")
        val_set = _fold_set(val if val is not None else (max(test_set) % 10 + 1,), "validation fold")
        train = tuple(f for f in FOLDS if f not in test_set | val_set)
        return cls(train=train, val=tuple(val_set), test=tuple(test_set))

    @classmethod
    def from_flags(cls, train: str | None, val: str, test: str, present: Iterable[int] = FOLDS) -> "FoldSplit":
        """The split named by `--train-folds`/`--val-folds`/`--test-folds` ("1,2", "none" for no
        test fold); without training folds, every `present` fold that is neither val nor test."""
        folds = {"val": parse_folds(val, "--val-folds"), "test": parse_folds(test, "--test-folds")}
        if train is None:
            rest = tuple(f for f in sorted(set(present)) if f not in set(folds["val"]) | set(folds["test"]))
            if not rest:
                raise UserError(f"--train-folds: no fold is left for training (dataset folds "
                                f"{', '.join(map(str, sorted(set(present))))}; validation {val}, test {test})")
            folds["train"] = rest
        else:
            folds["train"] = parse_folds(train, "--train-folds")
            if not folds["train"]:
                raise UserError(f"--train-folds: expected at least one fold number 1..10 (e.g. 1,2), got {train!r}")
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            common = sorted(set(folds[a]) & set(folds[b]))
            if common:
                raise UserError(f"--{a}-folds and --{b}-folds: fold(s) {common} are in both {a} and {b}")
        return cls(**folds)

    def describe(self) -> str:
        return (f"train {','.join(map(str, self.train))} / val {','.join(map(str, self.val)) or '-'} / "
                f"test {','.join(map(str, self.test)) or '-'}")

    @property
    def selection_folds(self) -> tuple[int, ...]:
        return tuple(sorted(self.train + self.val))


def parse_folds(text: str, flag: str) -> tuple[int, ...]:
    """"1,2,3" → (1, 2, 3); "none" or "" → (); anything else is a UserError naming the flag."""
    text = str(text).strip().lower()
    if text in ("", "none"):
        return ()
    try:
        folds = tuple(int(part) for part in text.replace("+", ",").split(","))
    except ValueError:
        raise UserError(f"{flag}: expected comma-separated fold numbers 1..10 (e.g. 1,2) or none, got {text!r}") from None
    return tuple(sorted(_fold_set(folds, flag)))


def cross_validation_splits(n_val: int = 1) -> list[FoldSplit]:
    """The 10 rotations of the predefined folds: test fold k, validation the next n_val folds."""
    return [FoldSplit.for_test_fold(k, tuple((k + i - 1) % 10 + 1 for i in range(1, n_val + 1)))
            for k in FOLDS]


@dataclass(frozen=True)
class ClipSelection:
    """What the search may read: train and validation clips only (no test clip is reachable)."""

    split: FoldSplit
    train: tuple[Clip, ...]
    val: tuple[Clip, ...]


def select_clips(dataset: Dataset, split: FoldSplit) -> ClipSelection:
    return ClipSelection(split=split, train=dataset.clips_in(split.train), val=dataset.clips_in(split.val))


def held_out_clips(dataset: Dataset, split: FoldSplit) -> tuple[Clip, ...]:
    """The test-fold clips: for the final evaluation only."""
    return dataset.clips_in(split.test)


# -- decoding -----------------------------------------------------------------------------------

class AudioError(Exception):
    """A file that cannot be used as audio; the message is the reason listed in the skip summary."""


_DECODES = 0
_DECODE_LOCK = threading.Lock()


def decode_count() -> int:
    """Files decoded by this process so far (tests use it to prove a cache hit decodes nothing)."""
    return _DECODES


def check_riff(path: Path) -> None:
    """Raise AudioError if a RIFF/WAVE file declares more audio data than it holds (truncated).

    libsndfile silently reads what is there, so a cut-off download would otherwise pass as a
    shorter clip. Non-RIFF files are left to libsndfile.
    """
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return
        pos, block_align = 12, 1
        while pos + 8 <= size:
            fh.seek(pos)
            ck_id, ck_size = struct.unpack("<4sI", fh.read(8))
            if ck_id == b"fmt ":
                fmt = fh.read(min(ck_size, 16))
                if len(fmt) >= 14:
                    block_align = max(1, struct.unpack("<H", fmt[12:14])[0])
            elif ck_id == b"data":
                if ck_size in (0, 0xFFFFFFFF):   # streaming writers leave it unset
                    return
                have = size - (pos + 8)
                if have + block_align <= ck_size:
                    raise AudioError(f"truncated: header declares {ck_size} data bytes, file holds {have}")
                return
            pos += 8 + ck_size + (ck_size & 1)
        raise AudioError("no 'data' chunk")


def _open_checked(path: Path):
    """The file open in soundfile after its header passed `check_header`'s rules."""
    import soundfile as sf

    if not path.is_file():
        raise AudioError("missing file")
    check_riff(path)
    try:
        f = sf.SoundFile(os.fsencode(path))   # bytes: any file name the OS allows, UTF-8 or not
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
        raise AudioError(f"unreadable: {str(exc).replace(str(path), 'file')}") from None
    problem = None
    if not MIN_RATE <= f.samplerate <= MAX_RATE:
        problem = f"header claims a sample rate of {f.samplerate:,} Hz (expected {MIN_RATE:,} to {MAX_RATE:,})"
    elif not 1 <= f.channels <= MAX_CHANNELS:
        problem = f"header claims {f.channels} channels (expected 1 to {MAX_CHANNELS})"
    elif f.frames <= 0:
        problem = "no audio frames"
    if problem:
        f.close()
        raise AudioError(problem)
    return f


def check_header(path: str | os.PathLike) -> None:
    """Raise AudioError unless the file opens as audio with a sane header (rate, channels, frames,
    RIFF sizes); reads the header only, so a whole dataset is checked in seconds."""
    _open_checked(Path(path)).close()


def read_audio(path: str | os.PathLike, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Decode one file to mono float32 at its own rate: (samples, sample_rate). Raises AudioError.

    `max_seconds` reads only the start of a longer file. Rates and channel counts are bounded by the
    header checks, so what is read, and what the resampler makes of it, stays small whatever a
    damaged header claims."""
    import soundfile as sf

    global _DECODES
    with _DECODE_LOCK:
        _DECODES += 1
    with _open_checked(Path(path)) as f:
        sr = int(f.samplerate)
        frames = f.frames if max_seconds is None else min(f.frames, int(math.ceil(max_seconds * sr)))
        try:
            data = f.read(frames, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
            raise AudioError(f"unreadable: {str(exc).replace(str(path), 'file')}") from None
    if data.shape[0] == 0:
        raise AudioError("no audio frames")
    if not np.isfinite(data).all():
        raise AudioError("non-finite samples (NaN/inf)")
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    return np.ascontiguousarray(mono, dtype=np.float32), sr


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    import soxr

    if sr_in == sr_out:
        return np.asarray(audio, dtype=np.float32)
    return np.asarray(soxr.resample(audio, sr_in, sr_out, quality=RESAMPLE_QUALITY), dtype=np.float32)


def fit_length(audio: np.ndarray, n_samples: int) -> np.ndarray:
    """Crop, or pad with zeros at the end, to exactly n_samples."""
    if audio.shape[0] >= n_samples:
        return audio[:n_samples]
    out = np.zeros(n_samples, dtype=np.float32)
    out[:audio.shape[0]] = audio
    return out


def clip_samples(sample_rate: int, seconds: float = CLIP_SECONDS) -> int:
    return int(round(seconds * sample_rate))


def load_clip(path: str | os.PathLike, sample_rate: int, seconds: float = CLIP_SECONDS) -> np.ndarray:
    """Decode, mix to mono, resample to `sample_rate`, clip to [-1, 1], pad/crop to `seconds`."""
    audio, sr = read_audio(path, max_seconds=seconds + RESAMPLE_MARGIN_S)
    audio = resample(audio, sr, sample_rate)
    np.clip(audio, -1.0, 1.0, out=audio)
    return fit_length(audio, clip_samples(sample_rate, seconds))


@dataclass
class SkipReport:
    """Files that could not be used, with the reason; summarised once as a warning."""

    skipped: list[tuple[str, str]] = field(default_factory=list)   # (path relative to root, reason)

    def add(self, rel: str, reason: str) -> None:
        self.skipped.append((rel, reason))

    def __len__(self) -> int:
        return len(self.skipped)

    def summary(self, limit: int = 10) -> str:
        if not self.skipped:
            return ""
        lines = [f"skipped {len(self.skipped)} unusable audio file(s):"]
        lines += [f"  {rel}: {reason}" for rel, reason in self.skipped[:limit]]
        if len(self.skipped) > limit:
            lines.append(f"  ... and {len(self.skipped) - limit} more")
        return "\n".join(lines)
