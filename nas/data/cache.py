"""Log-mel features of a whole dataset, computed once and memory-mapped from disk.

    features = load_features(dataset_root, fe, cache_dir="studies/.cache/features")
    features.x        # [n_clips, n_frames, n_mels] float16, read-only memmap
    sel = features.selection(FoldSplit.for_test_fold(1))   # train + val only
    w = windows(sel.train.x[:8], fe)                        # [8, n_windows, frames, n_mels]

Cache key: sha256 of (format version, dataset fingerprint, the front-end fields that change
per-frame features: sample_rate, n_fft, hop_length, n_mels, fmin, f_max, for a fixed-point front-end
its arithmetic and version (`FIXED_VERSION`; float keys are as before), plus clip length, log floor,
resampler quality and storage dtype). `frames` and `overlap` only cut windows and are not in the key,
so every window size shares one cache. The dataset fingerprint hashes the CSV bytes and the
(path, size, mtime) of every file under audio/fold1..10 (dotfiles aside): editing, adding, removing or
touching a file misses.

On disk, CACHE_DIR/<key>/:
    features.npy   float16 [n_clips, n_frames, n_mels]   (np.load(mmap_mode="r"))
    y.npy int16 [n_clips], fold.npy int8 [n_clips], salience.npy int8 [n_clips]
    meta.json      names, classes, skipped files (path, reason), front-end, dataset fingerprint, timings
float16: log-mel dB values lie in about [-60, +70]; float16 keeps them to within 0.03 dB, 15x finer
than the ~0.5 dB step of the device's int8 input, at half the disk, page cache and read time of float32.
A fixed-point front-end's features (`nas.arch.fixedfe`, multiples of 1/16 dB in [-60, 128)) are exact
in float16.

Concurrency: a builder holds CACHE_DIR/<key>.lock (flock) while it builds into CACHE_DIR/.tmp-<key>-...
(a folder it made and recorded, `nas.core.owned`: only such folders are ever cleaned up) and renames
that folder into place; the final folder therefore appears complete or not at all. A second
process waits for the lock and then loads the finished cache; where flock is unavailable the rename
still makes the race harmless (the loser discards its copy). A cache hit decodes no audio.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nas.arch.spec import FrontEnd
from nas.core import owned
from nas.core.errors import UserError
from nas.core.locks import FileLock
from nas.data import urbansound as us

FORMAT_VERSION = 1
FIXED_VERSION = 1      # the fixed-point front-end's arithmetic (nas.arch.fixedfe): bump when it changes
FEATURE_DTYPE = np.float16
DEFAULT_CACHE_DIR = Path("studies") / ".cache" / "features"
BATCH = 32
STALE_BUILD_S = 24 * 3600      # a build folder of another host this old is abandoned (a shared cache)


# -- the loaded features ------------------------------------------------------------------------

@dataclass(frozen=True)
class ClipFeatures:
    """Per-clip log-mel features and labels. `x` is a read-only memmap for a loaded cache, an
    in-memory array for a subset."""

    x: np.ndarray                       # [n_clips, n_frames, n_mels] float16
    y: np.ndarray                       # [n_clips] int64 class ids
    fold: np.ndarray                    # [n_clips] int64 folds 1..10
    salience: np.ndarray                # [n_clips] int64 (1 foreground, 2 background)
    names: tuple[str, ...]              # slice_file_name per clip
    classes: tuple[str, ...]            # class name per id
    fe: FrontEnd
    skipped: tuple[tuple[str, str], ...] = ()   # (path relative to dataset root, reason)
    key: str = ""
    path: Path | None = None            # cache folder (None for a subset)

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def n_frames(self) -> int:
        return int(self.x.shape[1])

    def subset(self, folds) -> "ClipFeatures":
        """The clips of `folds`, copied into memory (holds no reference to the other clips)."""
        wanted = us._fold_set(folds, "folds")
        idx = np.flatnonzero(np.isin(self.fold, sorted(wanted)))
        return ClipFeatures(x=np.ascontiguousarray(self.x[idx]), y=self.y[idx].copy(),
                            fold=self.fold[idx].copy(), salience=self.salience[idx].copy(),
                            names=tuple(self.names[i] for i in idx), classes=self.classes, fe=self.fe,
                            skipped=self.skipped, key=self.key, path=None)

    def selection(self, split: us.FoldSplit) -> "FeatureSelection":
        """Train and validation clips of `split`: all the search may see. The test fold's rows are
        never read and the result keeps no reference to them. A fold set left without a usable clip
        (its files skipped as unreadable) is a UserError, not an empty tensor for training to trip on."""
        train, val = self.subset(split.train), self.subset(split.val) if split.val else self.subset(())
        for role, folds, part in (("training", split.train, train), ("validation", split.val, val)):
            if folds and not len(part):
                first = f": first: {self.skipped[0][0]}: {self.skipped[0][1]}" if self.skipped else ""
                raise UserError(f"dataset: no usable clip in the {role} fold(s) {','.join(map(str, folds))} "
                                f"({len(self.skipped)} unreadable file(s) skipped{first})")
        return FeatureSelection(split=split, train=train, val=val)

    def held_out(self, split: us.FoldSplit) -> "ClipFeatures":
        """The test fold(s) of `split`: for the final evaluation only."""
        return self.subset(split.test)


@dataclass(frozen=True)
class FeatureSelection:
    split: us.FoldSplit
    train: ClipFeatures
    val: ClipFeatures


def n_windows(n_frames: int, frames: int, hop_frames: int) -> int:
    return 0 if n_frames < frames else 1 + (n_frames - frames) // hop_frames


def windows(x, fe: FrontEnd, hop_frames: int | None = None):
    """Cut classification windows along time: x [..., n_frames, n_mels] (numpy or torch) ->
    [..., n_windows, fe.frames, n_mels], a view (no copy). hop_frames defaults to the inference hop
    fe.window_hop_frames; training may pass a denser one."""
    hop = fe.window_hop_frames if hop_frames is None else int(hop_frames)
    if hop < 1:
        raise ValueError(f"hop_frames must be at least 1, got {hop}")
    t = x.shape[-2]
    if t < fe.frames:
        raise ValueError(f"a window of {fe.frames} frames is longer than the clip's {t} frames")
    if hasattr(x, "unfold"):          # torch.Tensor: unfold gives [..., n_windows, n_mels, frames]
        return x.unfold(-2, fe.frames, hop).transpose(-1, -2)
    view = np.lib.stride_tricks.sliding_window_view(x, fe.frames, axis=-2)  # [..., T-f+1, M, f]
    return np.swapaxes(view[..., ::hop, :, :], -1, -2)


# -- cache key ----------------------------------------------------------------------------------

def feature_recipe() -> dict:
    """What every front-end's features share: clip length, log floor, resampler, storage dtype."""
    from nas.arch.frontend import LOG_EPS

    return {"clip_seconds": us.CLIP_SECONDS, "log_eps": LOG_EPS, "resample": us.RESAMPLE_QUALITY,
            "dtype": np.dtype(FEATURE_DTYPE).name}


