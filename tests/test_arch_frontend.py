"""Log-mel front-end: tables, shapes, and parity of the torch path with the CMSIS-DSP computation."""
from __future__ import annotations

import math

import cmsisdsp.datatype as dt
import cmsisdsp.mfcc as mfcc
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.arch import frontend as F
from nas.arch.spec import FrontEnd
from nas.data import urbansound as us

CONFIGS = [
    FrontEnd(),                                                                     # 22.05 kHz, 1024/512, 60
    FrontEnd(sample_rate=16000, n_fft=512, hop_length=256, n_mels=40),
    FrontEnd(sample_rate=8000, n_fft=256, hop_length=128, n_mels=32, fmin=50.0),
    FrontEnd(sample_rate=44100, n_fft=2048, hop_length=1024, n_mels=128, fmin=20.0, fmax=16000.0),
]
PARITY_DB = 0.02   # measured max over 400 clips x these configs: 8e-3 dB


def test_window_is_periodic_hann():
    fe = FrontEnd(n_fft=64, hop_length=32, n_mels=8)
    w = F.window(fe)
    n = np.arange(64)
    assert w.dtype == np.float32 and w.shape == (64,)
    np.testing.assert_allclose(w, 0.5 - 0.5 * np.cos(2 * np.pi * n / 64), atol=1e-7)
    assert w[0] == 0 and w[32] == 1 and np.allclose(w[1:], w[1:][::-1])   # periodic: w[k] = w[N-k]
    np.testing.assert_allclose(w, torch.hann_window(64, periodic=True).numpy(), atol=1e-6)


