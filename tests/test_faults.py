"""Nothing lost, nothing silent (issue 12): five families of faults, each met by one mechanism and
proven here on real processes and real files: one `error:` line, the exit code, and every trial
completed before the fault still there and counted after the rerun.

1. a resumed study whose inputs changed (`nas.study.identity`; the worker loop's rule for exceptions)
2. dataset problems (`nas.data.validate`, the bounded decoder in `nas.data.urbansound`)
3. storage faults: full disks, torn journal records, bad URLs, read-only folders (`nas.study.storage`,
   `nas.core.errors.fault_line`, allocation before writing in `nas.core.atomic` / `nas.data.cache`)
4. work lost to a kill: unfinished trials, references included, queued again (`nas.study.trials`)
5. export and build: never delete what the tool did not write, library paths, file modes, one build
   folder per compiler (`nas.export.folder`, `nas.export.pipeline.check_libraries`, the Makefile)
"""
from __future__ import annotations

import csv
import io
import os
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import soundfile as sf
import yaml
from optuna.trial import TrialState

from _proc import (BUDGET, REFERENCES, ROOT, ENV, completed, counted_trials, fill, journal_is_whole, journal_path,
                   needs_mount, ok, one_error_line, read_study, remount, run, search_cmd, tiny_space, tmpfs)
from nas.arch.space import SearchSpace
from nas.budget import Budget
from nas.data import urbansound as us
from nas.data.validate import validate_dataset
from nas.search.objective import Objective
from nas.search.worker import run_trials
from nas.study.claim import claim_for
from nas.study.study import load_study
from nas.study.trials import counted, requeue_unfinished
from nas.train.recipe import Recipe

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def study_of(cwd: Path, name: str = "s", journal: Path | None = None) -> optuna.Study:
    return read_study(journal or journal_path(cwd, name), name)


def rerun_keeps(cwd: Path, before: dict, total: int, *extra: str, name: str = "s", journal: Path | None = None,
                **kw) -> None:
    """Rerun the study up to `total`: exit 0, every trial completed before intact, the total exact."""
    ok(run(search_cmd(cwd, cwd / "ds", "--trials", str(total), "--study", name, *extra, **kw), cwd))
    study = study_of(cwd, name, journal)
    after = completed(study)
    assert all(after.get(n) == v for n, v in before.items()), (before, after)
    assert len(counted_trials(study)) == total
    assert not [t for t in study.get_trials() if t.state == TrialState.RUNNING]


# -- 1. a resumed study whose inputs changed -------------------------------------------------------

def _drop_last_csv_row(cwd: Path) -> None:
    path = cwd / "ds" / us.CSV_RELPATH
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]))


def test_resume_with_changed_inputs_is_refused_and_loses_nothing(work):
    """Each input that defines the study, changed on its own: one line naming it, nothing added."""
    before, n_trials = completed(study_of(work)), len(study_of(work).trials)
    (work / "other").mkdir()
    frontend = {**yaml.safe_load((work / "tiny.yaml").read_text())["frontend"], "overlap": [0.0, 0.5, 0.75]}
    csv_path = work / "ds" / us.CSV_RELPATH
    saved = csv_path.read_bytes()
    changes = [("budget", [], {"budget": ROOT / "budgets" / "nrf52840.yaml"}),
               ("search space", [], {"space": tiny_space(work / "other", frontend=frontend)}),
               ("training recipe", [], {"epochs": 2}),
               ("folds", ["--val-fold", "8"], {}),
               ("dataset", [], {})]
    for part, extra, kw in changes:
        if part == "dataset":
            _drop_last_csv_row(work)
        line = one_error_line(run(search_cmd(work, work / "ds", "--trials", "5", "--study", "s", *extra, **kw), work))
        assert f"study 's' was created with another {part} (" in line and "--study NEW" in line, line
        assert len(study_of(work).trials) == n_trials and completed(study_of(work)) == before  # nothing added
    csv_path.write_bytes(saved)
    rerun_keeps(work, before, 4)