def feature_params(fe: FrontEnd) -> dict:
    """The FrontEnd fields that change per-frame features (frames/overlap do not), and the recipe."""
    arith = {"arithmetic": fe.arithmetic, "fixed_version": FIXED_VERSION} if fe.arithmetic == "fixed" else {}
    return {"sample_rate": fe.sample_rate, "n_fft": fe.n_fft, "hop_length": fe.hop_length,
            "n_mels": fe.n_mels, "fmin": float(fe.fmin), "fmax": float(fe.f_max), **arith, **feature_recipe()}


def dataset_fingerprint(root: Path) -> str:
    """sha256 of the CSV bytes and the (relative path, size, mtime_ns) of every audio file."""
    h = hashlib.sha256()
    h.update((root / us.CSV_RELPATH).read_bytes())
    audio = root / "audio"
    for fold in us.FOLDS:
        d = audio / f"fold{fold}"
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            h.update(f"\0missing fold{fold}".encode())
            continue
        for e in entries:
            if e.name.startswith("."):        # .DS_Store and friends are not data
                continue
            try:
                st = e.stat()
            except OSError:
                continue
            h.update(f"\0fold{fold}/{e.name}\0{st.st_size}\0{st.st_mtime_ns}".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def cache_key(root: Path, fe: FrontEnd) -> tuple[str, dict]:
    body = {"format": FORMAT_VERSION, "dataset": dataset_fingerprint(root), "features": feature_params(fe)}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:24], body


# -- loading and building -----------------------------------------------------------------------

