"""The teacher's own front-end: the log-mel input its AudioSet weights were trained on.

32 kHz mono → pre-emphasis y[n] = x[n+1] - 0.97 x[n] → STFT (n_fft 1024, a symmetric Hann window of
800 samples centred in the frame, hop 320, frames centred with reflection padding) → power →
128 triangular mel bands on the Kaldi mel scale (1127 ln(1 + f/700)) from 0 Hz to 15 kHz, peak 1,
the Nyquist bin left out → ln(x + 1e-5) → (x + 4.5) / 5. 100 frames per second: a 4-s clip gives
400 frames. Independent of the student front-ends (`nas.arch.frontend`), which model the device.
"""
from __future__ import annotations

import numpy as np
import torch

SAMPLE_RATE = 32000
PREEMPHASIS = 0.97
N_FFT = 1024
WIN_LENGTH = 800
HOP = 320
N_MELS = 128
FMIN, FMAX = 0.0, 15000.0
LOG_OFFSET = 1e-5
SHIFT, SCALE = 4.5, 5.0


def kaldi_mel(f: np.ndarray | float) -> np.ndarray | float:
    return 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)


def mel_banks(n_mels: int = N_MELS, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE, fmin: float = FMIN,
              fmax: float = FMAX) -> np.ndarray:
    """[n_mels, n_fft // 2 + 1] triangles equally spaced on the Kaldi mel scale, each rising from its
    left neighbour's centre to 1 at its own and falling to the right neighbour's centre (linear in mel);
    evaluated at the FFT bins below Nyquist, the Nyquist column zero."""
    edges = np.linspace(kaldi_mel(fmin), kaldi_mel(fmax), n_mels + 2)
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    m = kaldi_mel(np.arange(n_fft // 2) * sample_rate / n_fft)[None, :]
    tri = np.maximum(0.0, np.minimum((m - left) / (centre - left), (right - m) / (right - centre)))
    return np.pad(tri, ((0, 0), (0, 1))).astype(np.float32)


class TeacherMel(torch.nn.Module):
    """audio [B, samples] at 32 kHz → normalised log-mel [B, 1, 128, frames]."""

    def __init__(self):
        super().__init__()
        self.register_buffer("window", torch.hann_window(WIN_LENGTH, periodic=False), persistent=False)
        self.register_buffer("banks", torch.from_numpy(mel_banks()), persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        x = audio[:, 1:] - PREEMPHASIS * audio[:, :-1]
        spec = torch.stft(x, N_FFT, hop_length=HOP, win_length=WIN_LENGTH, window=self.window, center=True,
                          pad_mode="reflect", normalized=False, return_complex=True)
        power = spec.real.square() + spec.imag.square()
        mel = torch.log(torch.matmul(self.banks, power) + LOG_OFFSET)
        return ((mel + SHIFT) / SCALE).unsqueeze(1)


def frames_for(samples: int) -> int:
    """Frames of a clip of `samples` samples (pre-emphasis drops one)."""
    return 1 + (samples - 1) // HOP


def frame_seconds() -> float:
    return HOP / SAMPLE_RATE