def test_an_exception_while_sampling_stops_the_run_and_the_trial_is_redone(tmp_path):
    """Optuna refusing a parameter (or any fault before training) neither loops nor counts."""
    class Broken(SearchSpace):
        def suggest(self, trial):
            trial.suggest_categorical("sample_rate", [8000])
            raise ValueError("CategoricalDistribution does not support dynamic value space")

    space = SearchSpace.load(tiny_space(tmp_path))
    broken = Broken(**{f: getattr(space, f) for f in space.__dataclass_fields__})
    objective = Objective(broken, Budget.load(BUDGET), None, Recipe(epochs=1), tmp_path, log=lambda *_: None)
    storage = str(tmp_path / "j.log")
    study = load_study("b", storage, seed=0)
    for jobs in (1, 3):
        with pytest.raises(ValueError, match="dynamic value space"):
            run_trials(study, objective, total=50, claim=claim_for(storage, "b"), jobs=jobs)
    trials = study.get_trials()
    assert 2 <= len(trials) <= 4 and counted(study) == 0  # one per thread at most, none counted
    assert all(t.state == TrialState.FAIL and "dynamic value space" in t.user_attrs["stopped_run"] for t in trials)
    assert sorted(requeue_unfinished(study)) == [t.number for t in trials]  # redone by the next run
    assert requeue_unfinished(study) == []  # once


# -- 2. dataset problems, found before the study starts --------------------------------------------

def _rewrite_csv(cwd: Path, edit) -> None:
    path = cwd / "ds" / us.CSV_RELPATH
    rows = list(csv.reader(io.StringIO(path.read_text())))
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(edit(rows))
    path.write_text(out.getvalue())


def _each_wav(cwd: Path, write) -> None:
    for wav in sorted((cwd / "ds" / "audio").glob("fold*/*.wav")):
        write(wav)


def _damage(cwd: Path, kind: str) -> None:
    if kind == "missing column":
        _rewrite_csv(cwd, lambda rows: [r[:6] + r[7:] for r in rows])       # no classID
    elif kind == "short row":
        _rewrite_csv(cwd, lambda rows: [rows[0], rows[1][:-2], *rows[2:]])
    elif kind == "every file unreadable":
        _each_wav(cwd, lambda p: p.write_bytes(b"this is not audio"))
    elif kind == "every clip non-finite":
        _each_wav(cwd, lambda p: sf.write(p, np.full(8000, np.nan, np.float32), 8000, subtype="FLOAT"))
    elif kind == "empty validation fold":
        _rewrite_csv(cwd, lambda rows: [r for r in rows if r[5] != "9"])


BROKEN = [("missing column", "missing column(s) classID"),
          ("short row", "line 2: 6 fields, expected 8"),
          ("every file unreadable", "is readable (first: audio/fold"),
          ("every clip non-finite", "do not decode to usable audio (first: audio/fold"),
          ("empty validation fold", "the validation fold 9 lists no clip")]


def test_a_broken_dataset_is_one_line_before_the_study_and_the_fixed_one_resumes(work, base):
    """Each problem that used to fail every trial (counted, exit 0) stops the run before it starts."""
    before, n_trials = completed(study_of(work)), len(study_of(work).trials)
    for kind, message in BROKEN:
        _damage(work, kind)
        line = one_error_line(run(search_cmd(work, work / "ds", "--trials", "4", "--study", "s"), work))
        assert message in line, (kind, line)
        assert len(study_of(work).trials) == n_trials   # no trial was started, none counted as failed
        shutil.rmtree(work / "ds")
        shutil.copytree(base / "ds", work / "ds")       # the data fixed: the same files again
    rerun_keeps(work, before, 4)


def _with_rate(src: Path, dst: Path, rate: int) -> Path:
    """`src` (a PCM WAV) with a header claiming `rate` Hz (and the byte rate to match)."""
    raw = bytearray(src.read_bytes())
    fmt = raw.index(b"fmt ") + 8
    block_align = struct.unpack_from("<H", raw, fmt + 12)[0]
    struct.pack_into("<II", raw, fmt + 4, rate, rate * block_align)
    dst.write_bytes(bytes(raw))
    return dst


