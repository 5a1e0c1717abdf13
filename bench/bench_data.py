"""Data-path benchmark: feature extraction cold and cached, torch front-end vs librosa.

    python bench/bench_data.py

`run()` generates its own synthetic dataset (200 clips, the mix of encodings/rates of
nas.data.synth) in a temp folder and returns (name, value, unit) rows:
  data.extract_cold          clips/s  decode + resample + log-mel + write cache (fresh cache dir)
  data.extract_cached        clips/s  cache hit: fingerprint + open + read every feature into RAM
  data.validate              clips/s  validate_dataset before a study: every header, a few decodes
  data.frontend_torch        frames/s batched torch log-mel, audio already decoded
  data.frontend_librosa      frames/s librosa.feature.melspectrogram + power_to_db, same settings
  data.frontend_vs_librosa   x        torch frames/s / librosa frames/s
  data.frontend_cmsisdsp     frames/s the cmsisdsp-wrapper reference (device_logmel), for scale
Front-end: FrontEnd() defaults (22.05 kHz, n_fft 1024, hop 512, 60 mels).
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

CLIPS_PER_CLASS = 20


def _best(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def run() -> list[tuple[str, float, str]]:
    import librosa
    import numpy as np
    import torch

    from nas.arch import frontend as F
    from nas.arch.spec import FrontEnd
    from nas.data import urbansound as us
    from nas.data.cache import load_features
    from nas.data.synth import generate
    from nas.data.validate import validate_dataset

    fe = FrontEnd()
    rows: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        root = generate(Path(tmp) / "UrbanSound8K", seed=0, clips_per_class=CLIPS_PER_CLASS, progress=False)
        n_clips = len(us.read_metadata(root).clips)

        cache_dir = Path(tmp) / "cache"
        t = time.perf_counter()
        load_features(root, fe, cache_dir=cache_dir, progress=False)
        rows.append(("data.extract_cold", n_clips / (time.perf_counter() - t), "clips/s"))

        def cached():
            f = load_features(root, fe, cache_dir=cache_dir, progress=False)
            float(np.asarray(f.x, dtype=np.float32).sum())
        rows.append(("data.extract_cached", n_clips / _best(cached), "clips/s"))
        split = us.FoldSplit.for_test_fold(10, 9)
        rows.append(("data.validate", n_clips / _best(lambda: validate_dataset(root, split, log=lambda _: None)),
                     "clips/s"))

        audio = np.stack([us.load_clip(c.path, fe.sample_rate) for c in us.read_metadata(root).clips[:64]])
        frames = audio.shape[0] * F.n_frames(audio.shape[1], fe)
        x = torch.from_numpy(audio)
        F.logmel(x[:2], fe)
        with torch.no_grad():
            torch_fps = frames / _best(lambda: F.logmel(x, fe))

        def rosa():
            s = librosa.feature.melspectrogram(y=audio, sr=fe.sample_rate, n_fft=fe.n_fft, hop_length=fe.hop_length,
                                               center=False, window="hann", power=2.0, n_mels=fe.n_mels,
                                               fmin=fe.fmin, fmax=fe.f_max, htk=True, norm=None)
            librosa.power_to_db(s, ref=1.0, amin=F.LOG_EPS, top_db=None)
        rosa()
        rosa_fps = frames / _best(rosa)
        rows += [("data.frontend_torch", torch_fps, "frames/s"),
                 ("data.frontend_librosa", rosa_fps, "frames/s"),
                 ("data.frontend_vs_librosa", torch_fps / rosa_fps, "x")]

        ref_clips = audio[:4]
        ref_fps = ref_clips.shape[0] * F.n_frames(audio.shape[1], fe) / _best(
            lambda: [F.device_logmel(a, fe) for a in ref_clips], repeat=1)
        rows.append(("data.frontend_cmsisdsp", ref_fps, "frames/s"))
    return rows


if __name__ == "__main__":
    for name, value, unit in run():
        print(f"{name:28s} {value:12.1f} {unit}")
