"""The trainer's view of the data: only selection folds, padding excluded, bounded memory."""
from __future__ import annotations

import numpy as np

from nas.arch.frontend import LOG_FLOOR_DB
from nas.arch.spec import FrontEnd
from nas.data.urbansound import FoldSplit, read_metadata
from nas.train.trialdata import TrialData, valid_frames


def test_valid_frames_stop_at_the_last_sound():
    x = np.full((3, 10, 4), LOG_FLOOR_DB, dtype=np.float32)
    x[0, :7] = -20.0          # sound then zero padding
    x[1, 2] = -30.0           # one loud frame early on
    assert valid_frames(x).tolist() == [7, 3, 10]  # silent clip: all frames


def test_trial_data_holds_only_selection_folds_and_is_bounded(demo_root, tmp_path):
    split = FoldSplit.for_test_fold(10, 9)
    data = TrialData(demo_root, split, tmp_path / "cache", progress=False, keep=1)
    a = FrontEnd(sample_rate=16000, n_fft=512, hop_length=256, n_mels=40)
    b = FrontEnd(sample_rate=8000, n_fft=256, hop_length=128, n_mels=20)
    train, val, norm = data.get(a)
    clips = read_metadata(demo_root).clips
    assert len(train) == sum(c.fold in split.train for c in clips)
    assert len(val) == sum(c.fold in split.val for c in clips)
    sound = np.concatenate([clip[:v].numpy().ravel() for clip, v in zip(train.x, train.valid_frames.tolist())])
    assert abs(sound.mean()) < 1e-3 and abs(sound.std() - 1.0) < 1e-3  # normalised on the training sound
    data.get(a)
    assert data.loads == 1                     # memo hit
    data.get(b)
    data.get(a)
    assert data.loads == 3                     # keep=1: b evicted a