def test_nonsense_header_rates_are_skipped_with_the_reason_and_long_files_read_only_their_start(tmp_path, copy_dataset):
    root = copy_dataset()
    clip = next(c for c in us.read_metadata(root).clips if c.fold == 1)
    pcm = tmp_path / "pcm16.wav"
    sf.write(pcm, np.zeros(44100, np.float32), 44100, subtype="PCM_16")   # 88 kB: 1 s at 44.1 kHz
    for rate in (1, 999, 10_000_000):
        with pytest.raises(us.AudioError, match=f"sample rate of {rate:,} Hz"):
            us.load_clip(_with_rate(pcm, tmp_path / f"r{rate}.wav", rate), 22050)
    long = tmp_path / "long.wav"
    sf.write(long, np.zeros(8000 * 600, np.int16), 8000, subtype="PCM_16")   # 10 minutes
    audio, sr = us.read_audio(long, max_seconds=4.05)
    assert sr == 8000 and len(audio) == int(np.ceil(4.05 * 8000))
    assert len(us.load_clip(long, 22050)) == 4 * 22050
    _with_rate(clip.path, clip.path, 1)                                # one dataset file claims 1 Hz
    report = validate_dataset(root, us.FoldSplit.for_test_fold(10, 9), log=lambda *_: None)
    assert (f"audio/fold1/{clip.name}", "header claims a sample rate of 1 Hz (expected 1,000 to 384,000)") in report.skipped
    assert any("unusable and will be skipped" in w for w in report.warnings)


def test_a_class_missing_from_the_training_folds_is_a_warning(copy_dataset):
    root = copy_dataset()
    path = root / us.CSV_RELPATH
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + "".join(l for l in lines[1:] if l.rstrip().split(",")[6] != "6" or
                                       l.split(",")[5] in ("9", "10")))
    warnings = []
    validate_dataset(root, us.FoldSplit.for_test_fold(10, 9), log=warnings.append)
    assert len(warnings) == 1 and "class 6 (gun_shot)" in warnings[0] and "training folds 1,2,3,4,5,6,7,8" in warnings[0]


# -- 3. storage: full disks, torn records, bad URLs, read-only folders ------------------------------

@needs_mount
@pytest.mark.parametrize("where", ["journal", "checkpoints", "cache"])
def test_a_full_disk_stops_the_run_with_one_line_and_loses_nothing(work, where):
    """A real full disk (tmpfs) under the journal, the study folder or the feature cache."""
    disk = work / "disk"
    extra, journal, kw = [], None, {}
    with tmpfs(disk, "8m"):
        if where == "journal":
            journal = disk / "journal.log"
            shutil.copy(journal_path(work, "s"), journal)
            extra = ["--storage", str(journal)]
        elif where == "checkpoints":                     # the journal stays on a disk with room
            checkpoints = work / "studies" / "s" / "checkpoints"
            shutil.copytree(checkpoints, disk / "checkpoints")
            shutil.rmtree(checkpoints)
            checkpoints.symlink_to(disk / "checkpoints")
        else:
            kw["cache"] = disk / "cache"                 # an empty cache: its build needs the disk
        before = completed(study_of(work, journal=journal))
        ballast = fill(disk)
        line = one_error_line(run(search_cmd(work, work / "ds", "--trials", "6", "--study", "s", *extra, **kw), work))
        assert "No space left on device" in line and "rerun the same command" in line, line
        on_disk = journal or journal_path(work, "s")
        assert journal_is_whole(on_disk)                 # no torn record: a failed append is cut back
        assert completed(study_of(work, journal=journal)) == before
        ballast.unlink()
        rerun_keeps(work, before, 6, *extra, journal=journal, **kw)
        assert not Path(f"{on_disk}.torn").exists()