@pytest.mark.parametrize("fe", CONFIGS, ids=lambda fe: f"{fe.sample_rate}-{fe.n_fft}-{fe.n_mels}")
def test_mel_tables_are_cmsisdsp_melfiltermatrix(fe):
    lengths, pos, packed = mfcc.melFilterMatrix(dt.F32, fe.fmin, fe.f_max, fe.n_mels, fe.sample_rate, fe.n_fft)
    t = F.mel_filter_tables(fe)
    assert np.array_equal(t.pos, pos) and np.array_equal(t.lengths, lengths)
    assert t.coefs.dtype == np.float32 and np.array_equal(t.coefs, np.asarray(packed, np.float32))
    m = F.mel_matrix(fe)
    assert m.shape == (fe.n_mels, fe.n_fft // 2 + 1) and m.dtype == np.float32
    assert not m[:, 0].any() and not m[:, -1].any()          # DC and Nyquist weights are 0
    assert t.max_bin <= fe.n_fft // 2                        # device needs n_fft/2 power bins only
    for k in range(fe.n_mels):                                # dense == sparse expansion
        o = int(t.offsets[k])
        np.testing.assert_array_equal(m[k, t.pos[k]:t.pos[k] + t.lengths[k]], t.coefs[o:o + t.lengths[k]])
    assert np.count_nonzero(m) == t.coefs.size
    np.testing.assert_array_equal(m, F._replica_mel(fe.sample_rate, fe.n_fft, fe.n_mels, fe.fmin, fe.f_max))


def test_empty_mel_bands_are_handled():
    fe = FrontEnd(sample_rate=16000, n_fft=64, hop_length=32, n_mels=30)   # first band holds no bin:
    with pytest.raises((NameError, UnboundLocalError)):                      # melFilterMatrix fails
        mfcc.melFilterMatrix(dt.F32, fe.fmin, fe.f_max, fe.n_mels, fe.sample_rate, fe.n_fft)
    empty = F.empty_mel_bands(fe)
    assert 0 in empty
    t = F.mel_filter_tables(fe)
    assert all(t.lengths[k] == 0 for k in empty)
    x = np.random.default_rng(0).uniform(-0.5, 0.5, 4000).astype(np.float32)
    out = F.logmel(torch.from_numpy(x), fe).numpy()
    np.testing.assert_allclose(out[:, empty], F.LOG_FLOOR_DB, atol=1e-4)
    np.testing.assert_allclose(F.device_logmel(x, fe), out, atol=PARITY_DB)
    assert F.empty_mel_bands(FrontEnd()) == []


def test_n_frames_and_shapes():
    fe = FrontEnd()
    assert F.n_frames(88200, fe) == 1 + (88200 - 1024) // 512 == 171
    assert F.n_frames(1023, fe) == 0 and F.n_frames(1024, fe) == 1
    x = torch.zeros(3, 88200)
    assert F.logmel(x, fe).shape == (3, 171, 60)
    assert F.logmel(x[0], fe).shape == (171, 60)
    assert F.logmel(torch.zeros(2, 100), fe).shape == (2, 0, 60)
    with pytest.raises(ValueError):
        F.logmel(torch.zeros(1, 2, 3), fe)


def test_silence_loudness_and_frequency():
    fe = FrontEnd(sample_rate=16000, n_fft=512, hop_length=256, n_mels=40)
    np.testing.assert_allclose(F.logmel(torch.zeros(1, 16000), fe).numpy(), F.LOG_FLOOR_DB, atol=1e-5)
    t = np.arange(16000) / 16000
    tone = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    a = F.logmel(torch.from_numpy(tone), fe).numpy()
    b = F.logmel(torch.from_numpy(tone * 0.1), fe).numpy()
    band = int(np.argmax(a.mean(0)))
    mel = F.mel_matrix(fe)
    assert mel[band, round(1000 * 512 / 16000)] > 0.5                 # 1 kHz lands in its band
    np.testing.assert_allclose(a[:, band] - b[:, band], 20.0, atol=1e-3)  # no normalisation: -20 dB


def test_batch_rows_are_independent():
    fe = CONFIGS[1]
    x = torch.from_numpy(np.random.default_rng(1).uniform(-1, 1, (4, 16000)).astype(np.float32))
    batch = F.logmel(x, fe)
    for i in range(4):
        torch.testing.assert_close(batch[i], F.logmel(x[i], fe), atol=1e-4, rtol=0)


@pytest.mark.parametrize("fe", CONFIGS, ids=lambda fe: f"{fe.sample_rate}-{fe.n_fft}-{fe.n_mels}")
def test_parity_torch_vs_cmsisdsp_on_dataset_clips(demo_root, fe, record_property):
    clips = us.read_metadata(demo_root).clips[::5]          # 12 clips, every class and encoding mix
    audio = np.stack([us.load_clip(c.path, fe.sample_rate) for c in clips])
    ours = F.logmel(torch.from_numpy(audio), fe).numpy()
    worst = 0.0
    for i in range(len(clips)):
        ref = F.device_logmel(audio[i], fe)
        assert ref.shape == ours[i].shape == (F.n_frames(audio.shape[1], fe), fe.n_mels)
        worst = max(worst, float(np.abs(ref - ours[i]).max()))
    record_property("max_abs_error_db", worst)
    print(f"\nparity {fe.sample_rate} Hz n_fft={fe.n_fft} hop={fe.hop_length} n_mels={fe.n_mels}: "
          f"max |torch - cmsisdsp| = {worst:.2e} dB")
    assert worst < PARITY_DB


@settings(max_examples=12, deadline=None)
@given(log_fft=st.integers(5, 10), hop_div=st.sampled_from([1, 2, 4]), sr=st.sampled_from([8000, 16000, 22050, 32000]),
       mel_frac=st.floats(0.05, 0.5), fmin_frac=st.floats(0.0, 0.3), seed=st.integers(0, 1000))
def test_parity_random_configs(log_fft, hop_div, sr, mel_frac, fmin_frac, seed):
    n_fft = 2 ** log_fft
    fe = FrontEnd(sample_rate=sr, n_fft=n_fft, hop_length=n_fft // hop_div,
                  n_mels=max(1, int(mel_frac * n_fft / 2)), fmin=fmin_frac * sr / 2)
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(8 * n_fft) * rng.uniform(1e-4, 0.5)).astype(np.float32)
    np.testing.assert_allclose(F.device_logmel(x, fe), F.logmel(torch.from_numpy(x), fe).numpy(),
                               atol=PARITY_DB, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    fe = CONFIGS[0]
    x = torch.from_numpy(np.random.default_rng(2).uniform(-1, 1, (2, 88200)).astype(np.float32))
    torch.testing.assert_close(F.logmel(x.cuda(), fe).cpu(), F.logmel(x, fe), atol=PARITY_DB, rtol=0)


def test_db_constant():
    assert math.isclose(F.DB_PER_NEPER, 10 / math.log(10), rel_tol=1e-7)
    assert F.LOG_FLOOR_DB == pytest.approx(-60.0)
