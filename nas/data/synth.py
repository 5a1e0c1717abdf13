"""Synthetic stand-in for UrbanSound8K, in exactly its layout and CSV schema.

    python -m nas.data.synth --out DIR [--seed N] [--clips-per-class N]

Writes DIR/metadata/UrbanSound8K.csv and DIR/audio/fold1..fold10/*.wav: the 10 UrbanSound8K class
names, 10 folds, clips of at most 4 s. Each class is a family of environmental-like sounds (hum and
noise, two-tone horns, voice-like glides, barks, motor whine, engine pulses, shots, hammer trains,
sirens, music) whose parameter ranges overlap between classes; every clip sits on background noise
at a random SNR (low for salience 2), has a random gain and onset, and some carry a quiet sound of
another class, so a small CNN is clearly above chance but not perfect. Files use the encodings the
real set has (8/16/24/32-bit PCM, float32, IMA and MS ADPCM), 8 to 96 kHz, mono and stereo; every
encoding, rate and channel count appears once there are at least 10 clips. Slices of one synthetic
recording (fsID) share a fold and its character, as in the real set. Output is deterministic by seed
(bit-identical files); a rerun with the same arguments finds the dataset up to date and writes nothing.
"""
from __future__ import annotations

import csv
import io
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nas.core import flags
from nas.core.atomic import atomic_write_text
from nas.core.errors import UserError, run_cli
from nas.data.urbansound import CLASSES, CLIP_SECONDS, COLUMNS, CSV_RELPATH

ENCODINGS = ("PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "IMA_ADPCM", "MS_ADPCM")
RATES = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000, 96000)
RATE_WEIGHTS = (1, 1, 2, 3, 1, 1, 6, 4, 1)   # mostly 44.1/48 kHz, as in the real set
RENDER_MAX_RATE = 32000                        # above this, render at 32 kHz and resample up
MARKER = ".synth.json"
VERSION = 2
DEFAULT_CLIPS_PER_CLASS = 80


@dataclass(frozen=True)
class ClipPlan:
    name: str
    fs_id: int
    fold: int
    class_id: int
    salience: int
    subtype: str
    sample_rate: int
    channels: int
    seconds: float
    start: float
    seed: int           # clip-level randomness (timing, noise realisation)
    rec_seed: int       # recording-level character, shared by slices of one fsID

    @property
    def n_samples(self) -> int:
        return int(round(self.seconds * self.sample_rate))

    @property
    def relpath(self) -> Path:
        return Path("audio") / f"fold{self.fold}" / self.name


