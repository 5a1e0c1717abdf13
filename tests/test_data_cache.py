"""Feature cache: hit without decoding, misses on any change, concurrency, damaged data, windows."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.arch.frontend import logmel
from nas.arch.spec import FrontEnd
from nas.core import owned
from nas.core.errors import UserError
from nas.data import cache as C
from nas.data import urbansound as us

FE = FrontEnd(sample_rate=16000, n_fft=512, hop_length=256, n_mels=40, frames=31)
REPO = Path(__file__).resolve().parents[1]


def _load(root, cache_dir, fe=FE, **kw):
    return C.load_features(root, fe, cache_dir=cache_dir, progress=False, **kw)


def _forbid_decoding(monkeypatch):
    def boom(path):
        raise AssertionError(f"decoded {path} on a cache hit")
    monkeypatch.setattr(us, "read_audio", boom)


def test_build_then_hit_without_decoding(demo_root, tmp_path, monkeypatch):
    before = us.decode_count()
    f = _load(demo_root, tmp_path)
    ds = us.read_metadata(demo_root)
    assert us.decode_count() - before == len(ds.clips)
    assert isinstance(f.x, np.memmap) and not f.x.flags.writeable
    assert f.x.dtype == np.float16 and f.x.shape == (len(ds.clips), 249, 40)
    assert f.names == tuple(c.name for c in ds.clips)
    np.testing.assert_array_equal(f.y, [c.class_id for c in ds.clips])
    np.testing.assert_array_equal(f.fold, [c.fold for c in ds.clips])
    np.testing.assert_array_equal(f.salience, [c.salience for c in ds.clips])
    assert f.classes == us.CLASSES and f.skipped == () and f.path.parent == tmp_path

    count = us.decode_count()
    _forbid_decoding(monkeypatch)
    g = _load(demo_root, tmp_path)
    assert us.decode_count() == count and g.path == f.path
    np.testing.assert_array_equal(np.asarray(g.x), np.asarray(f.x))


def test_features_are_the_front_end_output(demo_root, tmp_path):
    f = _load(demo_root, tmp_path)
    ds = us.read_metadata(demo_root)
    for i in (0, 17, 42):
        audio = torch.from_numpy(us.load_clip(ds.clips[i].path, FE.sample_rate))
        ref = logmel(audio, FE).numpy()
        assert np.abs(f.x[i].astype(np.float32) - ref).max() <= 0.04     # float16 rounding at |x| < 64


def test_window_fields_share_the_cache_and_feature_fields_miss(demo_root, tmp_path, monkeypatch):
    f = _load(demo_root, tmp_path)
    _forbid_decoding(monkeypatch)
    for same in (dataclasses.replace(FE, frames=10, overlap=0.5), dataclasses.replace(FE, fmax=8000.0)):
        assert _load(demo_root, tmp_path, same).path == f.path
    monkeypatch.undo()
    for changed in (dict(n_mels=32), dict(hop_length=128), dict(n_fft=1024), dict(fmin=30.0),
                    dict(fmax=7000.0), dict(sample_rate=8000, fmax=None)):
        before = us.decode_count()
        g = _load(demo_root, tmp_path, dataclasses.replace(FE, **changed))
        assert g.path != f.path and us.decode_count() > before, changed
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 7


@pytest.mark.parametrize("change", ["touch", "rewrite", "add", "remove", "csv"])
def test_data_changes_miss(copy_dataset, tmp_path, change):
    root = copy_dataset()
    f = _load(root, tmp_path / "cache")
    clip = us.read_metadata(root).clips[0]
    if change == "touch":
        st = clip.path.stat()
        os.utime(clip.path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    elif change == "rewrite":                      # same size, new content
        data = bytearray(clip.path.read_bytes())
        data[-1] ^= 0xFF
        clip.path.write_bytes(bytes(data))
    elif change == "add":
        (root / "audio" / "fold1" / "extra.wav").write_bytes(clip.path.read_bytes())
    elif change == "remove":
        clip.path.unlink()
    else:
        csv = root / us.CSV_RELPATH
        csv.write_text(csv.read_text().replace(",2,", ",1,", 1))
    g = _load(root, tmp_path / "cache")
    assert g.path != f.path
    if change == "remove":
        assert g.skipped == ((str(clip.path.relative_to(root)), "missing file"),) and len(g) == len(f) - 1


def test_damaged_files_are_skipped_listed_and_cached(copy_dataset, tmp_path, capsys, monkeypatch):
    root = copy_dataset()
    clips = us.read_metadata(root).clips
    data = clips[3].path.read_bytes()
    clips[3].path.write_bytes(data[: len(data) // 2])                # truncated
    clips[8].path.write_text("<html>not audio</html>")               # non-audio
    clips[20].path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")      # corrupt header
    f = C.load_features(root, FE, cache_dir=tmp_path / "c", progress=True)
    rel = lambda c: str(c.path.relative_to(root))                    # noqa: E731
    assert [s[0] for s in f.skipped] == [rel(clips[3]), rel(clips[8]), rel(clips[20])]
    assert f.skipped[0][1].startswith("truncated")
    assert len(f) == len(clips) - 3 and f.x.shape[0] == len(clips) - 3
    assert clips[3].name not in f.names and clips[4].name in f.names
    err = capsys.readouterr().err
    assert "warning: skipped 3 unusable audio file(s)" in err and rel(clips[8]) in err
    _forbid_decoding(monkeypatch)
    assert _load(root, tmp_path / "c").skipped == f.skipped          # the list survives in the cache


def test_no_readable_file_is_a_user_error(copy_dataset, tmp_path):
    root = copy_dataset()
    for c in us.read_metadata(root).clips:
        c.path.write_bytes(b"nope")
    with pytest.raises(UserError, match="none of the 60 listed audio files could be read"):
        _load(root, tmp_path)


def test_missing_dataset_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="UrbanSound8K not found"):
        _load(tmp_path / "none", tmp_path / "cache")


def test_corrupt_cache_is_rebuilt(demo_root, tmp_path):
    f = _load(demo_root, tmp_path)
    path = f.path
    del f
    with open(path / "features.npy", "r+b") as fh:
        fh.truncate(1000)
    before = us.decode_count()
    g = _load(demo_root, tmp_path)
    assert g.path == path and g.x.shape[0] == 60 and us.decode_count() > before
    assert not list(tmp_path.glob(".tmp-*")) and not list(tmp_path.glob(".trash-*"))


_CHILD = """
import sys, json
from nas.data.cache import load_features
from nas.data import urbansound as us
from nas.arch.spec import FrontEnd
f = load_features(sys.argv[1], FrontEnd(sample_rate=16000, n_fft=512, hop_length=256, n_mels=40),
                  cache_dir=sys.argv[2], progress=False)
