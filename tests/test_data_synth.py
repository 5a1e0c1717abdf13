"""Synthetic dataset: exact UrbanSound8K layout, coverage of encodings, determinism, CLI."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from nas.core.errors import UserError
from nas.data import synth
from nas.data import urbansound as us

REPO = Path(__file__).resolve().parents[1]


def test_layout_and_csv_schema(demo_root):
    with open(demo_root / "metadata" / "UrbanSound8K.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == us.COLUMNS == ("slice_file_name", "fsID", "start", "end", "salience", "fold",
                                            "classID", "class")
    assert sorted(p.name for p in (demo_root / "audio").iterdir()) == sorted(f"fold{i}" for i in range(1, 11))
    names = {(int(r[6]), r[7]) for r in rows[1:]}
    assert names == set(enumerate(us.CLASSES))
    assert {int(r[4]) for r in rows[1:]} == {1, 2}
    for r in rows[1:]:
        info = sf.info(str(demo_root / "audio" / f"fold{r[5]}" / r[0]))
        dur = float(r[3]) - float(r[2])
        assert 0.3 < dur <= 4.0 + 2e-6
        if "ADPCM" in info.subtype:                            # decoded to whole ADPCM blocks
            assert dur * info.samplerate - 1 <= info.frames < dur * info.samplerate + 4096
        else:
            assert info.frames / info.samplerate == pytest.approx(dur, abs=2e-3)
        fs_id, cls = r[0].split("-")[:2]
        assert fs_id == r[1] and cls == r[6]                  # {fsID}-{classID}-{occurrence}-{slice}.wav


def test_deterministic_by_seed(tmp_path):
    a = synth.generate(tmp_path / "a", seed=3, clips_per_class=1, progress=False)
    b = synth.generate(tmp_path / "b", seed=3, clips_per_class=1, progress=False)
    c = synth.generate(tmp_path / "c", seed=4, clips_per_class=1, progress=False)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) == 10 + 2                                # 10 clips, CSV, marker
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    assert (a / us.CSV_RELPATH).read_bytes() != (c / us.CSV_RELPATH).read_bytes()


def test_interrupted_generation_is_redone(tmp_path, monkeypatch):
    calls = []

    def fail_third(p, sig):
        calls.append(p)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_encode(p, sig)
    real_encode = synth.encode
    monkeypatch.setattr(synth, "encode", fail_third)
    with pytest.raises(KeyboardInterrupt):
        synth.generate(tmp_path / "i", clips_per_class=1, progress=False)
    assert not (tmp_path / "i" / us.CSV_RELPATH).exists()      # incomplete: the loader says "not found"
    monkeypatch.setattr(synth, "encode", real_encode)
    synth.generate(tmp_path / "i", clips_per_class=1, progress=False)
    assert len(us.read_metadata(tmp_path / "i").clips) == 10


def test_rerun_is_a_no_op_and_changes_regenerate(tmp_path):
    out = synth.generate(tmp_path / "d", seed=0, clips_per_class=1, progress=False)
    csv_path = out / us.CSV_RELPATH
    mtime = csv_path.stat().st_mtime_ns
    wavs = sorted(out.rglob("*.wav"))
    synth.generate(out, seed=0, clips_per_class=1, progress=False)
    assert csv_path.stat().st_mtime_ns == mtime and sorted(out.rglob("*.wav")) == wavs
    synth.generate(out, seed=0, clips_per_class=2, progress=False)
    assert len(us.read_metadata(out).clips) == 20 and len(list(out.rglob("*.wav"))) == 20


def test_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "mine.txt").write_text("precious")
    with pytest.raises(UserError, match="not empty"):
        synth.generate(tmp_path, clips_per_class=1, progress=False)
    assert (tmp_path / "mine.txt").read_text() == "precious"
    assert (tmp_path / "mine.txt").read_text() == "precious"
    real = tmp_path / "real"                                   # a dataset we did not write: never touched
    (real / "metadata").mkdir(parents=True)
    (real / us.CSV_RELPATH).write_text(",".join(us.COLUMNS) + "\n")
    (real / "audio" / "fold1").mkdir(parents=True)
    (real / "audio" / "fold1" / "1-0-0-0.wav").write_bytes(b"RIFF")
    with pytest.raises(UserError, match="not written by nas.data.synth"):
        synth.generate(real, clips_per_class=1, progress=False)
    assert (real / "audio" / "fold1" / "1-0-0-0.wav").exists() and (real / us.CSV_RELPATH).exists()
    with pytest.raises(UserError, match="at least 1"):
        synth.plan(0, 0)


def test_plan_covers_encodings_rates_channels_and_balances_folds():
    plans = synth.plan(0, 40)
    assert {p.subtype for p in plans} == set(synth.ENCODINGS)
    assert {p.sample_rate for p in plans} == set(synth.RATES)
    assert {p.channels for p in plans} == {1, 2}
    for f in us.FOLDS:                                          # every fold holds every class
        assert {p.class_id for p in plans if p.fold == f} == set(range(10))
    assert len({p.name for p in plans}) == 400


def test_cli(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    run = lambda *args: subprocess.run([sys.executable, "-m", "nas.data.synth", *args],  # noqa: E731
                                       capture_output=True, text=True, env=env, timeout=120)
    ok = run("--out", str(tmp_path / "ds"), "--seed", "1", "--clips-per-class", "1")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == str(tmp_path / "ds") and "synth clips" in ok.stderr   # progress bar
    assert len(us.read_metadata(tmp_path / "ds").clips) == 10
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x").write_text("x")
    bad = run("--out", str(tmp_path / "other"))
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and bad.stderr.count("\n") == 1
