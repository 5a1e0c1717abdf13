"""UrbanSound8K loader: metadata validation, every encoding, resampling, folds, damaged files."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from nas.core.errors import UserError
from nas.data import synth
from nas.data import urbansound as us

HEADER = ",".join(us.COLUMNS)


def _demo_params(root) -> tuple[int, int]:
    params = json.loads((root / synth.MARKER).read_text())
    return params["seed"], params["clips_per_class"]


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and msg
    return msg


def _write_csv(root, text: str):
    (root / "metadata").mkdir(parents=True, exist_ok=True)
    (root / "audio").mkdir(exist_ok=True)
    (root / us.CSV_RELPATH).write_text(text)


# -- metadata -----------------------------------------------------------------------------------

def test_metadata_classes_and_folds(demo_root):
    ds = us.read_metadata(demo_root)
    _, per_class = _demo_params(demo_root)
    assert ds.classes == us.CLASSES
    assert len(ds.clips) == 10 * per_class
    assert Counter(c.class_id for c in ds.clips) == {i: per_class for i in range(10)}
    assert {c.fold for c in ds.clips} == set(us.FOLDS)
    for c in ds.clips:
        assert c.path == demo_root / "audio" / f"fold{c.fold}" / c.name and c.path.is_file()
        assert c.class_name == us.CLASSES[c.class_id] and c.salience in (1, 2)


def test_root_may_be_parent_folder(demo_root):
    assert us.find_root(demo_root.parent) == demo_root


def test_missing_dataset_is_one_clear_error(tmp_path):
    with pytest.raises(UserError) as exc:
        us.read_metadata(tmp_path / "nowhere")
    msg = _one_line(exc)
    assert str(tmp_path / "nowhere" / "metadata" / "UrbanSound8K.csv") in msg
    assert "urbansounddataset.weebly.com/urbansound8k.html" in msg and "Zenodo" in msg


def test_csv_without_audio_folder(tmp_path):
    (tmp_path / "metadata").mkdir()
    (tmp_path / us.CSV_RELPATH).write_text(HEADER + "\n")
    with pytest.raises(UserError, match="audio folder"):
        us.read_metadata(tmp_path)


@pytest.mark.parametrize("text, match", [
    ("", "file is empty"),
    (HEADER + "\n", "no clips listed"),
    ("slice_file_name,fsID,start,end,salience,classID,class\na.wav,1,0,4,1,0,air_conditioner\n",
     "missing column.*fold"),
    (HEADER + "\na.wav,1,0,4,1,3,10,air_conditioner\n", r"line 2 \(a.wav\): classID 10 is out of range 0..9"),
    (HEADER + "\na.wav,1,0,4,1,3,-1,air_conditioner\n", "classID -1 is out of range"),
    (HEADER + "\na.wav,1,0,4,1,11,0,air_conditioner\n", r"line 2 \(a.wav\): fold 11 is out of range 1..10"),
    (HEADER + "\na.wav,1,0,4,1,0,0,air_conditioner\n", "fold 0 is out of range"),
    (HEADER + "\na.wav,1,0,4,1,x,0,air_conditioner\n", "fold must be an integer"),
    (HEADER + "\na.wav,1,0,4,3,1,0,air_conditioner\n", "salience 3"),
    (HEADER + "\na.wav,1,0,4,1,1,0,air_conditioner\nb.wav,1,0,4,1,1,0,dog_bark\n", "line 3.*classID 0 is named"),
    (HEADER + "\na.wav,1,0,4,1,1,0,air_conditioner\na.wav,1,0,4,1,2,0,air_conditioner\n",
     "line 3.*listed twice"),
    (HEADER + "\n../a.wav,1,0,4,1,1,0,air_conditioner\n", "plain file name"),
    (HEADER + "\na.wav,1,0,4\n", "line 2: 4 fields"),
])
def test_malformed_csv_is_one_line_user_error(tmp_path, text, match):
    _write_csv(tmp_path, text)
    with pytest.raises(UserError, match=match) as exc:
        us.read_metadata(tmp_path)
    assert str(tmp_path / us.CSV_RELPATH) in _one_line(exc)


def test_binary_csv(tmp_path):
    _write_csv(tmp_path, "")
    (tmp_path / us.CSV_RELPATH).write_bytes(b"\x00\x01RIFF")
    with pytest.raises(UserError, match="not a text file"):
        us.read_metadata(tmp_path)


def test_column_order_and_extra_columns_are_accepted(tmp_path):
    _write_csv(tmp_path, "class,classID,fold,salience,end,start,fsID,slice_file_name,extra\n"
                         "dog_bark,3,7,2,4.0,0.5,99,99-3-0-0.wav,x\n")
    (clip,) = us.read_metadata(tmp_path).clips
    assert (clip.name, clip.fold, clip.class_id, clip.salience, clip.fs_id, clip.start) == \
        ("99-3-0-0.wav", 7, 3, 2, 99, 0.5)


# -- decoding -----------------------------------------------------------------------------------

# Maximum abs error of a decoded file against the signal written, full scale 1.0.
PCM_TOLERANCE = {"PCM_U8": 1.01 / 128, "PCM_16": 1.01 / 32768, "PCM_24": 1.01 / 2**23,
                 "PCM_32": 1e-7, "FLOAT": 1e-7}


def test_every_encoding_decodes_and_matches_its_source(demo_root):
    plans = {p.name: p for p in synth.plan(*_demo_params(demo_root))}
    seen_sub, seen_rate, seen_ch = set(), set(), set()
    for name, p in plans.items():
        path = demo_root / p.relpath
        info = sf.info(str(path))
        assert (info.subtype, info.samplerate, info.channels) == (p.subtype, p.sample_rate, p.channels)
        x, sr = us.read_audio(path)
        assert sr == p.sample_rate and x.dtype == np.float32 and x.ndim == 1
        ref = synth.render(p).mean(axis=1)            # stereo: the decoder mixes to the channel mean
        if p.subtype in PCM_TOLERANCE:
            assert x.size == ref.size
            assert np.abs(x - ref).max() <= PCM_TOLERANCE[p.subtype] * max(1, p.channels)
        else:                                          # ADPCM: lossy, decoded to whole blocks
            assert ref.size <= x.size < ref.size + 4096
            x = x[:ref.size]
            snr = 10 * np.log10(np.sum(ref ** 2) / np.sum((x - ref) ** 2))
            assert snr > 6.0, (name, p.subtype, snr)
        seen_sub.add(p.subtype)
        seen_rate.add(p.sample_rate)
        seen_ch.add(p.channels)
    assert seen_sub == set(synth.ENCODINGS) >= {"PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT",
                                                "IMA_ADPCM", "MS_ADPCM"}
    assert seen_rate == set(synth.RATES) and min(seen_rate) == 8000 and max(seen_rate) == 96000
    assert seen_ch == {1, 2}


def test_load_clip_resamples_pads_and_crops(tmp_path):
    sr_in, sr_out = 44100, 16000
    t = np.arange(int(1.5 * sr_in)) / sr_in
    tone = 0.5 * np.sin(2 * np.pi * 1000 * t)
    sf.write(tmp_path / "short.wav", np.stack([tone, tone], 1), sr_in, subtype="PCM_24")
    x = us.load_clip(tmp_path / "short.wav", sr_out)
    assert x.shape == (4 * sr_out,) and x.dtype == np.float32
    n = int(1.5 * sr_out)
    expect = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(n) / sr_out)
    assert np.abs(x[200:n - 200] - expect[200:n - 200]).max() < 1e-3     # away from the edges
    assert not x[n + 50:].any()                                           # zero padding
    sf.write(tmp_path / "long.wav", np.zeros(6 * 8000), 8000, subtype="PCM_16")
    assert us.load_clip(tmp_path / "long.wav", 22050).shape == (4 * 22050,)


def test_float_file_beyond_full_scale_is_clipped(tmp_path):
    sf.write(tmp_path / "loud.wav", np.full(1000, 3.0, dtype=np.float32), 8000, subtype="FLOAT")
    assert us.load_clip(tmp_path / "loud.wav", 8000).max() == 1.0


def _damage(root, how: str):
    ds = us.read_metadata(root)
    clip = ds.clips[{"truncated": 3, "text": 5, "empty": 7, "missing": 9, "header": 11}[how]]
    data = clip.path.read_bytes()
    if how == "truncated":
        clip.path.write_bytes(data[: len(data) // 3])
    elif how == "text":
        clip.path.write_text("this is not audio\n" * 20)
    elif how == "empty":
        clip.path.write_bytes(b"")
    elif how == "missing":
        clip.path.unlink()
    elif how == "header":
        clip.path.write_bytes(data[:40])
    return clip


@pytest.mark.parametrize("how, reason", [("truncated", "truncated"), ("text", "unreadable"),
                                         ("empty", "unreadable"), ("missing", "missing file"),
                                         ("header", "data")])
def test_damaged_files_raise_audio_error(copy_dataset, how, reason):
    root = copy_dataset()
    clip = _damage(root, how)
    with pytest.raises(us.AudioError, match=reason):
        us.load_clip(clip.path, 16000)


def test_intact_files_pass_the_riff_check(demo_root):
    for clip in us.read_metadata(demo_root).clips:
        us.check_riff(clip.path)


def test_skip_report_summary():
    rep = us.SkipReport()
    assert rep.summary() == "" and len(rep) == 0
    for i in range(12):
        rep.add(f"audio/fold1/{i}.wav", "truncated")
    text = rep.summary(limit=3)
    assert text.startswith("skipped 12 unusable") and "... and 9 more" in text


# -- folds --------------------------------------------------------------------------------------

def test_no_clip_in_two_folds(demo_root):
    ds = us.read_metadata(demo_root)
    assert len({c.name for c in ds.clips}) == len(ds.clips)
    on_disk = Counter(p.name for f in us.FOLDS for p in (demo_root / "audio" / f"fold{f}").iterdir())
    assert set(on_disk.values()) == {1}
    by_recording: dict[int, set[int]] = {}
    for c in ds.clips:                    # slices of one recording stay in one fold
        by_recording.setdefault(c.fs_id, set()).add(c.fold)
    assert all(len(f) == 1 for f in by_recording.values())


def test_fold_split():
    s = us.FoldSplit.for_test_fold(10)
    assert s.test == (10,) and s.val == (1,) and s.train == tuple(range(2, 10))
    assert s.selection_folds == tuple(range(1, 10))
    splits = us.cross_validation_splits()
    assert [x.test for x in splits] == [(k,) for k in us.FOLDS]
    for x in splits:
        assert set(x.train) | set(x.val) | set(x.test) == set(us.FOLDS)
    with pytest.raises(UserError, match="in both train and test"):
        us.FoldSplit(train=(1, 2), val=(3,), test=(2,))
    with pytest.raises(UserError, match="out of range"):
        us.FoldSplit(train=(1, 11), val=(3,))
    with pytest.raises(UserError, match="no training fold"):
        us.FoldSplit(train=(), val=(3,))


def test_clip_selection_never_contains_the_test_fold(demo_root, monkeypatch):
    ds = us.read_metadata(demo_root)
    split = us.FoldSplit.for_test_fold(4)
    sel = us.select_clips(ds, split)
    read = []
    real = us.read_audio
    monkeypatch.setattr(us, "read_audio", lambda p, **kw: (read.append(p), real(p, **kw))[1])
    for clip in sel.train + sel.val:       # what a selection path does with its clips
        us.load_clip(clip.path, 8000)
    test_paths = {c.path for c in us.held_out_clips(ds, split)}
    assert read and test_paths and not test_paths & set(read)
    assert {c.fold for c in sel.train} == set(split.train) and {c.fold for c in sel.val} == {5}
    assert not hasattr(sel, "test") and not hasattr(sel, "dataset")


def test_unusual_root_errors(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(UserError, match="not found"):
        us.find_root(target)