def test_a_torn_last_journal_record_is_set_aside_and_the_study_resumes(work):
    """A power cut in the middle of a write leaves half a record; the next run sets it aside."""
    journal = journal_path(work, "s")
    before = completed(study_of(work))
    last = journal.read_bytes().splitlines()[-1]
    with open(journal, "ab") as fh:
        fh.write(last[: len(last) // 2])
    proc = ok(run(search_cmd(work, work / "ds", "--trials", "5", "--study", "s"), work))
    assert "its last record was cut short" in proc.stderr
    assert Path(f"{journal}.torn").read_bytes() == last[: len(last) // 2] + b"\n"
    assert journal_is_whole(journal)
    study = study_of(work)
    assert all(completed(study).get(n) == v for n, v in before.items()) and len(counted_trials(study)) == 5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_storage_that_cannot_work_is_one_line(tmp_path, demo_root):
    port = _free_port()                                 # nothing listens there: a real refused connection
    cases = [(f"postgresql://nas:secret@127.0.0.1:{port}/nas", f"postgresql://nas:***@127.0.0.1:{port}/nas: cannot connect ("),
             ("nosuchdb://host/x", "nosuchdb://host/x: unknown scheme 'nosuchdb'"),
             ("sqlite:////nonexistent/folder/s.db", "sqlite:////nonexistent/folder/s.db: folder /nonexistent/folder does not exist")]
    try:
        import MySQLdb  # noqa: F401
    except ImportError:
        cases.append((f"mysql://u@127.0.0.1:{port}/db", f"mysql://u@127.0.0.1:{port}/db: the mysql driver is not installed"))
    tiny_space(tmp_path)
    for url, message in cases:
        line = one_error_line(run(search_cmd(tmp_path, demo_root, "--trials", "2", "--study", "u", "--storage", url),
                                  tmp_path, timeout=120))
        assert line.startswith(f"error: --storage {message}") and "secret" not in line, line
    assert not (tmp_path / "studies").exists()           # nothing was written
    export = run([sys.executable, "-m", "nas.export", "--study", "u", "--storage", cases[0][0]], tmp_path, timeout=120)
    assert one_error_line(export).startswith(f"error: --storage {cases[0][1]}")


@needs_mount
def test_a_read_only_studies_folder_is_one_line_and_the_study_resumes_once_writable(work):
    studies = work / "studies"
    shutil.move(studies, work / "saved")
    with tmpfs(studies, "32m"):
        shutil.copytree(work / "saved", studies, dirs_exist_ok=True)
        before = completed(study_of(work))
        remount(studies, "ro")
        for name in ("s", "new"):                       # resuming, and starting a study there
            line = one_error_line(run(search_cmd(work, work / "ds", "--trials", "4", "--study", name), work))
            assert "Read-only file system" in line and "studies" in line, line
        assert completed(study_of(work)) == before
        remount(studies, "rw")
        rerun_keeps(work, before, 4)


# -- 4. work lost to a kill -------------------------------------------------------------------------

def test_a_reference_killed_while_training_is_queued_again_and_trained(tmp_path, demo_root):
    tiny_space(tmp_path)
    cmd = search_cmd(tmp_path, demo_root, "--trials", "4", "--study", "k", epochs=6)
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    journal, deadline = journal_path(tmp_path, "k"), time.time() + 300
    while time.time() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        if journal.exists():
            t0 = next((t for t in study_of(tmp_path, "k").get_trials() if t.number == 0), None)
            if t0 is not None and t0.state == TrialState.RUNNING and t0.user_attrs.get("curve"):
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = study_of(tmp_path, "k").trials[0]
    assert killed.state == TrialState.RUNNING and killed.user_attrs["reference"] == "Tiny-A"
    out = ok(run(cmd, tmp_path)).stdout
    assert "1 stale running trial(s) closed, 1 unfinished trial(s) queued again" in out
    study = study_of(tmp_path, "k")
    refs = [t.user_attrs.get("reference") for t in counted_trials(study) if t.user_attrs.get("reference")]
    assert sorted(refs) == sorted(REFERENCES) and len(counted_trials(study)) == 4
    redo = next(t for t in study.trials if t.user_attrs.get("redo_of") == 0)
    assert redo.user_attrs["reference"] == "Tiny-A" and redo.params == killed.params


# -- 5. export and build ----------------------------------------------------------------------------

def export_cmd(*extra: str) -> list[str]:
    return [sys.executable, "-m", "nas.export", "--study", "s", "--trial", "0", "--no-verify", *extra]


def test_export_never_deletes_what_it_did_not_write_and_writes_normal_modes(work):
    ok(run(export_cmd(), work))
    folder = work / "export" / "s" / "trial_0"
    umask = os.umask(0o022)
    os.umask(umask)
    modes = {str(p.relative_to(folder)): stat.S_IMODE(p.stat().st_mode) for p in folder.rglob("*") if p.is_file()}
    written = {k: m for k, m in modes.items() if not k.startswith("cmsisnn_portable/")}  # the rest are copies
    assert len(written) >= 8 and set(written.values()) == {0o666 & ~umask}, modes
    assert all(m & 0o444 == 0o444 & ~umask for m in modes.values()), modes
    (folder / "notes.txt").write_text("mine")
    line = one_error_line(run(export_cmd(), work))
    assert "export/s/trial_0: holds 1 file(s) the export did not write" in line and "notes.txt" in line and "--force" in line
    (folder / "notes.txt").unlink()
    model_c = (folder / "model.c").read_text()
    (folder / "model.c").write_text(model_c + "/* tuned by hand */\n")
    assert "(model.c)" in one_error_line(run(export_cmd(), work))
    assert (folder / "model.c").read_text().endswith("/* tuned by hand */\n")   # left alone
    ok(run(export_cmd("--force"), work))
    assert (folder / "model.c").read_text() == model_c
    ok(run(export_cmd(), work))                            # its own files only: replaced without --force


def test_a_path_that_is_not_the_library_is_one_line(work, tmp_path):
    (tmp_path / "empty").mkdir()
    for var, text in (("CMSIS_NN_PATH", "is not a CMSIS-NN checkout"), ("CMSIS_DSP_PATH", "is not a CMSIS-DSP tree")):
        proc = run(export_cmd(), work, env={**ENV, var: str(tmp_path / "empty")})
        line = one_error_line(proc)
        assert var in line and str(tmp_path / "empty") in line and text in line, line
    assert not (work / "export" / "s" / "trial_0").exists()


@needs_mount
def test_a_read_only_export_folder_is_one_line(work):
    with tmpfs(work / "ro", "1m"):
        remount(work / "ro", "ro")
        line = one_error_line(run(export_cmd("--out", str(work / "ro")), work))
        assert "Read-only file system" in line, line


@pytest.mark.skipif(shutil.which("make") is None or shutil.which("gcc") is None, reason="make and gcc needed")
def test_make_builds_one_folder_per_compiler(work, tmp_path):
    ok(run(export_cmd(), work))
    folder = work / "export" / "s" / "trial_0"
    make = lambda *a: subprocess.run(["make", "-s", *a], cwd=folder, capture_output=True, text=True, timeout=300)  # noqa: E731
    host = make("lib", "CC=gcc")
    assert host.returncode == 0, host.stderr
    assert (folder / "build" / "gcc" / "libnas_model.a").is_file()
    (tmp_path / "empty").mkdir()
    bad = make("lib", f"CMSIS_NN_PATH={tmp_path / 'empty'}")
    assert bad.returncode != 0 and "is not a CMSIS-NN checkout" in bad.stderr and len(bad.stderr.splitlines()) == 1
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc not installed: the cross build half is not run")
    arm = make("lib", "CC=arm-none-eabi-gcc", "AR=arm-none-eabi-ar",
               "CFLAGS=-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 -O2")
    assert arm.returncode == 0 and "Nothing to be done" not in arm.stdout + arm.stderr, arm.stdout + arm.stderr
    header = (folder / "build" / "arm-none-eabi-gcc" / "model.o").read_bytes()[:20]
    assert header[:4] == b"\x7fELF" and struct.unpack_from("<H", header, 18)[0] == 40  # EM_ARM
    assert (folder / "build" / "gcc" / "model.o").read_bytes()[:4] == b"\x7fELF"     # the host build is kept