def plan(seed: int = 0, clips_per_class: int = DEFAULT_CLIPS_PER_CLASS) -> list[ClipPlan]:
    """Every clip's file name, fold, class, encoding and seeds; deterministic by seed."""
    if clips_per_class < 1:
        raise UserError(f"--clips-per-class must be at least 1, got {clips_per_class}")
    rng = np.random.default_rng([seed, 1])
    n = clips_per_class * len(CLASSES)
    subtypes = _balanced(rng, ENCODINGS, n)
    rates = _balanced(rng, RATES, n, weights=RATE_WEIGHTS)
    channels = _balanced(rng, (1, 2), n, weights=(3, 1))
    plans, k = [], 0
    for c in range(len(CLASSES)):
        recs: dict[tuple[int, int], tuple[int, int, int, int]] = {}
        for j in range(clips_per_class):
            fold = (c * clips_per_class + j) % 10 + 1
            group = (fold, j // 20)                       # up to 2 slices of a recording per fold
            if group not in recs:
                fs_id = int(rng.integers(10_000, 999_999))
                recs[group] = (fs_id, int(rng.integers(2**31)), 1 if rng.random() < 0.6 else 2, 0)
            fs_id, rec_seed, salience, n_slices = recs[group]
            recs[group] = (fs_id, rec_seed, salience, n_slices + 1)
            seconds = CLIP_SECONDS if rng.random() < (0.45 if c in (3, 6) else 0.8) \
                else float(np.round(rng.uniform(0.4, CLIP_SECONDS), 3))
            start = float(np.round(rng.uniform(0, 60), 6))
            plans.append(ClipPlan(name=f"{fs_id}-{c}-0-{n_slices}.wav", fs_id=fs_id, fold=fold, class_id=c,
                                  salience=salience, subtype=subtypes[k], sample_rate=int(rates[k]),
                                  channels=int(channels[k]), seconds=seconds, start=start,
                                  seed=int(rng.integers(2**31)), rec_seed=rec_seed))
            k += 1
    return plans


def _balanced(rng: np.random.Generator, values, n: int, weights=None) -> list:
    """n draws that contain every value once (when n allows), the rest weighted, shuffled."""
    vals = list(values)
    out = vals[:n]
    if n > len(vals):
        p = None if weights is None else np.asarray(weights, float) / np.sum(weights)
        out += [vals[i] for i in rng.choice(len(vals), size=n - len(vals), p=p)]
    return [out[i] for i in rng.permutation(n)]


# -- signal building blocks ---------------------------------------------------------------------

def _fast_len(n: int) -> int:
    return 1 << max(4, int(n - 1).bit_length())


def _colored_noise(rng, n: int, alpha: float, sr: int = 0, lo: float = 0.0, hi: float = 0.0) -> np.ndarray:
    """Noise with power spectrum ~ 1/f^alpha (0 white, 1 pink, 2 brown), optionally band-passed
    to [lo, hi] Hz, unit RMS."""
    m = _fast_len(n)
    spec = np.fft.rfft(rng.standard_normal(m))
    f = np.arange(spec.size, dtype=float)
    f[0] = 1.0
    gain = f ** (-alpha / 2.0)
    if sr:
        gain *= _band_gain(f * (sr / m), lo, hi)
    x = np.fft.irfft(spec * gain, m)[:n]
    return x / (np.sqrt(np.mean(x ** 2)) + 1e-12)


def _band_gain(f: np.ndarray, lo: float, hi: float) -> np.ndarray:
    r_lo = (lo / np.maximum(f, 1e-3)) ** 2
    r_hi = (f / max(hi, 1.0)) ** 2
    return 1.0 / ((1.0 + r_lo * r_lo) * (1.0 + r_hi * r_hi))


def _bandpass(x: np.ndarray, sr: int, lo: float, hi: float) -> np.ndarray:
    """Zero-phase band-pass in the frequency domain (zero-padded to a fast length)."""
    m = _fast_len(x.size)
    spec = np.fft.rfft(x, m)
    spec *= _band_gain(np.fft.rfftfreq(m, 1.0 / sr), lo, hi)
    return np.fft.irfft(spec, m)[:x.size]


def _harmonic(f0: np.ndarray, sr: int, amps: np.ndarray) -> np.ndarray:
    """Harmonic stack following the f0 track (Hz per sample); harmonics above 0.45 sr dropped."""
    k_max = int(max(1, min(len(amps), (0.45 * sr) // max(float(f0.max()), 1.0))))
    table_n = 4096
    ph = np.arange(table_n) * (2 * np.pi / table_n)
    table = np.asarray(amps[:k_max], dtype=float) @ np.sin(np.outer(np.arange(1, k_max + 1), ph))
    phase = np.cumsum(f0 / sr) % 1.0
    return np.interp(phase * table_n, np.arange(table_n + 1), np.append(table, table[0]))


def _rolloff(rng, n: int, lo: float, hi: float) -> np.ndarray:
    slope = rng.uniform(lo, hi)
    return (np.arange(1, n + 1) ** -slope) * rng.uniform(0.5, 1.0, n)


def _env_segments(n: int, sr: int, segs, attack: float = 0.01, release: float = 0.03) -> np.ndarray:
    """Sum of gates (start_s, dur_s) with linear attack/release."""
    env = np.zeros(n)
    for start, dur in segs:
        a, b = int(start * sr), min(n, int((start + dur) * sr))
        if b <= a:
            continue
        m = b - a
        g = np.ones(m)
        na, nr = min(m, max(1, int(attack * sr))), min(m, max(1, int(release * sr)))
        g[:na] *= np.linspace(0, 1, na)
        g[m - nr:] *= np.linspace(1, 0, nr)
        env[a:b] = np.maximum(env[a:b], g)
    return env


def _decay_events(n: int, sr: int, onsets, tau: float) -> np.ndarray:
    """Exponential decays (time constant tau) starting at each onset (s), cut after 8 tau."""
    env = np.zeros(n)
    kernel = np.exp(-np.arange(min(n, int(8 * tau * sr) + 1)) / (tau * sr))
    for o in onsets:
        i = max(0, int(o * sr))
        if i < n:
            k = min(kernel.size, n - i)
            env[i:i + k] += kernel[:k]
    return env


def _smooth_track(rng, n: int, sr: int, lo: float, hi: float, rate: float) -> np.ndarray:
    """A slowly wandering value in [lo, hi] (rate: changes per second)."""
    k = max(2, int(n / sr * rate) + 2)
    pts = rng.uniform(lo, hi, k)
    return np.interp(np.linspace(0, k - 1, n), np.arange(k), pts)


# -- the ten classes ----------------------------------------------------------------------------

def _air_conditioner(rr, cr, n, sr):
    x = _colored_noise(cr, n, rr.uniform(0.5, 1.8), sr, 30, rr.uniform(600, 5000))
    f0 = np.full(n, rr.uniform(45, 180))
    x += rr.uniform(0.05, 0.6) * _harmonic(f0, sr, _rolloff(rr, 6, 0.5, 2.0))
    t = np.arange(n) / sr
    return x * (1 + rr.uniform(0, 0.3) * np.sin(2 * np.pi * rr.uniform(0.2, 3) * t))


def _car_horn(rr, cr, n, sr):
    f0 = rr.uniform(250, 550)
    amps = _rolloff(rr, 14, 0.3, 1.2)
    x = _harmonic(np.full(n, f0), sr, amps) + rr.uniform(0.3, 1) * _harmonic(np.full(n, f0 * rr.uniform(1.18, 1.35)), sr, amps)
    dur = n / sr
    segs, t = [], cr.uniform(0, 0.4 * dur)
    for _ in range(cr.integers(1, 4)):
        d = cr.uniform(0.15, 1.5)
        segs.append((t, d))
        t += d + cr.uniform(0.05, 0.6)
    return x * _env_segments(n, sr, segs)


def _children_playing(rr, cr, n, sr):
    x = 0.3 * _colored_noise(cr, n, 1.0, sr, 200, 3000)
    dur = n / sr
    for _ in range(cr.integers(3, 9)):
        start, d = cr.uniform(0, dur), cr.uniform(0.1, 0.6)
        m = min(n - int(start * sr), int(d * sr))
        if m < 16:
            continue
        f0 = _smooth_track(cr, m, sr, rr.uniform(200, 320), rr.uniform(350, 650), 6)
        amps = np.exp(-0.5 * ((np.arange(1, 13) * f0.mean() - cr.uniform(500, 1200)) / 400) ** 2) + 0.1
        v = _harmonic(f0, sr, amps) * np.hanning(m)
        i = int(start * sr)
        x[i:i + m] += cr.uniform(0.3, 1.0) * v
    return x


def _dog_bark(rr, cr, n, sr):
    x = np.zeros(n)
    dur = n / sr
    t = cr.uniform(0, 0.5 * dur)
    for _ in range(cr.integers(1, 5)):
        d = cr.uniform(0.08, 0.3)
        m = min(n - int(t * sr), int(d * sr))
        if m < 16:
            break
        f0 = np.linspace(1, rr.uniform(0.6, 0.85), m) * rr.uniform(300, 900)
        env = np.exp(-np.arange(m) / (sr * d / 3)) * (1 - np.exp(-np.arange(m) / (0.004 * sr)))
        v = _harmonic(f0, sr, _rolloff(rr, 10, 0.4, 1.2)) + rr.uniform(0.2, 1) * _bandpass(cr.standard_normal(m), sr, 500, 3000)
        i = int(t * sr)
        x[i:i + m] += env * v
        t += d + cr.uniform(0.1, 0.7)
    return x


def _drilling(rr, cr, n, sr):
    f0 = _smooth_track(cr, n, sr, *sorted(rr.uniform(100, 600, 2)), 1)
    x = _harmonic(f0, sr, _rolloff(rr, 30, 0.1, 0.8)) + rr.uniform(0.1, 0.6) * _colored_noise(cr, n, 0.0, sr, 1500, 8000)
    t = np.arange(n) / sr
    x *= 1 + rr.uniform(0, 0.5) * np.sin(2 * np.pi * rr.uniform(15, 60) * t)
    dur = n / sr
    segs = [(cr.uniform(0, 0.3 * dur), cr.uniform(min(0.5, dur), dur))] if cr.random() < 0.6 else [(0, dur)]
    return x * _env_segments(n, sr, segs, 0.05, 0.1)


def _engine_idling(rr, cr, n, sr):
    rate = rr.uniform(12, 45)
    t = np.arange(n) / sr
    pulses = (0.5 + 0.5 * np.cos(2 * np.pi * rate * t)) ** rr.uniform(2, 8)
    x = _colored_noise(cr, n, rr.uniform(0.5, 2), sr, 20, rr.uniform(200, 1500)) * pulses
    return x + rr.uniform(0.1, 0.5) * _harmonic(np.full(n, rate * rr.integers(1, 4)), sr, _rolloff(rr, 8, 0.5, 1.5))


def _gun_shot(rr, cr, n, sr):
    dur = n / sr
    onsets = np.sort(cr.uniform(0, 0.6 * dur, cr.integers(1, 4)))
    noise = _colored_noise(cr, n, 0.0, sr, 60, rr.uniform(1500, 9000))
    x = noise * _decay_events(n, sr, onsets, rr.uniform(0.02, 0.15))
    return x + rr.uniform(0.05, 0.3) * _colored_noise(cr, n, 1.0) * _decay_events(n, sr, onsets, rr.uniform(0.2, 0.6))


def _jackhammer(rr, cr, n, sr):
    rate = rr.uniform(9, 26)
    dur = n / sr
    t0 = cr.uniform(0, 0.3 * dur)
    onsets = np.arange(t0, min(dur, t0 + cr.uniform(min(0.6, dur), dur)), 1 / rate)
    onsets = onsets + cr.normal(0, 0.003, onsets.size)
    t = np.arange(n) / sr
    ring = np.sin(2 * np.pi * min(rr.uniform(800, 3000), 0.4 * sr) * t)
    x = _colored_noise(cr, n, 0.0, sr, 100, 6000) * _decay_events(n, sr, onsets, rr.uniform(0.005, 0.02))
    return x + rr.uniform(0.2, 0.8) * ring * _decay_events(n, sr, onsets, rr.uniform(0.01, 0.04))


def _siren(rr, cr, n, sr):
    lo, hi = rr.uniform(500, 900), rr.uniform(1100, 1800)
    period = rr.choice([rr.uniform(0.15, 0.4), rr.uniform(1.5, 4.5)])
    t = np.arange(n) / sr
    sweep = 0.5 - 0.5 * np.cos(2 * np.pi * (t / period + cr.random()))
    f0 = (lo + (hi - lo) * sweep) * (1 + rr.uniform(-0.05, 0.05) * t / max(t[-1], 1e-3))
    return _harmonic(f0, sr, _rolloff(rr, 6, 0.8, 2.5))


def _street_music(rr, cr, n, sr):
    x = np.zeros(n)
    dur = n / sr
    root = rr.uniform(110, 440)
    scale = np.array([0, 2, 4, 5, 7, 9, 11, 12])
    amps = _rolloff(rr, 10, 0.6, 1.8)
    t = 0.0
    while t < dur:
        d = cr.uniform(0.1, 0.5)
        m = min(n - int(t * sr), int(d * sr))
        if m < 16:
            break
        env = np.exp(-np.arange(m) / (sr * cr.uniform(0.05, 0.4)))
        for semis in cr.choice(scale, cr.integers(1, 3)):
            x[int(t * sr):int(t * sr) + m] += env * _harmonic(np.full(m, root * 2 ** (semis / 12)), sr, amps)
        t += d
    beat = 60 / rr.uniform(80, 140)
    kick_on = np.arange(cr.uniform(0, beat), dur, beat)
    tt = np.arange(n) / sr
    return x + rr.uniform(0.2, 1) * np.sin(2 * np.pi * 60 * tt) * _decay_events(n, sr, kick_on, 0.08)


GENERATORS = (_air_conditioner, _car_horn, _children_playing, _dog_bark, _drilling,
              _engine_idling, _gun_shot, _jackhammer, _siren, _street_music)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x ** 2)) + 1e-12)


def _active_rms(x: np.ndarray) -> float:
    """RMS over the loudest quarter of 20 ms blocks: the event's level, not diluted by silence."""
    b = max(1, x.size // 200)
    blocks = np.sqrt(np.mean(x[: x.size // b * b].reshape(-1, b) ** 2, axis=1)) if x.size >= b else np.array([_rms(x)])
    top = np.sort(blocks)[-max(1, blocks.size // 4):]
    return float(top.mean() + 1e-12)


def render(p: ClipPlan) -> np.ndarray:
    """The clip's signal before encoding: float64 [n_samples, channels], peak < 1."""
    rr = np.random.default_rng(p.rec_seed)
    cr = np.random.default_rng(p.seed)
    sr = min(p.sample_rate, RENDER_MAX_RATE)
    n = max(16, int(round(p.seconds * sr)))
    fg = GENERATORS[p.class_id](rr, cr, n, sr)
    fg = fg / _active_rms(fg)
    if cr.random() < 0.3:                                      # a quiet sound of another class
        other = (p.class_id + int(cr.integers(1, len(CLASSES)))) % len(CLASSES)
        o = GENERATORS[other](np.random.default_rng(cr.integers(2**31)), cr, n, sr)
        fg = fg + 10 ** (cr.uniform(-20, -8) / 20) * o / _active_rms(o)
    bg = _colored_noise(cr, n, rr.uniform(0.5, 2.0), sr, 20, rr.uniform(2000, 0.45 * sr))
    bg *= 1 + rr.uniform(0, 0.5) * np.sin(2 * np.pi * cr.uniform(0.05, 0.5) * np.arange(n) / sr + cr.uniform(0, 6.3))
    snr_db = cr.uniform(0, 20) if p.salience == 1 else cr.uniform(-8, 6)
    x = fg + bg / _rms(bg) * 10 ** (-snr_db / 20)
    if p.channels == 2:
        delay = int(cr.integers(0, 20))
        right = np.roll(x, delay) * 10 ** (cr.uniform(-3, 3) / 20) + 0.05 * _rms(x) * cr.standard_normal(n)
        x = np.stack([x, right], axis=1)
    else:
        x = x[:, None]
    if sr != p.sample_rate:
        import soxr
        x = soxr.resample(x, sr, p.sample_rate, quality="HQ")
    x = fit_rows(x, p.n_samples)
    peak_db = cr.uniform(-30, -1)
    return x * (10 ** (peak_db / 20) / (np.abs(x).max() + 1e-12))


def fit_rows(x: np.ndarray, n: int) -> np.ndarray:
    if x.shape[0] >= n:
        return x[:n]
    return np.concatenate([x, np.zeros((n - x.shape[0], x.shape[1]))])


def encode(p: ClipPlan, signal: np.ndarray) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, signal, p.sample_rate, subtype=p.subtype, format="WAV")
    return _zero_peak_timestamp(buf.getvalue())


def _zero_peak_timestamp(wav: bytes) -> bytes:
    """libsndfile stamps float WAVs' PEAK chunk with the wall-clock time; zero it so a seed gives
    the same bytes at any time."""
    data = bytearray(wav)
    pos = 12
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos + 4:pos + 8], "little")
        if data[pos:pos + 4] == b"PEAK" and size >= 8:
            data[pos + 12:pos + 16] = b"\0\0\0\0"  # after the chunk header and the version field
            break
        pos += 8 + size + (size & 1)
    return bytes(data)


def _csv_text(plans: list[ClipPlan]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(COLUMNS)
    for p in plans:
        w.writerow([p.name, p.fs_id, round(p.start, 6), round(p.start + p.seconds, 6), p.salience, p.fold,
                    p.class_id, CLASSES[p.class_id]])
    return out.getvalue()


def generate(out: str | Path, seed: int = 0, clips_per_class: int = DEFAULT_CLIPS_PER_CLASS,
             progress: bool = True) -> Path:
    """Write the dataset under `out` (created); returns `out`. Up to date → nothing written."""
    out = Path(out)
    plans = plan(seed, clips_per_class)
    params = {"version": VERSION, "seed": seed, "clips_per_class": clips_per_class}
    marker = out / MARKER
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    if _up_to_date(out, marker, params, plans):
        if progress:
            print(f"{out}: synthetic dataset already up to date ({len(plans)} clips)", file=sys.stderr)
        return out
    if out.is_dir() and any(out.iterdir()) and not marker.is_file():
        raise UserError(f"--out {out}: folder is not empty and was not written by nas.data.synth "
                        "(no .synth.json); choose an empty or new folder")
    atomic_write_text(marker, json.dumps({**params, "complete": False}, sort_keys=True))
    (out / CSV_RELPATH).unlink(missing_ok=True)           # the CSV is written last: no CSV = incomplete
    shutil.rmtree(out / "audio", ignore_errors=True)
    for f in range(1, 11):
        (out / "audio" / f"fold{f}").mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm

    for p in tqdm(plans, desc="synth clips", unit="clip", file=sys.stderr, disable=not progress):
        (out / p.relpath).write_bytes(encode(p, render(p)))
    atomic_write_text(out / CSV_RELPATH, _csv_text(plans))
    atomic_write_text(marker, json.dumps({**params, "complete": True}, sort_keys=True))
    return out


def _up_to_date(out: Path, marker: Path, params: dict, plans: list[ClipPlan]) -> bool:
    try:
        if json.loads(marker.read_text()) != {**params, "complete": True}:
            return False
        if (out / CSV_RELPATH).read_text() != _csv_text(plans):
            return False
    except (OSError, ValueError):
        return False
    return all((out / p.relpath).is_file() for p in plans)


def main(argv: list[str] | None = None) -> int:
    ap = flags.Parser(prog="python -m nas.data.synth",
                      description="Write a synthetic dataset in the UrbanSound8K layout.")
    ap.add_argument("--out", required=True, type=Path, help="dataset folder to write")
    ap.add_argument("--seed", type=flags.seed, default=0, help="random seed (default 0)")
    ap.add_argument("--clips-per-class", type=flags.positive_int, default=DEFAULT_CLIPS_PER_CLASS,
                    help=f"clips per class (default {DEFAULT_CLIPS_PER_CLASS}; 10 classes)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    out = generate(args.out, seed=args.seed, clips_per_class=args.clips_per_class, progress=not args.quiet)
    print(out)
    return 0


if __name__ == "__main__":
    run_cli(main)