def load_features(dataset_root: str | os.PathLike, fe: FrontEnd,
                  cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR, *, workers: int | None = None,
                  progress: bool = True, device: str = "cpu") -> ClipFeatures:
    """Features of every usable clip of the dataset, from the cache or computed once and cached.

    workers: decoding threads (default: CPU count, at most 8); progress: tqdm bar on stderr while
    computing and a summary of skipped files; device: torch device for the front-end.
    """
    root = us.find_root(dataset_root)
    cache_dir = Path(cache_dir).expanduser()
    key, body = cache_key(root, fe)
    final = cache_dir / key
    hit = _try_open(final, fe)
    if hit is not None:
        return hit
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cache folder {cache_dir}: cannot create it ({exc.strerror})") from None
    with _lock(cache_dir / f"{key}.lock", progress):
        hit = _try_open(final, fe)           # built by another process while we waited
        if hit is not None:
            return hit
        owned.remove_stale(cache_dir, max_age_s=STALE_BUILD_S)
        tmp = owned.make(cache_dir, key)
        try:
            _build(root, fe, tmp, key, body, workers, progress, device)
            if final.exists() and _try_open(final, fe) is None:   # corrupt leftover: move it aside
                trash = owned.make(cache_dir, f"old-{key}")
                os.rename(final, trash / key)
                shutil.rmtree(trash, ignore_errors=True)
            try:
                os.rename(tmp, final)
            except OSError:
                if _try_open(final, fe) is None:   # else: lost a lock-less race; the winner's copy is as good
                    raise
            else:
                owned.disown(final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    loaded = _try_open(final, fe)
    if loaded is None:
        raise RuntimeError(f"feature cache {final} was just written but does not load")
    return loaded


def _try_open(path: Path, fe: FrontEnd) -> ClipFeatures | None:
    """Open a finished cache folder; None if it is absent or does not check out."""
    if not path.is_dir():
        return None
    try:
        meta = json.loads((path / "meta.json").read_text())
        x = np.load(path / "features.npy", mmap_mode="r")
        y = np.load(path / "y.npy").astype(np.int64)
        fold = np.load(path / "fold.npy").astype(np.int64)
        sal = np.load(path / "salience.npy").astype(np.int64)
        n = meta["n_clips"]
        if (meta.get("format") != FORMAT_VERSION or x.shape != (n, meta["n_frames"], meta["n_mels"])
                or x.dtype != FEATURE_DTYPE or not (y.shape == fold.shape == sal.shape == (n,))
                or len(meta["names"]) != n):
            return None
    except (OSError, ValueError, KeyError, TypeError, EOFError):
        return None
    return ClipFeatures(x=x, y=y, fold=fold, salience=sal, names=tuple(meta["names"]),
                        classes=tuple(meta["classes"]), fe=fe,
                        skipped=tuple((str(a), str(b)) for a, b in meta["skipped"]),
                        key=meta["key"], path=path)


def _build(root: Path, fe: FrontEnd, tmp: Path, key: str, body: dict, workers: int | None,
           progress: bool, device: str) -> None:
    from nas.arch.frontend import n_frames

    t0 = time.time()
    ds = us.read_metadata(root)
    clips = ds.clips
    t_frames = n_frames(us.clip_samples(fe.sample_rate), fe)
    if t_frames == 0:
        raise UserError(f"front-end: n_fft {fe.n_fft} is longer than a {us.CLIP_SECONDS:g} s clip")
    tmp.mkdir(parents=True, exist_ok=True)
    feats = _new_memmap(tmp / "features.npy", (len(clips), t_frames, fe.n_mels))
    kept, report = _extract(root, clips, fe, feats, workers or min(8, os.cpu_count() or 1), progress, device)
    feats.flush()
    del feats
    n = len(kept)
    if n == 0:
        raise UserError(f"{ds.csv_path}: none of the {len(clips)} listed audio files could be read "
                        f"(first: {report.skipped[0][0]}: {report.skipped[0][1]})")
    if n < len(clips):
        _keep_rows(tmp / "features.npy", n)
    _save(tmp / "y.npy", np.array([c.class_id for c in kept], dtype=np.int16))
    _save(tmp / "fold.npy", np.array([c.fold for c in kept], dtype=np.int8))
    _save(tmp / "salience.npy", np.array([c.salience for c in kept], dtype=np.int8))
    meta = {"format": FORMAT_VERSION, "key": key, "n_clips": n, "n_frames": t_frames, "n_mels": fe.n_mels,
            "dtype": np.dtype(FEATURE_DTYPE).name, "names": [c.name for c in kept], "classes": list(ds.classes),
            "skipped": [list(s) for s in report.skipped], "key_inputs": body, "dataset_root": str(root),
            "build_seconds": round(time.time() - t0, 3), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    _fsync(tmp / "features.npy")
    with open(tmp / "meta.json", "w") as fh:
        json.dump(meta, fh)
        fh.flush()
        os.fsync(fh.fileno())
    if report and progress:
        print(f"warning: {report.summary()}", file=sys.stderr)


def _decode(clip: us.Clip, sample_rate: int):
    """(clip, audio or None, reason it could not be read or None)."""
    try:
        return clip, us.load_clip(clip.path, sample_rate), None
    except us.AudioError as exc:
        return clip, None, str(exc)
    except Exception as exc:      # noqa: BLE001 - one bad file must never end the build
        return clip, None, f"unreadable: {type(exc).__name__}: {exc}"


def _extract(root: Path, clips: list, fe: FrontEnd, feats: np.ndarray, workers: int, progress: bool,
             device: str) -> tuple[list, us.SkipReport]:
    """Decode `clips` in threads and write the log-mel of the readable ones, in order, into `feats`
    (rows 0..len(kept)-1); returns (kept clips, skipped files)."""
    import torch
    from tqdm import tqdm

    from nas.arch.frontend import logmel

    report = us.SkipReport()
    kept: list[us.Clip] = []
    bar = tqdm(total=len(clips), desc="log-mel features", unit="clip", file=sys.stderr,
               disable=not progress, dynamic_ncols=True)

    def flush(batch: list) -> None:
        if not batch:
            return
        audio = np.stack([a for _, a in batch])
        if fe.arithmetic == "fixed":               # the device's integers, in numpy
            from nas.arch.fixedfe import features_db

            mel = features_db(audio, fe)
        else:
            with torch.no_grad():
                mel = logmel(torch.from_numpy(audio).to(device), fe).to("cpu").numpy()
        start = len(kept)
        feats[start:start + len(batch)] = mel.astype(FEATURE_DTYPE)
        kept.extend(c for c, _ in batch)
        batch.clear()

    with ThreadPoolExecutor(max_workers=workers) as ex:
        pending: deque = deque()
        it = iter(clips)
        for clip in it:                       # keep at most 2 batches of decodes in flight
            pending.append(ex.submit(_decode, clip, fe.sample_rate))
            if len(pending) >= 2 * BATCH:
                break
        batch: list = []
        while pending:
            clip, audio, err = pending.popleft().result()
            nxt = next(it, None)
            if nxt is not None:
                pending.append(ex.submit(_decode, nxt, fe.sample_rate))
            if err is not None:
                report.add(str(clip.path.relative_to(root)), err)
            else:
                batch.append((clip, audio))
                if len(batch) >= BATCH:
                    flush(batch)
            bar.update(1)
        flush(batch)
    bar.close()
    return kept, report


def _new_memmap(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """A writable .npy memmap whose every byte is allocated on disk first: writing into a sparse file
    on a full disk kills the process with SIGBUS, an allocation that does not fit raises ENOSPC."""
    try:
        arr = np.lib.format.open_memmap(path, mode="w+", dtype=FEATURE_DTYPE, shape=shape)
        fd = os.open(path, os.O_RDWR)
        try:
            os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
        except (AttributeError, OSError) as exc:   # no fallocate here (macOS, some filesystems): sparse, as before
            if isinstance(exc, OSError) and exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise
        finally:
            os.close(fd)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    return arr


def _keep_rows(path: Path, n: int) -> None:
    """Rewrite the features file `path` with its first `n` rows only (the clips that were read)."""
    full = np.load(path, mmap_mode="r")
    part = path.with_name("features.part.npy")
    out = _new_memmap(part, (n, *full.shape[1:]))
    out[:] = full[:n]
    out.flush()
    del out, full
    os.replace(part, path)


def _save(path: Path, arr: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.save(fh, arr)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _lock(path: Path, progress: bool):
    def waiting() -> None:
        if progress:
            print(f"waiting for another process building the feature cache ({path.stem})", file=sys.stderr)

    try:
        lock = FileLock(path, on_wait=waiting)
        lock.acquire()
    except OSError as exc:
        raise UserError(f"cache folder {path.parent}: cannot lock it ({exc.strerror})") from None
    try:
        yield
    finally:
        lock.release()