print(json.dumps({"path": str(f.path), "sum": float(f.x.astype("float64").sum()), "decodes": us.decode_count()}))
"""


def test_two_processes_building_the_same_cache(demo_root, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    procs = [subprocess.Popen([sys.executable, "-c", _CHILD, str(demo_root), str(tmp_path)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        outs.append(json.loads(out.strip().splitlines()[-1]))
    assert outs[0]["path"] == outs[1]["path"] and outs[0]["sum"] == outs[1]["sum"]
    assert sorted(o["decodes"] for o in outs)[0] == 0       # the lock made the second one wait and reuse
    dirs = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert len(dirs) == 1 and not list(tmp_path.glob(".tmp-*"))
    assert _load(demo_root, tmp_path).x.shape == (60, 249, 40)


def test_lockless_race_leaves_a_valid_cache(demo_root, tmp_path, monkeypatch):
    monkeypatch.setattr(C, "_lock", lambda path, progress: nullcontext())   # e.g. NFS without flock
    barrier = threading.Barrier(2)
    real_build = C._build

    def build(*a, **kw):
        real_build(*a, **kw)
        barrier.wait(timeout=60)        # both finish building before either renames
    monkeypatch.setattr(C, "_build", build)
    results, errors = [], []

    def run():
        try:
            results.append(_load(demo_root, tmp_path))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and len(results) == 2 and results[0].path == results[1].path
    np.testing.assert_array_equal(np.asarray(results[0].x), np.asarray(results[1].x))
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 1


def test_stale_build_folder_of_a_dead_process_is_removed(demo_root, tmp_path):
    stale = tmp_path / f".tmp-deadbeef-{owned.HOST}-999999999-abcd"
    stale.mkdir(parents=True)
    old_other = tmp_path / ".tmp-cafe-otherhost-1-abcd"
    old_other.mkdir()
    os.utime(old_other, (time.time() - 3 * 86400,) * 2)
    young_other = tmp_path / ".tmp-cafe-otherhost-2-abcd"
    young_other.mkdir()
    mine = tmp_path / f".tmp-notes-{owned.HOST}-999999999-abcd"     # named alike, but not made by the tool
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    os.utime(mine, (time.time() - 3 * 86400,) * 2)
    _load(demo_root, tmp_path)
    assert not stale.exists() and not old_other.exists() and young_other.exists()
    assert (mine / "notes.txt").read_text() == "mine"


def test_cache_dir_default_and_unwritable(demo_root, tmp_path):
    assert C.DEFAULT_CACHE_DIR == Path("studies/.cache/features")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="cannot create"):
        _load(demo_root, blocker / "cache")


# -- fold discipline ----------------------------------------------------------------------------

class _RecordingArray:
    """Wraps the memmap and records every row index read through it."""

    def __init__(self, arr):
        self.arr, self.rows = arr, set()
        self.shape, self.dtype = arr.shape, arr.dtype

    def __getitem__(self, idx):
        first = idx[0] if isinstance(idx, tuple) else idx
        self.rows.update(np.arange(self.shape[0])[first].ravel().tolist())
        return self.arr[idx]

    def __array__(self, *a, **kw):
        raise AssertionError("the whole feature array was read")


def test_selection_never_reads_the_test_fold(demo_root, tmp_path):
    f = _load(demo_root, tmp_path)
    rec = _RecordingArray(f.x)
    f = dataclasses.replace(f, x=rec)
    split = us.FoldSplit.for_test_fold(3)
    sel = f.selection(split)
    test_rows = set(np.flatnonzero(f.fold == 3).tolist())
    assert rec.rows and test_rows and not rec.rows & test_rows
    assert set(sel.train.fold) == set(split.train) and set(sel.val.fold) == {4}
    assert len(sel.train) + len(sel.val) + len(test_rows) == len(f)
    assert not set(sel.train.names) & set(sel.val.names)
    for part in (sel.train, sel.val):                   # no path back to the full cache
        assert part.path is None and not isinstance(part.x, (np.memmap, _RecordingArray))
    held = f.held_out(split)
    assert set(held.fold) == {3} and rec.rows >= test_rows


# -- windows ------------------------------------------------------------------------------------

def test_windows_numpy_and_torch():
    fe = dataclasses.replace(FE, frames=31, overlap=0.5)
    x = np.arange(2 * 249 * 40, dtype=np.float32).reshape(2, 249, 40)
    w = C.windows(x, fe)                                       # inference hop: 16 frames
    assert fe.window_hop_frames == 16 and w.shape == (2, C.n_windows(249, 31, 16), 31, 40) == (2, 14, 31, 40)
    np.testing.assert_array_equal(w[1, 3], x[1, 48:79])
    assert np.shares_memory(w, x)                              # a view
    dense = C.windows(x[0], fe, hop_frames=1)
    assert dense.shape == (219, 31, 40)
    np.testing.assert_array_equal(dense[100], x[0, 100:131])
    t = C.windows(torch.from_numpy(x), fe, hop_frames=5)
    np.testing.assert_array_equal(t.numpy(), C.windows(x, fe, hop_frames=5))
    with pytest.raises(ValueError, match="longer than the clip"):
        C.windows(x[:, :20], fe)
    with pytest.raises(ValueError):
        C.windows(x, fe, hop_frames=0)


def test_windows_on_cached_memmap(demo_root, tmp_path):
    f = _load(demo_root, tmp_path)
    w = C.windows(f.x[:4], FE)
    assert w.shape == (4, C.n_windows(249, 31, 31), 31, 40) and w.dtype == np.float16
